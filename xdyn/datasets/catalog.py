"""The named datasets xdyn knows, and ``load`` / ``fetch`` / ``list_datasets``.

Three kinds of dataset share one namespace:

``published``
    files with a sha256 in ``registry.txt``; the small ones are shipped in the
    repository's ``datasets/`` folder (found without network), the others are
    fetched by pooch into ``$XDYN_DATA_DIR``.
``generated``
    made on demand from a recorded configuration (:mod:`xdyn.datasets.generated`).
``weatherbench``
    ERA5 from the WeatherBench share, unzipped under ``$XDYN_DATA_DIR/weatherbench``
    (:mod:`xdyn.datasets.weatherbench`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import xarray as xr

from xdyn.datasets import generated as _gen
from xdyn.datasets import weatherbench as _wb
from xdyn.datasets._atomic import atomic_path
from xdyn.datasets.registry import (
    BASE_URL,
    DataIntegrityError,
    data_dir,
    file_sha256,
    make_pooch,
    read_registry,
    resolve,
    shipped_dir,
)
from xdyn.datasets.weatherbench_download import fetch_weatherbench

__all__ = ["CATALOG", "DatasetSpec", "fetch", "list_datasets", "load", "register_generated"]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A published dataset: registry files under ``prefix`` and how to open them.

    Parameters
    ----------
    name : str
        The name :func:`load` and :func:`fetch` take.
    description : str
        One line for :func:`list_datasets`.
    prefix : str
        A registry file name, or a folder whose files (``prefix/...``) make up the dataset.
    opener : callable
        ``opener(paths, **kwargs) -> xarray.Dataset`` on the local paths of the files.
    script : str, optional
        The script in ``datasets/`` that made the files (named in error messages).
    source : str, default ""
        Where the data come from.

    Examples
    --------
    >>> from xdyn.datasets.catalog import CATALOG
    >>> spec = CATALOG["lorenz63-sample"]
    >>> spec.files(), spec.script
    (['lorenz63_sample.nc'], 'make_lorenz_samples.py')
    >>> CATALOG["era5-wb5625-sample"].files()[0]
    'era5_wb5625_sample/geopotential/geopotential_2007_5.625deg.nc'
    """

    name: str
    description: str
    prefix: str
    opener: Callable[..., xr.Dataset]
    script: str | None = None
    source: str = ""

    def files(self) -> list[str]:
        """Registry names of its files.

        Examples
        --------
        >>> len(CATALOG["era5-wb5625-sample"].files())  # z500, t850, z and t, two years each
        8
        """
        return sorted(
            f for f in read_registry() if f == self.prefix or f.startswith(self.prefix + "/")
        )


def _open_netcdf(paths, *, chunks=None) -> xr.Dataset:
    return _gen.open_checked(
        paths[0], chunks=chunks, fix="Restore or refetch it (see the registry)."
    )


def _sample_roots(paths) -> list[Path]:
    # .../era5_wb5625_sample/<folder>/<file>.nc -> .../era5_wb5625_sample; resolve() looks
    # each file up on its own, so some may be shipped and others in the cache
    return sorted({Path(p).parent.parent for p in paths})


def _open_wb_sample(paths, *, variables=("z500", "t850"), years=None, chunks=None) -> xr.Dataset:
    listing: dict[str, list[Path]] = {}
    for path in map(Path, paths):  # exactly the verified files, wherever each lies
        listing.setdefault(path.parent.name, []).append(path)
    roots = _sample_roots(paths)
    ds = _wb._load(variables, years, roots[0], chunks=chunks, listing=listing)
    ds.attrs["weatherbench_root"] = os.pathsep.join(str(root) for root in roots)
    ds.attrs["title"] = (
        "ERA5 sample in WeatherBench 5.625 deg layout (derived; not WeatherBench data)"
    )
    ds.attrs["history"] = (
        "bilinear interpolation of ERA5 samples (ecmwf/cfgrib era5-levels-members member 0, "
        "ecmwf/earthkit-data test4) onto the WeatherBench 5.625 deg grid; "
        "see datasets/README.md and datasets/make_era5_wb5625_sample.py"
    )
    return ds


CATALOG: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            "lorenz63-sample",
            "Lorenz-63 trajectory (classical parameters), 50 time units saved every 0.05, seed 0",
            "lorenz63_sample.nc",
            _open_netcdf,
            script="make_lorenz_samples.py",
            source="xdyn.systems.Lorenz63.simulate",
        ),
        DatasetSpec(
            "lorenz96-sample",
            "Lorenz-96 trajectory (n=40, F=8), 20 time units saved every 0.05, seed 0",
            "lorenz96_sample.nc",
            _open_netcdf,
            script="make_lorenz_samples.py",
            source="xdyn.systems.Lorenz96.simulate",
        ),
        DatasetSpec(
            "era5-wb5625-sample",
            "Real ERA5 z500/t850 regridded to the WeatherBench 5.625 deg grid and layout "
            "(2007-01-01T12; 2017-01-01..02 12-hourly; also multi-level z/t files), for tests",
            "era5_wb5625_sample",
            _open_wb_sample,
            script="make_era5_wb5625_sample.py",
            source="ERA5 (Copernicus C3S) samples from ecmwf/cfgrib and ecmwf/earthkit-data",
        ),
    ]
}

_WB_NAMES = {f"weatherbench-{v}": v for v in ["z500", "t850", "t2m", "u10", "v10", "constants"]}


def register_generated(name: str, generator, config: dict, **kwargs):
    """Register a generated dataset, refusing a published dataset's name.

    The one public entry point (``xdyn.datasets.register_generated``): the
    catalogue owns the shared namespace, so the clash check lives here and
    :func:`xdyn.datasets.generated.register_generated` (same parameters) needs
    nothing from this module.

    Parameters
    ----------
    name : str
        Dataset name; it must not be one of the published datasets of the catalogue.
    generator : callable
        ``generator(**config) -> xarray.Dataset``, deterministic given its config.
    config : dict
        Default keyword arguments of ``generator``, JSON-serialisable.
    **kwargs
        ``version``, ``description``, ``script`` and ``replace`` of
        :func:`xdyn.datasets.generated.register_generated`.

    Returns
    -------
    GeneratedSpec

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from xdyn.datasets import register_generated
    >>> register_generated("lorenz63-sample", lambda: xr.Dataset(), {})
    Traceback (most recent call last):
    ...
    ValueError: 'lorenz63-sample' is already a published dataset name
    """
    if name in CATALOG:
        raise ValueError(f"{name!r} is already a published dataset name")
    return _gen.register_generated(name, generator, config, **kwargs)


def _kind(name: str) -> str:
    if name in CATALOG:
        return "published"
    if name in _gen.registered_generated():
        return "generated"
    if name in _WB_NAMES:
        return "weatherbench"
    raise ValueError(f"unknown dataset {name!r}; known: {_all_names()}")


def _all_names() -> list[str]:
    return list(CATALOG) + list(_gen.registered_generated()) + list(_WB_NAMES)


def load(name: str, **kwargs) -> xr.Dataset:
    """Open a named dataset, fetching or generating it first if needed.

    Parameters
    ----------
    name : str
        A name from :func:`list_datasets`.
    **kwargs
        Passed to the dataset's opener: ``chunks`` for every dataset (None
        loads small files into memory; a dict opens lazily with dask);
        ``variables``/``years`` for the ERA5 sets; configuration overrides,
        ``force``, ``on_mismatch`` and ``client`` (make a missing set's
        trajectories as dask tasks on it) for generated sets.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones).
    xdyn.datasets.DataIntegrityError
        A file is corrupt, truncated, or not the one the registry pins; the
        message names it and the fix.
    xdyn.datasets.DataUnavailableError
        Not on disk and cannot be downloaded (offline).

    Examples
    --------
    >>> ds = load("lorenz63-sample")
    >>> sorted(ds.data_vars), ds.attrs["system"]
    (['x', 'y', 'z'], 'Lorenz63')
    >>> load("era5-wb5625-sample").z500.dims
    ('time', 'lat', 'lon')
    """
    kind = _kind(name)
    if kind == "generated":
        return _gen.load_generated(name, **kwargs)
    if kind == "weatherbench":
        short = _WB_NAMES[name]
        if short == "constants":
            return _wb.load_constants(**kwargs)
        return _wb.load_weatherbench(short, **kwargs)
    spec = CATALOG[name]
    paths = [resolve(f, dataset=name, script=spec.script) for f in spec.files()]
    return spec.opener(paths, **kwargs)


def fetch(name: str, *, force: bool = False, **kwargs) -> Path:
    """Make a named dataset available on disk and return its path.

    This is what ``xdyn data fetch NAME`` runs. A published file is verified
    (shipped copy) or downloaded into ``$XDYN_DATA_DIR``; a generated set is made
    (``force=True`` remakes it); a WeatherBench folder is downloaded and
    unzipped (needs ``known_hash=``, see :func:`xdyn.datasets.fetch_weatherbench`).

    Parameters
    ----------
    name : str
    force : bool, default=False
        Regenerate a generated set even if a valid copy is cached.
    **kwargs
        Configuration overrides and ``client`` (a ``distributed.Client`` that
        makes a generated set's trajectories as dask tasks) for generated
        sets, or ``known_hash``/``root`` (WeatherBench).

    Returns
    -------
    pathlib.Path
        The file, or the folder for multi-file datasets. That folder holds
        every file of the dataset, verified: when some files are verified in
        the shipped folder and others in the cache (``$XDYN_DATA_DIR``), the
        shipped ones are copied into the cache (and checked again), and the
        cache's folder is returned.

    Examples
    --------
    >>> fetch("lorenz96-sample").name
    'lorenz96_sample.nc'
    >>> (fetch("era5-wb5625-sample") / "geopotential_500").is_dir()
    True
    """
    kind = _kind(name)
    client = kwargs.pop("client", None)  # only a generated set's trajectories run as tasks
    if kind == "generated":
        return _gen.fetch_generated(name, force=force, client=client, **kwargs)
    if kind == "weatherbench":
        return fetch_weatherbench(_WB_NAMES[name], **kwargs)
    spec = CATALOG[name]
    files = spec.files()
    paths = [resolve(f, dataset=name, script=spec.script) for f in files]
    if len(paths) == 1 and spec.prefix.endswith(".nc"):
        return paths[0]
    roots = _sample_roots(paths)
    return roots[0] if len(roots) == 1 else _gather_in_cache(spec, files, paths)


def _gather_in_cache(spec: DatasetSpec, files: list[str], paths: list[Path]) -> Path:
    """Copy into the cache each verified file not there yet; return the cache's dataset folder."""
    cache, registry = Path(make_pooch().abspath), read_registry()
    for fname, path in zip(files, paths):
        target = cache / fname
        want = registry[fname].partition(":")[2].lower()
        if path == target or (target.is_file() and file_sha256(target) == want):
            continue
        with atomic_path(target) as tmp:
            shutil.copyfile(path, tmp)
            if file_sha256(tmp) != want:  # changed since resolve() verified it
                raise DataIntegrityError(
                    f"{path} changed while it was copied to {target} (sha256 {file_sha256(tmp)}, "
                    f"the registry's is {want}); it was not copied. Run the fetch again."
                )
    return cache / spec.prefix


def list_datasets() -> list[dict]:
    """Every dataset xdyn knows, with where it comes from and whether it is on disk.

    Returns
    -------
    list of dict
        Keys: ``name``, ``kind`` (published, generated, weatherbench),
        ``description``, ``source``, ``size`` (bytes on disk, or None when not
        on disk), ``path`` (on disk, or None; None too for a multi-file set whose
        files lie in two folders, which :func:`fetch` puts together), ``cached``
        (on disk and valid),
        ``offline`` (loadable without network). Nothing is downloaded or
        generated, and no hash is recomputed for a file already verified.

    Examples
    --------
    >>> rows = {row["name"]: row for row in list_datasets()}
    >>> rows["lorenz63-sample"]["offline"]
    True
    >>> rows["lorenz96-climatology"]["kind"]
    'generated'
    """
    rows = [_published_row(spec) for spec in CATALOG.values()]
    rows += [_generated_row(spec) for spec in _gen.registered_generated().values()]
    rows += [_weatherbench_row(name, short) for name, short in _WB_NAMES.items()]
    return rows


# --- rows --------------------------------------------------------------------
def _published_row(spec: DatasetSpec) -> dict:
    registry = read_registry()
    shipped, cache = shipped_dir(), Path(make_pooch().abspath)
    found, size, shipped_all = [], 0, True
    for fname in spec.files():
        want = registry[fname].partition(":")[2]
        for base, is_shipped in ((shipped, True), (cache, False)):
            if base is not None and (base / fname).is_file() and file_sha256(base / fname) == want:
                found.append(base / fname)
                size += (base / fname).stat().st_size
                shipped_all &= is_shipped
                break
    complete = bool(found) and len(found) == len(spec.files())
    path = None
    if complete and spec.prefix.endswith(".nc"):
        path = found[0]
    elif complete and len(_sample_roots(found)) == 1:  # else fetch() puts them in one folder
        path = _sample_roots(found)[0]
    return {
        "name": spec.name,
        "kind": "published",
        "description": spec.description,
        "source": f"{spec.source}; "
        + ("shipped in datasets/" if complete and shipped_all else f"published at {BASE_URL}"),
        "size": size if complete else None,
        "path": str(path) if path else None,
        "cached": complete,
        "offline": complete,
    }


def _generated_row(spec) -> dict:
    path = _gen.generated_path(spec.name)
    ok = _gen.cached_ok(spec.name)
    return {
        "name": spec.name,
        "kind": "generated",
        "description": spec.description,
        "source": f"generated by {spec.generator.__module__}.{spec.generator.__qualname__}"
        + (f" (datasets/{spec.script})" if spec.script else ""),
        "size": path.stat().st_size if ok else None,
        "path": str(path) if ok else None,
        "cached": ok,
        "offline": True,  # generated locally, no network needed
    }


def _weatherbench_row(name: str, short: str) -> dict:
    root = data_dir() / "weatherbench"
    folder = "constants" if short == "constants" else _wb._parse(short)[1][0][0]
    files = sorted((root / folder).glob("*.nc")) if (root / folder).is_dir() else []
    return {
        "name": name,
        "kind": "weatherbench",
        "description": "WeatherBench 5.625 deg ERA5 "
        + (
            "constant fields (orography, lsm, slt, lat2d, lon2d)"
            if short == "constants"
            else f"{short} (1979-2018, hourly)"
        )
        + f", folder {folder}/",
        "source": _wb.weatherbench_url(folder),
        "size": sum(f.stat().st_size for f in files) if files else None,
        "path": str(root / folder) if files else None,
        "cached": bool(files),
        "offline": bool(files),
    }
