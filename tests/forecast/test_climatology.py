"""Climatology: day-of-year and hour means, diurnal fallback, cftime, model time."""

import numpy as np
import pytest
import xarray as xr

from xdyn.forecast import Climatology, Persistence


def _diurnal(n_days=20, calendar=None, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    n = 24 * n_days
    if calendar is None:
        time = np.datetime64("2019-03-01", "ns") + np.arange(n) * np.timedelta64(1, "h")
    else:
        time = xr.date_range("2019-03-01", periods=n, freq="h", calendar=calendar,
                             use_cftime=True)
    hour = np.arange(n) % 24
    cycle = 5.0 * np.sin(2 * np.pi * hour / 24)
    t = 280 + cycle[:, None] + noise * rng.normal(size=(n, 4))
    return xr.Dataset({"t2m": (("time", "x"), t, {"units": "K"})}, coords={"time": time}), cycle


@pytest.mark.parametrize("calendar", [None, "noleap", "360_day"])
def test_diurnal_climatology_forecasts_the_valid_hour(calendar):
    ds, cycle = _diurnal(calendar=calendar)
    train, test = ds.isel(time=slice(0, 360)), ds.isel(time=slice(360, None))
    clim = Climatology(groupby="hour").fit(train)
    fc = clim.predict(test, ["1h", "6h", "12h"])
    hour0 = np.arange(360, 480) % 24
    expected = 280 + 5.0 * np.sin(2 * np.pi * ((hour0[:, None] + [1, 6, 12]) % 24) / 24)
    # 15 training days of N(0, 0.3) noise: means within 4 sigma / sqrt(15) of the cycle
    assert np.abs(fc["t2m"].values.mean(-1) - expected).max() < 4 * 0.3 / np.sqrt(15 * 4) * 4
    # it beats persistence at a 12 h lead by the cycle's amplitude
    assert clim.score(test, ["12h"]) > Persistence().fit(train).score(test, ["12h"]) + 3.0


def test_dayofyear_hour_falls_back_to_hour_mean_for_unseen_days():
    ds, _ = _diurnal()
    train, test = ds.isel(time=slice(0, 360)), ds.isel(time=slice(360, None))
    full = Climatology().fit(train).predict(test, ["1h"])
    hourly = Climatology(groupby="hour").fit(train).predict(test, ["1h"])
    xr.testing.assert_allclose(full, hourly)
    # seen days: the (day, hour) mean is that one sample
    seen = Climatology().fit(train).predict(train.isel(time=slice(0, 5)), ["1h"])
    np.testing.assert_allclose(seen["t2m"].values[:, 0], train["t2m"].values[1:6])


def test_model_time_climatology_is_the_time_mean():
    X = np.random.default_rng(1).normal(size=(50, 3))
    out = Climatology().fit(X).predict(X[:2], [1.0, 5.0])
    np.testing.assert_allclose(out, np.broadcast_to(X.mean(0), (2, 2, 3)))
