"""Data of the ERA5 forecast experiments: the real UK sample and a WeatherBench-format test set.

* :func:`era5_sample_dir` finds the real ERA5 samples collected for this
  project (``shared/data/era5``, with a README of their provenance and a
  ``SHA256SUMS``); they are kept out of the package. Looked up in
  ``$XDYN_ERA5_DIR``, ``$XDYN_SHARED_DIR/data/era5`` and ``../shared/data/era5``
  next to the repository, in that order (only the first when it is set).
* :func:`load_uk_t2m` reads from there the hourly 2-m temperature of March 2019
  over the UK (744 hours, 0.25°; xarray's tutorial file), checked against its
  sha256.
* :func:`write_weatherbench_test_set` writes a small test set in the real
  WeatherBench 5.625° layout (folders, file names, in-file variable names,
  scalar ``level``, units), made by xdyn from a recorded recipe: zonal-mean
  climatologies plus eastward-travelling planetary waves, a seasonal cycle and
  a diurnal cycle of the surface fields. It is NOT ERA5; it drives the ERA5
  pipeline end to end where no WeatherBench data are present.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["era5_sample_dir", "load_uk_t2m", "write_weatherbench_test_set", "UK_T2M_FILE",
           "WB_TEST_SET_NOTE"]

UK_T2M_FILE = "netcdf/era5-2mt-2019-03-uk.nc"
WB_TEST_SET_NOTE = ("xdyn's synthetic WeatherBench-format test set (travelling waves + seasonal "
                    "and diurnal cycles; NOT ERA5)")
LAT = np.arange(-87.1875, 90.0, 5.625)
LON = np.arange(0.0, 360.0, 5.625)

# short name -> (folder, file stem, in-file name, level, units, mean at the equator,
# pole-to-equator contrast, wave amplitude, diurnal amplitude)
_RECIPE = {
    "z500": ("geopotential_500", "geopotential_500hPa", "z", 500, "m**2 s**-2",
             57000.0, 8000.0, 900.0, 0.0),
    "t850": ("temperature_850", "temperature_850hPa", "t", 850, "K", 290.0, 40.0, 4.0, 0.5),
    "t2m": ("2m_temperature", "2m_temperature", "t2m", None, "K", 300.0, 50.0, 3.0, 4.0),
    "u10": ("10m_u_component_of_wind", "10m_u_component_of_wind", "u10", None, "m s**-1",
            -3.0, -8.0, 2.0, 0.5),
    "v10": ("10m_v_component_of_wind", "10m_v_component_of_wind", "v10", None, "m s**-1",
            0.0, 0.0, 2.0, 0.3),
}


def era5_sample_dir() -> Path:
    """The folder of the real ERA5 samples; FileNotFoundError naming where it looked.

    Examples
    --------
    >>> import os
    >>> os.environ["XDYN_ERA5_DIR"] = "/nonexistent/era5"
    >>> try:
    ...     era5_sample_dir()
    ... except FileNotFoundError as err:
    ...     "/nonexistent/era5" in str(err)
    True
    >>> del os.environ["XDYN_ERA5_DIR"]
    """
    if os.environ.get("XDYN_ERA5_DIR"):  # an explicit setting is the only place looked at
        candidates = [Path(os.environ["XDYN_ERA5_DIR"])]
    else:
        candidates = [Path(__file__).resolve().parents[2].parent / "shared" / "data" / "era5"]
        if os.environ.get("XDYN_SHARED_DIR"):
            candidates.insert(0, Path(os.environ["XDYN_SHARED_DIR"]) / "data" / "era5")
    for path in candidates:
        if (path / UK_T2M_FILE).is_file():
            return path
    raise FileNotFoundError(
        "the real ERA5 samples were not found; looked for "
        + ", ".join(str(p / UK_T2M_FILE) for p in candidates)
        + ". Set XDYN_ERA5_DIR to the folder holding netcdf/era5-2mt-2019-03-uk.nc "
        "(xarray's tutorial file era5-2mt-2019-03-uk.grib converted to netCDF)")


def _check_sha256(root: Path, relative: str):
    sums = root / "SHA256SUMS"
    if not sums.is_file():
        return
    expected = {line.split()[1].lstrip("*./"): line.split()[0]
                for line in sums.read_text().splitlines() if len(line.split()) == 2}
    want = expected.get(relative) or expected.get(relative.lstrip("./"))
    if want is None:
        return
    got = hashlib.sha256((root / relative).read_bytes()).hexdigest()
    if got != want:
        raise ValueError(f"{root / relative} has sha256 {got}, but SHA256SUMS records {want}: "
                         "the file is corrupt or was replaced; copy it again")


def load_uk_t2m(root=None) -> xr.Dataset:
    """Hourly ERA5 2-m temperature of March 2019 over the UK, ``(time, lat, lon)``.

    Parameters
    ----------
    root : path, optional
        The ERA5 sample folder; default :func:`era5_sample_dir`.

    Returns
    -------
    xarray.Dataset
        ``t2m`` [K], 744 hours x 33 ascending latitudes x 49 longitudes, loaded.

    Examples
    --------
    Needs the samples (see :func:`era5_sample_dir`), read from the file

    >>> UK_T2M_FILE
    'netcdf/era5-2mt-2019-03-uk.nc'
    >>> ds = load_uk_t2m()  # doctest: +SKIP
    >>> dict(ds.sizes)  # doctest: +SKIP
    {'time': 744, 'lat': 33, 'lon': 49}
    """
    root = era5_sample_dir() if root is None else Path(root)
    _check_sha256(root, UK_T2M_FILE)
    with xr.open_dataset(root / UK_T2M_FILE) as raw:
        ds = raw[["t2m"]].load()
    ds = ds.rename(latitude="lat", longitude="lon").sortby("lat")
    ds = ds.drop_vars([c for c in ds.coords if c not in ("time", "lat", "lon")])
    ds["t2m"] = ds["t2m"].astype("float64")
    ds["t2m"].attrs = {"units": "K", "long_name": "2 metre temperature",
                       "standard_name": "air_temperature"}
    ds["lat"].attrs = {"units": "degrees_north", "long_name": "latitude"}
    ds["lon"].attrs = {"units": "degrees_east", "long_name": "longitude"}
    ds["time"].attrs = {"long_name": "time"}
    ds.attrs = {"source": f"ERA5 HRES reanalysis, {root / UK_T2M_FILE} (xarray-data "
                          "era5-2mt-2019-03-uk.grib); contains modified Copernicus Climate "
                          "Change Service information 2019"}
    return ds


def _fields(times, variables, seed):
    """The recipe on ``times`` (datetime64): ``{short name: (time, lat, lon) float32}``."""
    rng = np.random.default_rng(seed)
    t_days = (times - np.datetime64("2000-01-01")) / np.timedelta64(1, "D")
    hour = (t_days % 1.0) * 24.0
    lat, lon = np.deg2rad(LAT)[None, :, None], np.deg2rad(LON)[None, None, :]
    season = np.cos(2 * np.pi * (t_days - 15) / 365.25)[:, None, None]
    local_hour = (hour[:, None, None] + np.rad2deg(lon) / 15.0) % 24
    out = {}
    for name in variables:
        _, _, _, _, _, mean, contrast, wave, diurnal = _RECIPE[name]
        phases = rng.uniform(0, 2 * np.pi, 3)
        speeds = (8.0, 5.0, 3.0)                  # degrees of longitude per day
        field = mean - contrast * np.sin(lat) ** 2 - 0.15 * contrast * season * np.sin(lat)
        for m, (ph, c) in enumerate(zip(phases, speeds), start=3):
            envelope = np.cos(lat) ** 2 * np.exp(-((np.abs(np.rad2deg(lat)) - 50) / 20) ** 2)
            arg = m * (lon - np.deg2rad(c) * t_days[:, None, None]) + ph
            field = field + wave * envelope * np.cos(arg) * (1 + 0.3 * np.sin(0.1 * t_days + m)
                                                             )[:, None, None]
        field = field + diurnal * np.cos(lat) * np.cos(2 * np.pi * (local_hour - 15) / 24)
        field = field + 0.02 * max(wave, 1e-3) * rng.standard_normal(field.shape)
        out[name] = field.astype("float32")
    return out


def write_weatherbench_test_set(root, years=(2016, 2017), days=20, freq="6h",
                                variables=("z500", "t850", "t2m", "u10", "v10"), seed=0):
    """Write a small WeatherBench-layout test set (see the module docstring); returns ``root``.

    Parameters
    ----------
    root : path
        Folder to write ``<folder>/<stem>_<year>_5.625deg.nc`` into.
    years : sequence of int
        One file per variable and year, each from January 1st.
    days : int
        Days per year.
    freq : str
        Sampling of the files (WeatherBench itself is hourly).
    variables : sequence of str
        Short names among z500, t850, t2m, u10, v10.
    seed : int

    Examples
    --------
    >>> import tempfile
    >>> from xdyn.datasets import load_weatherbench
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     root = write_weatherbench_test_set(tmp, years=(2017,), days=2, variables=("z500",))
    ...     ds = load_weatherbench(["z500"], root=root)
    ...     dict(ds.sizes), ds.attrs["resolution"]
    ({'time': 8, 'lat': 32, 'lon': 64}, '5.625deg')
    """
    root = Path(root)
    for year in years:
        times = pd.date_range(f"{year}-01-01", periods=int(days * pd.Timedelta("1D")
                                                          / pd.Timedelta(freq)), freq=freq)
        fields = _fields(times.to_numpy(), variables, seed + year)
        for name in variables:
            folder, stem, var, level, units = _RECIPE[name][:5]
            ds = xr.Dataset({var: (("time", "lat", "lon"), fields[name], {"units": units})},
                            coords={"time": times, "lat": LAT, "lon": LON})
            if level is not None:
                ds = ds.assign_coords(level=np.int32(level))
            ds.attrs = {"Conventions": "CF-1.6", "history": f"xdyn {WB_TEST_SET_NOTE}"}
            path = root / folder / f"{stem}_{year}_5.625deg.nc"
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.to_netcdf(path, encoding={"time": {"units": "hours since 1979-01-01"}})
    return root
