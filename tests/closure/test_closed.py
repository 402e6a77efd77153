"""ClosedModel seeds: ``random_state`` fixes the whole ensemble, the ROM's draws included."""

import numpy as np
import pytest
import xarray as xr
from sklearn.base import BaseEstimator

from xdyn.closure import ClosedModel, GPClosure


class _NoisyROM(BaseEstimator):
    """The last state held, plus noise drawn from the ``random_state`` parameter."""

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X):
        self.fitted_ = True
        return self

    def predict(self, X, n_steps, n_samples=None):
        rng = np.random.RandomState(self.random_state)
        last = X.isel(time=[-1] * n_steps)
        out = last.assign_coords(time=X.time[-1].values + np.arange(1, n_steps + 1))
        members = [out + rng.normal(size=out.u.shape) for _ in range(n_samples or 1)]
        return xr.concat(members, "member") if n_samples else members[0]


class _NoisyROMArg(_NoisyROM):
    """The same, its draws seeded by an argument of ``predict``."""

    def predict(self, X, n_steps, n_samples=None, random_state=None):
        self.calls_ = getattr(self, "calls_", []) + [random_state]
        return _NoisyROM(random_state).predict(X, n_steps, n_samples)


def _data():
    rng = np.random.RandomState(0)
    a = rng.normal(size=(60, 1))
    res = xr.Dataset({"u": (("time", "x"), np.hstack([a, -a]))},
                     coords={"time": np.arange(60.0)})
    return res, 0.1 * res ** 2


@pytest.mark.parametrize("rom", [_NoisyROM, _NoisyROMArg])
def test_random_state_seeds_the_rom_draws(rom):
    res, unres = _data()
    closure = GPClosure(1, 1, max_epochs=3, random_state=0)

    def forecast(seed, **kw):
        model = ClosedModel(rom(), closure, n_members=3, random_state=seed).fit(res, unres)
        return model.predict(res, n_steps=2, **kw).u.values

    np.testing.assert_array_equal(forecast(0), forecast(0))
    assert not np.allclose(forecast(0), forecast(1))
    np.testing.assert_array_equal(forecast(None, random_state=5),
                                  forecast(None, random_state=5))
    model = ClosedModel(rom(), closure, n_members=3, random_state=0).fit(res, unres)
    np.testing.assert_array_equal(model.predict(res, 2).u, model.predict(res, 2).u)
    first = model.predict_resolved(res, 2)
    np.testing.assert_array_equal(first.u, model.predict_resolved(res, 2).u)
    assert not np.allclose(first.u, model.predict_resolved(res, 2, random_state=1).u)
    assert model.rom_.random_state is None  # the fitted ROM is not changed


def test_unseeded_model_keeps_the_rom_own_seed():
    res, unres = _data()
    model = ClosedModel(_NoisyROM(random_state=3), GPClosure(1, 1, max_epochs=3),
                        n_members=2).fit(res, unres)
    np.testing.assert_array_equal(model.predict_resolved(res, 2).u,
                                  _NoisyROM(3).predict(res, 2, n_samples=2).u)


def test_prefit_closure_fitted_on_arrays_is_refused():
    res, unres = _data()
    closure = GPClosure(1, 1, max_epochs=2).fit(res.u.values, unres.u.values)
    with pytest.raises(TypeError, match="fitted on arrays"):
        ClosedModel(_NoisyROM().fit(res), closure, prefit=True).fit(res)


def test_a_closure_of_other_variables_or_another_grid_is_refused_not_joined():
    # xarray's inner join kept the common variables and points: v vanished from the
    # forecast, or the grid shrank to the labels both sides shared
    from xdyn.rom import PODLinearDynamics

    t, x = np.arange(30.0), np.arange(8.0)
    rng = np.random.RandomState(0)
    phase = 2 * np.pi * (x[None] - 0.5 * t[:, None]) / 8
    X = xr.Dataset({"u": (("time", "x"), np.sin(phase) + 0.05 * rng.normal(size=(30, 8))),
                    "v": (("time", "x"), np.cos(phase) + 0.05 * rng.normal(size=(30, 8)))},
                   coords={"time": t, "x": x})
    context = X.isel(time=slice(10, 20))

    def closed(Y):
        return ClosedModel(PODLinearDynamics(3), GPClosure(3, 3, max_epochs=2), n_members=2,
                           random_state=0).fit(X, Y)

    with pytest.raises(ValueError, match=r"other variables: \['u', 'v'\] and \['u'\]"):
        closed(0.1 * X[["u"]] ** 2).predict(context, n_steps=3)
    shifted = (0.1 * X**2).assign_coords(x=x + 1e-6)  # the same grid, rounded otherwise
    with pytest.raises(ValueError, match="on other grids"):
        closed(shifted).predict(context, n_steps=3)
    out = closed(0.1 * X**2).predict(context, n_steps=3)
    assert set(out.data_vars) == {"u", "v"} and out.sizes["x"] == 8


class _Hold(BaseEstimator):
    """The last state held, stepping at its context's own time step."""

    def fit(self, X):
        return self

    def predict(self, X, n_steps):
        dt = X.time.values[1] - X.time.values[0]
        last = X.isel(time=[-1] * n_steps)
        return last.assign_coords(time=X.time[-1].values + dt * np.arange(1, n_steps + 1))


def _lagged_closure(res, unres):
    """``res`` delayed by one step and a tiny closure fitted on it (``unres`` on its times)."""
    from xdyn.preprocessing import delay_embedding

    lagged = delay_embedding(res, [1])
    unres = unres.isel(time=slice(1, None)).assign_coords(time=lagged.time)
    return lagged, GPClosure(1, 1, max_epochs=2, random_state=0).fit(lagged, unres)


class _HoldMonths(_Hold):
    """The last state held, at the month starts after its context."""

    def predict(self, X, n_steps):
        import pandas as pd

        months = pd.date_range(X.time.values[-1], periods=n_steps + 1, freq="MS")[1:]
        return X.isel(time=[-1] * n_steps).assign_coords(time=months)


def test_lags_at_another_time_step_than_the_closure_was_fitted_on_are_refused():
    # only the names (u, u_lag1) were compared: lag 1 fitted as 1 time unit read 2 units

    res, unres = _data()  # time step 1
    coarse = res.isel(time=slice(None, None, 2))  # time step 2
    lagged, closure = _lagged_closure(res, unres)
    with pytest.raises(ValueError, match="lags of time step 1 .*; X has time step 2"):
        ClosedModel(_Hold(), closure, prefit=True, lags=(1,)).fit(coarse)
    model = ClosedModel(_Hold(), closure, prefit=True, lags=(1,), n_members=2).fit(res)
    assert model.predict(res, n_steps=2).u.sizes == {"member": 2, "time": 2, "x": 2}
    with pytest.raises(ValueError, match="time step 1 .*the forecast has time step 2"):
        model.predict(coarse, n_steps=2)
    fitted = ClosedModel(_Hold(), GPClosure(1, 1, max_epochs=2), lags=(1,)).fit(res, unres)
    with pytest.raises(ValueError, match="time step 1 .*the forecast has time step 2"):
        fitted.predict(coarse, n_steps=2)


def test_lags_of_datetimes_are_checked_by_their_frequency():
    """Datetime lag steps are frequency strings ('6h'); a closure fitted at 6 h refuses 12 h."""
    import pandas as pd

    res, unres = _data()
    times = pd.date_range("2000-01-01", periods=res.sizes["time"], freq="6h")
    res, unres = res.assign_coords(time=times), unres.assign_coords(time=times)
    lagged, closure = _lagged_closure(res, unres)
    assert lagged.u_lag1.attrs["lag_step"] == "6h"
    model = ClosedModel(_Hold(), closure, prefit=True, lags=(1,), n_members=2).fit(res)
    out = model.predict(res, n_steps=2)
    np.testing.assert_array_equal(out.time.values, times[-1] + pd.to_timedelta([6, 12], "h"))
    with pytest.raises(ValueError, match="lags of time step 6h .*; X has time step 12h"):
        ClosedModel(_Hold(), closure, prefit=True, lags=(1,)).fit(res.isel(time=slice(0, None, 2)))


def test_lags_of_model_time_in_other_units_are_refused():
    """1 lag of 1 hour is not 1 lag of 1 day: the lag step's units are recorded and compared."""
    from xdyn.preprocessing import delay_embedding

    res, unres = _data()
    in_hours = res.assign_coords(time=res.time.assign_attrs(units="hours"))
    lagged, closure = _lagged_closure(in_hours, unres)
    assert lagged.u_lag1.attrs["lag_step_units"] == "hours"
    in_days = res.assign_coords(time=res.time.assign_attrs(units="days"))
    with pytest.raises(ValueError, match="lags of model time in 'hours'; X's 'time' is in 'days'"):
        ClosedModel(_Hold(), closure, prefit=True, lags=(1,)).fit(in_days)
    in_h = res.assign_coords(time=res.time.assign_attrs(units="h"))
    ClosedModel(_Hold(), closure, prefit=True, lags=(1,)).fit(in_h)  # one unit, spelled otherwise
    # an empty units attr states none, as everywhere else (it was refused as a unit)
    blank = res.assign_coords(time=res.time.assign_attrs(units=""))
    ClosedModel(_Hold(), closure, prefit=True, lags=(1,)).fit(blank)
    assert "lag_step_units" not in delay_embedding(blank, [1]).u_lag1.attrs


def test_lag_units_are_the_units_of_a_step_not_an_epoch():
    """Times read with decode_times=False ('hours since 1900-01-01', ERA5) step in hours:
    a context counted from another epoch, or in plain hours, has the same lag; days do not."""

    res, unres = _data()

    def with_units(units, t0=0.0):
        return res.assign_coords(time=("time", t0 + res.time.values, {"units": units}))

    era5_hours = with_units("hours since 1900-01-01 00:00:0.0", 876576.0)
    lagged, closure = _lagged_closure(era5_hours, unres)
    assert lagged.u_lag1.attrs["lag_step_units"] == "hours"
    for units in ("hours since 2000-01-01", "hours", "h"):
        ClosedModel(_Hold(), closure, prefit=True, lags=(1,)).fit(with_units(units))
    with pytest.raises(ValueError, match="lags of model time in 'hours'; X's 'time' is in 'days'"):
        ClosedModel(_Hold(), closure, prefit=True, lags=(1,)).fit(
            with_units("days since 1900-01-01"))


def test_lags_fitted_on_float32_times_take_float64_times_of_the_step():
    """Times read back from netCDF in float32 hold the step 0.1 as 0.09998 near t = 1000:
    the recorded rounding lets a float64 context of the same step through, not 0.2; and
    no more than that rounding (hourly times near 1e6 h: 1.4 h steps are refused)."""
    res, unres = _data()
    hours = 1e6 + np.arange(res.sizes["time"], dtype=float)
    _, hourly = _lagged_closure(res.assign_coords(time=hours.astype(np.float32)), unres)
    with pytest.raises(ValueError, match="lags of time step 1 .*X has time step 1.4"):
        ClosedModel(_Hold(), hourly, prefit=True, lags=(1,)).fit(
            res.assign_coords(time=1e6 + 1.4 * np.arange(res.sizes["time"])))

    t64 = 1000 + 0.1 * np.arange(res.sizes["time"])
    res32 = res.assign_coords(time=t64.astype(np.float32))
    lagged, closure = _lagged_closure(res32, unres)
    assert lagged.u_lag1.attrs["lag_step"] != 0.1
    model = ClosedModel(_Hold(), closure, prefit=True, lags=(1,), n_members=2)
    model.fit(res.assign_coords(time=t64)).predict(res.assign_coords(time=t64), n_steps=2)
    with pytest.raises(ValueError, match="lags of time step 0.1 .*X has time step 0.2"):
        model.fit(res.assign_coords(time=1000 + 0.2 * np.arange(res.sizes["time"])))


def test_lags_of_a_calendar_step_take_a_context_of_months_of_one_length():
    """A closure fitted on monthly means ('MS') takes a context of July to September,
    whose steps are all 31 days ('744h'), and one of month ends ('ME'); every other month
    ('2MS') is refused."""
    import pandas as pd

    res, unres = _data()
    months = pd.date_range("1990-01-01", periods=res.sizes["time"], freq="MS")
    res, unres = res.assign_coords(time=months), unres.assign_coords(time=months)
    lagged, closure = _lagged_closure(res, unres)
    assert lagged.u_lag1.attrs["lag_step"] == "MS"
    model = ClosedModel(_HoldMonths(), closure, prefit=True, lags=(1,), n_members=2)
    summer = res.isel(time=slice(54, 57))  # 1994-07 .. 1994-09
    assert list(summer.time.dt.month.values) == [7, 8, 9]
    model.fit(summer).predict(summer, n_steps=1)
    month_ends = res.assign_coords(time=pd.date_range("1990-01-31", periods=60, freq="ME"))
    model.fit(month_ends)
    with pytest.raises(ValueError, match="lags of time step MS .*; X has time step 2MS"):
        model.fit(res.isel(time=slice(0, None, 2)))


def test_lags_pair_y_with_x_by_label_whatever_its_order():
    # Y in reverse time order: its first sample was dropped by position ("Y lacks [59.0]")
    res, unres = _data()
    model = ClosedModel(_NoisyROM(), GPClosure(1, 1, max_epochs=2, random_state=0), lags=(1,),
                        n_members=2, random_state=0)
    ref = model.fit(res, unres).predict(res, 2)
    got = model.fit(res, unres.isel(time=slice(None, None, -1))).predict(res, 2)
    xr.testing.assert_allclose(got, ref)


def test_model_selection_sample_views_are_taken_as_their_data():
    from xdyn.model_selection import samples

    res, unres = _data()
    model = ClosedModel(_NoisyROM(), GPClosure(1, 1, max_epochs=2, random_state=0),
                        n_members=2, random_state=0)
    ref = model.fit(res, unres).predict(res, 2)
    xr.testing.assert_allclose(model.fit(samples(res), samples(unres)).predict(res, 2), ref)


def test_a_clone_of_a_prefit_model_keeps_its_fitted_rom_and_closure():
    # clone() gave unfitted copies of a prefit ROM and closure: fit raised NotFittedError,
    # so a prefit ClosedModel could not be cross-validated or tuned
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    res, unres = _data()
    lagged, closure = _lagged_closure(res, unres)
    model = ClosedModel(_Hold(), closure, prefit=True, lags=(1,), n_members=2, random_state=0)
    copy = clone(model)
    assert copy.closure is closure and copy.rom is model.rom
    xr.testing.assert_identical(copy.fit(res).predict(res, n_steps=2),
                                model.fit(res).predict(res, n_steps=2))
    # as FrozenEstimator: a nested parameter of a prefit model is refused (GridSearchCV's
    # set_params on a clone changed the user's own closure, and a fit-time one nothing)
    with pytest.raises(ValueError, match=r"cannot set \['closure__spread_scale'\]: that model "
                       r"is prefit \(prefit=True\)"):
        copy.set_params(closure__spread_scale=2.0)
    assert closure.spread_scale == 1.0
    copy.set_params(n_members=3)  # its own parameters, as before
    unfit = clone(ClosedModel(_Hold(), closure, lags=(1,)))  # not prefit: sklearn's clone
    assert unfit.closure is not closure
    with pytest.raises(NotFittedError):
        check_is_fitted(unfit.closure)
