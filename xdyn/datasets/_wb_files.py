"""Checks of one WeatherBench file against the layout, and the join of its years.

Every file is opened on its own (lazily) and checked before the years are
joined, so a bad file is named with the fix: the wrong variable, other dims
than ``(time, lat, lon)``, bad or unordered coordinates, times outside the year
in its name, a grid of another size or position, the same times in two files.
A combined open (``xr.open_mfdataset``) would instead outer-join a wrong
variable into NaNs, drop a mislabelled year, or fail on the merged index
without saying which file.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import cftime
import numpy as np
import xarray as xr

from xdyn.datasets._fields import standard_grid
from xdyn.datasets._netcdf import open_netcdf_lazily
from xdyn.datasets.registry import DataIntegrityError

__all__ = [
    "GRID_SIZES",
    "check_grid_size",
    "check_lat_lon",
    "check_resolution",
    "concat_years",
    "open_year",
]

#: (lat, lon) sizes of WeatherBench's published grids (Rasp et al. 2020, Table 1).
GRID_SIZES = {"5.625deg": (32, 64), "2.8125deg": (64, 128), "1.40625deg": (128, 256)}


def open_year(path: Path, var: str, select, name, resolution, chunks, fix: str) -> xr.DataArray:
    """One WeatherBench file as a checked, lazy ``(time, lat, lon)`` DataArray.

    ``var`` is the in-file name of short name ``name``; ``select`` the pressure
    level to take from a multi-level file (or None); ``fix`` ends every message.
    """
    ds = standard_grid(open_netcdf_lazily(path, chunks, fix=fix))
    if var not in ds.data_vars:
        raise ValueError(
            f"WeatherBench file {path} holds {sorted(ds.data_vars)}, not {var!r} (the "
            f"name of {name!r} in its files): it is in the wrong folder or is not this "
            f"variable. {fix}"
        )
    da = ds[var]
    core = tuple(d for d in da.dims if d != "level")
    if sorted(core) != ["lat", "lon", "time"]:
        raise ValueError(
            f"WeatherBench file {path}: variable {var!r} has dims {da.dims}; expected "
            f"('time', 'lat', 'lon') (or latitude/longitude), plus 'level' in a multi-level "
            f"folder. The file is not in WeatherBench layout. {fix}"
        )
    check_coords(da, path, fix)
    check_grid_size(da, path, resolution, fix)
    if select is not None:
        da = select_level(da, select, name, path)
    da = da.drop_vars([c for c in da.coords if c not in da.dims])
    return da.transpose("time", "lat", "lon")


def check_resolution(resolution) -> str:
    """``resolution`` if WeatherBench publishes it, else a ValueError listing those it does.

    Examples
    --------
    >>> check_resolution("5.625deg")
    '5.625deg'
    >>> check_resolution("5.625")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown WeatherBench resolution '5.625'; known: '5.625deg', ...
    """
    if resolution not in GRID_SIZES:
        known = ", ".join(repr(r) for r in GRID_SIZES)
        raise ValueError(f"unknown WeatherBench resolution {resolution!r}; known: {known}")
    return resolution


def check_grid_size(obj, path: Path, resolution: str, fix: str) -> None:
    """Refuse a file whose (lat, lon) sizes are not those of the ``resolution`` grid."""
    expected = GRID_SIZES[resolution]
    found = (obj.sizes["lat"], obj.sizes["lon"])
    if found != expected:
        raise ValueError(
            f"WeatherBench file {path} has a {found[0]} x {found[1]} (lat x lon) grid; the "
            f"{resolution} grid is {expected[0]} x {expected[1]}: it is another resolution "
            f"or was cut. {fix}"
        )


def check_lat_lon(obj, path: Path, fix: str) -> None:
    """Latitudes and longitudes a WeatherBench file must have: finite, strictly increasing."""
    lat, lon = obj["lat"].values, obj["lon"].values
    if not (np.all(np.isfinite(lat)) and np.all(np.abs(lat) <= 90.0)):
        raise DataIntegrityError(f"WeatherBench file {path} has latitudes outside [-90, 90]. {fix}")
    if not np.all(np.isfinite(lon)) or np.any(np.diff(lon) <= 0) or np.any(np.diff(lat) <= 0):
        raise DataIntegrityError(
            f"WeatherBench file {path} has repeated or unordered lat/lon coordinates. {fix}"
        )


def check_coords(da: xr.DataArray, path: Path, fix: str) -> None:
    """Coordinates a WeatherBench file must have: finite, increasing, in its year.

    ``time`` is datetime64, or cftime dates for a file on a non-standard CF
    calendar (``noleap``, ``360_day`` ...), which DESIGN's data model allows.
    """
    check_lat_lon(da, path, fix)
    time = da["time"].values
    if time.size == 0:
        # a year with no time step would drop out of the join (or fail on time[0])
        raise DataIntegrityError(
            f"WeatherBench file {path} holds no time steps (its time dimension is empty): "
            f"it was cut short or written empty. {fix}"
        )
    cf_dates = [t for t in time if isinstance(t, cftime.datetime)] if time.dtype == object else []
    if not (cf_dates or np.issubdtype(time.dtype, np.datetime64)):
        raise ValueError(
            f"WeatherBench file {path}: 'time' is not a date ({time.dtype}); its units attr "
            f"may be missing or damaged. {fix}"
        )
    if cf_dates:  # a non-standard CF calendar (noleap, 360_day ...): cftime dates
        missing = len(cf_dates) < time.size
        step = datetime.timedelta(0)
    else:
        missing, step = np.any(np.isnat(time)), np.timedelta64(0)
    if missing or np.any(np.diff(time) <= step):
        raise DataIntegrityError(
            f"WeatherBench file {path} has missing, repeated or unordered times. {fix}"
        )
    m = re.search(r"_(\d{4})_", path.name)
    if m:
        if cf_dates:
            years = np.array([t.year for t in cf_dates])
        else:
            years = time.astype("datetime64[Y]").astype(int) + 1970
        if np.any(years != int(m.group(1))):
            raise ValueError(
                f"WeatherBench file {path} is named for {m.group(1)} but holds times "
                f"{time[0]} .. {time[-1]}: it was renamed or mislabelled. {fix}"
            )


def concat_years(parts: list[xr.DataArray], files: list[Path], name, fix_for) -> xr.DataArray:
    """The checked years of one variable along ``time``; a file off the shared grid is named."""
    ref = parts[0]
    for da, path in zip(parts[1:], files[1:]):
        for dim in ("lat", "lon"):
            a, b = ref[dim].values, da[dim].values
            if a.shape != b.shape or not np.allclose(a, b, atol=1e-6):
                raise ValueError(
                    f"WeatherBench file {path} is on a different {dim} grid from {files[0]} "
                    f"({_describe(b)} vs {_describe(a)}): every year of {name!r} must share "
                    f"one grid. {fix_for(path)}"
                )
    calendars = [calendar(da["time"].values) for da in parts]
    for cal, path in zip(calendars[1:], files[1:]):
        if cal != calendars[0]:  # their times cannot be ordered or joined
            raise ValueError(
                f"WeatherBench file {path} has times on the {cal} calendar, {files[0]} on the "
                f"{calendars[0]} one: every year of {name!r} must share one calendar. To "
                f"fix: convert one (xarray's Dataset.convert_calendar), or load the years apart."
            )
    order = np.argsort([da["time"].values[0] for da in parts], kind="stable")
    parts = [parts[i].assign_coords(lat=ref["lat"], lon=ref["lon"]) for i in order]
    files = [files[i] for i in order]
    for (a, pa), (b, pb) in zip(zip(parts, files), zip(parts[1:], files[1:])):
        if a["time"].values[-1] >= b["time"].values[0]:
            raise ValueError(
                f"WeatherBench files {pa} and {pb} overlap in time ({b['time'].values[0]}): "
                f"the folder holds the same year twice (e.g. a copy under another name); "
                f"keep one of them."
            )
    if len(parts) == 1:
        return parts[0]
    return xr.concat(parts, "time", coords="minimal", compat="override",
                     combine_attrs="drop_conflicts", join="exact")


def calendar(time: np.ndarray) -> str:
    """The CF calendar of checked times: a cftime date's, else ``standard (datetime64)``.

    Examples
    --------
    >>> import cftime, numpy as np
    >>> calendar(np.array(["2017-01-01"], dtype="datetime64[ns]"))
    'standard (datetime64)'
    >>> calendar(np.array([cftime.DatetimeNoLeap(2017, 1, 1)]))
    'noleap'
    """
    first = time.flat[0] if time.size else None
    return first.calendar if isinstance(first, cftime.datetime) else "standard (datetime64)"


def _describe(values: np.ndarray) -> str:
    if values.size == 0:
        return "empty"
    return f"{values.size} points, {values[0]:g} .. {values[-1]:g}"


def select_level(da: xr.DataArray, level: int, name: str, path: Path) -> xr.DataArray:
    if "level" in da.dims:
        levels = da["level"].values.tolist()
        if level not in levels:
            raise ValueError(f"{name!r}: level {level} hPa not in {path} (levels {levels})")
        return da.sel(level=level)
    if "level" in da.coords and int(da["level"].values) != level:
        raise ValueError(f"{name!r}: file {path} is at level {int(da['level'])} hPa, not {level}")
    return da
