"""delay_embedding: a state's past beside it, per trajectory, lazily on dask."""

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xdyn.preprocessing import delay_embedding, lagged_name


def _trajectories():
    rng = np.random.RandomState(0)
    return xr.Dataset(
        {"u": (("trajectory", "time", "x"), rng.normal(size=(2, 7, 3)), {"units": "m s-1"}),
         "v": (("trajectory", "time", "x"), rng.normal(size=(2, 7, 3))),
         "depth": ("x", np.arange(3.0))},
        coords={"time": 0.5 * np.arange(7), "x": [0.0, 1.0, 2.0]})


def test_each_step_gets_its_own_past_within_its_trajectory():
    ds = _trajectories()
    out = delay_embedding(ds, [1, 4])
    assert out.sizes == {"trajectory": 2, "time": 3, "x": 3}
    np.testing.assert_array_equal(out.time, ds.time[4:])
    for name in ("u", "v"):
        np.testing.assert_array_equal(out[name], ds[name][:, 4:])
        for lag in (1, 4):
            lagged = out[lagged_name(name, lag)]
            np.testing.assert_array_equal(lagged, ds[name].values[:, 4 - lag:7 - lag])
            assert lagged.attrs["delay_of"] == name and lagged.attrs["lag"] == lag
    # the units come along; a variable without the dim is left as it is, undelayed
    assert out.u_lag1.attrs["units"] == "m s-1" and "depth_lag1" not in out
    np.testing.assert_array_equal(out.depth, ds.depth)
    # the input is untouched
    assert "delay_of" not in ds.u.attrs and ds.sizes["time"] == 7
    assert delay_embedding(ds, []) is ds


def test_stays_lazy_on_dask():
    pytest.importorskip("dask")
    ds = _trajectories().chunk({"trajectory": 1})
    out = delay_embedding(ds, [2])
    assert out.u_lag2.chunks is not None
    np.testing.assert_array_equal(out.u_lag2.values, ds.u.values[:, :5])


@pytest.mark.parametrize("lags, match", [([0], "positive"), ([2, 2], "distinct"),
                                         ([1.5], "positive"), ([True], "positive"),
                                         ([7], "more than 7")])
def test_bad_lags(lags, match):
    with pytest.raises(ValueError, match=match):
        delay_embedding(_trajectories(), lags)


def test_bad_data():
    ds = _trajectories()
    with pytest.raises(ValueError, match="no dim 'step'"):
        delay_embedding(ds, [1], dim="step")
    with pytest.raises(TypeError, match="Dataset"):
        delay_embedding(ds.u, [1])
    with pytest.raises(ValueError, match="delay it once"):
        delay_embedding(delay_embedding(ds, [1]), [1])
    with pytest.raises(ValueError, match="no variable"):
        delay_embedding(ds[["depth"]].assign_coords(time=ds.time), [1])


def _series(t):
    return xr.Dataset({"u": ("time", np.sin(t))}, coords={"time": t})


@pytest.mark.parametrize("t, match", [
    # two segments: the first step after the gap would get a past from across it
    (np.r_[np.arange(5.0), np.arange(100.0, 105.0)], "a step of 96 from 4 to 100"),
    (np.arange(5.0)[::-1], "increase strictly.*from 4 to 3"),  # the 'past' is the future
    (np.r_[0.0, 1.0, 1.0, 2.0], "increase strictly.*from 1 to 1"),
    (np.r_[0.0, 1.0, 2.0, 5.0, 8.0, 11.0], "unevenly spaced.*a step of 1 from 0 to 1")])
def test_times_with_a_gap_or_out_of_order_are_refused(t, match):
    with pytest.raises(ValueError, match=match):
        delay_embedding(_series(t), [1])


@pytest.mark.parametrize("time", [
    pd.date_range("2000-01-01", periods=24, freq="MS"),  # a monthly index (Nino-3.4)
    pd.date_range("1998-01-01", periods=8, freq="YS"),  # a leap year among them
    xr.date_range("2000-01-01", periods=12, freq="MS", calendar="noleap", use_cftime=True)])
def test_series_regular_in_the_calendar_are_delayed(time):
    out = delay_embedding(_series(np.arange(len(time), dtype=float)).assign_coords(time=time), [1])
    np.testing.assert_array_equal(out.u_lag1, np.sin(np.arange(len(time) - 1.0)))  # _series
    assert isinstance(out.u_lag1.attrs["lag_step"], str)


def test_cftime_gaps_are_refused():
    """cftime times were no times to the check: a gap was delayed across silently."""
    def days(start):
        return xr.date_range(start, periods=5, freq="D", calendar="noleap", use_cftime=True)

    gappy = days("2000-01-01").append(days("2000-02-25"))
    with pytest.raises(ValueError, match="unevenly spaced.*a step of 51 days"):
        delay_embedding(_series(np.arange(10.0)).assign_coords(time=gappy), [1])
    with pytest.raises(ValueError, match="unevenly spaced .nor regular in calendar"):
        delay_embedding(_series(np.arange(10.0)).assign_coords(
            time=pd.date_range("2000-01-01", periods=5, freq="D").append(
                pd.date_range("2000-03-01", periods=5, freq="D"))), [1])


def test_the_lag_records_its_time_step(tmp_path):
    out = delay_embedding(_trajectories(), [1, 4])
    assert out.u_lag4.attrs["lag_step"] == 0.5 and out.v_lag1.attrs["lag_step"] == 0.5
    days = np.datetime64("2000-01-01") + np.arange(4) * np.timedelta64(1, "D")
    # datetimes: a frequency string, which netCDF attrs can hold (a timedelta64 cannot)
    daily = delay_embedding(_series(np.arange(4.0)).assign_coords(time=days), [1])
    assert daily.u_lag1.attrs["lag_step"] == "24h"
    path = tmp_path / "daily.nc"
    daily.to_netcdf(path)
    with xr.open_dataset(path) as back:
        assert back.u_lag1.attrs["lag_step"] == "24h"
    # float32 times: their rounding is not a gap
    t32 = (1000 + 0.1 * np.arange(50)).astype(np.float32)
    assert abs(delay_embedding(_series(t32), [2]).u_lag2.attrs["lag_step"] - 0.1) < 1e-3
    # no coordinate (or one that is not times): positional, as before, and no step to record
    bare = _trajectories().drop_vars("time")
    out = delay_embedding(bare, [1])
    assert "lag_step" not in out.u_lag1.attrs
    np.testing.assert_array_equal(out.u_lag1, bare.u.values[:, :6])
    labelled = _series(np.arange(3.0)).assign_coords(time=["c", "a", "b"])
    assert "lag_step" not in delay_embedding(labelled, [1]).u_lag1.attrs


@pytest.mark.parametrize("time", [
    pd.bdate_range("2024-01-01", periods=8),  # weekdays: Monday's past is not Friday
    pd.date_range("2024-01-01 09:00", periods=20, freq="bh")])  # office hours
def test_business_days_and_hours_are_gaps(time):
    with pytest.raises(ValueError, match="unevenly spaced"):
        delay_embedding(_series(np.arange(len(time), dtype=float)).assign_coords(time=time), [1])


def test_time_zone_aware_times_are_checked_for_gaps():
    """xarray gives zoned times as Python datetimes: they were no times to the check."""
    hours = pd.date_range("2024-01-10", periods=6, freq="h", tz="Europe/London")
    gappy = hours.append(pd.date_range("2024-01-10 10:00", periods=5, freq="h",
                                       tz="Europe/London"))
    with pytest.raises(ValueError, match="a step of 0 days 05:00:00"):
        delay_embedding(_series(np.arange(11.0)).assign_coords(time=gappy), [1])
    out = delay_embedding(_series(np.arange(6.0)).assign_coords(time=hours), [1])
    assert out.u_lag1.attrs["lag_step"] == "h"


def test_zoned_local_days_and_months_across_summer_time_are_even():
    """Local midnights are 23 or 25 h apart in UTC where the clocks change: a day on the
    wall clock (the zone kept in the index, which .values drop); a missing day is a gap."""
    days = pd.date_range("2024-03-25", periods=14, freq="D", tz="Europe/London")
    out = delay_embedding(_series(np.arange(14.0)).assign_coords(time=days), [1])
    assert out.u_lag1.attrs["lag_step"] in ("D", "24h")
    months = pd.date_range("2024-01-01", periods=12, freq="MS", tz="Europe/London")
    out = delay_embedding(_series(np.arange(12.0)).assign_coords(time=months), [1])
    assert out.u_lag1.attrs["lag_step"] == "MS"
    with pytest.raises(ValueError, match="a step of 2 days"):
        delay_embedding(_series(np.arange(13.0)).assign_coords(time=days.delete(5)), [1])


@pytest.mark.parametrize("times, step", [
    # seasonal means stamped mid-season (DJF, MAM, JJA, SON)
    (pd.DatetimeIndex(["2000-01-15T12", "2000-04-16", "2000-07-17", "2000-10-16T12",
                       "2001-01-15"]), "3MS"),
    # CMIP monthly means, stamped mid-month in a noleap calendar (Feb 15 00:00)
    (xr.CFTimeIndex([cftime.DatetimeNoLeap(1850, m, 15 if m == 2 else 16, 0 if m == 2 else 12)
                     for m in range(1, 13)]), "MS"),
    (pd.date_range("2000-01-15", periods=12, freq="MS") + pd.Timedelta("14D"), "MS"),
    (pd.DatetimeIndex(["2000-01-16T12", "2000-02-15", "2000-03-16T12", "2000-04-16",
                       "2000-05-16T12"]), "MS"),
    (pd.date_range("2000-07-02 12:00", periods=5, freq="YS-JUL") + pd.Timedelta("1D"), "12MS"),
    (pd.date_range("2000-01-01", periods=6, freq="2MS"), "2MS"),
])
def test_calendar_months_stamped_anywhere_in_the_month(times, step):
    """Monthly or yearly means are one calendar month (year) apart wherever in the month they
    are stamped (they were refused as uneven: 'split the data at the gap')."""
    out = delay_embedding(_series(np.arange(float(len(times)))).assign_coords(time=times), [1])
    assert out.u_lag1.attrs["lag_step"] == step


def test_months_counted_in_days_are_told_to_be_decoded():
    """Numeric 'days since' month starts (decode_times=False) cannot be read as months."""
    days = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31])
    with pytest.raises(ValueError, match="look like calendar months in days: decode the times"):
        delay_embedding(_series(days.astype(float)), [1])


def lag_step_of(times):
    return delay_embedding(_series(np.arange(float(len(times)))).assign_coords(time=times),
                           [1]).u_lag1.attrs["lag_step"]


def test_a_time_off_its_place_in_the_month_is_a_gap():
    """Month starts with one sample on the 3rd, or 31-day steps, are not monthly (they passed
    as 'MS' while any 27-32 days one calendar month apart did)."""
    starts = pd.date_range("2000-01-01", periods=6, freq="MS")
    with pytest.raises(ValueError, match="unevenly spaced"):
        delay_embedding(_series(np.arange(6.0)).assign_coords(
            time=starts.where(starts.month != 3, pd.Timestamp("2000-03-03"))), [1])
    # 31 days apart is a fixed step of its own, not the month a closure was fitted on
    from xdyn.preprocessing.delay import same_lag_step

    every_31_days = pd.date_range("2000-01-01", periods=6, freq="31D")
    assert lag_step_of(every_31_days) == "744h"
    assert not same_lag_step("MS", "744h", every_31_days.values)
    assert same_lag_step("MS", "744h", pd.date_range("2000-07-01", periods=3, freq="MS").values)
