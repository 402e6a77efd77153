import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone

from xdyn.assimilation import EnKF, EnKFN, LETKF, analysis_rmse, make_assimilator
from xdyn.assimilation._linalg import ensemble_transform
from xdyn.assimilation.enkf_n import finite_size_inflation
from xdyn.observe import EveryKth, observe
from xdyn.systems import Lorenz96

from .conftest import initial_state


def _random_problem(rng, N, p):
    Y = rng.standard_normal((N, p))
    Y -= Y.mean(0)
    return Y, 1.5 * rng.standard_normal(p)


def _eigen_inputs(Y, d):
    """(eigenvalues, projected squared innovation) in the smaller of the two spaces."""
    N, p = Y.shape
    if p < N:
        lam, U = np.linalg.eigh(Y.T @ Y)
        return lam, lam * (U.T @ d) ** 2
    lam, V = np.linalg.eigh(Y @ Y.T)
    return lam, (V.T @ (Y @ d)) ** 2


# ------------------------------------------------------------ exactness
@pytest.mark.parametrize("N, p", [(10, 3), (10, 40), (20, 20), (40, 10)])
@pytest.mark.parametrize("weight", [1.0, 2.0])
def test_inflation_equals_dapper_effective_n(N, p, weight):
    ensemble = pytest.importorskip("dapper.da_methods.ensemble")
    rng = np.random.default_rng(N * 100 + p)
    Y, d = _random_problem(rng, N, p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        za = ensemble.effective_N(Y, d, weight, 0)
    ours = finite_size_inflation(*_eigen_inputs(Y, d), N, weight)
    np.testing.assert_allclose(ours, np.sqrt((N - 1) / za), rtol=1e-10)


def test_inflation_is_batched():
    rng = np.random.default_rng(0)
    problems = [_eigen_inputs(*_random_problem(rng, 12, 30)) for _ in range(5)]
    lam = np.stack([p[0] for p in problems])
    b2 = np.stack([p[1] for p in problems])
    batched = finite_size_inflation(lam.reshape(5, 1, 12), b2.reshape(5, 1, 12), 12)
    assert batched.shape == (5, 1)
    one_by_one = [finite_size_inflation(a, b, 12) for a, b in problems]
    np.testing.assert_allclose(batched[:, 0], one_by_one, rtol=1e-12)
    # a larger innovation asks for more inflation
    assert finite_size_inflation(lam[0], 4 * b2[0], 12) > one_by_one[0]


def test_analysis_is_the_etkf_of_the_inflated_prior(l96_twin):
    """One EnKF-N analysis = the ETKF of the prior inflated by DAPPER's factor."""
    ensemble = pytest.importorskip("dapper.da_methods.ensemble")
    system, truth, obs = l96_twin
    obs = obs.isel(time=slice(0, 2))
    est = EnKFN(system=system, n_members=15, random_state=0).fit(obs)
    ctx = est._context(obs)
    E = est._initialize(ctx, np.random.RandomState(0))
    Ea = est._analyze(E, 1, ctx, np.random.RandomState(0))
    mu = E.mean(-2, keepdim=True)
    A = E - mu
    HE = ctx.h(E)
    Y = ((HE - HE.mean(-2, keepdim=True)) / ctx.obs_std).numpy()
    d = ((ctx.y[1] - HE.mean(-2)) / ctx.obs_std).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        l1 = np.sqrt(14 / ensemble.effective_N(Y, d, 1.0, 0))
    assert l1 > 1.0
    w, T, _ = ensemble_transform(torch.as_tensor(l1 * Y), torch.as_tensor(d))
    expected = mu + w.unsqueeze(-2) @ (l1 * A) + T @ (l1 * A)
    np.testing.assert_allclose(Ea.numpy(), expected.numpy(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("operator, n_members", [("identity", 20), (EveryKth(4), 20)])
def test_letkf_adaptive_without_localization_is_enkf_n(l96_twin, operator, n_members):
    """The local EnKF-N with every observation in reach is the global EnKF-N
    (ensemble-space and observation-space forms)."""
    system, truth, _ = l96_twin
    obs = observe(truth.isel(time=slice(0, 10)), operator, noise_std=1.0, random_state=1)
    common = dict(system=system, n_members=n_members, random_state=3,
                  initial_state=initial_state(truth, system, 0.5))
    glob = EnKFN(**common).fit(obs).predict(obs)
    loc = LETKF(localization_radius=np.inf, adaptive_inflation=True, **common)
    np.testing.assert_allclose(loc.fit(obs).predict(obs).x, glob.x, atol=1e-8, rtol=0)
    fixed = LETKF(localization_radius=np.inf, **common).fit(obs).predict(obs)
    assert float(np.abs(fixed.x - glob.x).max()) > 1e-3  # the inflation did act


# ------------------------------------------------------------ skill
@pytest.mark.slow
def test_enkf_n_needs_no_inflation_tuning(l96_twin):
    """sakov2008, N=40: within 10% of the best tuned fixed inflation (DAPPER's
    EnKF_N 0.188 vs EnKF Sqrt infl 1.01 0.180 on the same truth), over 3 seeds."""
    system, truth, obs = l96_twin
    obs = obs.isel(time=slice(0, 800))
    common = dict(system=system, n_members=40, burn_in=10.0, initial_spread=0.5,
                  return_ensemble=False)
    adaptive, tuned = [], []
    for seed in range(3):
        x0 = initial_state(truth, system, 0.5, seed=seed)
        adaptive.append(-EnKFN(initial_state=x0, random_state=seed, **common)
                        .fit(obs).score(obs, truth))
        tuned.append(-EnKF(kind="sqrt", inflation=1.01, initial_state=x0, random_state=seed,
                           **common).fit(obs).score(obs, truth))
    assert np.mean(adaptive) < 1.1 * np.mean(tuned)
    assert np.mean(adaptive) < 0.22


def test_enkf_n_catches_up_where_no_inflation_loses_track(l96_twin):
    """N=20 without inflation drifts away; EnKF-N inflates itself back."""
    system, truth, obs = l96_twin
    obs = obs.isel(time=slice(0, 600))
    common = dict(system=system, n_members=20, burn_in=10.0, initial_spread=0.5,
                  return_ensemble=False, raise_on_divergence=False, random_state=0,
                  initial_state=initial_state(truth, system, 0.5))
    bare = -EnKF(kind="sqrt", **common).fit(obs).score(obs, truth)
    adaptive = -EnKFN(inflation_prior_weight=2.0, **common).fit(obs).score(obs, truth)
    assert adaptive < 0.3 < bare


# ------------------------------------------------------------ contract
def test_estimator_contract(l96_twin):
    system, truth, obs = l96_twin
    obs = obs.isel(time=slice(0, 5))
    est = make_assimilator("enkf-n", system=system, n_members=8, random_state=1)
    assert isinstance(est, EnKFN)
    a = clone(est).fit(obs).predict(obs)
    b = clone(est).fit(obs).predict(obs)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.attrs["method"] == "EnKFN"
    with pytest.raises(TypeError):
        EnKFN(system, None)  # keyword-only parameters after the system


@pytest.mark.parametrize("weight", [0.0, -1.0, np.nan, np.inf, "2"])
def test_bad_inflation_prior_weight(l96_twin, weight):
    system, _, obs = l96_twin
    obs = obs.isel(time=slice(0, 3))
    with pytest.raises((ValueError, TypeError), match="inflation_prior_weight"):
        EnKFN(system=system, inflation_prior_weight=weight).fit(obs)
    with pytest.raises((ValueError, TypeError), match="inflation_prior_weight"):
        LETKF(system=system, adaptive_inflation=True, inflation_prior_weight=weight).fit(obs)


def test_letkf_adaptive_inflation_must_be_bool(l96_twin):
    system, _, obs = l96_twin
    with pytest.raises(TypeError, match="adaptive_inflation"):
        LETKF(system=system, adaptive_inflation="yes").fit(obs.isel(time=slice(0, 3)))


@pytest.mark.slow
def test_every_fourth_site_from_no_truth():
    """The hard case (sakov2008 dynamics, every 4th site observed, noise 1; DAPPER's
    best LETKF-40 reaches 0.617 from the truth, most of its configurations diverge): the
    local EnKF-N (LETKF N=40, r=8, adaptive inflation, xN=1.5), started from climatology
    (no truth), is never lost and averages <= 0.6 (issue 8's target).

    One 5000-cycle run is no statistic here: its mean is set by bad spells of 10-20
    time units, and the same truth gave 0.56 or 0.63 depending on the filter seed or
    the last bits of the forecast. Measured three-truth means 0.563, 0.564, 0.577 and
    0.590 (four filter seeds / rounding orders), one run 0.54-0.63; here the mean of
    3 truths x 2 filter seeds.
    """
    system = Lorenz96()
    scores = []
    for seed in range(3):
        truth = system.simulate(n_steps=5000, dt=0.05, burn_in=20.0, random_state=100 + seed)
        obs = observe(truth, EveryKth(4), noise_std=1.0, random_state=200 + seed)
        for filter_seed in (seed, 20 + seed):
            est = LETKF(system=system, n_members=40, localization_radius=8.0,
                        adaptive_inflation=True, inflation_prior_weight=1.5, burn_in=20.0,
                        random_state=filter_seed, return_ensemble=False)
            analysis = est.fit(obs).predict(obs)
            assert not bool(analysis["lost"].any())
            scores.append(analysis_rmse(analysis, truth, burn_in=20.0))
    assert np.mean(scores) <= 0.6
    assert max(scores) < 0.68
