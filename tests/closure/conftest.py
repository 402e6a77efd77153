"""Synthetic closure data with a known conditional law.

A 2-D latent ``a ~ U(-2, 2)^2`` sets the resolved field ``X = a @ A`` (24
points); the unresolved field is ``Y = (f(a) + s(a) * eps) @ B`` (16 points)
with ``f(a) = (sin 2 a_1, a_1 a_2 / 2)``, a noise level ``s(a)`` and
orthonormal patterns ``B``: its conditional mean and standard deviation on the
grid are known exactly.
"""

import numpy as np
import pytest
import xarray as xr

N_X, N_Y = 24, 16


def _patterns(seed):
    rng = np.random.RandomState(seed)
    A = rng.normal(size=(2, N_X))
    B = np.linalg.qr(rng.normal(size=(N_Y, 2)))[0].T  # orthonormal rows
    return A, B


def make_closure_data(n, seed, heteroscedastic=True, as_dataset=False):
    A, B = _patterns(1234)
    rng = np.random.RandomState(seed)
    a = rng.uniform(-2, 2, (n, 2))
    f = np.stack([np.sin(2 * a[:, 0]), 0.5 * a[:, 0] * a[:, 1]], 1)
    s = (0.1 + 0.15 * np.abs(a[:, :1])) if heteroscedastic else np.full((n, 1), 0.2)
    s = np.repeat(s, 2, 1)
    X = a @ A
    Y = (f + s * rng.normal(size=f.shape)) @ B
    mean = f @ B
    std = np.sqrt(s ** 2 @ B ** 2)
    if as_dataset:
        time = np.arange(n) * 0.1
        X = xr.Dataset({"w": (("time", "x"), X, {"units": "s-1"})},
                       coords={"time": time, "x": np.arange(N_X)})
        Y = xr.Dataset({"w": (("time", "x"), Y, {"units": "s-1"})},
                       coords={"time": time, "x": np.arange(N_Y) * 2.0})
    return X, Y, mean, std


@pytest.fixture
def closure_data():
    return make_closure_data
