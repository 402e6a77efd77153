"""Tests for ExtendedKalmanFilter (xdyn.assimilation.extended_kalman)."""

import pickle

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.base import clone

from xdyn.assimilation import analysis_rmse
from xdyn.assimilation.extended_kalman import ExtendedKalmanFilter
from xdyn.systems.tangent import forecast_with_jacobian
from xdyn.observe import Squared, observe
from xdyn.systems import Lorenz63, Lorenz96

from .conftest import DampedRotation, initial_state


def test_ekf_equals_kalman_filter_on_a_linear_system():
    system = DampedRotation()
    truth = system.simulate(n_steps=60, x0=np.array([2.0, 0.0]))
    obs = observe(truth, "a", noise_std=0.5, every=5, random_state=0)
    infl, s0, x0 = 1.5, 2.0, np.array([1.0, 1.0])
    an = ExtendedKalmanFilter(system=system, inflation=infl, initial_state=x0,
                              initial_spread=s0).fit(obs).predict(obs)
    with torch.no_grad():  # the 5-step propagator, column by column
        M = system.forecast(system.as_tensor(np.eye(2)), 0.1, 5).numpy().T
    H, R = np.array([[1.0, 0.0]]), np.array([[0.25]])
    x, P = x0, s0**2 * np.eye(2)
    for k, y in enumerate(obs.observation.values):
        if k > 0:
            x, P = M @ x, infl ** (0.1 * 5) * M @ P @ M.T  # DAPPER: infl**dt per step
        K = P @ H.T @ np.linalg.inv(H @ P @ H.T + R)
        x, P = x + K @ (y - H @ x), (np.eye(2) - K @ H) @ P
        np.testing.assert_allclose([an.a[k], an.b[k]], x, rtol=1e-9)
        np.testing.assert_allclose([an.a_std[k], an.b_std[k]], np.sqrt(np.diag(P)), rtol=1e-9)


def test_forecast_jacobian_is_the_product_of_step_jacobians():
    system = Lorenz63()
    x = system.as_tensor([[1.0, 2.0, 20.0], [-5.0, -3.0, 25.0]])
    x_next, M = forecast_with_jacobian(system, x, 0.01, 7)
    expected, z = torch.eye(3, dtype=x.dtype).expand(2, 3, 3), x
    for _ in range(7):
        expected = system.step_jacobian(z, 0.01) @ expected
        z = system.step(z, 0.01)
    torch.testing.assert_close(x_next, z, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(M, expected, rtol=1e-10, atol=1e-12)


def test_ekf_lorenz63_sakov2012():
    # One chaotic run is not a stable statistic (its RMSE moves with the last bits of
    # a matmul: one 240-cycle draw gave 0.97 here and 1.13 with newer numpy). Average
    # four independent truths of 1000 cycles each (T=250, DAPPER's setup length).
    # Measured over 8 such truths: 0.898 +- 0.053 per truth, so the 4-truth mean has a
    # spread of ~0.027; DAPPER ExtKF(infl=180) gives 0.87-0.93 on this setup.
    system = Lorenz63()
    rmses, ratios = [], []
    for seed in range(4):
        truth = system.simulate(n_steps=25 * 1000, dt=0.01, burn_in=5.0, random_state=100 + seed)
        obs = observe(truth, "identity", noise_std=float(np.sqrt(2.0)), every=25,
                      random_state=200 + seed)
        ekf = ExtendedKalmanFilter(inflation=180, initial_state=initial_state(truth, system, 1.4, seed),
                                   initial_spread=2**0.5, burn_in=10.0)
        an = ekf.fit(obs).predict(obs)
        rmse = analysis_rmse(an, truth, burn_in=10.0)
        rmses.append(rmse)
        ratios.append(float(an.spread.sel(time=slice(10.0, None)).mean()) / rmse)
    assert np.mean(rmses) < 1.0  # DAPPER 0.87-0.93; ~3.5 standard errors of the mean above ours
    # the filter's own spread is of the size of its error
    assert 0.5 < np.mean(ratios) < 2.0


def test_ekf_lorenz96_sakov2008(l96_twin):
    system, truth, obs = l96_twin
    obs = obs.isel(time=slice(0, 300))
    ekf = ExtendedKalmanFilter(inflation=10, initial_state=initial_state(truth, system, 1.0),
                               burn_in=5.0)
    assert -ekf.fit(obs).score(obs, truth) < 0.3  # DAPPER ExtKF(infl=10): 0.24


def test_nonlinear_operator_is_linearised_by_autodiff():
    system = Lorenz63()
    truth = system.simulate(n_steps=0, x0=np.array([3.0, 4.0, 20.0]))
    obs = observe(truth, Squared(), noise_std=1.0, random_state=0)
    x0 = np.array([2.5, 4.5, 21.0])
    ekf = ExtendedKalmanFilter(system=system, initial_state=x0, initial_spread=0.5)
    an = ekf.fit(obs).predict(obs)
    H, P = np.diag(2 * x0), 0.25 * np.eye(3)
    K = P @ H.T @ np.linalg.inv(H @ P @ H.T + np.eye(3))
    xa = x0 + K @ (obs.observation[0].values - x0**2)
    np.testing.assert_allclose(an[["x", "y", "z"]].isel(time=0).to_array(), xa, rtol=1e-12)


def test_missing_observation_equals_removing_it(l63_twin):
    system, truth, obs = l63_twin
    obs = obs.isel(time=slice(0, 30))
    missing = obs.copy(deep=True)
    missing["observation"][:, 2] = np.nan
    fewer = observe(truth, ["x", "y"], noise_std=2**0.5, every=25).isel(time=slice(0, 30))
    fewer["observation"][:] = obs.observation.values[:, :2]
    x0 = initial_state(truth, system, 1.0)
    a = ExtendedKalmanFilter(inflation=180, initial_state=x0).fit(missing).predict(missing)
    b = ExtendedKalmanFilter(inflation=180, initial_state=x0).fit(fewer).predict(fewer)
    np.testing.assert_allclose(a.x, b.x, rtol=1e-10)
    np.testing.assert_allclose(a.z_std, b.z_std, rtol=1e-10)


def test_inflation_array_sweeps_the_first_batch_dim(l63_twin):
    system, truth, obs = l63_twin
    obs = obs.isel(time=slice(0, 20))
    pair = obs.assign(observation=xr.concat([obs.observation] * 2, dim="trajectory"))
    x0 = initial_state(truth, system, 1.0)
    swept = ExtendedKalmanFilter(inflation=[1.0, 180.0], initial_state=x0).fit(pair).predict(pair)
    for i, infl in enumerate([1.0, 180.0]):
        one = ExtendedKalmanFilter(inflation=infl, initial_state=x0).fit(obs).predict(obs)
        np.testing.assert_allclose(swept.x.isel(trajectory=i), one.x, rtol=1e-10)


def test_params_clone_pickle_and_validation(l63_twin):
    system, truth, obs = l63_twin
    obs = obs.isel(time=slice(0, 10))
    est = ExtendedKalmanFilter(inflation=180, initial_state=initial_state(truth, system, 1.0))
    assert clone(est).set_params(inflation=50).inflation == 50
    est.fit(obs)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(est.predict(obs).x, again.predict(obs).x)
    with pytest.raises(ValueError, match="inflation"):
        ExtendedKalmanFilter(inflation=0.0).fit(obs)


@pytest.mark.parametrize("system", [Lorenz63(), Lorenz96(n=10)], ids=["lorenz63", "lorenz96"])
def test_complex_step_jacobian_equals_autodiff(system):
    x = system.forecast(system.as_tensor(system.random_initial_state(2, 0)), system.default_dt, 100)
    x_a, M_a = forecast_with_jacobian(system, x, system.default_dt, 25, method="autodiff")
    x_c, M_c = forecast_with_jacobian(system, x, system.default_dt, 25, method="complex-step")
    torch.testing.assert_close(x_c, x_a, rtol=1e-13, atol=1e-12)
    torch.testing.assert_close(M_c, M_a, rtol=1e-12, atol=1e-12 * float(M_a.abs().max()))
    with pytest.raises(ValueError, match="method"):
        forecast_with_jacobian(system, x, system.default_dt, 1, method="secant")


def test_ekf_tangent_linear_choices_agree():
    system = Lorenz63()
    truth = system.simulate(n_steps=25 * 40, burn_in=5.0, random_state=2)
    obs = observe(truth, "identity", noise_std=float(np.sqrt(2.0)), every=25, random_state=3)
    x0 = system.to_state(truth.isel(time=0)).numpy()
    runs = [ExtendedKalmanFilter(system=system, inflation=180.0, initial_state=x0,
                                 initial_spread=1.0, tangent_linear=tl).fit(obs).predict(obs)
            for tl in ("auto", "autodiff", "complex-step")]
    for other in runs[1:]:
        np.testing.assert_allclose(runs[0].x, other.x, rtol=1e-8, atol=1e-8)
    with pytest.raises(ValueError, match="tangent_linear"):
        ExtendedKalmanFilter(system=system, tangent_linear="magic").fit(obs)


class _EulerLorenz96(Lorenz96):
    """Forward Euler: complex step, which integrates rhs with RK4, would differentiate RK4."""

    def step(self, x, dt):
        return x + dt * self.rhs(0.0, x)


def test_ekf_complex_step_refused_where_it_does_not_apply():
    system = _EulerLorenz96(n=8)
    truth = system.simulate(n_steps=10, dt=0.01, random_state=0)
    obs = observe(truth, "identity", noise_std=1.0, every=5, random_state=1)
    x0 = system.to_state(truth.isel(time=0)).numpy()
    ekf = ExtendedKalmanFilter(system=system, initial_state=x0,
                               tangent_linear="complex-step").fit(obs)
    with pytest.raises(ValueError, match="_EulerLorenz96: complex-step differentiation does not "
                                         "apply: it overrides step.*use 'autodiff'"):
        ekf.predict(obs)
    # "auto" falls back to autodiff, as before
    an = ExtendedKalmanFilter(system=system, initial_state=x0).fit(obs).predict(obs)
    assert np.isfinite(an.x.values).all()
