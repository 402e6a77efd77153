"""Make the shipped ERA5 sample in WeatherBench 5.625° layout from real ERA5 files.

Sources (``/work/shared/data/era5`` in the project, README and SHA256SUMS there;
``--source`` or ``$XDYN_SHARED_DIR/data/era5`` elsewhere), netCDF copies of
ERA5 GRIB samples that are checked against their sha256 before use:

* ``netcdf/era5-levels-members.nc``: ERA5 EDA (ecmwf/cfgrib test data), member
  0, z and t at 500/850 hPa, global 3°, 2017-01-01T00 .. 2017-01-02T12, 12-hourly;
* ``netcdf/era5-z-t-500-850-2007010112-1deg.nc``: ERA5 HRES analysis
  (ecmwf/earthkit-data ``test4.grib``), z and t at 500/850 hPa, global 1°,
  2007-01-01T12.

Each field is bilinearly interpolated (:meth:`xarray.DataArray.interp`, with one
column of periodic longitude padding) onto the WeatherBench grid, lat -87.1875 ..
87.1875 and lon 0 .. 354.375 in 5.625° steps, and written as WeatherBench writes
it: ``geopotential_500/geopotential_500hPa_<year>_5.625deg.nc`` (``z``, scalar
``level``), ``temperature_850/temperature_850hPa_<year>_5.625deg.nc`` (``t``),
and the multi-level ``geopotential/geopotential_<year>_5.625deg.nc`` /
``temperature/temperature_<year>_5.625deg.nc`` (``level`` = 500, 850). The
single-level files are identical in values to ``derived_wb5625/`` in the shared
folder. These are DERIVED test fixtures, not WeatherBench data: 12-hourly or a
single time, regridded from 1° and 3° sources. Usage::

    python datasets/make_era5_wb5625_sample.py [--source DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import numpy as np
import xarray as xr
from _common import HERE, REPO, update_registry

from xdyn.datasets.registry import write_netcdf_atomic

OUT = HERE / "era5_wb5625_sample"
LAT = np.arange(-87.1875, 90.0, 5.625)
LON = np.arange(0.0, 360.0, 5.625)
SOURCES = {
    2017: (
        "netcdf/era5-levels-members.nc",
        "ecmwf/cfgrib tests/sample-data/era5-levels-members.grib "
        "(ERA5 EDA, stream=enda, member number=0, 3 deg)",
    ),
    2007: (
        "netcdf/era5-z-t-500-850-2007010112-1deg.nc",
        "ecmwf/earthkit-data "
        "docs/source/tutorials/grib/test4.grib (ERA5 HRES analysis, stream=oper, 1 deg)",
    ),
}
FIELDS = {"z": ("geopotential", 500), "t": ("temperature", 850)}
CREDIT = "Contains modified Copernicus Climate Change Service information 2026"


def default_source() -> Path:
    shared = os.environ.get("XDYN_SHARED_DIR")
    base = Path(shared) if shared else REPO.parent / "shared"
    return base / "data" / "era5"


def check_source(source: Path, rel: str) -> Path:
    sums = dict(
        reversed(line.split())
        for line in (source / "SHA256SUMS").read_text().splitlines()
        if line.strip()
    )
    path = source / rel
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if sums.get(f"./{rel}") != digest:
        raise SystemExit(f"{path}: sha256 {digest} does not match {source / 'SHA256SUMS'}")
    return path


def regrid(da: xr.DataArray) -> xr.DataArray:
    da = da.rename(latitude="lat", longitude="lon")
    padded = xr.concat([da, da.isel(lon=[0]).assign_coords(lon=[360.0])], "lon")
    return padded.interp(lat=LAT, lon=LON).astype("float32")


def field_dataset(da: xr.DataArray, name: str, level, year: int, origin: str) -> xr.Dataset:
    ds = da.to_dataset(name=name)
    ds["lat"].attrs = {"units": "degrees_north", "long_name": "latitude"}
    ds["lon"].attrs = {"units": "degrees_east", "long_name": "longitude"}
    ds["level"].attrs = {"units": "hPa", "long_name": "pressure level"}
    ds["time"].attrs = {"long_name": "time", "standard_name": "time"}  # analysis (valid) time
    ds[name].attrs = {k: da.attrs[k] for k in ("units", "long_name", "standard_name")}
    ds.attrs = {
        "Conventions": "CF-1.6",
        "title": f"ERA5 {name} in WeatherBench 5.625deg layout, {year} (xdyn test sample)",
        "source": f"ERA5 reanalysis (ECMWF / Copernicus C3S), from {origin}",
        "history": "DERIVED test fixture, NOT an original WeatherBench file: bilinear "
        "interpolation (xarray.interp, periodic lon pad) onto the WeatherBench 5.625 deg grid "
        "(lat -87.1875..87.1875, lon 0..354.375) by datasets/make_era5_wb5625_sample.py",
        "licence": CREDIT,
    }
    return ds


def write(ds: xr.Dataset, path: Path) -> Path:
    name = next(iter(ds.data_vars))
    encoding = {
        name: {"zlib": True, "complevel": 4, "shuffle": True},
        "time": {
            "units": "hours since 1979-01-01",
            "calendar": "proleptic_gregorian",
            "dtype": "int64",
        },
        "level": {"dtype": "int32"},
    }
    return write_netcdf_atomic(ds, path, encoding=encoding)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="make datasets/era5_wb5625_sample")
    parser.add_argument(
        "--source", type=Path, default=default_source(), help="the shared era5 folder"
    )
    args = parser.parse_args(argv)
    written = []
    for year, (rel, origin) in SOURCES.items():
        src = xr.open_dataset(check_source(args.source, rel)).load()
        if "number" in src.dims:
            src = src.sel(number=0)
        if "time" not in src.dims:
            src = src.expand_dims("time")
        src = src.drop_vars([c for c in ("number", "step", "valid_time") if c in src.coords])
        src = src.rename(isobaricInhPa="level")
        for var, (folder, level) in FIELDS.items():
            full = regrid(src[var]).sortby("level").transpose("time", "level", "lat", "lon")
            full = full.assign_coords(level=full.level.astype("int32"))
            one = full.sel(level=level)
            written.append(
                write(
                    field_dataset(one, var, level, year, origin),
                    OUT / f"{folder}_{level}" / f"{folder}_{level}hPa_{year}_5.625deg.nc",
                )
            )
            written.append(
                write(
                    field_dataset(full, var, None, year, origin),
                    OUT / folder / f"{folder}_{year}_5.625deg.nc",
                )
            )
    update_registry(written)


if __name__ == "__main__":
    main()
