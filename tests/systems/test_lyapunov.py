"""Lyapunov exponents by the Benettin/QR method against published values."""

import numpy as np
import pytest
import torch
import xarray as xr

from xdyn.systems.kuramoto_sivashinsky import KuramotoSivashinsky
from xdyn.systems.lorenz63 import Lorenz63
from xdyn.systems.lorenz96 import Lorenz96
from xdyn.systems.lyapunov import lyapunov_exponents


def test_lorenz63_leading_exponent_matches_literature():
    # Sprott (2003): 0.9056. Many short windows in one batched run converge
    # faster in wall time than one long run; the 50-unit state burn-in is what
    # makes the windows sample the invariant measure (see the docstring).
    lam = lyapunov_exponents(
        Lorenz63(), n_exponents=1, dt=0.02, n_steps=250, tangent_burn_in=250,
        burn_in=50.0, n_trajectories=512, random_state=0,
    )
    assert lam.dims == ("exponent",)
    assert abs(float(lam[0]) - 0.9056) < 0.05 * 0.9056, float(lam[0])
    assert float(lam.attrs["standard_error"][0]) < 0.02


def test_lorenz96_leading_exponent_matches_literature():
    # n = 40, F = 8: the widely quoted leading exponent ~1.68 (doubling time ~0.4).
    lam = lyapunov_exponents(
        Lorenz96(n=40, F=8.0), n_exponents=1, dt=0.05, n_steps=200, tangent_burn_in=100,
        burn_in=50.0, n_trajectories=128, random_state=0,
    )
    assert abs(float(lam[0]) - 1.68) < 0.1 * 1.68, float(lam[0])


def test_lorenz63_full_spectrum_sums_to_the_divergence():
    # With all 3 vectors the QR growth tracks the volume, so the exponents sum to
    # tr J = -(sigma + 1 + beta) whatever the sampling error of each one; the
    # middle (flow-direction) exponent is zero.
    lam = lyapunov_exponents(
        Lorenz63(), n_exponents=3, dt=0.01, n_steps=300, tangent_burn_in=100,
        n_trajectories=16, renormalize_every=5, random_state=1,
    )
    np.testing.assert_allclose(float(lam.sum()), -(10 + 1 + 8 / 3), rtol=1e-4)
    assert abs(float(lam[1])) < 0.1
    assert float(lam[0]) > float(lam[1]) > float(lam[2])


def test_forward_and_reverse_tangent_modes_agree():
    kwargs = dict(n_exponents=2, dt=0.05, n_steps=20, tangent_burn_in=5, burn_in=1.0,
                  n_trajectories=3, random_state=2)
    rev = lyapunov_exponents(Lorenz96(n=10), tangent_mode="reverse", **kwargs)
    fwd = lyapunov_exponents(Lorenz96(n=10), tangent_mode="forward", **kwargs)
    np.testing.assert_allclose(rev.values, fwd.values, rtol=1e-10)


def test_tangent_propagation_matches_the_step_jacobian():
    from xdyn.systems.lyapunov import _forward_tangent_step, _reverse_tangent_step

    model = KuramotoSivashinsky(L=22.0, N=16)
    x = model.as_tensor(model.random_initial_state(2, np.random.RandomState(0)))
    vectors = torch.randn(3, 2, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    jac = model.step_jacobian(x, 0.25)
    expected = torch.einsum("bij,pbj->pbi", jac, vectors)
    for step in (_reverse_tangent_step, _forward_tangent_step):
        x_next, jv = step(model, x, vectors, 0.25)
        np.testing.assert_allclose(x_next.numpy(), model.step(x, 0.25).numpy(), rtol=1e-13)
        np.testing.assert_allclose(jv.numpy(), expected.numpy(), rtol=1e-10, atol=1e-12)


def test_output_is_labelled_and_reproducible():
    kwargs = dict(n_exponents=2, dt=0.05, n_steps=30, burn_in=1.0, n_trajectories=2, random_state=7)
    a = lyapunov_exponents(Lorenz96(n=8), **kwargs)
    b = lyapunov_exponents(Lorenz96(n=8), **kwargs)
    c = lyapunov_exponents(Lorenz96(n=8), **{**kwargs, "random_state": 8})
    assert isinstance(a, xr.DataArray) and list(a.exponent.values) == [1, 2]
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a.values, c.values)
    assert a.attrs["system"] == "Lorenz96" and a.attrs["dt"] == 0.05 and a.attrs["random_state"] == 7
    assert a.attrs["units"] == "1" and a.attrs["standard_error"].shape == (2,)
    assert a.attrs["n_trajectories"] == 2


def test_given_initial_state_is_used():
    x0 = np.full(8, 8.0)  # the fixed point: perturbations decay or grow at the fixed-point rates
    lam = lyapunov_exponents(Lorenz96(n=8), n_exponents=1, dt=0.01, n_steps=50, burn_in=0.0,
                             tangent_burn_in=50, x0=x0, random_state=0)
    # at x = F the Jacobian is circulant; its largest real eigenvalue bounds growth
    jac = Lorenz96(n=8).jacobian(torch.tensor(x0)).numpy()
    assert float(lam[0]) == pytest.approx(np.linalg.eigvals(jac).real.max(), rel=0.05)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_exponents": 0}, "n_exponents"),
        ({"n_exponents": 4}, "n_exponents"),
        ({"dt": -0.1}, "dt"),
        ({"n_steps": 0}, "n_steps"),
        ({"renormalize_every": 0}, "renormalize_every"),
        ({"tangent_mode": "sideways"}, "tangent_mode"),
        ({"x0": np.zeros(4)}, "x0"),
        ({"x0": np.full(3, np.nan)}, "non-finite"),
        ({"x0": np.zeros((2, 3)), "n_trajectories": 3}, "n_trajectories"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lyapunov_exponents(Lorenz63(), **{"n_steps": 5, **kwargs})
