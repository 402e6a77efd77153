"""WeatherBench loaders: layout, laziness, level selection, errors, WeatherBench 2 adapter."""

from __future__ import annotations

import os
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xdyn import datasets
from xdyn.datasets import DataIntegrityError, from_weatherbench2, load_constants, load_weatherbench
from xdyn.datasets.weatherbench import weatherbench_url

SHARED = Path(
    os.environ.get("XDYN_SHARED_DIR", Path(__file__).resolve().parents[2] / ".." / "shared")
)
DERIVED = SHARED / "data" / "era5" / "derived_wb5625"
needs_shared = pytest.mark.skipif(
    not DERIVED.is_dir(),
    reason=f"real ERA5 samples not found at {DERIVED} (set XDYN_SHARED_DIR to the shared folder)",
)
LAT = np.arange(-87.1875, 90.0, 5.625)
LON = np.arange(0.0, 360.0, 5.625)


@pytest.fixture(autouse=True)
def offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDYN_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDYN_OFFLINE", "1")
    monkeypatch.delenv("XDYN_SHIPPED_DIR", raising=False)


class NoCompute:
    """A dask scheduler that fails on any compute (cf. xarray's raise_if_dask_computes)."""

    def __call__(self, dsk, keys, **kwargs):
        raise RuntimeError("dask computed while it should stay lazy")


def write_year(root, folder, stem, var, year, n_times=3, levels=None, seed=0, descending=False):
    """A small file in WeatherBench layout; returns its Dataset."""
    rng = np.random.default_rng(seed + year)
    time = pd.date_range(f"{year}-01-01", periods=n_times, freq="h")
    lat = LAT[::-1] if descending else LAT
    coords = {"time": time, "lat": lat, "lon": LON}
    if levels is None:
        dims, shape = ("time", "lat", "lon"), (n_times, LAT.size, LON.size)
    else:
        coords["level"] = np.asarray(levels, dtype="int32")
        dims, shape = ("time", "level", "lat", "lon"), (n_times, len(levels), LAT.size, LON.size)
    ds = xr.Dataset({var: (dims, rng.normal(size=shape).astype("float32"), {"units": "K"})}, coords)
    path = Path(root) / folder / f"{stem}_{year}_5.625deg.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, encoding={"time": {"units": "hours since 1979-01-01"}})
    return ds


# --- real samples -------------------------------------------------------------------
def check_standard(ds, names):
    assert list(ds.data_vars) == names
    assert np.issubdtype(ds.time.dtype, np.datetime64)
    assert ds.lat.attrs["units"] == "degrees_north" and ds.lon.attrs["units"] == "degrees_east"
    assert (np.diff(ds.lat.values) > 0).all()
    for name in names:
        assert ds[name].dims == ("time", "lat", "lon")
        assert isinstance(ds[name].data, da.Array)
        assert {"units", "long_name"} <= set(ds[name].attrs)


@pytest.mark.parametrize("source", ["shipped", pytest.param("shared", marks=needs_shared)])
def test_real_samples_lazy_and_equal_to_files(source):
    root = datasets.fetch("era5-wb5625-sample") if source == "shipped" else DERIVED
    with dask.config.set(scheduler=NoCompute()):
        ds = load_weatherbench(["z500", "t850"], years=[2007, 2017], root=root)
    check_standard(ds, ["z500", "t850"])
    assert ds.sizes == {"time": 5, "lat": 32, "lon": 64}
    assert ds.z500.attrs["units"] == "m**2 s**-2" and ds.t850.attrs["units"] == "K"
    assert ds.z500.attrs["level"] == 500 and ds.t850.attrs["level"] == 850
    direct = xr.open_dataset(root / "geopotential_500" / "geopotential_500hPa_2017_5.625deg.nc")
    np.testing.assert_array_equal(ds.z500.sel(time=direct.time).values, direct.z.values)
    direct = xr.open_dataset(root / "temperature_850" / "temperature_850hPa_2007_5.625deg.nc")
    np.testing.assert_array_equal(ds.t850.sel(time=direct.time).values, direct.t.values)
    assert 4.0e4 < float(ds.z500.mean()) < 6.0e4 and 200 < float(ds.t850.mean()) < 300


@needs_shared
def test_shipped_sample_equals_shared_derived_files():
    shipped = load_weatherbench(["z500", "t850"], root=datasets.fetch("era5-wb5625-sample"))
    shared = load_weatherbench(["z500", "t850"], root=DERIVED)
    xr.testing.assert_equal(shipped, shared)


def test_load_sample_by_name_and_multilevel_files():
    ds = datasets.load("era5-wb5625-sample", variables=["z850", "t500"], years=2017)
    assert list(ds.data_vars) == ["z850", "t500"] and ds.sizes["time"] == 4
    assert ds.z850.attrs["long_name"] == "Geopotential at 850 hPa"
    root = datasets.fetch("era5-wb5625-sample")
    single = load_weatherbench("z500", 2017, root=root)
    direct = xr.open_dataset(root / "geopotential" / "geopotential_2017_5.625deg.nc")
    np.testing.assert_array_equal(single.z500.values, direct.z.sel(level=500).values)


# --- synthetic WeatherBench layout ------------------------------------------------
def test_years_concatenate_along_time(tmp_path):
    parts = [
        write_year(tmp_path, "2m_temperature", "2m_temperature", "t2m", y) for y in (2016, 2015)
    ]
    ds = load_weatherbench("t2m", years=[2015, 2016], root=tmp_path)
    check_standard(ds, ["t2m"])
    assert ds.sizes["time"] == 6 and ds.indexes["time"].is_monotonic_increasing
    expected = xr.concat(parts[::-1], "time").t2m
    np.testing.assert_array_equal(ds.t2m.values, expected.values)
    every = load_weatherbench("t2m", root=tmp_path)  # years=None: glob *.nc
    xr.testing.assert_identical(every, ds.assign_attrs(every.attrs))
    assert ds.t2m.attrs["long_name"] == "2 metre temperature"


def test_multilevel_selection_and_fallback(tmp_path):
    ml = write_year(tmp_path, "geopotential", "geopotential", "z", 2018, levels=[500, 850])
    write_year(tmp_path, "temperature_850", "temperature_850hPa", "t", 2018)
    with dask.config.set(scheduler=NoCompute()):
        ds = load_weatherbench(["z500", "z850", "t850"], 2018, root=tmp_path)
    check_standard(ds, ["z500", "z850", "t850"])
    np.testing.assert_array_equal(ds.z500.values, ml.z.sel(level=500).values)
    np.testing.assert_array_equal(ds.z850.values, ml.z.sel(level=850).values)
    assert "level" not in ds.coords
    with pytest.raises(ValueError, match="level 250 hPa not in"):
        load_weatherbench("z250", 2018, root=tmp_path)


def test_descending_latitude_and_long_names(tmp_path):
    ref = write_year(
        tmp_path, "10m_u_component_of_wind", "10m_u_component_of_wind", "u10", 2017, descending=True
    )
    ds = load_weatherbench(["u10"], 2017, root=tmp_path)
    assert (np.diff(ds.lat.values) > 0).all()
    np.testing.assert_array_equal(ds.u10.values, ref.u10.sortby("lat").values)


def test_variables_on_different_times_are_refused_naming_them(tmp_path):
    # an outer join NaN-filled v10 at t2m's last time without a word: statistics that skip
    # NaN then used other samples for each variable
    write_year(tmp_path, "2m_temperature", "2m_temperature", "t2m", 2017, n_times=3)
    write_year(
        tmp_path, "10m_v_component_of_wind", "10m_v_component_of_wind", "v10", 2017, n_times=2
    )
    with pytest.raises(ValueError, match="cover different times.*t2m: 3 times.*v10: 2 times"):
        load_weatherbench(["t2m", "v10"], 2017, root=tmp_path)
    assert load_weatherbench(["t2m"], 2017, root=tmp_path).sizes["time"] == 3


# --- errors -------------------------------------------------------------------------
def test_unknown_variable_lists_known():
    with pytest.raises(ValueError, match=r"unknown WeatherBench variable 'sst'.*'z500'.*'t2m'"):
        load_weatherbench("sst", root=".")
    with pytest.raises(ValueError, match="unknown"):
        load_weatherbench("z123", root=".")


def test_missing_year_names_expected_path(tmp_path):
    write_year(tmp_path, "2m_temperature", "2m_temperature", "t2m", 2017)
    expected = tmp_path / "2m_temperature" / "2m_temperature_1999_5.625deg.nc"
    with pytest.raises(FileNotFoundError) as info:
        load_weatherbench("t2m", years=[2017, 1999], root=tmp_path)
    msg = str(info.value)
    assert str(expected) in msg and "2017" in msg and weatherbench_url("2m_temperature") in msg


def test_missing_folder_names_paths_and_links(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_weatherbench("z500", 2017, root=tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "geopotential_500") in msg and str(tmp_path / "geopotential") in msg
    assert "files=geopotential_500_5.625deg.zip" in msg


def test_default_root_is_in_data_dir(offline_cache, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "cache" / "weatherbench")):
        load_weatherbench("t2m", 2017)


def test_corrupt_file_is_named(tmp_path):
    write_year(tmp_path, "2m_temperature", "2m_temperature", "t2m", 2016)
    write_year(tmp_path, "2m_temperature", "2m_temperature", "t2m", 2017)
    bad = tmp_path / "2m_temperature" / "2m_temperature_2017_5.625deg.nc"
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(DataIntegrityError, match=str(bad)):
        load_weatherbench("t2m", [2016, 2017], root=tmp_path)


def test_fetch_weatherbench_refuses_unverified_download():
    with pytest.raises(ValueError, match="known_hash"):
        datasets.fetch("weatherbench-z500")


# --- constants ----------------------------------------------------------------------
def test_load_constants(tmp_path):
    (tmp_path / "constants").mkdir()
    const = xr.Dataset(
        {
            "orography": (("lat", "lon"), np.ones((32, 64))),
            "lsm": (("lat", "lon"), np.zeros((32, 64))),
        },
        coords={"lat": LAT, "lon": LON},
    )
    const.to_netcdf(tmp_path / "constants" / "constants_5.625deg.nc")
    ds = load_constants(tmp_path)
    assert ds.orography.attrs["units"] == "m" and ds.lsm.attrs["long_name"] == "Land-sea mask"
    assert ds.lat.attrs["units"] == "degrees_north"
    np.testing.assert_array_equal(ds.orography.values, const.orography.values)
    with pytest.raises(FileNotFoundError, match="constants_5.625deg.nc"):
        load_constants(tmp_path / "elsewhere")


# --- WeatherBench 2 -----------------------------------------------------------------
def wb2_like(n_times=4, chunked=True):
    rng = np.random.default_rng(1)
    time = pd.date_range("2020-01-01", periods=n_times, freq="6h")
    shape3, shape2 = (n_times, 2, 64, 32), (n_times, 64, 32)
    ds = xr.Dataset(
        {
            "geopotential": (("time", "level", "longitude", "latitude"), rng.normal(size=shape3)),
            "temperature": (("time", "level", "longitude", "latitude"), rng.normal(size=shape3)),
            "2m_temperature": (("time", "longitude", "latitude"), rng.normal(size=shape2)),
            "10m_u_component_of_wind": (("time", "longitude", "latitude"), rng.normal(size=shape2)),
            "10m_v_component_of_wind": (("time", "longitude", "latitude"), rng.normal(size=shape2)),
            "mean_sea_level_pressure": (("time", "longitude", "latitude"), rng.normal(size=shape2)),
        },
        coords={"time": time, "level": [500, 850], "latitude": LAT[::-1], "longitude": LON},
    )
    return ds.chunk({"time": 2}) if chunked else ds


def test_from_weatherbench2_renames_and_orders():
    wb2 = wb2_like()
    before = wb2.copy(deep=True)
    with dask.config.set(scheduler=NoCompute()):
        ds = from_weatherbench2(wb2)
    assert {"z500", "z850", "t500", "t850", "t2m", "u10", "v10", "mean_sea_level_pressure"} == set(
        ds.data_vars
    )
    for name in ("z500", "t850", "t2m", "u10", "v10"):
        assert ds[name].dims == ("time", "lat", "lon") and isinstance(ds[name].data, da.Array)
    assert (np.diff(ds.lat.values) > 0).all() and ds.lat.attrs["units"] == "degrees_north"
    expected = (
        wb2.geopotential.sel(level=500)
        .sortby("latitude")
        .transpose("time", "latitude", "longitude")
    )
    np.testing.assert_array_equal(ds.z500.values, expected.values)
    assert ds.z500.attrs["units"] == "m**2 s**-2" and ds.t850.attrs["level"] == 850
    assert ds.t2m.attrs["long_name"] == "2 metre temperature"
    # 6-hourly stays 6-hourly: no resampling
    np.testing.assert_array_equal(ds.time.values, wb2.time.values)
    xr.testing.assert_identical(wb2, before)  # input untouched


def test_from_weatherbench2_selects_and_errors():
    ds = from_weatherbench2(wb2_like(chunked=False), ["t850", "z500"])
    assert list(ds.data_vars) == ["t850", "z500"]
    with pytest.raises(ValueError, match=r"\['z300'\] not in .*available.*'z500'"):
        from_weatherbench2(wb2_like(), ["z300"])


def test_from_weatherbench2_matches_weatherbench1_layout():
    wb1 = datasets.load("era5-wb5625-sample", variables=["z500", "t850"], years=2017)
    wb2 = (
        xr.Dataset(
            {
                "geopotential": wb1.z500.expand_dims(level=[500], axis=1),
                "temperature": wb1.t850.expand_dims(level=[850], axis=1),
            }
        )
        .rename(lat="latitude", lon="longitude")
        .transpose("time", "level", "longitude", "latitude")
    )
    back = from_weatherbench2(wb2)
    xr.testing.assert_allclose(back[["z500", "t850"]].compute(), wb1[["z500", "t850"]].compute())


# --- network ------------------------------------------------------------------------
@pytest.mark.network
def test_weatherbench_share_serves_the_archive():
    requests = pytest.importorskip("requests")
    url = weatherbench_url("constants")
    response = requests.get(url, stream=True, timeout=60)
    assert response.status_code == 200
    response.close()


# --- files that do not fit the layout are refused, naming the file --------------------
def _t2m_years(root, years=(2016, 2017, 2018)):
    for y in years:
        write_year(root, "2m_temperature", "2m_temperature", "t2m", y)
    return root / "2m_temperature"


def _replace(path, ds):
    path.unlink()
    ds.to_netcdf(path, encoding={"time": {"units": "hours since 1979-01-01"}})


def test_a_year_holding_the_wrong_variable_is_named(tmp_path):
    folder = _t2m_years(tmp_path)
    bad = folder / "2m_temperature_2017_5.625deg.nc"
    with xr.open_dataset(bad) as ds:
        wrong = ds.load().rename(t2m="u10")
    _replace(bad, wrong)
    with pytest.raises(ValueError, match=rf"{bad}.* holds \['u10'\], not 't2m'.*To fix"):
        load_weatherbench("t2m", [2016, 2017, 2018], root=tmp_path)
    with pytest.raises(ValueError, match=str(bad)):  # years=None globs the folder: same check
        load_weatherbench("t2m", root=tmp_path)


def test_a_renamed_lat_dim_is_refused(tmp_path):
    folder = _t2m_years(tmp_path, (2017,))
    bad = folder / "2m_temperature_2017_5.625deg.nc"
    with xr.open_dataset(bad) as ds:
        renamed = ds.load().rename(lat="y")
    _replace(bad, renamed)
    with pytest.raises(ValueError, match=rf"{bad}: variable 't2m' has dims \('time', 'y', 'lon'\)"):
        load_weatherbench("t2m", 2017, root=tmp_path)


def test_a_file_named_for_one_year_holding_another_is_refused(tmp_path):
    folder = _t2m_years(tmp_path, (2017,))
    # a copy of 2017 saved under the 2018 name: previously dropped silently
    src = folder / "2m_temperature_2017_5.625deg.nc"
    bad = folder / "2m_temperature_2018_5.625deg.nc"
    bad.write_bytes(src.read_bytes())
    with pytest.raises(ValueError, match=rf"{bad} is named for 2018 but holds times 2017-01-01"):
        load_weatherbench("t2m", [2017, 2018], root=tmp_path)


def test_the_same_times_in_two_files_are_refused(tmp_path):
    folder = _t2m_years(tmp_path, (2017,))
    (folder / "copy_of_2m_temperature.nc").write_bytes(
        (folder / "2m_temperature_2017_5.625deg.nc").read_bytes()
    )
    with pytest.raises(ValueError, match="overlap in time.*same year twice"):
        load_weatherbench("t2m", root=tmp_path)


def test_a_year_on_a_shifted_grid_is_named(tmp_path):
    folder = _t2m_years(tmp_path)
    bad = folder / "2m_temperature_2018_5.625deg.nc"
    with xr.open_dataset(bad) as ds:
        shifted = ds.load().assign_coords(lat=ds.lat + 1.0)
    _replace(bad, shifted)
    with pytest.raises(ValueError, match=rf"{bad} is on a different lat grid from .*2016"):
        load_weatherbench("t2m", [2016, 2017, 2018], root=tmp_path)


def test_bad_coordinates_are_refused(tmp_path):
    folder = _t2m_years(tmp_path, (2017,))
    bad = folder / "2m_temperature_2017_5.625deg.nc"
    with xr.open_dataset(bad) as ds:
        good = ds.load()
    _replace(bad, good.assign_coords(lat=good.lat * 2))
    with pytest.raises(DataIntegrityError, match=rf"{bad} has latitudes outside"):
        load_weatherbench("t2m", 2017, root=tmp_path)
    _replace(bad, good.assign_coords(time=good.time.values[::-1]))
    with pytest.raises(DataIntegrityError, match="unordered times"):
        load_weatherbench("t2m", 2017, root=tmp_path)


def _compressed_year(root, year=2017):
    """A t2m file with zlib chunks (a damaged chunk fails to inflate, like real bit rot)."""
    ds = write_year(root, "2m_temperature", "2m_temperature", "t2m", year, n_times=8)
    path = root / "2m_temperature" / f"2m_temperature_{year}_5.625deg.nc"
    _replace(path, ds)
    path.unlink()
    ds.to_netcdf(path, encoding={"time": {"units": "hours since 1979-01-01"},
                                 "t2m": {"zlib": True, "chunksizes": (1, 32, 64)}})
    return path


def _chunk_span(path, var, index):
    """Byte offset and size of one stored chunk (h5py), or None without h5py."""
    try:
        import h5py
    except ImportError:
        return None
    with h5py.File(path, "r") as f:
        info = f[var].id.get_chunk_info(index)
        return info.byte_offset, info.size


def test_bit_rot_in_the_data_region_is_named_when_read(tmp_path):
    path = _compressed_year(tmp_path)
    raw = bytearray(path.read_bytes())
    # damage the stored bytes of one time step's chunk: header and coordinates stay intact
    start, size = _chunk_span(path, "t2m", 5) or (len(raw) // 2, 4000)
    raw[start : start + size] = b"\xff" * size
    path.write_bytes(bytes(raw))
    with dask.config.set(scheduler=NoCompute()):
        ds = load_weatherbench("t2m", 2017, root=tmp_path, chunks={"time": 1})
    assert np.isfinite(ds.t2m.isel(time=0).values).all()  # sound chunks still read
    with pytest.raises(DataIntegrityError, match=rf"cannot read variable 't2m' of {path}.*To fix"):
        ds.load()


def test_lazy_reads_through_the_wrapper_equal_the_file(tmp_path):
    path = _compressed_year(tmp_path)
    ds = load_weatherbench("t2m", 2017, root=tmp_path, chunks={"time": 3})
    assert ds.t2m.chunks[0] == (3, 3, 2)
    with xr.open_dataset(path) as direct:
        np.testing.assert_array_equal(ds.t2m.isel(time=[1, 6]).values, direct.t2m.values[[1, 6]])
        np.testing.assert_array_equal(ds.t2m.values, direct.t2m.values)


def test_a_registry_pinned_file_is_checked_at_open(tmp_path):
    import shutil

    root = tmp_path / "era5_wb5625_sample"
    shutil.copytree(datasets.fetch("era5-wb5625-sample"), root)
    path = root / "temperature_850" / "temperature_850hPa_2017_5.625deg.nc"
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF  # one flipped byte: undetectable by reading an uncompressed file
    path.write_bytes(bytes(raw))
    with pytest.raises(DataIntegrityError, match=rf"{path} is corrupt.*sha256"):
        load_weatherbench("t850", 2017, root=root)


def test_load_constants_refuses_a_file_with_no_constant_field(tmp_path):
    (tmp_path / "constants").mkdir()
    path = tmp_path / "constants" / "constants_5.625deg.nc"
    xr.Dataset({"t2m": (("lat", "lon"), np.ones((32, 64)))}, coords={"lat": LAT, "lon": LON}) \
        .to_netcdf(path)
    with pytest.raises(ValueError, match=rf"{path} holds none of the constant fields.*'orography'"):
        load_constants(tmp_path)
    path.write_bytes(b"CDF\x01garbage")
    with pytest.raises(DataIntegrityError, match=str(path)):
        load_constants(tmp_path)


def test_a_file_of_another_resolution_is_named(tmp_path):
    folder = _t2m_years(tmp_path, (2017,))
    bad = folder / "2m_temperature_2017_5.625deg.nc"
    with xr.open_dataset(bad) as ds:
        cut = ds.load().isel(lat=slice(0, 16))  # half the globe, e.g. a regional extract
    _replace(bad, cut)
    with pytest.raises(ValueError, match=rf"{bad} has a 16 x 64 .* grid is 32 x 64"):
        load_weatherbench("t2m", 2017, root=tmp_path)


@pytest.mark.parametrize(
    "years, exc, match",
    [
        ([2017, 2017], ValueError, "a year twice"),
        ([2017.5], TypeError, "years must be whole years"),
        ("next", TypeError, "years must be whole years"),
        ([], ValueError, "years is empty"),
    ],
)
def test_bad_years_are_refused(tmp_path, years, exc, match):
    _t2m_years(tmp_path, (2017,))
    with pytest.raises(exc, match=match):
        load_weatherbench("t2m", years, root=tmp_path)
    assert load_weatherbench("t2m", "2017", root=tmp_path).sizes["time"] == 3


def test_verify_catches_bit_rot_that_reads_as_plausible_numbers(tmp_path):
    from xdyn.datasets import registry

    folder = _t2m_years(tmp_path, (2016, 2017))
    registry.write_sha256sums(folder, {p.name: registry.file_sha256(p) for p in folder.glob("*.nc")})
    assert load_weatherbench("t2m", root=tmp_path, verify=True).sizes["time"] == 6
    bad = folder / "2m_temperature_2017_5.625deg.nc"
    with xr.open_dataset(bad) as ds:
        before = ds.t2m.values.copy()
    raw = bytearray(bad.read_bytes())
    try:  # the start of the contiguous data, else the middle of the file
        import h5py

        with h5py.File(bad, "r") as f:
            where = f["t2m"].id.get_offset() + 100
    except ImportError:
        where = len(raw) // 2
    raw[where] ^= 0x01  # one flipped bit in the (uncompressed) data
    bad.write_bytes(bytes(raw))
    with xr.open_dataset(bad) as ds:  # silently different values: nothing else can tell
        assert np.isfinite(ds.t2m.values).all() and not np.array_equal(ds.t2m.values, before)
    with pytest.raises(DataIntegrityError, match=rf"{bad} is corrupt or modified.*SHA256SUMS"):
        load_weatherbench("t2m", root=tmp_path, verify=True)
    (folder / "SHA256SUMS").unlink()
    with pytest.warns(UserWarning, match="no checksum is recorded for 2 file"):
        load_weatherbench("t2m", root=tmp_path, verify=True)


def test_verify_catches_a_year_deleted_since_the_download(tmp_path):
    from xdyn.datasets import registry

    folder = _t2m_years(tmp_path, (2016, 2017))
    sums = {p.name: registry.file_sha256(p) for p in folder.glob("*.nc")}
    registry.write_sha256sums(folder, sums)
    (folder / "2m_temperature_2017_5.625deg.nc").unlink()
    # without verify, years=None loads what is there: one year (documented)
    assert load_weatherbench("t2m", root=tmp_path).sizes["time"] == 3
    with pytest.raises(DataIntegrityError, match=r"1 file\(s\) listed in .*SHA256SUMS are "
                       r"missing, e\.g\. 2m_temperature_2017_5\.625deg\.nc"):
        load_weatherbench("t2m", root=tmp_path, verify=True)
    # naming the years that are there is fine
    assert load_weatherbench("t2m", [2016], root=tmp_path, verify=True).sizes["time"] == 3


# --- fetch_weatherbench repairs what it extracted -------------------------------------
def _t2m_archive(root, years=(2016, 2017)):
    """A verified-looking archive in ``root/.downloads``, as pooch leaves it; returns its hash."""
    import hashlib
    import zipfile

    src = _t2m_years(root / "src", years)
    archive = root / ".downloads" / "2m_temperature_5.625deg.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(src.glob("*.nc")):
            z.write(path, path.name)
    return src, "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()


def test_refetch_restores_a_deleted_damaged_or_unlisted_year(tmp_path, monkeypatch):
    from xdyn.datasets import fetch_weatherbench, registry

    monkeypatch.delenv("XDYN_OFFLINE")  # the archive is on disk: pooch downloads nothing
    src, known_hash = _t2m_archive(tmp_path)
    folder = tmp_path / "2m_temperature"
    fetch_weatherbench("t2m", root=tmp_path, known_hash=known_hash)
    names = sorted(p.name for p in src.glob("*.nc"))
    assert sorted(p.name for p in folder.glob("*.nc")) == names
    assert set(registry.read_sha256sums(folder)) == set(names)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.nc")}
    fetch_weatherbench("t2m", root=tmp_path, known_hash=known_hash)  # all intact: kept
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.nc")} == stamps

    first, last = (folder / name for name in names)
    last.unlink()  # a deleted year
    fetch_weatherbench("t2m", root=tmp_path, known_hash=known_hash)
    raw = bytearray(first.read_bytes())
    raw[-10] ^= 0xFF  # a damaged year of the same size
    first.write_bytes(bytes(raw))
    fetch_weatherbench("t2m", root=tmp_path, known_hash=known_hash)
    for name in names:
        assert (folder / name).read_bytes() == (src / name).read_bytes()
    ds = load_weatherbench("t2m", root=tmp_path, verify=True)
    assert ds.sizes["time"] == 6
    with xr.open_dataset(src / names[1]) as year:
        np.testing.assert_array_equal(ds.t2m.values[3:], year.t2m.values)

    # files extracted with no record in SHA256SUMS (an extraction cut off before it)
    (folder / "SHA256SUMS").unlink()
    fetch_weatherbench("t2m", root=tmp_path, known_hash=known_hash)
    assert set(registry.read_sha256sums(folder)) == set(names)


def test_an_extraction_killed_half_way_is_repaired_by_the_next_fetch(tmp_path, monkeypatch):
    from xdyn.datasets import fetch_weatherbench, registry, weatherbench_download

    monkeypatch.delenv("XDYN_OFFLINE")
    src, known_hash = _t2m_archive(tmp_path)
    folder = tmp_path / "2m_temperature"
    moved, real_replace = [], os.replace

    def killed_after_one(src_path, dst_path):
        if ".extract-" in str(src_path):  # a move of an extracted file into place
            if moved:
                raise KeyboardInterrupt  # stands for SIGKILL between two moves
            moved.append(Path(dst_path))
        real_replace(src_path, dst_path)

    monkeypatch.setattr(os, "replace", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        fetch_weatherbench("t2m", root=tmp_path, known_hash=known_hash)
    monkeypatch.setattr(os, "replace", real_replace)
    assert [p.name for p in folder.glob("*.nc")] == [moved[0].name]
    # SHA256SUMS lists every file before any is moved: nothing half-extracted is unlisted
    assert set(registry.read_sha256sums(folder)) == {p.name for p in src.glob("*.nc")}
    # a killed process's temporary folder is removed by the next extraction
    orphan = folder / f".extract-{weatherbench_download._host()}-999999999-x"
    orphan.mkdir()
    fetch_weatherbench("t2m", root=tmp_path, known_hash=known_hash)
    assert sorted(p.name for p in folder.glob("*.nc")) == sorted(p.name for p in src.glob("*.nc"))
    assert not list(folder.glob(".extract-*"))
    assert load_weatherbench("t2m", root=tmp_path, verify=True).sizes["time"] == 6


# --- truncated netCDF3, resolutions, empty years --------------------------------------
@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT"])
@pytest.mark.parametrize("cut", [4, 4000])
def test_a_truncated_netcdf3_year_is_refused(tmp_path, fmt, cut):
    folder = _t2m_years(tmp_path, (2017,))
    path = folder / "2m_temperature_2017_5.625deg.nc"
    with xr.open_dataset(path) as ds:
        full = ds.load()
    path.unlink()
    # coordinates first, as CDO and NCO write them: the cut hits t2m, which read as zeros
    full[["time", "lat", "lon", "t2m"]].to_netcdf(
        path, format=fmt, unlimited_dims=["time"],
        encoding={"time": {"units": "hours since 1979-01-01"}},
    )
    np.testing.assert_array_equal(
        load_weatherbench("t2m", root=tmp_path).t2m.values, full.t2m.values
    )
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(DataIntegrityError, match=rf"{path} is truncated: it has \d+ bytes"):
        load_weatherbench("t2m", root=tmp_path)


def test_netcdf3_data_end_matches_what_writers_write(tmp_path):
    import netCDF4

    from xdyn.datasets._netcdf import netcdf3_data_end

    t = pd.date_range("2017-01-01", periods=5, freq="h")
    ds = xr.Dataset(
        {"a": (("time", "y"), np.ones((5, 3), "i1"), {"s": "text", "v": np.arange(3.0)}),
         "b": ("time", np.arange(5, dtype="i2")), "c": ("y", np.arange(3.0))},
        {"time": t}, attrs={"title": "x"},
    )
    for fmt in ("NETCDF3_CLASSIC", "NETCDF3_64BIT"):
        for engine in ("netcdf4", "scipy"):
            path = tmp_path / f"{fmt}-{engine}.nc"
            ds.to_netcdf(path, format=fmt, engine=engine, unlimited_dims=["time"])
            assert netcdf3_data_end(path) == path.stat().st_size
    path = tmp_path / "cdf5.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_DATA") as nc:
        nc.createDimension("time", None)
        nc.createDimension("y", 7)
        nc.createVariable("a", "u2", ("time", "y"))[:] = np.ones((4, 7))
        nc.createVariable("b", "i8", ("time",))[:] = np.arange(4)
    assert netcdf3_data_end(path) == path.stat().st_size
    ds.to_netcdf(tmp_path / "hdf5.nc")
    assert netcdf3_data_end(tmp_path / "hdf5.nc") is None


def _constants(path, lat=LAT, lon=LON, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    xr.Dataset({"orography": (("lat", "lon"), np.full((lat.size, lon.size), 500.0))},
               coords={"lat": lat, "lon": lon}).to_netcdf(path, format=fmt)


def test_a_truncated_netcdf3_constants_file_is_refused(tmp_path):
    path = tmp_path / "constants" / "constants_5.625deg.nc"
    _constants(path, fmt="NETCDF3_64BIT")
    assert float(load_constants(tmp_path).orography.min()) == 500.0
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataIntegrityError, match=rf"{path} is truncated"):
        load_constants(tmp_path)


def test_load_constants_takes_no_other_resolution(tmp_path):
    folder = tmp_path / "constants"
    fine = np.arange(-88.59375, 90.0, 2.8125), np.arange(0.0, 360.0, 2.8125)
    _constants(folder / "constants_2.8125deg.nc", *fine)
    with pytest.raises(FileNotFoundError, match=r"constants_5.625deg.nc \(only other resolut"):
        load_constants(tmp_path)
    assert load_constants(tmp_path, resolution="2.8125deg").sizes == {"lat": 64, "lon": 128}
    (folder / "constants_2.8125deg.nc").rename(folder / "constants.nc")  # a renamed copy
    with pytest.raises(ValueError, match=r"constants.nc has a 64 x 128 .* grid is 32 x 64"):
        load_constants(tmp_path)
    (folder / "constants.nc").unlink()
    _constants(folder / "constants.nc")
    assert load_constants(tmp_path).sizes == {"lat": 32, "lon": 64}
    (folder / "constants.nc").unlink()
    lat = LAT.copy()
    lat[5] = lat[4]  # a repeated latitude, e.g. a damaged coordinate
    _constants(folder / "constants_5.625deg.nc", lat=lat)
    with pytest.raises(DataIntegrityError, match="repeated or unordered lat/lon"):
        load_constants(tmp_path)


@pytest.mark.parametrize("resolution", ["2.8125", "5.625 deg", "bogus"])
def test_an_unknown_resolution_is_refused(tmp_path, resolution):
    from xdyn.datasets import fetch_weatherbench

    _t2m_years(tmp_path, (2017,))
    _constants(tmp_path / "constants" / "constants_5.625deg.nc")
    match = rf"unknown WeatherBench resolution '{resolution}'; known: '5.625deg', '2.8125deg'"
    with pytest.raises(ValueError, match=match):
        load_weatherbench("t2m", root=tmp_path, resolution=resolution)
    with pytest.raises(ValueError, match=match):
        load_constants(tmp_path, resolution=resolution)
    with pytest.raises(ValueError, match=match):
        fetch_weatherbench("t2m", root=tmp_path, known_hash="sha256:" + "0" * 64,
                           resolution=resolution)


def test_a_year_with_no_time_step_is_named(tmp_path):
    folder = _t2m_years(tmp_path, (2016, 2017))
    empty = folder / "2m_temperature_2017_5.625deg.nc"
    with xr.open_dataset(empty) as ds:
        cut = ds.load().isel(time=slice(0, 0))
    for var in cut.variables.values():
        var.encoding = {}  # the source's chunk sizes do not fit an empty dimension
    _replace(empty, cut)
    with pytest.raises(DataIntegrityError, match=rf"{empty} holds no time steps"):
        load_weatherbench("t2m", root=tmp_path)


def _noleap_year(root, year, times_year=None):
    """A t2m file whose time is on the noleap calendar (decoded to cftime dates)."""
    import cftime

    times = [cftime.DatetimeNoLeap(times_year or year, 2, 28, 6 * h) for h in range(3)]
    values = np.random.default_rng(year).normal(size=(3, LAT.size, LON.size)).astype("float32")
    ds = xr.Dataset({"t2m": (("time", "lat", "lon"), values, {"units": "K"})},
                    {"time": times, "lat": LAT, "lon": LON})
    path = root / "2m_temperature" / f"2m_temperature_{year}_5.625deg.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, encoding={"time": {"units": "hours since 1979-01-01"}})
    return ds


def test_a_noleap_calendar_is_read_as_cftime_dates(tmp_path):
    import cftime

    years = {year: _noleap_year(tmp_path, year) for year in (2018, 2017)}
    ds = load_weatherbench("t2m", root=tmp_path)
    assert all(isinstance(t, cftime.DatetimeNoLeap) for t in ds.time.values)
    assert [t.year for t in ds.time.values] == [2017] * 3 + [2018] * 3  # in order
    np.testing.assert_array_equal(ds.t2m.values[3:], years[2018].t2m.values)
    folder = tmp_path / "2m_temperature"
    bad = folder / "2m_temperature_2018_5.625deg.nc"
    bad.unlink()
    _noleap_year(tmp_path, 2018, times_year=2016)  # named 2018, holds 2016: year from .year
    with pytest.raises(ValueError, match=rf"{bad} is named for 2018 but holds times"):
        load_weatherbench("t2m", root=tmp_path)
    bad.unlink()
    write_year(tmp_path, "2m_temperature", "2m_temperature", "t2m", 2018)  # standard calendar
    with pytest.raises(ValueError, match=rf"{bad} has times on the standard .*noleap") as info:
        load_weatherbench("t2m", root=tmp_path)
    assert "units attr" not in str(info.value)
