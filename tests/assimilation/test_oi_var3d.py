"""Tests for OptimalInterpolation, Var3D and the shared climatology (xdyn.assimilation)."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

from xdyn.systems.climatology import estimate_climatology
from xdyn.assimilation.enkf import EnKF
from xdyn.assimilation.oi import OptimalInterpolation
from xdyn.assimilation.var3d import Var3D
from xdyn.model_selection import TimeSeriesSplit, samples
from xdyn.observe import Identity, ObservationOperator, SelectVariables, observe
from xdyn.systems import Lorenz63, Lorenz96

from .conftest import initial_state


class SquareFirst(ObservationOperator):
    """Nonlinear, observable L63 network: ``(x**2, y, z)`` (``y`` fixes the sign of ``x``)."""

    linear = False

    def indices(self, layout):
        return Identity().indices(layout)

    def _transform(self, z):
        return torch.cat([z[..., :1] ** 2, z[..., 1:]], -1)


def _blue(xb, B, H, R, y):
    K = B @ H.T @ np.linalg.inv(H @ B @ H.T + R)
    return xb + K @ (y - H @ xb), (np.eye(len(xb)) - K @ H) @ B


def _one_time_obs(system, operator, noise_std, seed=0):
    truth = system.simulate(n_steps=0, x0=np.array([3.0, 4.0, 20.0]))
    return observe(truth, operator, noise_std=noise_std, random_state=seed)


# ------------------------------------------------------------------ climatology
def test_fit_B_is_the_covariance_of_the_truth(l63_twin):
    system, truth, obs = l63_twin
    states = system.to_state(truth).numpy()
    for est in (OptimalInterpolation(), Var3D()):
        est.fit(obs, truth)
        np.testing.assert_allclose(est.B_, np.cov(states.T), rtol=1e-12)
        np.testing.assert_allclose(est.B_, est.B_.T)
        assert np.linalg.eigvalsh(est.B_).min() > 0
    np.testing.assert_allclose(OptimalInterpolation().fit(obs, truth).climatological_mean_,
                               states.mean(0), rtol=1e-12)
    assert np.allclose(Var3D(B_scale=0.1).fit(obs, truth).B_, 0.1 * np.cov(states.T))


def test_free_run_climatology_matches_a_long_truth(l63_twin):
    system, truth, obs = l63_twin
    mean, cov = estimate_climatology(system, length=500.0, random_state=0)
    mean2, cov2 = estimate_climatology(system, length=500.0, random_state=0)
    np.testing.assert_array_equal(cov, cov2)  # same seed, same climatology
    ref_mean, ref_cov = estimate_climatology(system, truth)
    np.testing.assert_allclose(np.diag(cov), np.diag(ref_cov), rtol=0.25)
    assert abs(mean[2] - ref_mean[2]) < 1.5 and np.all(np.abs(mean[:2]) < 1.5)  # symmetric wings
    # fit without truth uses the free run
    est = OptimalInterpolation(climatology_length=500.0, random_state=0).fit(obs)
    np.testing.assert_allclose(est.B_, cov)


def test_default_free_run_length_is_in_the_systems_time_scale():
    # 100 of the system's burn-ins, not 1000 of its time units: shallow water's (in
    # seconds) once got 33 samples of a 3 N^2 state
    system = Lorenz63()
    system.climatology_burn_in = 0.5
    _, cov = estimate_climatology(system, random_state=0)
    _, cov50 = estimate_climatology(system, length=50.0, random_state=0)
    np.testing.assert_array_equal(cov, cov50)
    _, cov_short = estimate_climatology(system, length=5.0, random_state=0)
    assert not np.allclose(cov, cov_short)


# ------------------------------------------------------------------ DAPPER references
def test_oi_lorenz63_sakov2012(l63_twin):
    system, truth, obs = l63_twin
    oi = OptimalInterpolation(burn_in=10.0).fit(obs, truth)
    an = oi.predict(obs)
    rmse = -oi.score(obs, truth)
    assert rmse < 1.4  # DAPPER OptInterp: 1.23 (T=250)
    assert an.attrs["method"] == "OptimalInterpolation" and "spread" in an
    # the spread is that of (I - K H) B, the same at every (fully observed) time
    _, Pa = _blue(oi.climatological_mean_, oi.B_, np.eye(3), 2.0 * np.eye(3), np.zeros(3))
    np.testing.assert_allclose(an.x_std[5], np.sqrt(Pa[0, 0]), rtol=1e-10)
    np.testing.assert_allclose(an.spread[5], np.sqrt(np.diag(Pa).mean()), rtol=1e-10)
    # the climatological background ignores the model: the analysis at a time
    # is the BLUE of that time's observation around the climatological mean
    xa, _ = _blue(oi.climatological_mean_, oi.B_, np.eye(3), 2.0 * np.eye(3),
                  obs.observation[7].values)
    np.testing.assert_allclose(an[["x", "y", "z"]].isel(time=7).to_array(), xa, rtol=1e-10)
    fc = OptimalInterpolation(background="forecast", burn_in=10.0, random_state=0,
                              initial_state=initial_state(truth, system, 1.0))
    assert -fc.fit(obs, truth).score(obs, truth) < 1.4


def test_var3d_lorenz63_sakov2012(l63_twin):
    system, truth, obs = l63_twin
    x0 = initial_state(truth, system, 1.4)
    rmse = {s: -Var3D(B_scale=s, burn_in=10.0, initial_state=x0).fit(obs, truth).score(obs, truth)
            for s in (1.0, 0.1)}
    assert rmse[1.0] < 1.35  # DAPPER Var3D: 1.19
    assert rmse[0.1] < 1.2   # DAPPER Var3D(xB=0.1): 1.03
    assert rmse[0.1] < rmse[1.0]


def test_var3d_lorenz96_sakov2008(l96_twin):
    system, truth, obs = l96_twin
    obs = obs.isel(time=slice(0, 400))
    x0 = initial_state(truth, system, 1.0)
    var = Var3D(B_scale=0.02, burn_in=5.0, initial_state=x0).fit(obs, truth)
    rmse = -var.score(obs, truth)
    assert 0.35 < rmse < 0.52  # DAPPER Var3D(xB=0.02): 0.41 (0.45 on this shorter run)
    enkf = EnKF(n_members=24, inflation=1.02, rotate=True, random_state=0, burn_in=5.0,
                initial_state=x0, initial_spread=1.0, return_ensemble=False)
    assert -enkf.fit(obs).score(obs, truth) < 0.75 * rmse  # a tuned EnKF beats 3D-Var
    oi = OptimalInterpolation(burn_in=5.0).fit(obs, truth)
    assert -oi.score(obs, truth) < 1.05  # DAPPER OptInterp: 0.945


# ------------------------------------------------------------------ exactness
@pytest.mark.parametrize("R", [None, np.array([[2.0, 0.5], [0.5, 1.0]])])
def test_var3d_linear_equals_numpy_blue(R):
    system = Lorenz63()
    rng = np.random.RandomState(0)
    A = rng.standard_normal((3, 3))
    B = A @ A.T + np.eye(3)
    xb = np.array([1.0, -2.0, 25.0])
    obs = _one_time_obs(system, ["x", "z"], noise_std=1.3)
    est = Var3D(system=system, B=B, initial_state=xb, R=R).fit(obs)
    an = est.predict(obs)
    H = SelectVariables(["x", "z"]).matrix(system)
    R_np = np.diag([1.3**2] * 2) if R is None else R
    xa, Pa = _blue(xb, B, H, R_np, obs.observation[0].values)
    np.testing.assert_allclose(an[["x", "y", "z"]].isel(time=0).to_array(), xa, rtol=1e-12)
    np.testing.assert_allclose(an[["x_std", "y_std", "z_std"]].isel(time=0).to_array(),
                               np.sqrt(np.diag(Pa)), rtol=1e-12)
    # z missing: the BLUE of x alone, with R restricted to x (also for a full R)
    obs["observation"][0, 1] = np.nan
    an = est.predict(obs)
    xa, _ = _blue(xb, B, H[:1], R_np[:1, :1], obs.observation[0].values[:1])
    np.testing.assert_allclose(an[["x", "y", "z"]].isel(time=0).to_array(), xa, rtol=1e-12)


def test_missing_observation_equals_removing_it(l63_twin):
    system, truth, obs = l63_twin
    obs = obs.isel(time=slice(0, 40))
    missing = obs.copy(deep=True)
    missing["observation"][:, 1] = np.nan  # y never observed
    fewer = observe(truth, ["x", "z"], noise_std=2**0.5, every=25, random_state=0)
    fewer = fewer.isel(time=slice(0, 40))
    fewer["observation"][:] = obs.observation.values[:, [0, 2]]
    x0 = initial_state(truth, system, 1.0)
    for cls in (Var3D, OptimalInterpolation):
        a = cls(initial_state=x0).fit(missing, truth).predict(missing)
        b = cls(initial_state=x0).fit(fewer, truth).predict(fewer)
        np.testing.assert_allclose(a.x, b.x, rtol=1e-10)
    # and a single missing value at one time only affects that analysis onwards
    one = obs.copy(deep=True)
    one["observation"][3, 0] = np.nan
    a = Var3D(initial_state=x0).fit(one, truth).predict(one)
    full = Var3D(initial_state=x0).fit(obs, truth).predict(obs)
    np.testing.assert_allclose(a.x[:3], full.x[:3])
    assert not np.allclose(a.x[3], full.x[3])


def test_batch_dims_equal_separate_runs():
    system = Lorenz63()
    truth = system.simulate(n_trajectories=2, n_steps=25 * 30, random_state=0)
    obs = observe(truth, "identity", noise_std=2**0.5, every=25, random_state=1)
    x0 = np.array([1.0, 1.0, 20.0])
    batched = Var3D(B_scale=0.1, initial_state=x0).fit(obs, truth).predict(obs)
    assert batched.x.dims == ("time", "trajectory")
    for i in range(2):
        single = Var3D(B_scale=0.1, initial_state=x0).fit(obs, truth).predict(
            obs.isel(trajectory=i))
        np.testing.assert_allclose(batched.x.isel(trajectory=i), single.x, rtol=1e-10)


@pytest.mark.parametrize("cls, params", [(Var3D, {"B_scale": 0.1}),
                                         (OptimalInterpolation, {})])
def test_analyze_of_the_cycles_backgrounds_equals_its_analyses(cls, params):
    """``analyze`` (single analyses, transform-style) of the cycle's own forecasts gives
    the cycle's analyses: the same update, with batch dims and a nonlinear operator."""
    system = Lorenz63()
    truth = system.simulate(n_trajectories=2, n_steps=25 * 20, random_state=0)
    op = SquareFirst()
    obs = observe(truth, op, noise_std=1.0, every=25, random_state=1)
    est = cls(operator=op, n_outer=3, initial_state=np.array([1.0, 1.0, 20.0]),
              return_background=True, **params).fit(obs, truth)
    cycled = est.predict(obs)
    background = cycled[["x_background", "y_background", "z_background"]].rename(
        {f"{v}_background": v for v in "xyz"})
    single = est.analyze(obs, background)
    assert single.x.dims == ("time", "trajectory")
    for v in "xyz":
        np.testing.assert_allclose(single[v], cycled[v], rtol=1e-10, atol=1e-10)
    assert float(abs(single.x - background.x).max()) > 0.1  # the analysis moved it
    with pytest.raises(ValueError, match="batch dim 'trajectory'"):
        est.analyze(obs, background.isel(trajectory=0))
    with pytest.raises(NotFittedError):
        cls(operator=op).analyze(obs, background)


# ------------------------------------------------------------------ nonlinear operator
def test_var3d_nonlinear_square_operator(l63_twin):
    system, truth, _ = l63_twin
    truth = truth.isel(time=slice(0, 25 * 160 + 1))
    op = SquareFirst()
    obs = observe(truth, op, noise_std=2**0.5, every=25, random_state=2)
    x0 = initial_state(truth, system, 1.0)
    states = system.to_state(truth).numpy()
    climatology_rmse = np.sqrt(((states - states.mean(0)) ** 2).mean(-1)).mean()  # ~7.6
    rmse = {n: -Var3D(operator=op, B_scale=1.0, n_outer=n, burn_in=5.0, initial_state=x0)
            .fit(obs, truth).score(obs, truth) for n in (1, 5)}
    assert rmse[5] < 1.6 < 0.25 * climatology_rmse
    assert rmse[5] < rmse[1]  # relinearising helps (one loop is DAPPER's update)


def test_gauss_newton_reaches_the_3dvar_minimum():
    """After the outer loops, the gradient of the 3D-Var cost vanishes at the analysis."""
    system = Lorenz63()
    op = SquareFirst()
    obs = _one_time_obs(system, op, noise_std=1.0, seed=3)
    B = np.diag([4.0, 4.0, 4.0]) + 1.0
    xb = np.array([2.5, 3.0, 21.0])
    an = Var3D(system=system, operator=op, B=B, n_outer=30, initial_state=xb).fit(obs).predict(obs)
    xa = torch.tensor(an[["x", "y", "z"]].isel(time=0).to_array().values, requires_grad=True)
    y = torch.as_tensor(obs.observation[0].values)
    dx = xa - torch.as_tensor(xb)
    cost = (0.5 * dx @ torch.linalg.solve(torch.as_tensor(B), dx)
            + 0.5 * ((y - op.apply(xa, system)) ** 2).sum())
    cost.backward()
    assert float(xa.grad.abs().max()) < 1e-8
    # one loop (linearised at x_b) is not at the minimum
    an1 = Var3D(system=system, operator=op, B=B, n_outer=1, initial_state=xb).fit(obs).predict(obs)
    assert not np.allclose(an1.x, an.x, atol=1e-4)


# ------------------------------------------------------------------ estimator API
def test_params_clone_pickle_and_validation(l63_twin):
    system, truth, obs = l63_twin
    obs = obs.isel(time=slice(0, 20))
    est = Var3D(B_scale=0.1, n_outer=2)
    assert clone(est).get_params()["B_scale"] == 0.1
    assert est.set_params(B_scale=0.5).B_scale == 0.5
    with pytest.raises(NotFittedError):
        est.predict(obs)
    est.fit(obs, truth)
    again = pickle.loads(pickle.dumps(est))
    x0 = {"initial_state": initial_state(truth, system, 1.0)}
    a = est.set_params(**x0).predict(obs)
    b = again.set_params(**x0).predict(obs)
    np.testing.assert_array_equal(a.x, b.x)
    with pytest.raises(ValueError, match="B_scale"):
        Var3D(B_scale=0.0).fit(obs, truth)
    with pytest.raises(ValueError, match="shape"):
        Var3D(B=np.eye(2)).fit(obs)
    with pytest.raises(ValueError, match="n_outer"):
        Var3D(n_outer=0).fit(obs, truth)
    with pytest.raises(ValueError, match="background"):
        OptimalInterpolation(background="persistence").fit(obs, truth)


def test_grid_search_over_B_scale(l63_twin):
    system, truth, obs = l63_twin
    obs = obs.isel(time=slice(0, 120))
    truth_at_obs = truth.sel(time=obs.time)
    # each test fold starts from a state drawn on the attractor; its spin-up is not scored
    search = GridSearchCV(Var3D(burn_in=2.0, random_state=0),
                          {"B_scale": [0.1, 1.0]}, cv=TimeSeriesSplit(n_splits=2))
    search.fit(samples(obs), samples(truth_at_obs))
    assert search.best_params_ == {"B_scale": 0.1}


def test_gains_kept_per_observed_pattern_are_the_gain_of_each_time():
    # the linear gain is computed once per observed pattern (at most 16 kept): every analysis
    # equals the BLUE update computed at its own time, bit for bit, with observations missing
    # at random (more patterns than are kept) and a time with nothing observed
    from xdyn.assimilation._linalg import whitened_update
    from xdyn.assimilation._neural_var_data import aligned_truth
    from xdyn.assimilation._static import gauss_newton_analysis

    truth = Lorenz96(n=10).simulate(n_steps=300, burn_in=2, random_state=0)
    obs = observe(truth, "identity", noise_std=1.0, every=5, random_state=1)
    values = obs["observation"].values.copy()
    values[np.random.RandomState(2).rand(*values.shape) < 0.3] = np.nan
    values[7] = np.nan
    obs["observation"][:] = values
    est = Var3D().fit(obs, truth)
    ctx = est._context(obs, fitted=True)
    B = ctx.system.as_tensor(est.B_)
    x_b = aligned_truth(truth, ctx) + 0.5
    for k in range(x_b.shape[0]):
        x, var = gauss_newton_analysis(x_b[k], B, k, ctx)
        d = ctx.innovation_data(k) - ctx.h(x_b[k])
        ref, P_a = whitened_update(x_b[k], B, ctx.jacobian_h(x_b[k]), ctx.whitening(k), d)
        assert torch.equal(x, ref) and torch.equal(var, torch.diagonal(P_a).clamp_min(0)), k
    assert len(ctx.scratch["static gains"]) == 16
