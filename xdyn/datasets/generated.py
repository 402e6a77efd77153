"""Synthetic datasets made on demand from a recorded configuration.

Floating-point results differ across machines, so a generated file cannot be
pinned by its bytes the way a published file is. Instead it is pinned by the
configuration that made it (``DESIGN.md``: Data): the generator's keyword
arguments (numbers normalised, so ``1`` and ``1.0`` name one file; values left
to the system's defaults filled in), a version the registrant may bump, and a
fingerprint of the code that makes it (:func:`code_fingerprint`: the source of
the generator's module and of the :mod:`xdyn.systems` modules it uses), so
editing that code regenerates the file on its next use instead of serving data
the code no longer makes. The record is written into the file's attrs
(``xdyn_config``, JSON) and hashed into its name,
``$XDYN_DATA_DIR/generated/<name>-<digest>.nc``, so several configurations are
cached side by side. On load the attrs are checked against the requested
configuration; a mismatch regenerates the file (with a warning) or raises, as
asked. Files are written through a temporary name and :func:`os.replace`, so an
interrupted or failing generator leaves nothing behind, and with HDF5 fletcher32
checksums, so a byte that rots later is refused when read, not served.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import importlib
import inspect
import json
import pkgutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from xdyn.datasets._netcdf import open_netcdf_lazily
from xdyn.datasets.registry import (
    DataIntegrityError,
    data_dir,
    remove_stale_parts,
    write_netcdf_atomic,
)
from xdyn.utils._validation import is_integer

__all__ = [
    "GeneratedSpec",
    "code_fingerprint",
    "generated_path",
    "get_generated",
    "load_generated",
    "register_generated",
    "registered_generated",
    "unregister_generated",
]


@dataclasses.dataclass(frozen=True)
class GeneratedSpec:
    """A dataset made by ``generator(**config)``; see :func:`register_generated`.

    Parameters
    ----------
    name : str
        Dataset name.
    generator : callable
        ``generator(**config) -> xarray.Dataset``, deterministic given its config.
    config : dict
        Default keyword arguments of ``generator`` (JSON-serialisable).
    version : int, default=1
        Bumped when the generator's output changes for the same config and code.
    description : str, default=""
        One line for :func:`xdyn.datasets.list_datasets`.
    script : str, optional
        Script in the repository's ``datasets/`` folder that makes this set.
    resolve : callable, optional
        ``resolve(config) -> config`` that fills in what the generator would
        otherwise default (a None that means "the system's default"), so a
        default left out and spelled out name the same file.

    Examples
    --------
    >>> spec = get_generated("lorenz96-climatology")
    >>> spec.resolve_config({"t_span": 10.0})["t_span"], spec.config["t_span"]
    (10.0, 2000.0)
    >>> spec.resolve_config({"steps": 3})
    Traceback (most recent call last):
    ...
    TypeError: unknown configuration key(s) ['steps'] for generated dataset 'lorenz96-climatology'; allowed: [...]
    >>> spec.record({"n": 40})  # doctest: +ELLIPSIS
    {'dataset': 'lorenz96-climatology', 'version': 1, 'code': '...', 'config': {'n': 40}}
    """

    name: str
    generator: Callable[..., xr.Dataset]
    config: dict
    version: int = 1
    description: str = ""
    script: str | None = None
    resolve: Callable[[dict], dict] | None = None

    def resolve_config(self, overrides: dict | None = None) -> dict:
        """The default config updated with ``overrides`` (unknown keys are refused).

        A number takes the type of its default (``t_span=1`` is ``1.0``), numpy
        scalars become Python ones, ``-0.0`` becomes ``0.0``, and ``random_state``
        must be an integer >= 0: the file is named by its configuration, so the
        configuration must fix its numbers.

        Examples
        --------
        >>> spec = get_generated("lorenz63-climatology")
        >>> spec.resolve_config({"random_state": 1})["random_state"], spec.config["random_state"]
        (1, 0)
        >>> spec.resolve_config({"t_span": 10})["t_span"]
        10.0
        >>> spec.resolve_config({"random_state": None})
        Traceback (most recent call last):
        ...
        TypeError: generated dataset 'lorenz63-climatology' needs an integer random_state...
        """
        overrides = _plain(dict(overrides or {}))
        unknown = sorted(set(overrides) - set(self.config))
        if unknown:
            raise TypeError(
                f"unknown configuration key(s) {unknown} for generated dataset "
                f"{self.name!r}; allowed: {sorted(self.config)}"
            )
        config = {**self.config, **{k: _like(v, self.config[k]) for k, v in overrides.items()}}
        _check_seed(self.name, config)
        if self.resolve is not None:
            config = _plain(self.resolve(config))
        return _normalise(config)

    def record(self, config: dict) -> dict:
        """What is written in the attrs and hashed into the file name.

        Examples
        --------
        >>> spec = get_generated("lorenz63-climatology")
        >>> sorted(spec.record(spec.resolve_config()))
        ['code', 'config', 'dataset', 'version']
        """
        return {"dataset": self.name, "version": int(self.version),
                "code": code_fingerprint(self.generator), "config": config}


_GENERATED: dict[str, GeneratedSpec] = {}


def register_generated(
    name: str,
    generator: Callable[..., xr.Dataset],
    config: dict,
    *,
    version: int = 1,
    description: str = "",
    script: str | None = None,
    resolve: Callable[[dict], dict] | None = None,
    replace: bool = False,
) -> GeneratedSpec:
    """Register a dataset that :func:`xdyn.datasets.load` makes on demand.

    Parameters
    ----------
    name : str
        Dataset name (``"lorenz96-climatology"``).
    generator : callable
        ``generator(**config) -> xarray.Dataset``; must be deterministic given
        its config (pass a seed in it).
    config : dict
        Default keyword arguments of ``generator``, JSON-serialisable. A load
        may override any of them; others are refused.
    version : int, default=1
        Bump when the generator's output changes for the same config through
        code that :func:`code_fingerprint` does not cover, so old cached files
        are regenerated. (An edit of the generator's module or of the
        :mod:`xdyn.systems` modules it imports regenerates them anyway.)
    description : str
        One line for :func:`xdyn.datasets.list_datasets`.
    script : str, optional
        Script in the repository's ``datasets/`` folder that makes this set.
    resolve : callable, optional
        ``resolve(config) -> config`` filling in the values the generator
        defaults (see :class:`GeneratedSpec`).
    replace : bool, default=False
        Allow replacing an existing registration of ``name``.

    Returns
    -------
    GeneratedSpec

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> def ramp(n=3, step=1.0):
    ...     return xr.Dataset({"a": ("time", step * np.arange(n))})
    >>> spec = register_generated("doc-ramp", ramp, {"n": 3, "step": 1.0}, replace=True)
    >>> spec.resolve_config({"n": 5})
    {'n': 5, 'step': 1.0}
    >>> unregister_generated("doc-ramp")
    """
    if not callable(generator):
        raise TypeError(f"generator must be callable, got {type(generator).__name__}")
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    if name in _GENERATED and not replace:
        raise ValueError(f"generated dataset {name!r} is already registered; pass replace=True")
    spec = GeneratedSpec(name, generator, _normalise(_plain(config)), int(version), description,
                         script, resolve)
    _GENERATED[name] = spec
    return spec


def unregister_generated(name: str) -> None:
    """Forget generated dataset ``name`` (its cached files stay on disk).

    Parameters
    ----------
    name : str
        The registered name; an unknown one is ignored.

    Examples
    --------
    >>> unregister_generated("never-registered")  # no error
    """
    _GENERATED.pop(name, None)


def registered_generated() -> dict[str, GeneratedSpec]:
    """A copy of the registered generated datasets, name -> spec.

    Returns
    -------
    dict of str to GeneratedSpec
        Changing the copy does not change the registry.

    Examples
    --------
    >>> specs = registered_generated()
    >>> specs["lorenz63-climatology"].name
    'lorenz63-climatology'
    >>> specs.clear()  # a copy: the registry keeps its entries
    >>> "lorenz63-climatology" in registered_generated()
    True
    """
    return dict(_GENERATED)


def get_generated(name: str) -> GeneratedSpec:
    """The spec of generated dataset ``name`` (``KeyError`` if none).

    Parameters
    ----------
    name : str
        A name registered with :func:`register_generated`.

    Returns
    -------
    GeneratedSpec

    Examples
    --------
    >>> get_generated("lorenz63-climatology").script
    'make_generated.py'
    """
    return _GENERATED[name]


def generated_path(name: str, **overrides) -> Path:
    """Cache path of generated dataset ``name`` for its config updated with ``overrides``.

    Parameters
    ----------
    name : str
        A registered generated dataset.
    **overrides
        Config values that differ from its default config (unknown keys are refused);
        the file name holds a digest of the resulting config.

    Returns
    -------
    Path
        ``<data_dir>/generated/<name>-<digest>.nc``; the file need not exist.

    Examples
    --------
    >>> generated_path("lorenz96-climatology").parent.name
    'generated'
    """
    spec = get_generated(name)
    return _path_for(spec, spec.resolve_config(overrides))


def load_generated(
    name: str,
    *,
    chunks=None,
    force: bool = False,
    on_mismatch: str = "regenerate",
    client=None,
    **overrides,
) -> xr.Dataset:
    """Open generated dataset ``name``, making it first if it is not cached.

    Parameters
    ----------
    name : str
    chunks : dict, str or None
        None (default) loads into memory and closes the file; anything else
        opens lazily with dask (see :func:`xarray.open_dataset`).
    force : bool, default=False
        Regenerate even if a valid cached file exists.
    on_mismatch : {"regenerate", "raise"}
        What to do when the cached file's recorded configuration differs
        from the requested one.
    client : distributed.Client, optional
        Make a missing file as dask tasks on this client when the generator
        takes one (its trajectories, each written to its own part file first;
        see :mod:`xdyn.datasets.trajectories`); otherwise it runs here. The
        numbers, and the cache key, do not depend on it.
    **overrides
        Configuration values that replace the registered defaults.

    Returns
    -------
    xarray.Dataset
        With the configuration in ``attrs["xdyn_config"]``.

    Examples
    --------
    >>> import os, tempfile
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"XDYN_DATA_DIR": tempfile.mkdtemp()}):
    ...     ds = load_generated("lorenz96-climatology", t_span=1.0, burn_in=0.0)
    >>> ds.x.dims, ds.sizes["time"]
    (('time', 'k'), 11)
    """
    path = _ensure(name, force=force, on_mismatch=on_mismatch, overrides=overrides,
                   client=client)
    return open_checked(path, chunks=chunks, fix=_fix(get_generated(name), overrides))


def fetch_generated(name: str, *, force: bool = False, client=None, **overrides) -> Path:
    """Make (if needed) and return the cache path of generated dataset ``name``.

    ``client``: make it as dask tasks where the generator allows (see :func:`load_generated`).
    """
    return _ensure(name, force=force, on_mismatch="regenerate", overrides=overrides,
                   client=client)


def cached_ok(name: str, **overrides) -> bool:
    """True when a cached file with the right configuration exists (no generation)."""
    spec = get_generated(name)
    config = spec.resolve_config(overrides)
    path = _path_for(spec, config)
    try:
        return path.is_file() and read_record(path) == spec.record(config)
    except DataIntegrityError:
        return False


def read_record(path, *, fix: str = "") -> dict | None:
    """The configuration record in a generated file's attrs (None if it has none).

    ``fix``: what to do about a corrupt file, for the error's message (default:
    delete it and load again).
    """
    try:
        with xr.open_dataset(path, decode_times=False) as ds:
            raw = ds.attrs.get("xdyn_config")
    except Exception as exc:  # truncated/corrupt netCDF: OSError, ValueError, RuntimeError ...
        fix = fix or "To fix: delete it and load the dataset again, which regenerates it."
        raise DataIntegrityError(
            f"generated data file {path} is corrupt or truncated ({exc}). {fix}"
        ) from exc
    return json.loads(raw) if raw else None


def open_checked(path, *, chunks=None, fix: str = "") -> xr.Dataset:
    """Open a netCDF file, turning a read failure into :class:`DataIntegrityError`."""
    if chunks is not None:  # lazy: a damaged chunk is named when it is read
        return open_netcdf_lazily(path, chunks, fix=fix)
    try:
        with xr.open_dataset(path) as ds:
            return ds.load()
    except Exception as exc:
        raise DataIntegrityError(
            f"data file {path} is corrupt or truncated and cannot be read ({exc}). {fix}"
        ) from exc


def code_fingerprint(generator) -> str:
    """A digest of the source code that makes a generated set: part of its cache key.

    It covers the code of the generator's module, of
    :mod:`xdyn.datasets.trajectories` and of every :mod:`xdyn.systems` module,
    as parsed (comments, blank lines and layout do not count; docstrings do).
    An edit of that code (even of a system the set does not use) names a new
    file, so the set is made again on its next use; the old file stays in the
    cache folder until deleted. Code outside these modules (torch, numpy,
    other xdyn packages) is not covered: bump the set's ``version`` when a
    change there changes its numbers. The digest holds module names and
    syntax trees only, so it is the same on every machine with the same code
    and the same Python minor version (``ast.dump`` prints trees differently
    across versions: a data folder shared by two regenerates once for each).

    Parameters
    ----------
    generator : callable
        A registered generator.

    Returns
    -------
    str
        16 hex digits.

    Examples
    --------
    >>> from xdyn.datasets.generated import lorenz96_climatology
    >>> len(code_fingerprint(lorenz96_climatology))
    16
    >>> "xdyn.systems.lorenz96" in _code_modules(lorenz96_climatology.__module__)
    True
    """
    module = getattr(generator, "__module__", None) or ""
    digest = hashlib.sha256()
    for name in _code_modules(module):
        source = _module_source(name)
        if source is None and name == module:  # a generator defined in __main__ or a REPL
            source = _function_source(generator)
        digest.update(f"{name}\n{_syntax(source)}\n".encode())
    return digest.hexdigest()[:16]


# --- private -----------------------------------------------------------------
def _module_source(name: str) -> str | None:
    """Source text of module ``name`` (``\\n`` line ends), None when it has none."""
    try:
        source = inspect.getsource(importlib.import_module(name))
    except (ImportError, OSError, TypeError, ValueError):  # no source: a built-in, a REPL ...
        return None
    return source.replace("\r\n", "\n")


@functools.lru_cache(maxsize=256)
def _syntax(source: str | None) -> str:
    """``source``'s syntax tree as text (no comments, no positions); the source itself
    where it does not parse."""
    if source is None:
        return ""
    try:
        return ast.dump(ast.parse(source))
    except SyntaxError:
        return source


def _function_source(func) -> str:
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        return ""


@functools.lru_cache(maxsize=None)
def _code_modules(module: str) -> tuple[str, ...]:
    """``module``, :mod:`xdyn.datasets.trajectories` and every module of
    :mod:`xdyn.systems`, sorted. All systems, not only those ``module`` uses: the
    trajectory generators reach any system through the registry, by name."""
    import xdyn.systems

    systems = (m.name for m in pkgutil.walk_packages(xdyn.systems.__path__, "xdyn.systems."))
    return tuple(sorted({module, "xdyn.datasets.trajectories", "xdyn.systems", *systems}))


def _plain(value):
    """Numpy scalars as Python ones, ``-0.0`` as ``0.0``, in nested dicts and lists too."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value == 0.0:
        return 0.0  # -0.0 == 0.0, and makes the same numbers
    return value


def _like(value, default):
    """``value`` as the type of ``default`` when they are both numbers (1 -> 1.0 for a float)."""
    if isinstance(default, float) and is_integer(value):
        return float(value)
    if is_integer(default) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _check_seed(name: str, config: dict) -> None:
    if "random_state" not in config:
        return
    seed = config["random_state"]
    if not is_integer(seed):
        raise TypeError(
            f"generated dataset {name!r} needs an integer random_state >= 0, got {seed!r}: its "
            "cached file is named by its configuration, which must fix the random draws"
        )
    if seed < 0:
        raise ValueError(f"generated dataset {name!r} needs a random_state >= 0, got {seed!r}")


def _normalise(config: dict) -> dict:
    try:
        return json.loads(json.dumps(config, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a generated dataset's config must be plain JSON: {exc}") from exc


def _digest(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _path_for(spec: GeneratedSpec, config: dict) -> Path:
    return data_dir() / "generated" / f"{spec.name}-{_digest(spec.record(config))[:12]}.nc"


def _fix(spec: GeneratedSpec, overrides: dict) -> str:
    """What remakes this configuration's file: the CLI knows the default configuration only."""
    overrides = _plain(dict(overrides))
    args = "".join(f", {k}={v!r}" for k, v in sorted(overrides.items()))
    python = f"`xdyn.datasets.load({spec.name!r}, force=True{args})`"
    if spec.resolve_config(overrides) == spec.resolve_config():
        return (f"To fix: delete it, or regenerate it with `xdyn data fetch {spec.name} --force` "
                f"or {python}.")
    return f"To fix: delete it, or regenerate it with {python}."


def _ensure(name: str, *, force: bool, on_mismatch: str, overrides: dict, client=None) -> Path:
    if on_mismatch not in ("regenerate", "raise"):
        raise ValueError(f"on_mismatch must be 'regenerate' or 'raise', got {on_mismatch!r}")
    spec = get_generated(name)
    config = spec.resolve_config(overrides)
    record = spec.record(config)
    path = _path_for(spec, config)
    remove_stale_parts(path)  # what a killed earlier write of this file left
    if path.is_file() and not force:
        found = read_record(path, fix=_fix(spec, overrides))
        if found == record:
            return path
        message = (
            f"cached file {path} of generated dataset {name!r} was made with "
            f"{found!r}, not the requested {record!r}"
        )
        if on_mismatch == "raise":
            raise DataIntegrityError(f"{message}. {_fix(spec, overrides)}")
        warnings.warn(f"{message}; regenerating it.", UserWarning, stacklevel=3)
    _generate(spec, config, path, client)
    return path


def _takes_client(generator) -> bool:
    try:
        params = inspect.signature(generator).parameters
    except (TypeError, ValueError):
        return False
    return "client" in params and "parts_dir" in params


def _generate(spec: GeneratedSpec, config: dict, path: Path, client=None) -> None:
    import shutil

    from xdyn._version import __version__

    parts = None
    if client is not None and _takes_client(spec.generator):
        # the tasks' own files, next to the target: reused if this run is interrupted
        parts = path.with_name(f".{path.stem}.parts")
        ds = spec.generator(**config, client=client, parts_dir=parts)
    else:
        ds = spec.generator(**config)
    if not isinstance(ds, xr.Dataset):
        raise TypeError(
            f"generator of {spec.name!r} returned {type(ds).__name__}, not an xarray.Dataset"
        )
    ds = ds.copy()
    ds.attrs.update(
        {
            "xdyn_dataset": spec.name,
            "xdyn_config": json.dumps(spec.record(config), sort_keys=True),
            "xdyn_version": __version__,
        }
    )
    import dask

    from xdyn.datasets._chunking import chunk_encoding

    # a set gathered from part files is dask-backed: stream it into the file here, in
    # local threads, not through a distributed client that may be the default scheduler
    with dask.config.set(scheduler="threads"):
        write_netcdf_atomic(ds, path, encoding=chunk_encoding(ds))
    ds.close()
    if parts is not None:
        shutil.rmtree(parts, ignore_errors=True)


# --- built-in generated sets -------------------------------------------------
def lorenz96_climatology(
    n=40,
    F=8.0,
    dt=0.05,
    t_span=2000.0,
    save_every=2,
    burn_in=100.0,
    n_trajectories=1,
    random_state=0,
) -> xr.Dataset:
    """A long Lorenz-96 run on its attractor, for climatologies and background covariances.

    Examples
    --------
    >>> lorenz96_climatology(n=8, t_span=1.0, burn_in=0.0).sizes["k"]
    8
    """
    from xdyn.systems import Lorenz96

    ds = Lorenz96(n=n, F=F).simulate(
        n_trajectories=n_trajectories,
        t_span=t_span,
        dt=dt,
        save_every=save_every,
        burn_in=burn_in,
        random_state=random_state,
    )
    ds.attrs["title"] = "Lorenz-96 climatology run"
    return ds


def lorenz63_climatology(
    sigma=10.0,
    rho=28.0,
    beta=8.0 / 3.0,
    dt=0.01,
    t_span=1000.0,
    save_every=5,
    burn_in=50.0,
    n_trajectories=1,
    random_state=0,
) -> xr.Dataset:
    """A long Lorenz-63 run on its attractor.

    Examples
    --------
    >>> sorted(lorenz63_climatology(t_span=0.1, burn_in=0.0).data_vars)
    ['x', 'y', 'z']
    """
    from xdyn.systems import Lorenz63

    ds = Lorenz63(sigma=sigma, rho=rho, beta=beta).simulate(
        n_trajectories=n_trajectories,
        t_span=t_span,
        dt=dt,
        save_every=save_every,
        burn_in=burn_in,
        random_state=random_state,
    )
    ds.attrs["title"] = "Lorenz-63 climatology run"
    return ds


def _defaults(func) -> dict:
    return {k: p.default for k, p in inspect.signature(func).parameters.items()}


def _register_builtins() -> None:
    register_generated(
        "lorenz96-climatology",
        lorenz96_climatology,
        _defaults(lorenz96_climatology),
        description="Lorenz-96 (n=40, F=8) run of 2000 model time units, saved every 0.1 "
        "(20001 states), after a burn-in of 100",
        script="make_generated.py",
        replace=True,
    )
    register_generated(
        "lorenz63-climatology",
        lorenz63_climatology,
        _defaults(lorenz63_climatology),
        description="Lorenz-63 (classical parameters) run of 1000 model time units, saved "
        "every 0.05 (20001 states), after a burn-in of 50",
        script="make_generated.py",
        replace=True,
    )
