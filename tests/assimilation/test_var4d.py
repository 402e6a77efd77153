"""Tests for Var4D (xdyn.assimilation.var4d): cost gradient, windows, DAPPER-like skill."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from xdyn.assimilation._linalg import symmetric_sqrt
from xdyn.assimilation.var3d import Var3D
from xdyn.assimilation.var4d import Var4D, _window_cost
from xdyn.metrics import analysis_rmse
from xdyn.observe import observe
from xdyn.systems import Lorenz63

from .conftest import initial_state


@pytest.fixture(scope="module")
def l63_batch():
    """Two independent short Lorenz-63 sakov2012 twins (obs every 25 steps, variance 2)."""
    system = Lorenz63()
    truth = system.simulate(n_trajectories=2, n_steps=25 * 20, burn_in=5.0, random_state=11)
    obs = observe(truth, "identity", noise_std=2**0.5, every=25, random_state=12)
    return system, truth, obs


def test_cost_gradient_matches_finite_differences(l63_twin):
    system, truth, obs = l63_twin
    est = Var4D(B_scale=0.1).fit(obs, truth)
    ctx = est._context(obs.isel(time=slice(0, 8)))
    B_half = symmetric_sqrt(torch.as_tensor(est.B_))
    x_b = torch.as_tensor(initial_state(truth, system, 1.0))
    ks = [4, 5, 6]  # a window of 75 model steps after its control time
    v = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    cost = _window_cost(v, x_b, B_half, ks, ctx)
    (grad,) = torch.autograd.grad(cost, v)
    eps = 1e-6
    with torch.no_grad():
        fd = torch.stack([(_window_cost(v + eps * e, x_b, B_half, ks, ctx)
                           - _window_cost(v - eps * e, x_b, B_half, ks, ctx)) / (2 * eps)
                          for e in torch.eye(3, dtype=torch.float64)])
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-6)


def test_var4d_beats_3dvar_on_lorenz63(l63_batch):
    system, truth, obs = l63_batch
    x0 = np.array([1.0, 1.0, 22.0])
    var3d = Var3D(B_scale=0.1, initial_state=x0, burn_in=1.0).fit(obs, truth)
    var4d = Var4D(window=2, B_scale=0.1, initial_state=x0, burn_in=1.0).fit(obs, truth)
    an = var4d.predict(obs)
    assert an.x.dims == ("time", "trajectory") and an.sizes["time"] == obs.sizes["time"]
    assert an.attrs["n_windows"] == 11 and an.attrs["method"] == "Var4D"
    rmse3 = -var3d.score(obs, truth)
    rmse4 = analysis_rmse(an, truth, burn_in=1.0)
    # DAPPER sakov2012 Var3D(xB=0.1): 1.03; 4D-Var, window of 2 obs times: 0.59 on T=250
    assert rmse4 < 0.85 * rmse3
    assert rmse4 < 0.85


def test_one_observation_window_is_the_3dvar_analysis():
    """The first window's control time is the first observation time: with one
    observation and a linear operator, the minimiser is the BLUE (to the L-BFGS
    tolerance)."""
    system = Lorenz63()
    truth = system.simulate(n_steps=0, x0=np.array([3.0, 4.0, 20.0]))
    obs = observe(truth, ["x", "y"], noise_std=1.0, random_state=0)
    B = np.array([[4.0, 2.0, 0.0], [2.0, 5.0, 1.0], [0.0, 1.0, 3.0]])
    xb = np.array([2.0, 5.0, 21.0])
    a4 = Var4D(system=system, B=B, window=1, initial_state=xb).fit(obs).predict(obs)
    a3 = Var3D(system=system, B=B, initial_state=xb).fit(obs).predict(obs)
    np.testing.assert_allclose(a4[["x", "y", "z"]].to_array(), a3[["x", "y", "z"]].to_array(),
                               atol=1e-3)


def test_missing_observation_equals_removing_it(l63_twin):
    system, truth, obs = l63_twin
    obs = obs.isel(time=slice(0, 6))
    missing = obs.copy(deep=True)
    missing["observation"][:, 1] = np.nan
    fewer = observe(truth, ["x", "z"], noise_std=2**0.5, every=25).isel(time=slice(0, 6))
    fewer["observation"][:] = obs.observation.values[:, [0, 2]]
    params = dict(window=3, B_scale=0.1, initial_state=initial_state(truth, system, 1.0))
    a = Var4D(**params).fit(missing, truth).predict(missing)
    b = Var4D(**params).fit(fewer, truth).predict(fewer)
    np.testing.assert_allclose(a.x, b.x, atol=1e-6)


def test_background_output_and_quasi_static(l63_twin):
    system, truth, obs = l63_twin
    obs = obs.isel(time=slice(0, 9))
    x0 = initial_state(truth, system, 1.0)
    an = Var4D(window=3, B_scale=0.1, initial_state=x0, return_background=True,
               quasi_static=False).fit(obs, truth).predict(obs)
    assert "x_background" in an and "spread" not in an
    # the first window's background trajectory is the free forecast of the initial state
    with torch.no_grad():
        free = system.forecast(system.as_tensor(x0), 0.01, 50)
    np.testing.assert_allclose(an.x_background[2], free[0].item(), rtol=1e-10)
    tr = truth.sel(time=an.time)
    assert float(abs(an.x - tr.x).mean()) < float(abs(an.x_background - tr.x).mean())


def test_params_clone_pickle_and_validation(l63_twin):
    system, truth, obs = l63_twin
    obs = obs.isel(time=slice(0, 4))
    est = Var4D(window=2, n_iter=10, B_scale=0.1, initial_state=initial_state(truth, system, 1.0))
    assert clone(est).set_params(B_scale=0.05, window=4).get_params()["window"] == 4
    est.fit(obs, truth)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(est.predict(obs).x, again.predict(obs).x)
    for bad in ({"window": 0}, {"n_iter": 0}, {"B_scale": -1.0}):
        with pytest.raises(ValueError, match=list(bad)[0]):
            Var4D(**bad).fit(obs, truth)


def test_tangent_linear_gradient_equals_autodiff():
    """The cost gradient through the complex-step tangent model (tiny states) is autograd's."""
    system = Lorenz63()
    truth = system.simulate(n_steps=25 * 6, burn_in=5.0, random_state=0)
    obs = observe(truth, "identity", noise_std=2 ** 0.5, every=25, random_state=1)
    est = Var4D(system=system, window=3, B_scale=0.1).fit(obs, truth)
    ctx = est._context(obs)
    B_half = symmetric_sqrt(system.as_tensor(est.B_))
    x_b = system.to_state(truth.isel(time=0)) + 0.5
    grads = []
    try:
        for size in (4096, 0):  # numpy fast path (complex-step tangent) on, then off (autograd)
            system.numpy_fast_path_max_size = size
            v = torch.full((3,), 0.3, dtype=torch.float64, requires_grad=True)
            _window_cost(v, x_b, B_half, [1, 2, 3], ctx).backward()
            grads.append(v.grad)
    finally:
        del system.numpy_fast_path_max_size  # back to the class default
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)
