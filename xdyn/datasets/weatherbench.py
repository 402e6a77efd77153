"""ERA5 in the WeatherBench layout, opened lazily with dask.

WeatherBench (Rasp et al. 2020, https://doi.org/10.1029/2020MS002203) regridded
ERA5 to 5.625°, 2.8125° and 1.40625° and publishes one folder per variable,
one netCDF file per year (data: https://mediatum.ub.tum.de/1524895, a Nextcloud
share at https://dataserv.ub.tum.de/s/m1524895)::

    geopotential_500/geopotential_500hPa_1979_5.625deg.nc        z   (time, lat, lon), level=500
    temperature_850/temperature_850hPa_1979_5.625deg.nc          t   (time, lat, lon), level=850
    2m_temperature/2m_temperature_1979_5.625deg.nc               t2m (time, lat, lon)
    10m_u_component_of_wind/10m_u_component_of_wind_1979_5.625deg.nc   u10
    geopotential/geopotential_1979_5.625deg.nc                   z   (time, level, lat, lon)
    constants/constants_5.625deg.nc                              orography, lsm, slt, lat2d, lon2d

Each folder is one zip on the share, ``<folder>/<folder>_5.625deg.zip``
(``constants`` is a plain ``.nc``). :func:`load_weatherbench` maps short names
(``z500``, ``t850``, ``t2m``, ``u10``, ``v10``, any ``z|t|u|v|q|r|pv|vo<level>``)
to those folders and in-file names, selects the pressure level from a
single-level folder or the multi-level one, and returns one Dataset with
``time`` (datetime64; cftime dates for files on a non-standard CF calendar
such as ``noleap``), ascending ``lat`` and ``lon`` with units. The
WeatherBench 2 zarr naming is handled by :func:`from_weatherbench2`.
"""

from __future__ import annotations

import fnmatch
import re
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from xdyn.datasets._fields import (
    CONSTANTS,
    LEVELS,
    MULTI_LEVEL,
    SINGLE_LEVEL,
    SINGLE_PRESSURE_FOLDERS,
    set_attrs,
    standard_grid,
)
from xdyn.datasets._netcdf import open_netcdf_lazily
from xdyn.datasets._wb_files import (
    GRID_SIZES,
    check_grid_size,
    check_lat_lon,
    check_resolution,
    concat_years,
    open_year,
)
from xdyn.datasets.registry import (DataIntegrityError, check_known_hash, check_sha256sums,
                                    data_dir, read_sha256sums)
from xdyn.datasets.weatherbench2 import from_weatherbench2
from xdyn.systems._validation import _check_int

__all__ = [
    "LEVELS",
    "WEATHERBENCH_SHARE",
    "from_weatherbench2",
    "known_variables",
    "load_constants",
    "load_weatherbench",
    "weatherbench_url",
]

#: Public share of WeatherBench 1 (TUM). Its download links are
#: ``{share}/download?path=%2F{resolution}%2F{folder}&files={folder}_{resolution}.zip``.
WEATHERBENCH_SHARE = "https://dataserv.ub.tum.de/s/m1524895"
_LEVEL_RE = re.compile(r"^(pv|vo|z|t|u|v|q|r)(\d+)$")


def known_variables() -> list[str]:
    """Short names :func:`load_weatherbench` knows (pressure levels: the headline ones).

    Any ``<z|t|u|v|q|r|pv|vo><level>`` with a level in :data:`LEVELS` is known too.

    Examples
    --------
    >>> known_variables()[:5]
    ['z500', 't850', 't2m', 'u10', 'v10']
    """
    return list(SINGLE_PRESSURE_FOLDERS) + list(SINGLE_LEVEL)


def weatherbench_url(folder: str, resolution: str = "5.625deg") -> str:
    """Download link of one WeatherBench folder on the TUM share.

    Parameters
    ----------
    folder : str
        WeatherBench folder (``"geopotential_500"``, ``"2m_temperature"`` ...); its zip
        archive is linked, or for ``"constants"`` the single file ``constants_<resolution>.nc``.
    resolution : {"5.625deg", "2.8125deg", "1.40625deg"}, default="5.625deg"
        Grid resolution (not checked here).

    Returns
    -------
    str

    Examples
    --------
    >>> weatherbench_url("geopotential_500")  # doctest: +NORMALIZE_WHITESPACE
    'https://dataserv.ub.tum.de/s/m1524895/download?path=%2F5.625deg%2Fgeopotential_500&files=geopotential_500_5.625deg.zip'
    """
    fname = f"constants_{resolution}.nc" if folder == "constants" else f"{folder}_{resolution}.zip"
    return f"{WEATHERBENCH_SHARE}/download?path=%2F{resolution}%2F{folder}&files={fname}"


def load_weatherbench(
    variables=("z500", "t850"),
    years=None,
    root=None,
    *,
    resolution: str = "5.625deg",
    chunks=None,
    verify: bool = False,
) -> xr.Dataset:
    """Open WeatherBench ERA5 fields lazily, one variable per short name.

    Parameters
    ----------
    variables : str or sequence of str, default=("z500", "t850")
        Short names: ``z500``, ``t850``, ``t2m``, ``u10``, ``v10``, ``tp``,
        ``tisr``, ``tcc``, or ``<z|t|u|v|q|r|pv|vo><level>`` (``z850``,
        ``u250``) read from the multi-level folder (``geopotential/`` ...).
        ``z500``/``t850`` come from their own folder when present, else from
        the multi-level one.
    years : int, sequence of int or None
        Years to open (files ``<folder>/<name>_<year>_<resolution>.nc``); None
        opens every ``*.nc`` in each folder. Several years are concatenated
        along ``time``.
    root : str or Path, optional
        Folder holding the variable folders; default ``$XDYN_DATA_DIR/weatherbench``.
    resolution : {"5.625deg", "2.8125deg", "1.40625deg"}, default="5.625deg"
        Resolution tag in the file names; every file must be on its grid.
    chunks : dict or str, optional
        Dask chunks; default ``"auto"``: chunks of dask's target size (about
        128 MiB) that are multiples of the files' own chunking. (``{}`` would
        keep the files' chunking, which can be one time step per chunk.)
    verify : bool, default=False
        Also check every file's sha256 against the ``SHA256SUMS`` that
        :func:`~xdyn.datasets.fetch_weatherbench` records when it extracts a
        verified archive. This reads every byte once (seconds per GB), and is
        the only way to catch bit rot in an uncompressed file, whose damaged
        values read as plausible numbers. Files with no recorded checksum are
        named in a warning. (Each file is always checked for its layout, and a
        file the registry pins always for its sha256.)

    Returns
    -------
    xarray.Dataset
        Dask-backed; dims ``(time, lat, lon)``, variables named by short name with
        ``units``, ``long_name`` and ``standard_name``; pressure-level variables
        record their level in ``attrs["level"]`` (hPa).

    Raises
    ------
    ValueError
        Unknown short name or resolution (the message lists the known ones) or missing level;
        a file that does not fit the layout -- the wrong variable, other dims
        than ``(time, lat, lon)``, times outside the year in its name, a grid
        or calendar unlike the other years', the same times in two files. The
        message names the file and the fix.
    FileNotFoundError
        A folder or year is missing; the message names the expected path and
        the download link.
    xdyn.datasets.DataIntegrityError
        A file is corrupt or truncated: at open, or -- data stay lazy -- when a
        damaged chunk is read (the error names the file, not only
        ``NetCDF: HDF error``). A file the registry pins (the shipped sample)
        is checked against its sha256.

    Examples
    --------
    >>> from xdyn.datasets import fetch
    >>> root = fetch("era5-wb5625-sample")
    >>> ds = load_weatherbench(["z500", "t850"], years=[2007, 2017], root=root)
    >>> dict(ds.sizes)
    {'time': 5, 'lat': 32, 'lon': 64}
    >>> ds.z500.attrs["units"], ds.lat.attrs["units"]
    ('m**2 s**-2', 'degrees_north')
    """
    return _load(variables, years, root, resolution, chunks, verify)


def _load(variables, years, root, resolution="5.625deg", chunks=None, verify=False, listing=None):
    """:func:`load_weatherbench`, reading exactly the files of ``listing`` when given.

    ``listing`` maps a folder name (``"geopotential_500"``) to its files, wherever
    they lie (a registry dataset verified partly in the shipped folder, partly in
    the cache); ``root`` then only names the expected folders in messages.
    """
    names = [variables] if isinstance(variables, str) else list(variables)
    if not names:
        raise ValueError("variables must name at least one field")
    check_resolution(resolution)
    root = Path(root) if root is not None else data_dir() / "weatherbench"
    year_list = _as_years(years)
    chunks = "auto" if chunks is None else chunks
    unverified: list[Path] = []
    parts = [
        _open_field(name, year_list, root, resolution, chunks, verify, unverified, listing)
        for name in names
    ]
    if unverified:
        warnings.warn(
            f"verify=True, but no checksum is recorded for {len(unverified)} file(s), e.g. "
            f"{unverified[0]}: they were checked for their layout only. Files extracted by "
            f"xdyn.datasets.fetch_weatherbench have their sha256 in the folder's SHA256SUMS.",
            UserWarning,
            stacklevel=3,
        )
    ds = _merge_on_grid(parts)
    if "time" in ds.coords:  # analysis (valid) time, whatever the source GRIB called it
        ds["time"].attrs.update(long_name="time", standard_name="time")
    ds.attrs.update(
        {
            "source": "ERA5 (ECMWF/Copernicus C3S) in the WeatherBench layout "
            "(Rasp et al. 2020, doi:10.1029/2020MS002203)",
            "resolution": resolution,
            "weatherbench_root": str(root),
        }
    )
    return ds


def load_constants(root=None, *, resolution: str = "5.625deg", chunks=None) -> xr.Dataset:
    """Open WeatherBench's constant fields (orography, lsm, slt, lat2d, lon2d).

    Parameters
    ----------
    root : str or Path, optional
        Folder holding ``constants/``; default ``$XDYN_DATA_DIR/weatherbench``.
    resolution : {"5.625deg", "2.8125deg", "1.40625deg"}, default="5.625deg"
        Reads ``constants/constants_<resolution>.nc``, else the one other
        ``*.nc`` there not named for another resolution; either must be on the
        ``resolution`` grid.
    chunks : dict or str, optional
        None (default) loads into memory; else opens lazily with dask.

    Returns
    -------
    xarray.Dataset
        Whichever of ``orography``, ``lsm``, ``slt``, ``lat2d``, ``lon2d`` the
        file holds, on ``(lat, lon)`` with units.

    Raises
    ------
    FileNotFoundError
        No constants file (the message names the expected path and the link).
    ValueError
        Unknown resolution; the file holds none of the constant fields, one
        not on ``(lat, lon)``, or is on another grid than ``resolution``'s.
    xdyn.datasets.DataIntegrityError
        The file is corrupt or truncated (at open, or when its data are read),
        or its lat/lon are not finite and strictly increasing.

    Examples
    --------
    >>> import tempfile, numpy as np, xarray as xr, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "constants").mkdir()
    >>> grid = {"lat": np.arange(-87.1875, 90, 5.625), "lon": np.arange(0, 360, 5.625)}
    >>> xr.Dataset({"lsm": (("lat", "lon"), np.zeros((32, 64)))}, coords=grid).to_netcdf(
    ...     root / "constants" / "constants_5.625deg.nc")
    >>> load_constants(root).lsm.attrs["long_name"]
    'Land-sea mask'
    """
    check_resolution(resolution)
    root = Path(root) if root is not None else data_dir() / "weatherbench"
    folder = root / "constants"
    path = folder / f"constants_{resolution}.nc"
    if not path.is_file():
        # a renamed copy is accepted, but never another resolution's file
        others = tuple(f"_{r}.nc" for r in GRID_SIZES if r != resolution)
        on_disk = sorted(folder.glob("*.nc")) if folder.is_dir() else []
        found = [p for p in on_disk if not p.name.endswith(others)]
        if len(found) != 1:
            if found:
                why = f" (the other *.nc there, {[p.name for p in found]}, are ambiguous)"
            elif on_disk:
                why = f" (only other resolutions' files are there: {[p.name for p in on_disk]})"
            else:
                why = ""
            raise FileNotFoundError(
                f"WeatherBench constants not found: expected {path}{why}. Download "
                f"{weatherbench_url('constants', resolution)} into {folder}/."
            )
        path = found[0]
    fix = (
        f"To fix: delete {path} and download {weatherbench_url('constants', resolution)} "
        f"again into {folder}/."
    )
    ds = standard_grid(open_netcdf_lazily(path, chunks if chunks is not None else {}, fix=fix))
    known = [name for name in CONSTANTS if name in ds.data_vars]
    if not known:
        raise ValueError(
            f"WeatherBench constants file {path} holds none of the constant fields "
            f"{list(CONSTANTS)} (it holds {sorted(ds.data_vars)}): it is not the "
            f"constants file. {fix}"
        )
    for name in known:
        if set(ds[name].dims) != {"lat", "lon"}:
            raise ValueError(
                f"WeatherBench constants file {path}: {name!r} has dims {ds[name].dims}; "
                f"expected ('lat', 'lon'). {fix}"
            )
        units, long_name, standard_name = CONSTANTS[name]
        set_attrs(ds[name], units, long_name, standard_name)
    check_lat_lon(ds, path, fix)
    check_grid_size(ds, path, resolution, fix)
    return ds.load() if chunks is None else ds


# --- private -----------------------------------------------------------------
def _as_years(years):
    if years is None:
        return None
    if isinstance(years, (str, bytes)) or not np.iterable(years):
        years = [years]
    try:
        out = [_check_int(int(y) if isinstance(y, str) and y.isdigit() else y, "years")
               for y in years]
    except TypeError as exc:
        raise TypeError(f"years must be whole years (e.g. 2017 or [2016, 2017]), got {years!r}") \
            from exc
    if not out:
        raise ValueError("years is empty; pass None for every year on disk")
    if len(set(out)) != len(out):
        raise ValueError(f"years lists a year twice: {out}")
    return out


def _parse(name: str):
    """(field, [(folder, stem, level_to_select)], level) for a short name."""
    if name in SINGLE_LEVEL:
        f = SINGLE_LEVEL[name]
        return f, [(f.folder, f.folder, None)], None
    m = _LEVEL_RE.match(name)
    if m and int(m.group(2)) in LEVELS and m.group(1) in MULTI_LEVEL:
        f, level = MULTI_LEVEL[m.group(1)], int(m.group(2))
        candidates = []
        if name in SINGLE_PRESSURE_FOLDERS:
            folder = SINGLE_PRESSURE_FOLDERS[name]
            candidates.append((folder, f"{f.folder}_{level}hPa", level))
        candidates.append((f.folder, f.folder, level))
        return f, candidates, level
    raise ValueError(
        f"unknown WeatherBench variable {name!r}; known: {known_variables()}, or "
        f"<{'|'.join(MULTI_LEVEL)}><level> with level in {list(LEVELS)} (e.g. 'z850')"
    )


def _open_field(name, years, root, resolution, chunks, verify=False, unverified=None,
                listing=None):
    field, candidates, level = _parse(name)
    if listing is None:
        present = [c for c in candidates if (root / c[0]).is_dir()]
    else:
        present = [c for c in candidates if listing.get(c[0])]
    if not present:
        expected = " or ".join(str(root / c[0]) for c in candidates)
        links = ", ".join(weatherbench_url(c[0], resolution) for c in candidates)
        raise FileNotFoundError(
            f"no WeatherBench folder for {name!r}: expected {expected}. Download and "
            f"unzip {links} there (or xdyn.datasets.fetch_weatherbench({name!r}, known_hash=...)), "
            f"or pass root= the folder that holds it."
        )
    folder, stem, select = present[0]
    files = _files(root / folder, stem, years, resolution, name,
                   None if listing is None else listing[folder])
    # One file at a time, each checked against the layout, so that a bad file is
    # named (a combined open would outer-join a wrong variable into NaNs, drop a
    # mislabelled year, or fail on the merged index without saying which file).
    def fix_for(path):
        return _refetch(path, resolution)

    if verify:
        if years is None:  # every year the download recorded must still be there
            listed = read_sha256sums(root / folder)
            gone = sorted(n for n in listed if n.endswith(f"_{resolution}.nc")
                          and not (root / folder / n).is_file())
            if gone:
                raise DataIntegrityError(
                    f"verify=True: {len(gone)} file(s) listed in {root / folder / 'SHA256SUMS'} "
                    f"are missing, e.g. {gone[0]} (deleted?); loading would silently drop "
                    f"their years. {fix_for(root / folder / gone[0])}")
        for path in files:
            if not (check_sha256sums(path, fix_for(path)) or check_known_hash(path)):
                unverified.append(path)
    parts = [
        open_year(path, field.var, select, name, resolution, chunks, fix_for(path))
        for path in files
    ]
    da = concat_years(parts, files, name, fix_for)
    units = da.attrs.get("units", field.units)
    long_name = f"{field.long_name} at {level} hPa" if level else field.long_name
    set_attrs(da, units, long_name, field.standard_name)
    if level:
        da.attrs.update(level=level, level_units="hPa")
    return da.rename(name)


def _files(folder: Path, stem: str, years, resolution: str, name: str,
           available=None) -> list[Path]:
    """The files of ``years`` (None: all) among ``available``, default ``folder``'s ``*.nc``."""
    available = sorted(folder.glob("*.nc") if available is None else available)
    if years is None:
        if not available:
            raise FileNotFoundError(f"no *.nc files in {folder} (for {name!r})")
        return available
    by_name = {p.name: p for p in available}
    out = []
    for year in years:
        fname = f"{stem}_{year}_{resolution}.nc"
        path = by_name.get(fname, folder / fname)
        if fname not in by_name:
            alt = [p for p in available if fnmatch.fnmatchcase(p.name, f"*_{year}_{resolution}.nc")]
            if len(alt) != 1:
                on_disk = sorted(
                    {m.group(1) for p in available if (m := re.search(r"_(\d{4})_", p.name))}
                )
                raise FileNotFoundError(
                    f"WeatherBench file for {name!r}, year {year} not found: expected "
                    f"{path}. Years on disk in {folder}: {on_disk or 'none'}. Get it from "
                    f"{weatherbench_url(folder.name, resolution)} (unzip into {folder}/)."
                )
            path = alt[0]
        out.append(path)
    return out


def _refetch(path: Path, resolution: str = "5.625deg") -> str:
    folder = path.parent
    return (
        f"To fix: delete {path} and download {weatherbench_url(folder.name, resolution)} "
        f"again (unzip into {folder}/), or remove the file from the folder."
    )


def _merge_on_grid(parts: list[xr.DataArray]) -> xr.Dataset:
    ref = parts[0]
    aligned = [ref]
    for da in parts[1:]:
        for dim in ("lat", "lon"):
            a, b = ref[dim].values, da[dim].values
            if a.shape != b.shape or not np.allclose(a, b, atol=1e-6):
                raise ValueError(f"{ref.name!r} and {da.name!r} are on different {dim} grids")
        aligned.append(da.assign_coords(lat=ref["lat"], lon=ref["lon"]))
    timed = [da for da in aligned if "time" in da.indexes]
    if any(not da.indexes["time"].equals(timed[0].indexes["time"]) for da in timed[1:]):
        # an outer join would NaN-fill each variable where another has times it lacks
        spans = "; ".join(f"{da.name}: {da.sizes['time']} times, {da.time.values[0]} to "
                          f"{da.time.values[-1]}" for da in timed)
        raise ValueError(f"the variables cover different times ({spans}); pass the years "
                         "they share, or load them apart")
    # Datasets (not DataArrays) so that no variable's attrs become the Dataset's.
    return xr.merge(
        [da.to_dataset() for da in aligned],
        join="outer",
        compat="no_conflicts",
        combine_attrs="override",
    )
