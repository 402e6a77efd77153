"""ERA5 experiments: the real UK t2m sample (skipped without ../shared) and the
WeatherBench pipeline end to end on xdyn's own WeatherBench-format test set."""

import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from xdyn.experiments._era5_data import (UK_T2M_FILE, WB_TEST_SET_NOTE, era5_sample_dir,
                                         write_weatherbench_test_set)
from xdyn.experiments.era5 import (_open_weatherbench, compare_forecasters,
                                   uk_t2m_experiment, weatherbench_experiment)
from xdyn.forecast import ClimODE, Climatology, Persistence, TransportVGBDM

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
