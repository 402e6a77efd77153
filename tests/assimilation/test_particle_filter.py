import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from xdyn import DivergenceError
from xdyn.assimilation import EnKF
from xdyn.assimilation.particle_filter import ParticleFilter, effective_sample_size
from xdyn.observe import observe

from .conftest import initial_state


def _pf(system, truth, **params):
    base = dict(system=system, n_members=100, regularization=2.4, resampling_threshold=0.3,
                initial_state=initial_state(truth, system, 1.4), initial_spread=1.4,
                burn_in=10.0, random_state=0, return_ensemble=False)
    base.update(params)
    return ParticleFilter(**base)


def _oi_rmse(system, truth, obs, b_scale=0.1, burn_in=10.0):
    """3D-Var-like optimal interpolation: static B = b_scale * climatological covariance."""
    states = system.to_state(truth).numpy()
    B = b_scale * np.cov(states.T)
    gain = B @ np.linalg.inv(B + np.diag(obs.noise_std.values ** 2))
    every = int(round(float(obs.time[1] - obs.time[0]) / 0.01))
    x = torch.as_tensor(initial_state(truth, system, 1.4))
    errors = []
    for k, y in enumerate(obs.observation.values):
        if k:
            x = system.forecast(x, 0.01, every)
        x = x + torch.as_tensor(gain @ (y - x.numpy()))
        errors.append(np.sqrt(np.mean((x.numpy() - states[every * k]) ** 2)))
    t = obs.time.values
    return float(np.mean(np.asarray(errors)[t >= t[0] + burn_in]))


def _state_and_context(system, truth, obs, **params):
    est = _pf(system, truth, **params).fit(obs)
    rng = np.random.RandomState(0)
    ctx = est._context(obs)
    return est, ctx, rng


# ---------------------------------------------------------------- skill
def test_particle_filter_lorenz63_sakov2012(l63_twin):
    """DAPPER PartFilt(N=100, reg=2.4, NER=0.3): rmse.a 0.35-0.41 on T=250."""
    system, truth, obs = l63_twin
    obs = obs.isel(time=slice(0, 250))
    rmse = -_pf(system, truth).fit(obs).score(obs, truth)
    assert rmse < 0.6
    assert rmse < 0.6 * _oi_rmse(system, truth, obs)  # OI / 3D-Var: ~1.0 (DAPPER 1.04-1.25)
    enkf = EnKF(system=system, n_members=10, inflation=1.02, rotate=True, random_state=0,
                initial_state=initial_state(truth, system, 1.4), initial_spread=1.4, burn_in=10.0)
    assert rmse < -enkf.fit(obs).score(obs, truth)  # EnKF(N=10): ~0.52 here, DAPPER 0.60


def test_members_are_an_equal_weight_resampling(l63_twin):
    system, truth, obs = l63_twin
    obs = obs.isel(time=slice(0, 40))
    summary = _pf(system, truth).fit(obs).predict(obs)
    members = _pf(system, truth, return_ensemble=True).fit(obs).predict(obs)
    assert members.x.dims == ("time", "member") and members.sizes["member"] == 100
    assert {"x_std", "spread"} <= set(summary.data_vars)
    # the same filter run: the member mean approximates the exact weighted mean
    gap = np.abs(members.x.mean("member") - summary.x)
    assert float(gap.mean()) < 0.2 * float(summary.x_std.mean())


# ---------------------------------------------------------------- weights
def test_weights_are_normalised_and_mean_is_weighted(l63_twin):
    system, truth, obs = l63_twin
    est, ctx, rng = _state_and_context(system, truth, obs.isel(time=slice(0, 5)))
    E, log_w = est._analyze(est._initialize(ctx, rng), 0, ctx, rng)
    w = log_w.exp()
    assert torch.allclose(w.sum(-1), torch.tensor(1.0, dtype=w.dtype), atol=1e-12)
    assert float(effective_sample_size(log_w)) < 100  # the update did reweight
    mean, members, std = est._summarize((E, log_w))
    assert members is None  # return_ensemble=False
    torch.testing.assert_close(mean, (w[:, None] * E).sum(0))


def test_resampling_triggers_on_effective_sample_size(l63_twin):
    system, truth, obs = l63_twin
    est, ctx, rng = _state_and_context(system, truth, obs.isel(time=slice(0, 3)),
                                       regularization=0.0, resampling_threshold=0.5)
    N = 100
    E = torch.as_tensor(np.random.RandomState(1).standard_normal((2, N, 3)))
    log_w = torch.full((2, N), -math.log(N), dtype=E.dtype)
    log_w[0] = torch.log_softmax(torch.linspace(0, 40, N, dtype=E.dtype), -1)  # ESS ~ 5
    assert effective_sample_size(log_w)[0] < 0.5 * N <= effective_sample_size(log_w)[1]
    E2, log_w2 = est._forecast((E, log_w), 0, ctx, rng)
    # the degenerate experiment is resampled to equal weights, the other is untouched
    torch.testing.assert_close(log_w2[0], torch.full((N,), -math.log(N), dtype=E.dtype))
    assert torch.equal(E2[1], E[1]) and torch.equal(log_w2[1], log_w[1])
    originals = {tuple(row) for row in E[0].tolist()}
    assert all(tuple(row) in originals for row in E2[0].tolist())
    assert len({tuple(row) for row in E2[0].tolist()}) < 20
    # systematic resampling: each particle is copied floor or ceil of N w_i times
    counts = torch.stack([(E2[0] == E[0, i]).all(-1).sum() for i in range(N)])
    expected = N * log_w[0].exp()
    assert bool(((counts >= expected.floor()) & (counts <= expected.ceil())).all())


def test_multinomial_resampling_draws_by_weight(l63_twin):
    system, truth, obs = l63_twin
    est, ctx, rng = _state_and_context(system, truth, obs.isel(time=slice(0, 3)),
                                       regularization=0.0, resampling="multinomial",
                                       resampling_threshold=1.0)
    N = 4000
    E = torch.arange(N, dtype=torch.float64)[:, None].repeat(1, 3)
    w = torch.zeros(N, dtype=torch.float64)
    w[:4] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    E2, _ = est._forecast((E, w.log()), 0, ctx, rng)
    counts = np.bincount(E2[:, 0].long().numpy(), minlength=4)
    assert counts.sum() == N and counts[4:].sum() == 0
    np.testing.assert_allclose(counts[:4] / N, [0.1, 0.2, 0.3, 0.4], atol=0.03)


def test_regularization_matches_dapper_bandwidth(l63_twin):
    """Jitter covariance (reg * N**(-1/(n+4)))**2 * weighted covariance, duplicates only."""
    system, truth, obs = l63_twin
    reg = 2.4
    est, ctx, rng = _state_and_context(system, truth, obs.isel(time=slice(0, 3)),
                                       regularization=reg)
    N = 20000
    gen = np.random.RandomState(2)
    E = torch.as_tensor(gen.standard_normal((N, 3)) @ np.array([[2, 0, 0], [1, 1, 0], [0, 0, 3.]]))
    w = torch.as_tensor(gen.uniform(0.5, 1.5, N))
    w = w / w.sum()
    idx = torch.zeros(N, dtype=torch.long)  # every draw duplicated
    jitter = est._jitter(E, w, idx, rng).numpy()
    mu = (w[:, None] * E).sum(0)
    cov = ((w[:, None] * (E - mu)).T @ (E - mu)) / (1 - (w**2).sum())
    expected = (reg * N ** (-1 / 7)) ** 2 * cov.numpy()
    np.testing.assert_allclose(np.cov(jitter.T), expected, rtol=0.05, atol=0.02 * expected.max())
    idx = torch.arange(N)  # every particle drawn once: nothing to jitter
    assert not est._jitter(E, w, idx, rng).abs().any()
    particle = pytest.importorskip("dapper.da_methods.particle")
    C12 = particle.raw_C12(E[:50].numpy(), (w[:50] / w[:50].sum()).numpy())
    assert particle.auto_bandw(N, 3) == pytest.approx(N ** (-1 / 7))
    ours = E[:50] - (w[:50] / w[:50].sum()) @ E[:50]
    wn = w[:50] / w[:50].sum()
    ours = ((wn / (1 - (wn**2).sum())).sqrt()[:, None] * ours).numpy()
    np.testing.assert_allclose(ours.T @ ours, C12.T @ C12, rtol=1e-12)


# ---------------------------------------------------------------- failures, missing data
def test_collapsed_weights_raise_with_the_time(l63_twin):
    system, truth, obs = l63_twin
    obs = obs.isel(time=slice(0, 10)).copy(deep=True)
    obs["observation"][6] = 1e200  # every particle has zero likelihood here
    with pytest.raises(DivergenceError, match="weights collapsed") as info:
        _pf(system, truth).fit(obs).predict(obs)
    assert info.value.time == pytest.approx(float(obs.time[6]))
    quiet = _pf(system, truth, raise_on_divergence=False).fit(obs).predict(obs)
    assert bool(np.isfinite(quiet.x[:6]).all()) and bool(np.isnan(quiet.x[6:]).all())


def test_nan_observation_equals_removing_it(l63_twin):
    system, truth, obs = l63_twin
    obs = obs.isel(time=slice(0, 30))
    with_nan = obs.copy(deep=True)
    with_nan["observation"][:, 2] = np.nan
    removed = obs.isel(obs=[0, 1])
    a = _pf(system, truth).fit(with_nan).predict(with_nan)
    b = _pf(system, truth, operator=["x", "y"]).fit(removed).predict(removed)
    np.testing.assert_allclose(a.x, b.x, atol=1e-10, rtol=0)
    np.testing.assert_allclose(a.z_std, b.z_std, atol=1e-10, rtol=0)


def test_batch_dims_and_estimator_contract(l63_twin):
    system, truth, _ = l63_twin
    truths = system.simulate(n_trajectories=2, n_steps=25 * 30, dt=0.01, burn_in=5.0,
                             random_state=1)
    obs = observe(truths, "identity", noise_std=float(np.sqrt(2)), every=25, random_state=2)
    est = ParticleFilter(system=system, n_members=50, regularization=2.4, random_state=0,
                         resampling_threshold=0.5, return_ensemble=True)
    out = est.fit(obs).predict(obs)
    assert out.x.dims == ("time", "trajectory", "member") and bool(np.isfinite(out.x).all())
    assert clone(est).get_params()["regularization"] == 2.4
    again = pickle.loads(pickle.dumps(est)).predict(obs)
    np.testing.assert_array_equal(out.x, again.x)  # same seed, same result


@pytest.mark.parametrize("params, match", [
    ({"n_members": 1}, "n_members"),
    ({"resampling_threshold": 1.5}, "resampling_threshold"),
    ({"regularization": -1.0}, "regularization"),
    ({"resampling": "residual"}, "resampling"),
])
def test_bad_parameters_raise(l63_twin, params, match):
    system, truth, obs = l63_twin
    with pytest.raises(ValueError, match=match):
        _pf(system, truth, **params).fit(obs.isel(time=slice(0, 3)))
