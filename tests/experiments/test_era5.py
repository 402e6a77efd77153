"""ERA5 experiments: the real UK t2m sample (skipped without ../shared) and the
WeatherBench pipeline end to end on xdyn's own WeatherBench-format test set."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from xdyn.experiments._era5_data import (UK_T2M_FILE, WB_TEST_SET_NOTE, era5_sample_dir,
                                         write_weatherbench_test_set)
from xdyn.experiments.era5 import (_open_weatherbench, compare_forecasters,
                                   uk_t2m_experiment, weatherbench_experiment)
from xdyn.forecast import ClimODE, Climatology, Persistence, TransportVGBDM, verify_forecast

SHARED_ERA5 = Path(os.environ.get("XDYN_SHARED_DIR", Path(__file__).resolve().parents[2]
                                  / ".." / "shared")) / "data" / "era5"
needs_uk = pytest.mark.skipif(not (SHARED_ERA5 / UK_T2M_FILE).is_file(),
                              reason=f"real ERA5 samples not found at {SHARED_ERA5} "
                                     "(set XDYN_SHARED_DIR to the shared folder)")


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("XDYN_DATA_DIR", str(tmp_path / "cache"))  # no WeatherBench there
    monkeypatch.setenv("XDYN_OFFLINE", "1")


def test_missing_samples_name_where_they_were_looked_for(monkeypatch, tmp_path):
    monkeypatch.setenv("XDYN_ERA5_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere.*era5-2mt-2019-03-uk.nc"):
        era5_sample_dir()


@needs_uk
def test_uk_t2m_baselines_on_the_real_sample():
    baselines = {"Persistence": Persistence(), "Climatology": Climatology(groupby="hour")}
    res = uk_t2m_experiment(quick=True, progress=False, forecasters=baselines,
                            lead_hours=(1, 3, 12, 24))
    rm = res.results["t2m_rmse"]
    pers, clim = rm.sel({"method": "Persistence"}), rm.sel({"method": "Climatology"})
    # real March weather: persistence is good at 1 h, worst at 12 h (opposite phase of the
    # diurnal cycle) and better again at 24 h; the diurnal climatology is flat in lead
    assert 0.2 < float(pers.sel(lead_time=1)) < 0.8
    assert float(pers.sel(lead_time=12)) > 2 * float(pers.sel(lead_time=24)) > 2.0
    assert float(clim.max() - clim.min()) < 0.2 and 1.0 < float(clim.mean()) < 2.5
    assert "ERA5" in res.results.attrs["data"] and "Copernicus" in res.results.attrs["data"]
    assert len(res.results["target_met"]) == 0  # no learned forecaster in this run
    assert {"method", "metric", "value", "lead_time"} <= set(res.summary[0])


def test_weatherbench_test_set_has_the_real_layout(tmp_path):
    from xdyn.datasets import load_weatherbench

    root = write_weatherbench_test_set(tmp_path / "wb", years=(2017,), days=2, freq="6h")
    assert (root / "geopotential_500" / "geopotential_500hPa_2017_5.625deg.nc").is_file()
    ds = load_weatherbench(["z500", "t850", "t2m", "u10", "v10"], root=root)
    assert dict(ds.sizes) == {"time": 8, "lat": 32, "lon": 64}
    # plausible magnitudes: z500 about 5.0-5.9e4 m2 s-2 and a warmer equator than pole
    assert 4.5e4 < float(ds.z500.min()) and float(ds.z500.max()) < 6.0e4
    t = ds.t2m.mean(("time", "lon"))
    assert float(t.sel(lat=0, method="nearest")) > float(t.isel(lat=0)) + 20


def test_era5_forecast_pipeline_end_to_end():
    fcs = {"Persistence": Persistence(), "Climatology": Climatology(),
           "ClimODE": ClimODE(hidden=4, n_steps=1, max_epochs=1, batch_size=16, step_size=1.0,
                              n_members=3, random_state=0, device="cpu"),
           "VGBDM": TransportVGBDM(hidden=4, z_dim=2, len_episode=2, max_epochs=1,
                                   n_members=3, step_size=1.0, random_state=0, device="cpu")}
    res = weatherbench_experiment(False, quick=True, progress=False, variables=("z500", "t850"),
                                  forecasters=fcs, leads=[6, 24], test_set_days=5)
    out = res.results
    assert out.attrs["data"] == WB_TEST_SET_NOTE and "NOT ERA5" in res.table
    assert list(out.method.values) == ["Persistence", "Climatology", "ClimODE", "VGBDM"]
    for var in ("z500", "t850"):
        for metric in ("rmse", "acc", "crps"):
            da = out[f"{var}_{metric}"]
            if metric == "acc":  # the climatology has no anomaly: its own ACC is undefined
                da = da.drop_sel({"method": "Climatology"})
            assert da.dims == ("method", "lead_time") and np.isfinite(da.values).all()
            assert "long_name" in da.attrs and "units" in da.attrs
    rm = out["z500_rmse"].sel({"method": "Persistence"})
    # waves travel east: persistence error grows with lead (6 h -> 24 h)
    assert float(rm.sel(lead_time=24)) > 1.5 * float(rm.sel(lead_time=6)) > 0
    # the climatology of the same days of the previous year is its own reference: ACC NaN-free
    assert float(out["z500_acc"].sel({"method": "Persistence", "lead_time": 6})) > 0.5
    assert set(res.figures) == {"z500_scores", "t850_scores", "maps"}
    import matplotlib.pyplot as plt
    plt.close("all")


def test_chunked_verification_pools_to_the_scores_of_all_starts_at_once():
    train, test, _, tmp = _open_weatherbench(("z500",), False, True, test_set_days=3)
    tmp.cleanup()
    leads = [np.timedelta64(6, "h"), np.timedelta64(48, "h")]

    def scores(chunk):
        fcs = {"Persistence": Persistence(), "Climatology": Climatology()}
        return compare_forecasters(fcs, train, test, leads, n_history=3, chunk=chunk)[0]

    whole, chunked = scores(None), scores(4)   # 9 starts: chunks of 4, 4 and 1
    xr.testing.assert_allclose(whole, chunked)
    # the last starts have no truth 48 h on: the pooled mean counts only those that do
    assert np.isfinite(whole["z500_rmse"].values).all()
    persistence = whole["z500_rmse"].sel({"method": "Persistence"})
    assert float(persistence.sel(lead_time=leads[1])) > float(persistence.sel(lead_time=leads[0]))


def test_climode_is_scored_by_its_emission_mean_and_its_members_crps():
    # ClimODE's members are independent draws around its emission mean (since 2026-12-08):
    # the mean of 10 of them carries their sampling noise (quick era5-monthly z500: 267
    # against 48.6), so RMSE and ACC score the emission mean itself, CRPS the members
    train, test, _, tmp = _open_weatherbench(("z500",), False, True, test_set_days=3)
    tmp.cleanup()
    leads = [np.timedelta64(6, "h"), np.timedelta64(12, "h")]
    model = ClimODE(hidden=4, n_steps=1, max_epochs=1, batch_size=16, step_size=1.0,
                    n_members=4, random_state=0, device="cpu")
    fcs = {"Climatology": Climatology(), "ClimODE": model}
    scores, forecasts, _ = compare_forecasters(fcs, train, test, leads, n_history=3)
    got = scores.sel({"method": "ClimODE"})
    mean = model.set_params(n_members=1).predict(test, leads).isel(time=slice(3, None))
    model.set_params(n_members=4)
    exact = verify_forecast(mean, test, climatology=forecasts["Climatology"])
    members = verify_forecast(forecasts["ClimODE"], test, climatology=forecasts["Climatology"])
    np.testing.assert_allclose(got["z500_rmse"], exact["z500_rmse"], rtol=1e-10)
    np.testing.assert_allclose(got["z500_acc"], exact["z500_acc"], rtol=1e-10)
    np.testing.assert_allclose(got["z500_crps"], members["z500_crps"], rtol=1e-10)
    assert not np.allclose(exact["z500_rmse"], members["z500_rmse"])  # the members' mean differs
    assert model.n_members == 4  # restored


def test_weatherbench_records_are_evenly_spaced_and_never_gap_filled():
    train, test, note, tmp = _open_weatherbench(("z500",), False, True, test_set_days=3)
    try:
        # xdyn's test set: 9 days of 2016 and 3 of 2017, 6-hourly; nothing between them
        assert note == WB_TEST_SET_NOTE
        assert train.sizes["time"] == 36 and test.sizes["time"] == 12
        for part in (train, test):
            assert (np.diff(part.time.values) == np.timedelta64(6, "h")).all()
        assert str(test.time.values[0])[:13] == "2017-01-01T00"
    finally:
        tmp.cleanup()


def test_era5_monthly_pipeline_end_to_end():
    fcs = {"Persistence": Persistence(), "Climatology": Climatology(groupby="month")}
    res = weatherbench_experiment(True, quick=True, progress=False, variables=("z500",),
                                  forecasters=fcs, leads=[1, 3])
    rm = res.results["z500_rmse"]
    assert res.results.attrs["data"] == WB_TEST_SET_NOTE
    assert res.results.lead_time.attrs["units"] == "30 days"
    # the seasonal cycle: a month-of-year climatology beats 3-month persistence
    assert float(rm.sel({"method": "Climatology", "lead_time": 3})) < \
        float(rm.sel({"method": "Persistence", "lead_time": 3}))
    import matplotlib.pyplot as plt
    plt.close("all")


def _hourly(n=40, start="2019-03-01", calendar=None, step="1h"):
    if calendar is None:
        time = np.datetime64(start, "ns") + np.arange(n) * np.timedelta64(1, "h")
    else:
        time = xr.date_range(start, periods=n, freq=step, calendar=calendar, use_cftime=True)
    u = 280 + np.random.default_rng(0).standard_normal((n, 2, 3))
    return xr.Dataset({"t": (("time", "lat", "lon"), u, {"units": "K"})},
                      coords={"time": time, "lat": [50.0, 51.0], "lon": [0.0, 1.0, 2.0]})


def _node():
    from xdyn.forecast import NeuralODE
    return NeuralODE(window=3, hidden=4, max_epochs=1, device="cpu", random_state=0)


def test_string_lead_times_reach_a_trajectory_forecaster():
    """The documented ``"12h"``-style leads: a NeuralODE crashed on them (it divided the
    strings by one hour); now they score as their timedelta64."""
    ds = _hourly()
    train, test = ds.isel(time=slice(0, 30)), ds.isel(time=slice(28, None))

    def run(leads):
        return compare_forecasters({"Persistence": Persistence(), "NODE": _node()},
                                   train, test, leads, n_history=2)[0]

    as_text = run(["1h", "3h"])
    xr.testing.assert_identical(as_text, run([np.timedelta64(1, "h"), np.timedelta64(3, "h")]))
    assert as_text.lead_time.values.tolist() == [3600 * 10 ** 9, 3 * 3600 * 10 ** 9]
    assert np.isfinite(as_text["t_rmse"].values).all()


def test_trajectory_forecaster_on_a_360_day_calendar():
    """era5-monthly's cftime axis: the model time of a NeuralODE is counted in the
    calendar's own hours, and its forecast gets the cftime valid times back (it failed
    with 'must be numeric, datetime64 or cftime; got dtype object')."""
    from xdyn.experiments.era5 import _model_time

    ds = _hourly(n=30, start="2015-01-16", calendar="360_day", step="30D")
    hours = _model_time(ds, ds.time.values[0]).time
    np.testing.assert_array_equal(hours.values, np.arange(30) * 720.0)
    assert hours.dtype == np.float64 and hours.attrs["units"] == "h"
    scores, forecasts, _ = compare_forecasters(
        {"Persistence": Persistence(), "NODE": _node()}, ds.isel(time=slice(0, 20)),
        ds.isel(time=slice(19, None)), [np.timedelta64(30, "D")], n_history=1)
    assert np.isfinite(scores["t_rmse"].values).all()
    fc = forecasts["NODE"]
    assert fc.valid_time.values[0, 0] == ds.time.values[21]  # 2016-10-16 in 360-day time
    assert fc.valid_time.values[0, 0].calendar == "360_day"


def test_monthly_refuses_test_set_days_that_cannot_give_whole_months():
    """60 days of each year: resampling made the other ten months empty (NaN) and
    failed later with 'training data has NaN'; now the parameter is named at once."""
    with pytest.raises(ValueError, match=r"test_set_days=60 with monthly=True"):
        _open_weatherbench(("z500",), True, True, test_set_days=60)


def test_monthly_means_are_of_whole_months_only(tmp_path):
    """xdyn's monthly test set is whole calendar years: December 2016 (a leap year)
    is the mean of its 31 days, not of the first 30 (365 days a year before); a
    partial month of other data is refused, named."""
    from xdyn.datasets import load_weatherbench

    with warnings.catch_warnings():  # the warning of the test set: tested below
        warnings.simplefilter("ignore", UserWarning)
        train, _, _, tmp = _open_weatherbench(("z500",), True, True)
    tmp.cleanup()
    assert train.sizes["time"] == 24 and not bool(train.z500.isnull().any())
    december = train.z500.isel(time=-1)
    assert (december.time.item().year, december.time.item().month) == (2016, 12)
    root = write_weatherbench_test_set(tmp_path / "wb", years=(2016,), days=366, freq="1D",
                                       variables=("z500",))
    days = load_weatherbench(["z500"], root=root).z500.sel(time=slice("2016-12-01", None))
    assert days.sizes["time"] == 31
    np.testing.assert_allclose(december.values, days.mean("time").values, rtol=1e-5)

    from xdyn.experiments.era5 import _monthly_means

    daily = _hourly(n=366, start="2016-01-01", step="1D", calendar="standard")
    daily = daily.assign_coords(time=daily.indexes["time"].to_datetimeindex(time_unit="ns"))
    assert _monthly_means(daily, "here").sizes["time"] == 12
    with pytest.raises(ValueError, match=r"2016-02 has 14 of its 29 samples.*in here"):
        _monthly_means(daily.isel(time=slice(0, 45)), "here")


def test_a_root_lacking_a_year_raises_and_never_swaps_in_the_test_set(tmp_path):
    """A real-layout folder without 2015 (quick reads 2015-2017): the loader's error,
    naming the missing file, not a silent run on the synthetic test set."""
    root = write_weatherbench_test_set(tmp_path / "wb", years=(2016, 2017), days=2,
                                       variables=("z500",))
    with pytest.raises(FileNotFoundError, match="2015"):
        _open_weatherbench(("z500",), False, True, root=root)
    with pytest.raises(FileNotFoundError, match="nowhere"):  # a root that does not exist
        _open_weatherbench(("z500",), False, True, root=tmp_path / "nowhere")


def test_default_folder_lacking_a_variable_raises(tmp_path, monkeypatch):
    """Data in $XDYN_DATA_DIR/weatherbench, but not of t850: that is not 'no data'."""
    monkeypatch.setenv("XDYN_DATA_DIR", str(tmp_path))
    write_weatherbench_test_set(tmp_path / "weatherbench", years=(2015, 2016, 2017), days=2,
                                variables=("z500",))
    with pytest.raises(FileNotFoundError, match="t850"):
        _open_weatherbench(("z500", "t850"), False, True)


def test_the_synthetic_test_set_stands_in_with_a_warning_only_without_any_data():
    with pytest.warns(UserWarning, match="no WeatherBench data.*NOT ERA5"):
        train, test, note, tmp = _open_weatherbench(("z500",), False, True, test_set_days=2)
    tmp.cleanup()
    assert note == WB_TEST_SET_NOTE and train.sizes["time"] == 24


def test_monthly_error_map_names_the_lead_in_months():
    fcs = {"Persistence": Persistence(), "Climatology": Climatology(groupby="month")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = weatherbench_experiment(True, quick=True, progress=False, variables=("z500",),
                                      forecasters=fcs, leads=[1, 5])
    title = res.figures["maps"]._suptitle.get_text()
    assert title.endswith("lead 5 months"), title  # was "lead 3600 h"
    import matplotlib.pyplot as plt
    plt.close("all")
