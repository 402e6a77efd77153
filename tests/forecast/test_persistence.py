"""Persistence: the initial state at every lead, on labelled and bare data."""

import numpy as np
import pytest
import xarray as xr

from xdyn.forecast import Persistence, forecast_rmse, lead_aligned_truth, verify_forecast


def test_persistence_error_of_a_linear_trend_grows_with_lead():
    # T = 0.5 K per step: persistence is off by 0.5 K * lead exactly
    time = np.datetime64("2019-03-01", "ns") + np.arange(48) * np.timedelta64(1, "h")
    ds = xr.Dataset({"T": (("time", "x"), 0.5 * np.arange(48.0)[:, None] * np.ones((1, 3)),
                           {"units": "K"})}, coords={"time": time})
    est = Persistence().fit(ds)
    fc = est.predict(ds, ["1h", "3h", "24h"])
    scores = verify_forecast(fc, ds)
    np.testing.assert_allclose(scores["T_rmse"].values, [0.5, 1.5, 12.0])
    np.testing.assert_allclose(scores["T_crps"].values, [0.5, 1.5, 12.0])  # CRPS of a point = MAE
    assert est.score(ds, ["3h"]) == pytest.approx(-1.5)


def test_verify_forecast_does_not_score_a_failed_forecast_on_its_other_points():
    # inits whose valid time is past the data have no truth and leave the mean; a forecast
    # that is NaN where the truth is known makes that lead's scores NaN
    time = np.datetime64("2019-03-01", "ns") + np.arange(48) * np.timedelta64(1, "h")
    ds = xr.Dataset({"T": (("time", "x"), 0.5 * np.arange(48.0)[:, None] * np.ones((1, 3)),
                           {"units": "K"})}, coords={"time": time})
    fc = Persistence().fit(ds).predict(ds, ["1h", "3h", "24h"])
    fc["T"][5, 1, 2] = np.nan
    ens = fc.expand_dims(member=2).copy(deep=True)
    ens["T"][1, 7, 0, 0] = np.nan  # one member of one 1-h forecast
    for forecast in (fc, ens):
        scores = verify_forecast(forecast, ds)
        for key in ("T_rmse", "T_crps"):
            assert np.isnan(scores[key].values).tolist() == [forecast is ens, True, False], key
    np.testing.assert_allclose(verify_forecast(fc, ds)["T_rmse"].values[2], 12.0)
    # an initialisation the forecaster issued nothing from (ClimODE's first) is left out
    fc["T"][0] = np.nan
    np.testing.assert_allclose(verify_forecast(fc, ds)["T_rmse"].values[[0, 2]], [0.5, 12.0])


def test_persistence_dataarray_keeps_name_and_dims():
    da = xr.DataArray(np.random.default_rng(0).normal(size=(5, 2, 3)), dims=("time", "y", "x"),
                      name="u", coords={"time": np.arange(5.0)})
    fc = Persistence().fit(da).predict(da, [2.0])
    assert fc.name == "u" and fc.dims == ("time", "lead_time", "y", "x")
    truth = lead_aligned_truth(da, fc)
    np.testing.assert_array_equal(truth.values[:3, 0], da.values[2:])


def test_forecast_rmse_refuses_a_truth_on_another_grid():
    # without a 'lat' dim the truth was joined inner: a truth on part of the grid (or with
    # shifted labels) scored the overlap only, silently
    u = np.random.default_rng(0).normal(size=(20, 8)) * np.repeat([1.0, 10.0], 4)
    ds = xr.Dataset({"u": (("time", "x"), u)}, coords={"time": np.arange(20.0),
                                                      "x": np.arange(8.0)})
    fc = Persistence().fit(ds).predict(ds, lead_times=[1.0])
    assert np.isfinite(forecast_rmse(fc, lead_aligned_truth(ds, fc))["u"]).all()
    for truth in (ds.isel(x=slice(0, 4)), ds.assign_coords(x=ds.x + 2)):
        aligned = lead_aligned_truth(truth, fc)
        with pytest.raises(ValueError, match="forecast, truth do not align.*'x'"):
            forecast_rmse(fc, aligned)
        with pytest.raises(ValueError, match="forecast, truth do not align.*'x'"):
            forecast_rmse(fc["u"], aligned["u"])
        with pytest.raises(ValueError, match="do not align.*'x'"):
            verify_forecast(fc, truth)


def test_verify_forecast_takes_the_dataarray_forecast_of_a_dataarray():
    # predict on a DataArray returns a DataArray, which failed with AttributeError 'data_vars'
    time = np.datetime64("2017-01-01", "ns") + np.arange(12) * np.timedelta64(6, "h")
    da = xr.DataArray(np.random.default_rng(0).standard_normal((12, 3)), dims=("time", "x"),
                      coords={"time": time}, name="T", attrs={"units": "K"})
    fc = Persistence().fit(da).predict(da, ["6h", "12h"])
    expected = verify_forecast(fc.to_dataset(), da.to_dataset())
    xr.testing.assert_identical(verify_forecast(fc, da), expected)
    xr.testing.assert_identical(verify_forecast(fc, da.to_dataset()), expected)
    unnamed = verify_forecast(fc.rename(None), da.rename(None))
    np.testing.assert_array_equal(unnamed["variable_rmse"].values, expected["T_rmse"].values)
    with pytest.raises(ValueError, match="named differently"):
        verify_forecast(fc, da.rename("q"))
