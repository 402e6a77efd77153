"""How ``R`` is read, what the first background is, and what happens where nothing is observed.

Each test checks the filters against a reference computed here with numpy or the
model alone: the ETKF of Hunt et al. (2007) with the full ``R``, the members of the
climatological draw, the free forecast of the last analysis.
"""

import numpy as np
import pytest

from xdyn.assimilation import EnKF, EnKFN, LETKF, ParticleFilter, Var3D
from xdyn.observe import observe
from xdyn.systems import Lorenz63, Lorenz96
from xdyn.systems.climatology import climatological_sample


def _obs_at(system, values, dt, every=1):
    """Observations of every variable with the given ``values`` (time, obs)."""
    values = np.asarray(values, dtype=float)
    truth = system.simulate(n_steps=every * (len(values) - 1), dt=dt, random_state=0)
    obs = observe(truth, "identity", noise_std=1.0, every=every, random_state=1)
    obs["observation"][:] = values
    return obs


def _etkf(E, R, y):
    """Hunt et al. (2007) ETKF, identity operator, members in rows (the reference)."""
    N = E.shape[0]
    xb = E.mean(0)
    X, Y = (E - xb).T, (E - xb).T
    C = Y.T @ np.linalg.inv(R)
    Pa = np.linalg.inv((N - 1) * np.eye(N) + C @ Y)
    w = Pa @ C @ (y - xb)
    ev, V = np.linalg.eigh((N - 1) * Pa)
    return (xb[:, None] + X @ (V @ np.diag(np.sqrt(ev)) @ V.T + w[:, None])).T


# ------------------------------------------------------------------ R
def test_correlated_R_in_small_units_keeps_its_correlations():
    """Humidity in kg/kg: error std 1e-4, variances 1e-8, correlation 0.8. The correlations
    were dropped (an absolute 1e-8 tolerance took this R for diagonal): 52% off."""
    system, N = Lorenz63(), 8
    rng = np.random.RandomState(0)
    E0 = 1e-4 * rng.standard_normal((N, 3))
    y = 1e-4 * rng.standard_normal(3)
    R = 1e-8 * (0.2 * np.eye(3) + 0.8 * np.ones((3, 3)))
    obs = _obs_at(system, y[None], 0.01)
    est = EnKF(system, n_members=N, R=R, initial_ensemble=E0, raise_on_divergence=False)
    out = est.fit(obs).predict(obs).isel(time=0)
    Ea = np.stack([out[v].transpose("member").values for v in "xyz"], -1)
    scale = np.abs(E0 - E0.mean(0)).max()
    assert np.abs(Ea - _etkf(E0, R, y)).max() < 1e-10 * scale
    assert np.abs(Ea - _etkf(E0, np.diag(np.diag(R)), y)).max() > 0.1 * scale
    assert est._context(obs, fitted=True).R_chol is not None


@pytest.mark.parametrize("scale", [1.0, 1e-8, 1e-14])
def test_R_is_diagonal_only_when_its_correlations_are_rounding(scale):
    system = Lorenz63()
    obs = _obs_at(system, np.zeros((1, 3)), 0.01)
    corr = np.eye(3) + 1e-6 * (np.ones((3, 3)) - np.eye(3))  # a small but real correlation
    for R, diagonal in ((scale * np.diag([1.0, 2.0, 3.0]), True),
                        (scale * (np.eye(3) + 1e-14 * (np.ones((3, 3)) - np.eye(3))), True),
                        (scale * corr, False)):
        ctx = Var3D(system, B=np.eye(3), initial_state=np.zeros(3), R=R)._context(obs)
        assert (ctx.R_chol is None) == diagonal
        if diagonal:
            np.testing.assert_allclose(ctx.obs_std.numpy() ** 2, np.diag(R), rtol=1e-12)
        else:
            np.testing.assert_allclose((ctx.R_chol @ ctx.R_chol.T).numpy(), R, rtol=1e-12)


@pytest.mark.parametrize("method", [EnKF, ParticleFilter, Var3D])
@pytest.mark.parametrize("scale", [1.0, 1e-8])
def test_asymmetric_R_is_refused_naming_the_entries(method, scale):
    """The correlation typed in one triangle was read as R = I (Cholesky reads the lower one)."""
    system = Lorenz63()
    obs = _obs_at(system, np.zeros((1, 3)), 0.01)
    R = scale * np.array([[1.0, 0.9, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    params = dict(B=np.eye(3), initial_state=np.zeros(3)) if method is Var3D else {}
    for bad in (R, R.T):
        with pytest.raises(ValueError, match=r"R must be symmetric \(a covariance\): R\[0, 1\] = "
                                             r"\S+ but R\[1, 0\] = \S+ .*both triangles"):
            method(system, R=bad, **params).fit(obs)
    sym = scale * np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    rounded = sym.copy()
    rounded[0, 1] *= 1 + 1e-13  # symmetric up to rounding: accepted, symmetrised
    method(system, R=rounded, **params).fit(obs)


def test_B_keeps_its_symmetry_check():
    system = Lorenz63()
    obs = _obs_at(system, np.zeros((1, 3)), 0.01)
    B = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match=r"B must be symmetric"):
        Var3D(system, B=B, initial_state=np.zeros(3)).fit(obs)


# ------------------------------------------------------------------ first background
def _l96_small():
    return Lorenz96(n=12)


@pytest.mark.parametrize("make", [
    lambda s: EnKF(s, n_members=10),
    lambda s: EnKF(s, kind="perturbed-obs", n_members=10),
    lambda s: EnKFN(s, n_members=10),
    lambda s: LETKF(s, n_members=10, localization_radius=2.0),
    lambda s: ParticleFilter(s, n_members=10),
], ids=["enkf-sqrt", "enkf-perturbed-obs", "enkf-n", "letkf", "pf"])
@pytest.mark.parametrize("first_missing", [False, True])
def test_first_background_of_a_climatological_start_is_the_prior(make, first_missing):
    """The pre-analysis (half the first observations' weight) ran inside the forecast, so the
    recorded background at the first observed time was already half analysed."""
    system, dt, seed = _l96_small(), 0.05, 3
    truth = system.simulate(n_steps=3, dt=dt, burn_in=10.0, random_state=2)
    obs = observe(truth, "identity", noise_std=1.0, random_state=4)
    if first_missing:
        obs["observation"][0] = np.nan
    est = make(system).set_params(random_state=seed, return_background=True,
                                  raise_on_divergence=False)
    out = est.fit(obs).predict(obs)
    # the reference: the members the run draws (same generator, first use), forecast
    prior = climatological_sample(system, (10,), dt, np.random.RandomState(seed))
    k = 1 if first_missing else 0
    if first_missing:
        prior = system.forecast(system.as_tensor(prior), dt, 1).numpy()
    bg = out.x_background.isel(time=k).transpose("member", "k").values
    np.testing.assert_allclose(np.sort(bg, 0), np.sort(prior, 0), rtol=1e-13, atol=1e-13)
    # the analysis there still has the climatological pre-analysis: nearer the observations
    an = out.x.isel(time=k).mean("member").values
    y = obs.observation.isel(time=k).values
    assert np.abs(an - y).mean() < 0.75 * np.abs(prior.mean(0) - y).mean()


# ------------------------------------------------------------------ times with no observation
@pytest.mark.parametrize("make", [
    lambda s: EnKF(s, n_members=10, inflation=1.5, rtps=0.5, rotate=True),
    lambda s: EnKF(s, kind="perturbed-obs", n_members=10, inflation=1.5, rtps=0.5),
    lambda s: EnKF(s, kind="denkf", n_members=10, inflation=1.5, rotate=True),
    lambda s: EnKFN(s, n_members=10, inflation=1.5, rotate=True),
    lambda s: LETKF(s, n_members=10, localization_radius=2.0, inflation=1.5, rtps=0.5,
                    rotate=True),
], ids=["enkf-sqrt", "enkf-perturbed-obs", "enkf-denkf", "enkf-n", "letkf"])
def test_a_time_with_no_observation_runs_free(make):
    """No inflation, RTPS or rotation where nothing is assimilated: the analysis there is the
    free forecast of the last one (the spread grew x1.5 per such time, as EnKF-N's did not)."""
    system, dt = _l96_small(), 0.05
    truth = system.simulate(n_steps=10, dt=dt, burn_in=10.0, random_state=2)
    obs = observe(truth, "identity", noise_std=1.0, every=2, random_state=4)
    obs["observation"][2:4] = np.nan  # an outage of two observation times
    E0 = system.to_state(truth.isel(time=0)).numpy() + np.random.RandomState(5).standard_normal(
        (10, system.n_state))
    est = make(system).set_params(initial_ensemble=E0, random_state=0, return_background=True,
                                  raise_on_divergence=False)
    out = est.fit(obs).predict(obs)
    assert out.n_assimilated.values.tolist() == [12, 12, 0, 0, 12, 12]
    Ea = out.x.transpose("time", "member", "k").values
    for k in (2, 3):  # the reference: the model run from the analysis before
        free = system.forecast(system.as_tensor(Ea[k - 1]), dt, 2).numpy()
        np.testing.assert_allclose(Ea[k], free, rtol=1e-12, atol=1e-12)
    # observed times are analysed as before
    assert not np.allclose(Ea[4], out.x_background.isel(time=4).transpose("member", "k"))
