"""Audit O (session 62): observe() and the operators agree on the state, sites and attrs."""

import json
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

from xdyn.observe import (EveryKth, GridPoints, Identity, ObservationScaler, RandomPoints,
                          SelectVariables, Squared, make_operator, observe, operator_from_spec)
from xdyn.systems import Lorenz63, StateVariable


def _with_parameter():
    """u (trajectory, time, x) stored after a per-trajectory parameter Re (no time)."""
    rng = np.random.RandomState(0)
    return xr.Dataset(
        {"Re": ("trajectory", [40.0, 60.0]),
         "u": (("trajectory", "time", "x"), rng.standard_normal((2, 3, 6)))},
        coords={"time": [0.0, 1.0, 2.0], "x": 0.5 * np.arange(6)})


def _mixed():
    """A field u on a grid centred at 0 (integer labels -2..2) beside a scalar p."""
    return xr.Dataset({"u": (("time", "x"), np.arange(15.0).reshape(3, 5), {"units": "m"}),
                       "p": ("time", [100.0, 101.0, 102.0], {"units": "m"})},
                      coords={"time": [0.0, 1.0, 2.0], "x": [-2, -1, 0, 1, 2]})


# ----------------------------------------------------------------------------- O8
@pytest.mark.parametrize("op", [EveryKth(2), Identity(), GridPoints(stride=2), RandomPoints(3)],
                         ids=repr)
def test_operator_on_a_dataset_ignores_a_parameter_as_observe_does(op):
    # Re (no time dim) was counted as state: apply read columns shifted by one
    ds = _with_parameter()
    obs = observe(ds, op, noise_std=0.0, random_state=0)
    x = torch.as_tensor(ds.u.values)  # the state: u only, (trajectory, time, 6)
    np.testing.assert_array_equal(op.apply(x, ds).numpy(), obs.observation_clean.values)
    assert op.n_obs(ds) == obs.sizes["obs"]
    np.testing.assert_array_equal(op.obs_coords(ds)["state_index"][1], obs.state_index)
    np.testing.assert_array_equal(op.indices(ds), obs.state_index)


def test_every_kth_and_observe_pick_the_same_sites_beside_a_parameter():
    ds = _with_parameter()
    obs = observe(ds, EveryKth(2), noise_std=0.0, random_state=0)
    assert obs.state_index.values.tolist() == [0, 2, 4]
    assert EveryKth(2).indices(ds).tolist() == [0, 2, 4]
    assert EveryKth(2).matrix(ds).shape == (3, 6)


# ----------------------------------------------------------------------------- O1
def test_a_variable_without_the_dim_has_no_label_and_no_position_there():
    ds = _mixed()
    obs = observe(ds, "identity", noise_std=0.0, random_state=0)
    p = obs.isel(obs=obs["variable"].values == "p")
    assert p.sizes["obs"] == 1
    # was -1 in both: a real label of this grid and the last column to isel
    assert np.isnan(p["x"].values).all() and np.isnan(p["x_index"].values).all()
    u = obs.where(obs["variable"] == "u", drop=True)
    np.testing.assert_array_equal(u["x"], ds.x)
    np.testing.assert_array_equal(
        ds.u.isel(x=xr.DataArray(u["x_index"].values.astype(int), dims="obs")).isel(time=0),
        u.observation_clean.isel(time=0))
    np.testing.assert_array_equal(ds.u.sel(x=u["x"]).isel(time=0), u.observation_clean.isel(time=0))
    with pytest.raises((IndexError, TypeError)):  # a NaN position selects nothing
        ds.u.isel(x=p["x_index"])
    assert obs["x"].attrs == ds["x"].attrs
    coords = Identity().obs_coords(ds)
    assert np.isnan(coords["x"][1][-1]) and coords["x"][1][:5].tolist() == [0, 1, 2, 3, 4]


def test_positions_stay_integers_when_every_observed_variable_has_the_dim():
    obs = observe(_mixed(), "u", noise_std=0.0, random_state=0)
    assert obs["x_index"].dtype.kind == "i" and obs["x"].dtype.kind == "i"
    assert obs["x"].values.tolist() == [-2, -1, 0, 1, 2]


def test_two_scale_lorenz96_identity_observations_still_assimilate():
    from xdyn.assimilation import EnKF
    from xdyn.systems import TwoScaleLorenz96

    truth = TwoScaleLorenz96(K=4, J=3).simulate(n_steps=5, random_state=0)
    obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    assert np.isnan(obs["j_index"].values[:4]).all()
    with warnings.catch_warnings():  # no NaN position is cast to an int on the way
        warnings.filterwarnings("error", "invalid value encountered in cast", RuntimeWarning)
        assert EnKF(n_members=5, random_state=0).fit(obs).n_obs_ == 4 + 4 * 3


# ----------------------------------------------------------------------------- O3
@pytest.mark.parametrize("op", [EveryKth(2, offset=1), Squared(SelectVariables("u")),
                                RandomPoints(3, "u", random_state=5)], ids=repr)
def test_the_recorded_spec_builds_the_same_observations(op):
    ds = _mixed()
    obs = observe(ds, op, noise_std=0.3, random_state=2)
    again = observe(ds, operator=obs.attrs["operator"], noise_std=0.3, random_state=2)
    xr.testing.assert_identical(again, obs)
    assert make_operator(json.loads(obs.attrs["operator"])).spec() == op.spec()


def test_a_bad_full_spec_names_the_spec_not_a_variable():
    with pytest.raises(ValueError, match="unknown observation operator 'Nope'"):
        make_operator('{"operator": "Nope"}')
    with pytest.raises(ValueError, match="not JSON"):
        make_operator("{broken")


# ----------------------------------------------------------------------------- O2
def test_a_random_state_instance_is_not_recorded_as_none():
    ds = _mixed()
    obs = observe(ds, random_state=np.random.RandomState(7))
    assert obs.attrs["obs_random_state"] == "RandomState instance (seed not recorded)"
    assert observe(ds, random_state=None).attrs["obs_random_state"] == "None"
    assert observe(ds, random_state=np.int64(3)).attrs["obs_random_state"] == 3


# ----------------------------------------------------------------------------- O6
def test_the_noise_attr_is_the_noise_of_every_observation_or_says_it_is_an_rms():
    ds = Lorenz63().simulate(n_steps=5, random_state=0)
    mixed = observe(ds, "identity", noise_std=[0.1, 0.1, 10.0], random_state=0)
    assert "obs_noise_std" not in mixed.attrs  # was 3.4, the std of no observation
    assert mixed.attrs["obs_noise_std_rms"] == pytest.approx(np.sqrt((0.01 + 0.01 + 100) / 3))
    same = observe(ds, "identity", noise_std=[0.5, 0.5, 0.5], random_state=0)
    assert same.attrs["obs_noise_std"] == 0.5 and "obs_noise_std_rms" not in same.attrs
    # the scaler rewrites the summary in the scaled units, and its inverse restores it
    scaler = ObservationScaler().fit(same)
    scaled = scaler.transform(same)
    want = np.sqrt(np.mean(scaled["noise_std"].values ** 2))
    assert scaled.attrs["obs_noise_std_rms"] == pytest.approx(want)
    assert "obs_noise_std" not in scaled.attrs
    back = scaler.inverse_transform(scaled)
    assert back.attrs["obs_noise_std"] == pytest.approx(0.5)
    assert "obs_noise_std_rms" not in back.attrs


# ----------------------------------------------------------------------------- O7
def test_random_points_sees_fields_on_one_grid_at_the_same_sites_in_any_dims_order():
    layout = [StateVariable("u", ("y", "x"), (5, 6)), StateVariable("v", ("x", "y"), (6, 5)),
              StateVariable("w", ("y", "x"), (5, 6))]
    op = RandomPoints(4, random_state=0)
    idx = op.indices(layout)
    u = np.unravel_index(idx[:4], (5, 6))
    v = np.unravel_index(idx[4:8] - 30, (6, 5))
    w = np.unravel_index(idx[8:] - 60, (5, 6))
    sites = lambda y, x: sorted(zip(y.tolist(), x.tolist()))  # noqa: E731
    assert sites(*u) == sites(v[1], v[0]) == sites(*w)
    # the first variable's network is the one drawn before (a stored spec keeps its sites)
    local = np.random.RandomState(0)
    assert idx[:4].tolist() == np.sort(local.choice(30, 4, replace=False)).tolist()
    assert operator_from_spec(op.spec()).indices(layout).tolist() == idx.tolist()
