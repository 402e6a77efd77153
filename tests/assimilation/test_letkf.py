import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from xdyn.assimilation import EnKF, analysis_rmse
from xdyn.assimilation.letkf import LETKF, local_ensemble_transform
from xdyn.assimilation.localization import (
    gaspari_cohn,
    local_observations,
    obs_positions,
    periodic_distance,
    spatial_grid,
    state_positions,
    taper_coefficients,
)
from xdyn.observe import EveryKth, ObservationOperator, observe
from xdyn.systems import Lorenz96
from xdyn.systems.base import StateVariable

from .conftest import initial_state


class _AllSitesBut(ObservationOperator):
    """Every site except one: the reference for a missing (NaN) observation."""

    def __init__(self, skip=5):
        self.skip = skip

    def indices(self, layout):
        n = sum(v.size for v in (layout.variables if hasattr(layout, "variables") else layout))
        return np.delete(np.arange(n), self.skip)


def _letkf(system, truth, **params):
    base = dict(system=system, n_members=20, inflation=1.02, localization_radius=4.0,
                random_state=0, initial_state=initial_state(truth, system, 0.5),
                initial_spread=0.5, return_ensemble=False)
    base.update(params)
    return LETKF(**base)


def _free_run_rmse(system, truth, burn_in):
    x0 = initial_state(truth, system, 0.5)
    free = system.simulate(n_steps=truth.sizes["time"] - 1, dt=0.05, x0=x0)
    free = free.assign_coords(time=truth.time)
    return analysis_rmse(free, truth, burn_in=burn_in)


# ---------------------------------------------------------------- skill
def test_letkf_lorenz96_all_obs(l96_twin):
    """sakov2008 setup (DAPPER LETKF N=40 infl 1.01 r=4: 0.195 on 5000 cycles)."""
    system, truth, obs = l96_twin
    obs = obs.isel(time=slice(0, 700))
    rmse = -_letkf(system, truth, burn_in=5.0).fit(obs).score(obs, truth)
    assert rmse < 0.25
    assert rmse < 0.1 * _free_run_rmse(system, truth.isel(time=slice(0, 700)), burn_in=5.0)


def test_letkf_lorenz96_sparse_obs(l96_twin):
    system, truth, _ = l96_twin
    truth = truth.isel(time=slice(0, 600))
    obs = observe(truth, EveryKth(4), noise_std=1.0, random_state=1)
    analysis = _letkf(system, truth, inflation=1.05, burn_in=5.0).fit(obs).predict(obs)
    assert bool(np.isfinite(analysis.x).all())
    rmse = analysis_rmse(analysis, truth, burn_in=5.0)
    assert rmse < 0.5 * _free_run_rmse(system, truth, burn_in=5.0)


# ------------------------------------------------------- exactness checks
@pytest.mark.parametrize("operator, n_members", [("identity", 20), (EveryKth(4), 20),
                                                 ("identity", 50)])
def test_huge_radius_equals_global_etkf(l96_twin, operator, n_members):
    """Without localization the LETKF is the ETKF, in both its ensemble- and obs-space forms."""
    system, truth, _ = l96_twin
    obs = observe(truth.isel(time=slice(0, 8)), operator, noise_std=1.0, random_state=1)
    common = dict(system=system, n_members=n_members, inflation=1.02, rotate=True,
                  random_state=3, initial_state=initial_state(truth, system, 0.5))
    glob = EnKF(kind="sqrt", **common).fit(obs).predict(obs)
    for radius in (1e9, np.inf):
        loc = LETKF(localization_radius=radius, **common).fit(obs).predict(obs)
        np.testing.assert_allclose(loc.x, glob.x, atol=1e-8, rtol=0)


def test_full_R_without_localization_equals_etkf(l96_twin):
    system, truth, _ = l96_twin
    obs = observe(truth.isel(time=slice(0, 6)), EveryKth(4), noise_std=1.0, random_state=1)
    R = 0.5 * np.eye(10) + 0.3 * np.exp(-np.abs(np.subtract.outer(np.arange(10), np.arange(10))))
    common = dict(system=system, R=R, n_members=15, random_state=3,
                  initial_state=initial_state(truth, system, 0.5))
    glob = EnKF(kind="sqrt", **common).fit(obs).predict(obs)
    loc = LETKF(localization_radius=np.inf, **common).fit(obs).predict(obs)
    np.testing.assert_allclose(loc.x, glob.x, atol=1e-8, rtol=0)
    local = LETKF(localization_radius=3.0, **common).fit(obs).predict(obs)
    assert bool(np.isfinite(local.x).all())


def test_points_out_of_reach_keep_their_background(l96_twin):
    system, truth, _ = l96_twin
    obs = observe(truth.isel(time=slice(0, 5)), EveryKth(20), noise_std=1.0, random_state=1)
    radius = 1.0  # Gaspari-Cohn support 3.64 grid units around sites 0 and 20
    out = _letkf(system, truth, localization_radius=radius, inflation=1.0, return_ensemble=True,
                 return_background=True).fit(obs).predict(obs)
    dist = periodic_distance(np.arange(40)[:, None], [[0], [20]], (40,)).min(1)
    far = dist >= 3.64 * radius
    assert far.sum() == 26
    np.testing.assert_allclose(out.x.isel(k=far), out.x_background.isel(k=far), atol=1e-12, rtol=0)
    near = np.abs(out.x.isel(k=~far) - out.x_background.isel(k=~far))
    assert float(near.max()) > 0.01


def test_nan_observation_equals_removing_it(l96_twin):
    system, truth, _ = l96_twin
    obs = observe(truth.isel(time=slice(0, 20)), "identity", noise_std=1.0, random_state=1)
    with_nan = obs.copy(deep=True)
    with_nan["observation"][:, 5] = np.nan
    removed = obs.drop_isel(obs=5)
    a = _letkf(system, truth).fit(with_nan).predict(with_nan)
    b = _letkf(system, truth, operator=_AllSitesBut(5)).fit(removed).predict(removed)
    np.testing.assert_allclose(a.x, b.x, atol=1e-10, rtol=0)
    # partially missing data runs and stays finite
    sparse = observe(truth.isel(time=slice(0, 20)), "identity", noise_std=1.0,
                     missing_fraction=0.3, random_state=2)
    assert bool(np.isfinite(_letkf(system, truth).fit(sparse).predict(sparse).x).all())


def test_batch_of_two_equals_two_runs():
    """Batched local analyses: experiments stacked on a batch dim run as if alone."""
    system = Lorenz96(n=40)
    truth = system.simulate(n_trajectories=2, n_steps=30, dt=0.05, burn_in=10.0, random_state=1)
    obs = observe(truth, "identity", noise_std=1.0, random_state=2)
    x0 = truth.isel(time=0).x.values  # (trajectory, k)
    N, seed = 20, 7
    params = dict(system=system, n_members=N, inflation=1.02, localization_radius=3.0,
                  initial_spread=0.5, return_ensemble=True)
    both = LETKF(initial_state=x0, random_state=seed, **params).fit(obs).predict(obs)
    assert both.x.dims == ("time", "trajectory", "member", "k")
    for j in range(2):
        rng = np.random.RandomState(seed)
        rng.standard_normal(j * N * 40)  # the batched run drew trajectory 0's members first
        single = obs.isel(trajectory=j)
        alone = LETKF(initial_state=x0[j], random_state=rng, **params).fit(single).predict(single)
        np.testing.assert_allclose(both.x.isel(trajectory=j), alone.x, atol=1e-10, rtol=0)


def test_blocks_of_points_give_the_same_analysis(l96_twin, monkeypatch):
    """Large grids are analysed in memory-bounded blocks of points; the result is the same."""
    import xdyn.assimilation.letkf as letkf_module

    system, truth, obs = l96_twin
    obs = obs.isel(time=slice(0, 10))
    whole = _letkf(system, truth).fit(obs).predict(obs)
    monkeypatch.setattr(letkf_module, "_MAX_BLOCK", 3000)  # 6 points per block
    blocks = _letkf(system, truth).fit(obs).predict(obs)
    np.testing.assert_allclose(blocks.x, whole.x, atol=1e-12, rtol=0)


def test_local_transform_both_forms_agree(rng):
    """The ensemble-space and both observation-space forms are the same transform."""
    N, n, p = 12, 6, 30
    A = torch.as_tensor(rng.standard_normal((N, n)))
    A = A - A.mean(0)
    Yw = torch.as_tensor(rng.standard_normal((N, p)))
    Yw = Yw - Yw.mean(0)
    dw = torch.as_tensor(rng.standard_normal(p))
    index = torch.as_tensor(np.stack([np.arange(i, i + 20) for i in range(n)]))
    taper = torch.as_tensor(rng.uniform(0, 1, (n, 20)))
    for q in (20, 10):  # 20 local obs >= 12 members: ensemble space; 10 < 12: obs space
        out = local_ensemble_transform(A, Yw, dw, index[:, :q], taper[:, :q])
        assert out.shape == (N, n)
        for i in range(n):  # a dense per-point ETKF (Hunt et al. 2007)
            S = Yw[:, index[i, :q]] * taper[i, :q]
            d = dw[index[i, :q]] * taper[i, :q]
            C = S @ S.T + (N - 1) * torch.eye(N, dtype=S.dtype)
            s, V = torch.linalg.eigh(C)
            w = torch.linalg.solve(C, S @ d)
            T = (V * ((N - 1) / s).sqrt()) @ V.T
            np.testing.assert_allclose(out[:, i], w @ A[:, i] + T @ A[:, i], atol=1e-12)
            # one point alone takes the gathered (not the shared-Gram) route
            alone = local_ensemble_transform(A[:, i:i + 1], Yw, dw, index[i:i + 1, :q],
                                             taper[i:i + 1, :q])
            np.testing.assert_allclose(alone[:, 0], out[:, i], atol=1e-12)


# ------------------------------------------------------- estimator contract
def test_lorenz63_has_no_grid_to_localize_on(l63_twin):
    system, truth, obs = l63_twin
    with pytest.raises(ValueError, match="spatial grid"):
        LETKF(system=system).fit(obs)
    obs = obs.isel(time=slice(0, 10))
    est = LETKF(system=system, localization_radius=np.inf, random_state=0).fit(obs)
    assert bool(np.isfinite(est.predict(obs).x).all())


@pytest.mark.parametrize("params, match", [
    ({"taper": "cosine"}, "taper"),
    ({"localization_radius": 0.0}, "localization_radius"),
    ({"n_members": 1}, "n_members"),
])
def test_bad_parameters_raise(l96_twin, params, match):
    system, _, obs = l96_twin
    with pytest.raises(ValueError, match=match):
        LETKF(system=system, **params).fit(obs.isel(time=slice(0, 3)))


def test_clone_and_pickle(l96_twin):
    system, truth, obs = l96_twin
    obs = obs.isel(time=slice(0, 15))
    est = _letkf(system, truth, taper="gaussian", localization_radius=3.0)
    assert clone(est).get_params()["localization_radius"] == 3.0
    first = est.fit(obs).predict(obs)
    again = pickle.loads(pickle.dumps(est)).predict(obs)
    np.testing.assert_array_equal(first.x, again.x)
    assert first.attrs["method"] == "LETKF"


# ------------------------------------------------------- localization geometry
def test_gaspari_cohn_shape():
    r = np.linspace(0, 3, 3001)
    c = gaspari_cohn(r)
    assert c[0] == 1.0 and np.all(c[r >= 2] == 0.0)
    assert np.all(np.diff(c) <= 1e-15) and np.all(c >= 0)
    for knot in (1.0, 2.0):  # continuous across the pieces
        eps = 1e-9
        assert abs(gaspari_cohn(knot - eps) - gaspari_cohn(knot + eps)) < 1e-7
    # radius convention: about exp(-1/2) at one radius, support 3.64 radii
    assert abs(taper_coefficients(4.0, 4.0) - np.exp(-0.5)) < 0.03
    assert taper_coefficients(3.64 * 4.0, 4.0) == 0.0 and taper_coefficients(3.6 * 4.0, 4.0) > 0


def test_tapers_match_dapper():
    localization = pytest.importorskip("dapper.tools.localization")
    d = np.linspace(0, 20, 401)
    for ours, theirs in [("gaspari-cohn", "GC"), ("gaussian", "Gauss"), ("step", "Step")]:
        np.testing.assert_allclose(taper_coefficients(d, 4.0, ours),
                                   localization.dist2coeff(d, 4.0, theirs), atol=1e-12)


def test_grid_geometry():
    assert spatial_grid(Lorenz96(n=8)) == (("k",), (8,))
    np.testing.assert_array_equal(obs_positions(EveryKth(3), Lorenz96(n=8))[:, 0], [0, 3, 6])
    # a 2-D periodic grid with two fields, and a two-scale layout localized along k
    grid = [StateVariable("u", ("y", "x"), (4, 5)), StateVariable("v", ("y", "x"), (4, 5))]
    pos = state_positions(grid)
    assert pos.shape == (40, 2) and pos[7].tolist() == [1, 2] and pos[27].tolist() == [1, 2]
    assert periodic_distance([[0, 0]], [[3, 4]], (4, 5))[0, 0] == pytest.approx(np.sqrt(2))
    two_scale = [StateVariable("x", ("k",), (6,)), StateVariable("y", ("k", "j"), (6, 3))]
    assert spatial_grid(two_scale) == (("k",), (6,))
    assert state_positions(two_scale)[6:9, 0].tolist() == [0, 0, 0]
    index, coeff = local_observations(Lorenz96(n=40), EveryKth(4), radius=1.0)
    assert index.shape[0] == 40 and np.all((coeff > 0).sum(1) <= 2)
