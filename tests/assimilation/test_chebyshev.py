"""Functions of small PSD matrices times vectors by Chebyshev expansion (LETKF's local step)."""

import math

import numpy as np
import pytest
import torch

from xdyn.assimilation._chebyshev import psd_functions_times_vectors


def _exact(K, V, fs):
    lam, U = torch.linalg.eigh(K)
    lam = lam.clamp_min(0.0).numpy()
    cols = []
    for j, f in enumerate(fs):
        g = torch.as_tensor(f(lam), dtype=K.dtype)
        cols.append((U @ (g * (U.transpose(-1, -2) @ V[..., j:j + 1]).squeeze(-1)).unsqueeze(-1)))
    return torch.cat(cols, -1)


@pytest.mark.parametrize("scale", [1e-6, 0.05, 1.0, 4.0])
def test_equals_the_eigendecomposition_to_rounding(scale):
    """The LETKF's two functions on spectra up to several times the singularity distance."""
    gen = torch.Generator().manual_seed(0)
    S = torch.randn(30, 25, 40, dtype=torch.float64, generator=gen) * scale
    K = S @ S.transpose(-1, -2)
    V = torch.randn(30, 25, 2, dtype=torch.float64, generator=gen)
    a = 39.0
    fs = (lambda lam: 1.0 / (lam + a),
          lambda lam: -1.0 / (np.sqrt(lam + a) * (np.sqrt(lam + a) + math.sqrt(a))))
    out = psd_functions_times_vectors(K, V, fs, a, max_degree=200)
    exact = _exact(K, V, fs)
    err = float((out - exact).abs().max() / exact.abs().max())
    assert err < 1e-13


def test_too_wide_a_spectrum_is_left_to_eigh():
    K = torch.eye(3, dtype=torch.float64) * 1e6
    V = torch.ones(3, 1, dtype=torch.float64)
    assert psd_functions_times_vectors(K, V, [lambda lam: 1 / (lam + 1.0)], 1.0) is None


def test_letkf_with_and_without_the_expansion(l96_twin, monkeypatch):
    """The LETKF analysis through the expansion equals the eigh one to rounding."""
    import xdyn.assimilation.letkf as letkf_module
    from xdyn.assimilation import LETKF

    system, truth, obs = l96_twin
    obs = obs.isel(time=slice(0, 20))
    x0 = truth.isel(time=0).x.values

    def run():
        est = LETKF(system=system, n_members=40, inflation=1.01, localization_radius=4.0,
                    initial_state=x0, random_state=0, return_ensemble=False)
        return est.fit(obs).predict(obs)

    calls = []
    real = letkf_module.psd_functions_times_vectors

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(letkf_module, "psd_functions_times_vectors", spy)
    fast = run()
    assert calls and all(calls)  # every local analysis took the expansion
    monkeypatch.setattr(letkf_module, "psd_functions_times_vectors", lambda *a, **k: None)
    slow = run()
    np.testing.assert_allclose(fast.x, slow.x, atol=1e-10, rtol=0)
