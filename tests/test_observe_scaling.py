"""ObservationScaler / ScaledOperator: observations, noise and operator scaled together."""

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.pipeline import Pipeline

from xdyn.assimilation import EnKF, ExtendedKalmanFilter, Var3D
from xdyn.observe import (ObservationScaler, RandomPoints, ScaledOperator, SelectVariables,
                          Squared, observe, operator_from_spec)
from xdyn.systems import Lorenz63, Lorenz96


@pytest.fixture(scope="module")
def twins():
    truth = Lorenz63().simulate(n_trajectories=3, n_steps=200, burn_in=5, random_state=0)
    test = Lorenz63().simulate(n_trajectories=2, n_steps=200, burn_in=5, random_state=3)
    return (truth, observe(truth, ["x", "y"], noise_std=0.5, random_state=1),
            test, observe(test, ["x", "y"], noise_std=0.5, random_state=2))


def test_statistics_from_the_fitted_data_only_and_units_consistent(twins):
    _, obs, _, obs_test = twins
    scaler = ObservationScaler().fit(obs)
    flat = obs.observation.values.reshape(-1, 2)
    np.testing.assert_allclose(scaler.mean_, flat.mean(0))
    np.testing.assert_allclose(scaler.scale_, flat.std(0))
    z = scaler.transform(obs_test)  # the test set is scaled with the training statistics
    np.testing.assert_allclose(z.observation.values,
                               (obs_test.observation.values - flat.mean(0)) / flat.std(0))
    np.testing.assert_allclose(z.noise_std.values, 0.5 / flat.std(0))
    # the recorded operator maps a state to the new units: h'(x_true) = scaled clean obs
    op = operator_from_spec(z.attrs["operator"])
    assert isinstance(op, ScaledOperator) and not op.linear
    x = Lorenz63().to_state(twins[2].transpose("time", "trajectory"))
    np.testing.assert_allclose(op.apply(x, Lorenz63()).numpy(),
                               z.observation_clean.transpose("time", "trajectory", "obs").values,
                               rtol=1e-10, atol=1e-10)
    back = scaler.inverse_transform(z)
    np.testing.assert_allclose(back.observation.values, obs_test.observation.values)
    np.testing.assert_allclose(back.noise_std.values, 0.5)
    assert back.attrs["operator"] == obs_test.attrs["operator"]


@pytest.mark.parametrize("make", [
    lambda: Var3D(B_scale=0.01, n_outer=3, random_state=0),
    lambda: ExtendedKalmanFilter(random_state=0),
    lambda: EnKF(n_members=10, return_ensemble=False, random_state=0),
])
def test_classical_analysis_is_invariant_in_a_pipeline(twins, make):
    """BLUE/EnKF analyses do not depend on the units of y, R and h together: the
    pipeline's analysis equals the plain filter's to rounding (measured 1e-14)."""
    truth, obs, test, obs_test = twins
    plain = make().fit(obs, truth).predict(obs_test)
    piped = Pipeline([("scale", ObservationScaler()), ("da", make())]).fit(obs, truth)
    np.testing.assert_allclose(piped.predict(obs_test).z.values, plain.z.values,
                               rtol=1e-9, atol=1e-9)


def test_scaled_operator_of_a_nonlinear_base():
    op = ScaledOperator(Squared(SelectVariables("x")), offset=[4.0], scale=[2.0])
    x = torch.tensor([[3.0, 0.0, 0.0]], requires_grad=True)
    y = op.apply(x, Lorenz63())
    assert y.tolist() == [[2.5]]
    y.sum().backward()
    assert x.grad.tolist() == [[3.0, 0.0, 0.0]]  # d/dx (x^2 - 4) / 2 = x
    assert operator_from_spec(op.spec()).get_params()["scale"] == [2.0]


def test_bad_input(twins):
    _, obs, _, _ = twins
    with pytest.raises(TypeError, match="observation Dataset"):
        ObservationScaler().fit(obs.observation.values)
    with pytest.raises(ValueError, match="'operator' attr"):
        ObservationScaler().fit(obs.drop_attrs())
    scaler = ObservationScaler().fit(obs)
    with pytest.raises(ValueError, match="already standardized"):
        scaler.transform(scaler.transform(obs))
    with pytest.raises(ValueError, match="fitted on 2 observations"):
        scaler.transform(obs.isel(obs=[0]))
    nan = obs.copy(deep=True)
    nan["observation"][dict(obs=1)] = np.nan
    with pytest.raises(ValueError, match="NaN at every time"):
        ObservationScaler().fit(nan)


def test_refuses_other_observations_and_another_scalers_statistics(twins):
    # another operator with as many observations was standardized with these statistics,
    # and inverse_transform undid another scaler's scaling with its own (20 units off)
    truth, obs, _, _ = twins
    scaler = ObservationScaler().fit(obs)
    with pytest.raises(ValueError, match="fitted on observations of"):
        scaler.transform(observe(truth, ["y", "z"], noise_std=0.5, random_state=1))
    scaled = scaler.transform(obs)
    other = ObservationScaler().fit(obs.isel(time=slice(0, 50)))
    with pytest.raises(ValueError, match="another mean and scale"):
        other.inverse_transform(scaled)
    back = ObservationScaler().fit(obs).inverse_transform(scaled)
    np.testing.assert_allclose(back.observation, obs.observation)


def test_statistics_follow_the_sites_not_the_positions(twins):
    # observations listed in another order get their own site's mean and scale; those at
    # other sites (a Lorenz-96 network drawn on another grid size) are refused
    _, obs, _, obs_test = twins
    scaler = ObservationScaler().fit(obs)
    z = scaler.transform(obs_test.isel(obs=[1, 0]))
    assert z.variable.values.tolist() == ["y", "x"]
    xr.testing.assert_allclose(z.sortby("variable").observation,
                               scaler.transform(obs_test).observation)
    back = scaler.inverse_transform(z)
    np.testing.assert_allclose(back.observation, obs_test.isel(obs=[1, 0]).observation)
    t8, t16 = (Lorenz96(n=n).simulate(n_steps=30, random_state=0) for n in (8, 16))
    o8, o16 = (observe(t, RandomPoints(3, random_state=0), noise_std=1.0, random_state=0)
               for t in (t8, t16))
    assert o8.state_index.values.tolist() != o16.state_index.values.tolist()
    with pytest.raises(ValueError, match="other sites"):
        ObservationScaler().fit(o8).transform(o16)
    with pytest.raises(ValueError, match="lack"):
        scaler.transform(obs_test.drop_vars("state_index"))
    old = ObservationScaler().fit(obs)  # pickled before sites_ / operator_spec_ existed
    del old.sites_, old.units_, old.operator_spec_
    np.testing.assert_allclose(old.transform(obs_test).observation,
                               scaler.transform(obs_test).observation)


def test_standardized_units_are_one_and_come_back(twins):
    truth, _, _, _ = twins
    truth = truth.assign(x=truth.x.assign_attrs(units="m s-1"),
                         y=truth.y.assign_attrs(units="m s-1"))
    obs = observe(truth, ["x", "y"], noise_std=0.5, random_state=1)
    scaler = ObservationScaler().fit(obs)
    z = scaler.transform(obs)
    for name in ("observation", "observation_clean", "noise_std"):
        assert z[name].attrs["units"] == "1"
        assert z[name].attrs["original_units"] == "m s-1"  # kept aside, as StandardScaler
        assert scaler.inverse_transform(z)[name].attrs["units"] == "m s-1"
    shifted = ObservationScaler(with_std=False).fit(obs).transform(obs)  # a shift keeps them
    assert shifted.observation.attrs["units"] == "m s-1"
    assert ScaledOperator(offset=1.0, scale=2.0).obs_units("m") == "1"
    assert ScaledOperator(SelectVariables("x"), offset=1.0).obs_units("m") == "m"


def _in_units(obs, units, names=("observation", "observation_clean", "noise_std")):
    """``obs`` with these variables' units attr set to ``units`` (None: removed)."""
    out = obs.copy()
    for name in names:
        attrs = {k: v for k, v in obs[name].attrs.items() if k != "units"}
        da = obs[name].copy()
        da.attrs = attrs if units is None else {**attrs, "units": units}
        out[name] = da
    return out


def test_observations_in_other_units_are_refused(twins):
    """Observations in degC were standardized with statistics fitted in K, silently."""
    _, obs, _, obs_test = twins
    obs, obs_test = _in_units(obs, "K"), _in_units(obs_test, "K")
    scaler = ObservationScaler().fit(obs)
    for units, names in (("degC", ("observation", "observation_clean", "noise_std")),
                         ("Pa", ("noise_std",))):
        with pytest.raises(ValueError, match=f"is in '{units}' but ObservationScaler was "
                                             f"fitted in 'K'"):
            scaler.transform(_in_units(obs_test, units, names))
    # the fitted unit in another spelling, or none stated, is scaled as the fitted
    expected = scaler.transform(obs_test)
    for units in ("kelvin", "", None):
        z = scaler.transform(_in_units(obs_test, units))
        np.testing.assert_array_equal(z.observation.values, expected.observation.values)
        assert z.observation.attrs["units"] == "1"
    # inverse: standardized observations are in "1" (any spelling, or none stated)
    z = scaler.transform(obs_test)
    with pytest.raises(ValueError, match="'observation' has units 'K'; inverse_transform "
                                         "expects standardized observations"):
        scaler.inverse_transform(_in_units(z, "K", ("observation",)))
    for units in ("dimensionless", None):
        back = scaler.inverse_transform(_in_units(z, units))
        np.testing.assert_allclose(back.observation.values, obs_test.observation.values)
        assert back.observation.attrs["units"] == "K"
    # a shift (with_std=False) keeps the units: its inverse compares them with the fitted ones
    shifter = ObservationScaler(with_std=False).fit(obs)
    shifted = shifter.transform(obs_test)
    with pytest.raises(ValueError, match="is in 'degC' but ObservationScaler was fitted in 'K'"):
        shifter.inverse_transform(_in_units(shifted, "degC"))
    np.testing.assert_allclose(
        shifter.inverse_transform(_in_units(shifted, "kelvin")).observation.values,
        obs_test.observation.values)


def test_units_of_a_fit_without_units_are_the_datas_own(twins):
    """Fitted on observations without units, the inverse was labelled "1" (the arithmetic's
    attrs merged into); the data's own units are kept aside and put back, as StandardScaler
    does, and a dimensionless ratio is no standardized observation."""
    _, obs, _, obs_test = twins
    scaler = ObservationScaler().fit(_in_units(obs, None))
    z = scaler.transform(_in_units(obs_test, "K"))
    assert z.observation.attrs["units"] == "1" and z.observation.attrs["original_units"] == "K"
    back = scaler.inverse_transform(z)
    for name in ("observation", "observation_clean", "noise_std"):
        assert back[name].attrs["units"] == "K" and "original_units" not in back[name].attrs
    unknown = scaler.inverse_transform(scaler.transform(_in_units(obs_test, None)))
    assert "units" not in unknown.observation.attrs
    ratio = ObservationScaler().fit(_in_units(obs, "kg kg-1"))
    with pytest.raises(ValueError, match="'observation' has units 'kg kg-1'; inverse"):
        ratio.inverse_transform(_in_units(ratio.transform(_in_units(obs_test, "kg kg-1")),
                                          "kg kg-1", ("observation",)))


def test_stations_labelled_only_by_the_obs_index_are_scaled_by_label():
    # with no site coord but the 'obs' labels, reordered stations were scaled by position:
    # each with another station's statistics (means of 17 ... -15 instead of 0), silently
    truth = Lorenz96(n=8).simulate(n_steps=100, random_state=0)
    obs = observe(truth, ["x"], noise_std=0.5, random_state=1)
    obs["observation"] = obs["observation"] + xr.DataArray(np.arange(8) * 10.0, dims="obs")
    stations = obs.drop_vars(["variable", "state_index", "k", "k_index"]).assign_coords(
        obs=[f"ST{i:02d}" for i in range(8)])
    scaler = ObservationScaler().fit(stations)
    z = scaler.transform(stations.isel(obs=[7, 6, 5, 4, 3, 2, 1, 0]))
    np.testing.assert_allclose(z.observation.mean("time"), 0.0, atol=1e-9)
    assert z.obs.values.tolist()[0] == "ST07"
    with pytest.raises(ValueError, match="other sites"):
        scaler.transform(stations.assign_coords(obs=[f"XX{i:02d}" for i in range(8)]))


def test_float_site_positions_match_to_float32_rounding():
    # positions read back from a netCDF file in float32 are the same sites (they were
    # refused); positions that really differ, or other integer labels, are still refused
    truth = Lorenz96(n=8).simulate(n_steps=100, random_state=0)
    obs = observe(truth, ["x"], noise_std=0.5, random_state=1)
    obs["observation"] = obs["observation"] + xr.DataArray(np.arange(8) * 10.0, dims="obs")
    obs = obs.assign_coords(lon=("obs", np.linspace(0.1, 0.8, 8)))
    scaler = ObservationScaler().fit(obs)
    f32 = obs.assign_coords(lon=("obs", obs.lon.values.astype(np.float32)))
    np.testing.assert_allclose(scaler.transform(f32).observation,
                               scaler.transform(obs).observation)
    back = f32.assign_coords(lon=("obs", f32.lon.values.astype(np.float64)))  # as read back
    z = scaler.transform(back.isel(obs=[3, 1, 2, 0, 4, 5, 6, 7]))
    np.testing.assert_allclose(z.observation.mean("time"), 0.0, atol=1e-9)
    with pytest.raises(ValueError, match="other sites"):
        scaler.transform(obs.assign_coords(lon=obs.lon + 1e-4))
    with pytest.raises(ValueError, match="other sites"):
        scaler.transform(f32.assign_coords(k_index=("obs", np.arange(8)[::-1])))
