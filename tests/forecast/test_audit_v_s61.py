"""Audit V (s61): VGB-DM input order, tendency scale, checks, prediction settings, units."""

import numpy as np
import pytest
import xarray as xr
from sklearn.pipeline import Pipeline

from xdyn.forecast import VGBDM, Persistence, TransportVGBDM
from xdyn.forecast.neural_ode import _tendency_scale
from xdyn.forecast.physics import FitzHughNagumoPhysics
from xdyn.model_selection import samples
from xdyn.preprocessing import StandardScaler
from xdyn.systems import DampedPendulum, ReactionDiffusion

TINY = dict(z_dim=0, len_episode=4, hidden=4, encoder_hidden=4, max_epochs=1, n_members=1,
            random_state=0, device="cpu")


def _pendulum(**ranges):
    return DampedPendulum(omega0=1.5, damping=0.0).simulate(
        n_trajectories=3, t_span=2.0, dt=0.1, random_state=0, parameter_ranges=ranges or None)


def test_a_dataarray_is_put_in_the_physics_order():
    ds = _pendulum()
    fc = VGBDM("pendulum", **TINY).fit(ds).predict(ds, [0.5]).theta
    swapped = ds[["omega", "theta"]].to_array("variable")  # the physics reads (theta, omega)
    model = VGBDM("pendulum", **TINY).fit(swapped)
    got = model.predict(swapped, [0.5])
    assert got["variable"].values.tolist() == ["theta", "omega"]
    np.testing.assert_allclose(got.sel(variable="theta").values, fc.values, rtol=1e-6)
    np.testing.assert_allclose(model.infer_parameters(swapped).omega0.values,
                               VGBDM("pendulum", **TINY).fit(ds).infer_parameters(ds)
                               .omega0.values, rtol=1e-6)


def test_a_dataarray_without_the_physics_labels_is_refused():
    ds = _pendulum()
    arr = ds[["theta", "omega"]].to_array("variable")
    for bad in (arr.assign_coords(variable=["a", "b"]), arr.drop_vars("variable")):
        with pytest.raises(ValueError, match=r"reads the variables \['theta', 'omega'\] in this "
                                             "order, and no dim of the DataArray"):
            VGBDM("pendulum", **TINY).fit(bad)


def test_a_steady_drift_gets_its_tendency_scale_and_is_learned():
    t = np.arange(0, 3.0001, 0.1)
    ds = xr.Dataset({"a": (("trajectory", "time"), np.exp(-np.outer([0.5, 1.0, 1.5], t))),
                     "b": (("trajectory", "time"), 1.0 + 0.3 * np.tile(t, (3, 1)))},
                    coords={"time": t})
    model = VGBDM(z_dim=1, len_episode=4, hidden=8, encoder_hidden=8, max_epochs=3,
                  n_members=2, random_state=0, device="cpu").fit(ds)
    # the std of a steady drift is rounding noise (1e-15): the loss was 4e28, b never moved
    np.testing.assert_allclose(model.net_.module_.v_scale[1].item(), 0.3, rtol=1e-6)
    assert np.all(np.asarray(model.net_.history[:, "fm_loss"]) < 10)
    b = model.predict(ds.isel(time=slice(0, 6)), [0.5]).b.isel(trajectory=0, time=-1)
    assert abs(float(b.mean()) - 1.3) < 0.075  # from 1.15; unmoved, it stayed there


def test_the_tendency_scale_floor_is_relative_to_the_data():
    times = np.arange(4.0) * 0.5
    values = np.stack([np.full((2, 4), 5e-3), np.zeros((2, 4))], -1)  # still, and 0 throughout
    np.testing.assert_allclose(_tendency_scale(values, times), [1e-6 * 5e-3 / 0.5, 1.0])


def test_the_domain_check_runs_on_data_wrapped_by_samples():
    ds = ReactionDiffusion(N=8, L=4.0).simulate(n_trajectories=2, t_span=0.03, dt=0.01,
                                                random_state=0)
    model = VGBDM(FitzHughNagumoPhysics(N=8), correction=False, z_dim=0, len_episode=2,
                  encoder="mlp", encoder_hidden=4, max_epochs=1, device="cpu")
    with pytest.raises(ValueError, match="y spacing 0.5 is not the physics' L/N"):
        model.fit(samples(ds))


def test_standardised_data_is_refused_by_a_physics():
    ds = _pendulum()[["theta", "omega"]]
    pipe = Pipeline([("scale", StandardScaler()), ("vgbdm", VGBDM("pendulum", **TINY))])
    with pytest.raises(ValueError, match="variable 'theta' is standardised .*StandardScaler.*"
                                         "'rad'.*PendulumPhysics"):
        pipe.fit(ds)
    with pytest.raises(ValueError, match="standardised"):
        VGBDM("pendulum", **TINY).fit(ds).predict(StandardScaler().fit_transform(ds), [0.1])


def test_infer_parameters_checks_its_input_as_predict_does():
    ds = _pendulum(omega0=(1.0, 2.0))
    model = VGBDM("pendulum", **TINY).fit(ds)
    x = ds.isel(time=slice(0, 4)).copy(deep=True)
    x.theta[0, 2] = np.nan
    with pytest.raises(ValueError, match="variable 'theta' of the episodes has NaN"):
        model.infer_parameters(x)
    with pytest.raises(TypeError, match="fitted on labelled data"):
        model.infer_parameters(np.zeros((4, 2)))
    arr = np.stack([ds.theta[0].values, ds.omega[0].values], -1)
    on_array = VGBDM("pendulum", **TINY).fit(arr)
    labelled = xr.DataArray(arr, dims=("time", "variable"),
                            coords={"variable": ["theta", "omega"]})
    np.testing.assert_allclose(on_array.infer_parameters(arr).omega0.values,
                               VGBDM("pendulum", **TINY).fit(labelled)
                               .infer_parameters(labelled).omega0.values, rtol=1e-6)


def test_a_state_the_physics_does_not_take_is_refused_with_its_sizes():
    with pytest.raises(ValueError, match=r"PendulumPhysics\(\) \(variables \['theta', 'omega'\]"
                                         r"\) does not take the data's states of 3 values.*"
                                         "returns 2 tendencies"):
        VGBDM("pendulum", **TINY).fit(np.random.default_rng(0).random((20, 3)))
    with pytest.raises(ValueError, match=r"states of 6 values \(theta: 3 along \('trajectory',"
                                         r"\), omega: 3.*trajectory_dim='run'"):
        VGBDM("pendulum", trajectory_dim="run", **TINY).fit(_pendulum())


def test_prediction_settings_changed_after_fit_take_effect():
    ds = DampedPendulum().simulate(n_trajectories=2, t_span=2.0, dt=0.5, random_state=0,
                                   parameter_ranges={"omega0": (2.0, 3.0)})
    x = ds.isel(time=slice(0, 4))
    kw = {**TINY, "correction": False}
    model = VGBDM("pendulum", n_substeps=1, **kw).fit(ds)
    coarse = model.predict(x, [1.0]).theta.values
    fine = model.set_params(n_substeps=50).predict(x, [1.0]).theta.values
    refit = VGBDM("pendulum", n_substeps=50, **kw).fit(ds).predict(x, [1.0]).theta.values
    np.testing.assert_allclose(fine, refit, rtol=1e-6)  # training solves no ODE
    assert np.nanmax(np.abs(fine - coarse)) > 1e-3
    # adaptive steps: as accurate as the fine grid, whatever n_substeps
    adaptive = model.set_params(method="dopri5", n_substeps=1).predict(x, [1.0]).theta.values
    np.testing.assert_allclose(adaptive, fine, atol=1e-5)


def test_transport_step_size_changed_after_fit_takes_effect():
    x = np.arange(8)
    u = np.sin(2 * np.pi * (x[None, None, :] - 0.5 * np.arange(12)[:, None, None]) / 8)
    ds = xr.Dataset({"u": (("time", "y", "x"), np.repeat(u, 3, axis=1))},
                    coords={"time": np.arange(12.0), "x": x})
    kw = dict(hidden=4, z_dim=2, len_episode=2, max_epochs=1, n_members=2, random_state=0,
              device="cpu")
    model = TransportVGBDM(step_size=1.0, **kw).fit(ds)
    coarse = model.predict(ds, [2.0]).u.values
    fine = model.set_params(step_size=0.1).predict(ds, [2.0]).u.values
    refit = TransportVGBDM(step_size=0.1, **kw).fit(ds).predict(ds, [2.0]).u.values
    np.testing.assert_allclose(fine, refit, rtol=1e-6)
    assert np.nanmax(np.abs(fine - coarse)) > 1e-6


def test_inferred_parameters_carry_units():
    ds = _pendulum(omega0=(1.0, 2.0))
    model = VGBDM("pendulum", **TINY).fit(ds)
    assert model.infer_parameters(ds).omega0.attrs["units"] == "rad s-1"
    # the training data's units, for data that do not record the parameter
    assert model.infer_parameters(ds[["theta", "omega"]]).omega0.attrs["units"] == "rad s-1"


@pytest.mark.parametrize("units", ["hours since 2000-01-01", "s"])
def test_valid_time_carries_the_time_units(units):
    ds = xr.Dataset({"T": (("time",), np.arange(4.0))},
                    coords={"time": ("time", np.arange(4.0), {"units": units})})
    model = Persistence().fit(ds)
    fc = model.predict(ds, [1.0])
    assert fc.valid_time.attrs["units"] == units
    assert fc.lead_time.attrs["units"] == units.partition(" since ")[0]
    # data whose time states no units is taken as in the fitted ones
    unlabelled = ds.assign_coords(time=ds.time.values)
    assert model.predict(unlabelled, [1.0]).valid_time.attrs["units"] == units


def test_prediction_settings_set_after_fit_are_checked_at_predict():
    # V7 reads method and n_substeps at predict: a value set after fit is validated there,
    # by name, not a ZeroDivisionError or a failure deep in torchdiffeq
    ds = DampedPendulum().simulate(n_trajectories=2, t_span=2.0, dt=0.5, random_state=0,
                                   parameter_ranges={"omega0": (2.0, 3.0)})
    model = VGBDM("pendulum", n_substeps=1, **{**TINY, "correction": False}).fit(ds)
    with pytest.raises(ValueError, match="n_substeps"):
        model.set_params(n_substeps=0).predict(ds.isel(time=slice(0, 4)), lead_times=[1])
    # review Z6: n_members was used before the check (numpy's "negative dimensions")
    with pytest.raises(ValueError, match="n_members"):
        model.set_params(n_substeps=1, n_members=-1).predict(ds.isel(time=slice(0, 4)), [1])


@pytest.mark.parametrize("params", [{"method": "explicit_adams"}, {"step_size": 0.0}])
def test_transport_prediction_settings_set_after_fit_are_checked(params):
    # review Z2: read at predict without a check, a method fit refuses was used silently and
    # a step of 0 failed in torchdiffeq
    x = np.arange(8)
    u = np.sin(2 * np.pi * (x[None, None, :] - 0.5 * np.arange(12)[:, None, None]) / 8)
    ds = xr.Dataset({"u": (("time", "y", "x"), np.repeat(u, 3, axis=1))},
                    coords={"time": np.arange(12.0), "x": x})
    model = TransportVGBDM(hidden=4, z_dim=2, len_episode=2, max_epochs=1, n_members=2,
                           random_state=0, device="cpu").fit(ds)
    with pytest.raises(ValueError, match=next(iter(params))):
        model.set_params(**params).predict(ds, [2.0])
