"""ClimODE-style forecaster: exact advection, learning, verification, clone/pickle, errors."""

import pickle

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.base import clone

from xdyn.forecast import ClimODE, Persistence
from xdyn.nn.advection import AdvectionSourceODE, fit_velocity, advection_tendency


def _wave(n_time=40, ny=6, nx=16, speed=0.5, seed=0):
    """A smooth wave moving east by ``speed`` cells per step on a periodic x."""
    rng = np.random.default_rng(seed)
    x = np.arange(nx)
    phase = rng.uniform(0, 2 * np.pi)
    k = 2 * np.pi / nx
    u = np.stack([np.sin(k * (x - speed * t) + phase) + 0.5 * np.cos(2 * k * (x - speed * t))
                  for t in range(n_time)])
    u = np.repeat(u[:, None, :], ny, axis=1) + 3.0
    return xr.Dataset({"u": (("time", "y", "x"), u, {"units": "m"})},
                      coords={"time": np.arange(n_time, dtype=float), "x": x.astype(float)})


def test_untrained_field_advects_a_known_wave_by_the_exact_shift():
    nx, speed, n_steps = 32, 0.5, 8          # 8 steps at 0.5 cells/step: a 4-cell shift
    x = np.arange(nx)
    u0 = np.sin(2 * np.pi * x / nx)[None, None, None, :].repeat(4, axis=2)
    module = AdvectionSourceODE(1, (4, nx), hidden=4, periodic=(False, True),
                                n_steps=n_steps, step_size=0.5).double()
    with torch.no_grad():
        module.log_rate.fill_(-60.0)  # no relaxation to the (zero) climatology: pure transport
        module.log_velocity_decay.fill_(-60.0)  # and a steady velocity
    u0_t = torch.as_tensor(u0)
    v = torch.cat([torch.zeros_like(u0_t), torch.full_like(u0_t, speed)], 1)
    with torch.no_grad():
        mean = module(u0_t, v, torch.zeros(1, 2, dtype=torch.float64))[0, -1, 0, 0].numpy()
    exact = np.roll(u0[0, 0], 4, axis=-1)
    # 2nd-order central differences on 32 cells: phase error ~ (k dx)^2 / 6 per cell moved
    assert np.abs(mean - exact).max() < 0.02
    wrong = np.roll(u0[0, 0], -4, axis=-1)   # the opposite direction is far off
    assert np.abs(mean - wrong).max() > 1.0


def test_velocity_inversion_explains_the_tendency():
    ds = _wave(n_time=3, ny=4, nx=32, speed=1.0)
    u = torch.as_tensor(ds.u.values[1:2, None])
    u_t = torch.as_tensor(ds.u.values[1:2, None] - ds.u.values[0:1, None])
    v = fit_velocity(u, u_t, periodic=(False, True), smoothness=1.0, damping=1e-2, n_iter=100)
    residual = advection_tendency(u, v, periodic=(False, True)) - u_t
    # v is not unique (u v = u + c moves u alike); the tendency is explained to < 10%,
    # where no motion leaves all of it (ratio 1)
    assert float(residual.norm() / u_t.norm()) < 0.1
    assert float(v[0, 1].mean()) > 0.1  # eastward


@pytest.fixture(scope="module")
def fitted():
    ds = _wave()
    model = ClimODE(hidden=8, n_steps=2, max_epochs=8, lr=5e-3, batch_size=16, n_members=4,
                    random_state=0, device="cpu", step_size=0.5).fit(ds.isel(time=slice(0, 30)))
    return ds, model


def test_loss_falls_and_forecast_beats_persistence(fitted):
    ds, model = fitted
    losses = model.net_.history[:, "train_loss"]
    assert losses[-1] < losses[0] - 0.5    # the Gaussian NLL (nats per value) falls
    test = ds.isel(time=slice(29, None))
    assert model.periodic_ == (False, True)
    assert model.score(test, [2.0]) > 2 * Persistence().fit(ds).score(test, [2.0])


def test_predict_layout_members_and_nan_first_init(fitted):
    ds, model = fitted
    fc = model.predict(ds.isel(time=slice(30, 36)), [1.0, 3.0])
    assert fc["u"].dims == ("time", "lead_time", "member", "y", "x")
    assert np.isnan(fc["u"].values[0]).all() and np.isfinite(fc["u"].values[1:]).all()
    assert float(fc["u"].std("member").mean()) > 0


def test_clone_and_pickle(fitted):
    ds, model = fitted
    test = ds.isel(time=slice(30, 36))
    again = pickle.loads(pickle.dumps(model))
    xr.testing.assert_allclose(again.predict(test, [1.0]), model.predict(test, [1.0]))
    params = clone(model).get_params()
    assert params["hidden"] == 8 and not hasattr(clone(model), "net_")


def test_errors_before_training():
    ds = _wave(n_time=10)
    with pytest.raises(ValueError, match="2 spatial dims"):
        ClimODE(max_epochs=0).fit(ds.isel(y=0))
    uneven = ds.isel(time=[0, 1, 2, 4, 5, 6, 7, 8])
    with pytest.raises(ValueError, match="evenly spaced"):
        ClimODE(max_epochs=0).fit(uneven)
    two = ds.assign(w=ds.u.rename(y="y2"))
    with pytest.raises(ValueError, match="variable 'w'"):
        ClimODE(max_epochs=0).fit(two)
    with pytest.raises(ValueError, match="hidden"):
        ClimODE(hidden=0).fit(ds)
