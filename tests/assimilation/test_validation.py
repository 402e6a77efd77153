"""Parameters that were silently wrong (issue 8, section 6): each is refused at fit,
with an error naming the parameter; an all-missing observation window is legal."""

import warnings

import numpy as np
import pytest

from xdyn.assimilation import EnKF, ExtendedKalmanFilter, ParticleFilter, Var3D
from xdyn.observe import EveryKth, observe
from xdyn.systems import Lorenz63, Lorenz96


@pytest.fixture(scope="module")
def twin():
    system = Lorenz96(n=12)
    truth = system.simulate(n_steps=60, burn_in=5.0, random_state=0)
    obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    return system, truth, obs


def _enkf(system, **kw):
    return EnKF(system=system, **{"n_members": 8, "random_state": 0, **kw})


@pytest.mark.parametrize("params, name", [
    ({"dt": -0.05}, "dt"),
    ({"n_members": 10.5}, "n_members"),
    ({"initial_spread": -1.0}, "initial_spread"),
    ({"inflation": float("nan")}, "inflation"),
    ({"inflation": float("inf")}, "inflation"),
    ({"initial_state": np.full(12, np.nan)}, "initial_state"),
    ({"initial_state": np.r_[np.zeros(11), np.inf]}, "initial_state"),
    ({"noise_std": np.ones((2, 12))}, "noise_std"),
    ({"kind": "magic"}, "kind"),
])
def test_bad_parameter_is_named_at_fit(twin, params, name):
    system, _, obs = twin
    est = _enkf(system, **params)  # __init__ stores, never checks
    with pytest.raises((ValueError, TypeError), match=name):
        est.fit(obs)


def test_parameters_are_keyword_only():
    with pytest.raises(TypeError):
        EnKF(None, None)


def test_operator_other_than_the_recorded_one(twin):
    system, truth, _ = twin
    obs = observe(truth, "every4", noise_std=1.0, random_state=1)
    shifted = EveryKth(k=4, offset=1)  # as many observations, at other sites
    with pytest.raises(ValueError, match="operator"):
        _enkf(system, operator=shifted).fit(obs)
    _enkf(system, operator="every4").fit(obs)  # the recorded one is fine


def test_score_against_truth_of_another_system(twin):
    system, _, obs = twin
    est = _enkf(system).fit(obs)
    other = Lorenz63().simulate(n_steps=60, random_state=0)
    with pytest.raises(ValueError, match="truth"):
        est.score(obs, other)
    wider = Lorenz96(n=16).simulate(n_steps=60, random_state=0)
    with pytest.raises(ValueError, match="truth"):
        est.score(obs, wider)


@pytest.mark.parametrize("cls", [EnKF, ExtendedKalmanFilter])
def test_1d_inflation_needs_a_matching_batch_dim(twin, cls):
    system, truth, obs = twin
    kw = {"n_members": 8} if cls is EnKF else {}
    with pytest.raises(ValueError, match="inflation"):
        cls(system=system, inflation=[1.0, 1.02], **kw).fit(obs)
    # a length equal to n_members is not per-member inflation either
    with pytest.raises(ValueError, match="inflation"):
        EnKF(system=system, n_members=2, inflation=[1.0, 1.02]).fit(obs)
    batch = observe(system.simulate(n_trajectories=3, n_steps=20, random_state=2), "identity",
                    noise_std=1.0, random_state=3)
    with pytest.raises(ValueError, match="inflation"):
        cls(system=system, inflation=[1.0, 1.02], **kw).fit(batch)


def test_noise_std_varying_along_a_batch_dim_is_refused(twin):
    system, _, _ = twin
    truths = system.simulate(n_trajectories=2, n_steps=20, random_state=2)
    obs = observe(truths, "identity", noise_std=1.0, random_state=3)
    obs["noise_std"] = obs["noise_std"].expand_dims(trajectory=2).copy()
    obs["noise_std"][1] = 2.0
    with pytest.raises(ValueError, match="noise_std"):
        _enkf(system).fit(obs)


def test_zero_observation_times(twin):
    system, _, obs = twin
    with pytest.raises(ValueError, match="time"):
        _enkf(system).fit(obs.isel(time=slice(0, 0)))


def test_all_missing_observations_run_free_and_say_so(twin):
    system, truth, obs = twin
    x0 = system.to_state(truth.isel(time=0)).numpy()
    empty = obs.copy(deep=True)
    empty["observation"][:] = np.nan
    with pytest.warns(UserWarning, match="missing"):
        an = Var3D(system=system, initial_state=x0, B_scale=0.1).fit(empty, truth).predict(empty)
    assert (an.n_assimilated == 0).all()
    # the analysis is the free model run from the initial state
    free = system.simulate(n_steps=60, x0=x0)
    np.testing.assert_allclose(an.x.values, free.x.sel(time=an.time).values, atol=1e-8)
    # a missing window inside a run: counted per time, no warning
    gap = obs.copy(deep=True)
    gap["observation"][10:20] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        an = _enkf(system, initial_state=x0).fit(gap).predict(gap)
    np.testing.assert_array_equal(an.n_assimilated.values[9:21], [12] + [0] * 10 + [12])


def test_initial_ensemble_dataset_or_array(twin):
    system, truth, obs = twin
    ens = system.simulate(n_trajectories=8, n_steps=1, burn_in=20.0, random_state=5).isel(time=0)
    ens = ens.rename(trajectory="member")
    a = _enkf(system, initial_ensemble=ens).fit(obs).predict(obs)
    b = _enkf(system, initial_ensemble=system.to_state(ens).numpy()).fit(obs).predict(obs)
    np.testing.assert_allclose(a.x.values, b.x.values)
    with pytest.raises(ValueError, match="members"):
        EnKF(system=system, n_members=5, initial_ensemble=ens).fit(obs).predict(obs)
    pf = ParticleFilter(system=system, n_members=8, initial_ensemble=ens, random_state=0,
                        raise_on_divergence=False)  # 8 particles lose a 12-variable truth
    assert pf.fit(obs).predict(obs).sizes["member"] == 8


def test_initial_ensemble_meets_the_batch_dims_by_name_and_label():
    # observations (seed, trajectory), both of size 2; an ensemble per seed only, at x = +5 for
    # seed 0 and -5 for seed 1: broadcast from the right, it was spread along trajectory
    import xarray as xr

    system = Lorenz63()
    truth = system.simulate(n_trajectories=2, n_steps=40, random_state=0)
    obs = xr.concat([observe(truth, "identity", noise_std=1.0, every=10, random_state=s)
                     for s in (1, 2)], dim="seed").assign_coords(seed=[10, 20])
    x = np.stack([np.full(5, 5.0), np.full(5, -5.0)]) + 0.1 * np.random.RandomState(0).randn(2, 5)
    ens = xr.Dataset({v: (("seed", "member"), x if v == "x" else np.full((2, 5), 20.0 * (v == "z")))
                      for v in "xyz"}, coords={"seed": [10, 20]})

    def first_background(ensemble):
        est = EnKF(n_members=5, initial_ensemble=ensemble, return_background=True,
                   return_ensemble=False,
                   raise_on_divergence=False, random_state=0).fit(obs)
        bg = est.predict(obs)["x_background"].isel(time=0)
        return bg.transpose("seed", "trajectory").values

    np.testing.assert_allclose(first_background(ens), [[5.0, 5.0], [-5.0, -5.0]], atol=0.2)
    # labels stored in the other order are matched by label
    np.testing.assert_allclose(first_background(ens.isel(seed=[1, 0])),
                               [[5.0, 5.0], [-5.0, -5.0]], atol=0.2)
    with pytest.raises(ValueError, match="'seed' labels"):
        first_background(ens.assign_coords(seed=[10, 30]))


def test_operator_check_on_a_physical_grid_uses_grid_positions():
    """observe() writes physical x/y (a 2 pi grid) along obs; the operator knows grid
    positions: the same operator must pass, another one must still be caught."""
    from xdyn.assimilation import EnKF
    from xdyn.observe import EveryKth, observe
    from xdyn.systems import KolmogorovFlow

    system = KolmogorovFlow(N=16)
    truth = system.simulate(n_steps=2, random_state=0)
    obs = observe(truth, EveryKth(k=4), noise_std=0.1, random_state=1)
    assert not np.array_equal(obs["x"].values, obs["x_index"].values)  # physical != index
    EnKF(n_members=4, random_state=0, operator=EveryKth(k=4)).fit(obs)
    with pytest.raises(ValueError, match="does not match the observations"):
        EnKF(n_members=4, random_state=0, operator=EveryKth(k=4, offset=1)).fit(obs)


@pytest.mark.parametrize("made, given", [("x^2", "x"), ("arctan", "identity"),
                                         ("scaled", "identity")])
def test_an_operator_that_transforms_the_same_sites_otherwise_is_refused(made, given):
    """The sites match by coordinates, but the recorded operator squares, arctans or scales
    them: assimilated as raw state values (RMSE 14.8 instead of 0.19 for the scaled case, with
    a warning only), now an error at fit."""
    from xdyn.observe import Arctan, Identity, ObservationScaler

    truth = Lorenz63().simulate(n_steps=60, burn_in=5.0, random_state=0)
    operator = Arctan(Identity()) if made == "arctan" else ("identity" if made == "scaled"
                                                            else made)
    obs = observe(truth, operator, noise_std=0.5, every=10, random_state=1)
    if made == "scaled":
        obs = ObservationScaler().fit(obs).transform(obs)
    with pytest.raises(ValueError, match="transforms the observed sites otherwise"):
        EnKF(operator=given, n_members=10, random_state=0).fit(obs)
    EnKF(operator=None, n_members=10, random_state=0).fit(obs)  # the recorded one
    recorded = obs.attrs["operator"]
    from xdyn.observe import operator_from_spec
    EnKF(operator=operator_from_spec(recorded), n_members=10, random_state=0).fit(obs)


# ---- data that was read by position or by the wrong convention (audit 2026-12-07) ----
def test_observations_without_a_time_coordinate_are_refused(twin):
    # the bare dim read as times 0, 1, 2, ...: forecasts of 20 steps between analyses
    system, _, obs = twin
    with pytest.raises(ValueError, match="need a 'time' coordinate"):
        _enkf(system).fit(obs.drop_vars("time"))


def test_inf_observations_are_bad_data_not_missing_ones(twin):
    system, _, obs = twin
    bad = obs.copy(deep=True)
    bad["observation"][3, 2] = np.inf
    for est in (_enkf(system), Var3D(system=system)):
        with pytest.raises(ValueError, match="inf values; mark missing ones with NaN"):
            est.fit(bad)


def test_a_member_batch_dim_is_refused_by_ensemble_filters(twin):
    system, truth, _ = twin
    ens_truth = truth.expand_dims(member=2)
    obs = observe(ens_truth, "identity", noise_std=1.0, random_state=1)
    with pytest.raises(ValueError, match="batch dim named 'member'"):
        _enkf(system, n_members=2).fit(obs)


def test_observations_of_a_reversed_grid_are_refused_and_its_states_reordered(twin):
    # the positions matched, the places did not: RMSE 5.7 instead of 0.21, no error
    system, truth, obs = twin
    rev = truth.isel(k=slice(None, None, -1))
    with pytest.raises(ValueError, match=r"labels are \[11, 10, 9.*sort it"):
        _enkf(system).fit(observe(rev, "identity", noise_std=1.0, random_state=1))
    np.testing.assert_array_equal(system.to_state(rev), system.to_state(truth))
    with pytest.raises(ValueError, match="are not the system's grid"):
        system.to_state(truth.assign_coords(k=truth.k + 0.5))
    # a truth stored descending scores as the same truth (metrics.state_rmse follows labels)
    est = Var3D(system=system).fit(obs)
    assert est.score(obs, rev) == pytest.approx(est.score(obs, truth), rel=1e-12)


def test_identity_observations_of_a_variable_without_a_grid_dim_are_accepted():
    # the slow x of two-scale Lorenz-96 has no j (marked -1 along obs): the reversed-grid
    # check read -1 as the last j label and refused the whole identity observation
    from xdyn.systems import TwoScaleLorenz96

    truth = TwoScaleLorenz96(K=4, J=3).simulate(n_steps=5, random_state=0)
    obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    assert EnKF(n_members=5, random_state=0).fit(obs).n_obs_ == 4 + 4 * 3
    with pytest.raises(ValueError, match="sort it"):  # a reversed j is still refused
        EnKF(n_members=5).fit(observe(truth.isel(j=slice(None, None, -1)), "identity",
                                      noise_std=1.0, random_state=1))


def test_observations_written_before_nan_positions_are_still_accepted():
    # since 2026-12-08 a variable without a dim has NaN, not -1, as its position and label
    # along obs: observations written before (-1) must still assimilate, without warnings
    import warnings

    from xdyn.systems import TwoScaleLorenz96

    truth = TwoScaleLorenz96(K=4, J=3).simulate(n_steps=5, random_state=0)
    obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    assert np.isnan(obs["j_index"].values[:4]).all()  # the slow x: no j
    old = obs.assign_coords(j_index=("obs", np.nan_to_num(obs["j_index"].values, nan=-1)
                                     .astype(int)),
                            j=("obs", np.nan_to_num(obs["j"].values, nan=-1).astype(int)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for o in (obs, old):
            assert EnKF(n_members=5, random_state=0).fit(o).n_obs_ == 4 + 4 * 3


def test_data_with_parameters_drawn_per_trajectory_names_no_one_system():
    # the recorded system had the undrawn default omega0 = 1: RMSE 0.9-1.1 instead of 0.01-0.03
    from xdyn.systems import DampedPendulum

    truth = DampedPendulum().simulate(n_trajectories=2, n_steps=10, random_state=0,
                                      parameter_ranges={"omega0": (1.5, 2.5)})
    obs = observe(truth, "theta", noise_std=0.01, random_state=1)
    with pytest.raises(ValueError, match=r"drew \['omega0'\] per trajectory"):
        EnKF(n_members=4, random_state=0).fit(obs)
