"""Open netCDF files lazily so that a damaged file is named when it is read.

A file whose header is intact but whose data region has rotted opens fine and
fails only when a chunk is read, deep inside a dask compute, with
``RuntimeError: NetCDF: HDF error`` and no file name. :func:`open_netcdf_lazily`
checks what can be checked at open (the registry's sha256 when it pins the
file; that the file opens at all) and wraps every data variable's reads, so a
read error becomes a :class:`~xdyn.datasets.DataIntegrityError` that names the
file, the variable and the fix -- while the Dataset stays lazy.
"""

from __future__ import annotations

from pathlib import Path

import dask.array as dsa
import numpy as np
import xarray as xr
from dask.base import tokenize

from xdyn.datasets.registry import DataIntegrityError, check_known_hash

__all__ = ["open_netcdf_lazily"]


class _NamedReads:
    """Array-like over one lazily opened netCDF variable; read errors name the file.

    Holds xarray's lazily indexed variable (which keeps the backend's file
    lock and decoding), so it pickles to dask workers like xarray's own arrays.
    """

    def __init__(self, variable: xr.Variable, path: Path, name: str, fix: str):
        self.variable = variable
        self.path = path
        self.name = name
        self.fix = fix
        self.shape = variable.shape
        self.dtype = variable.dtype
        self.ndim = variable.ndim

    def __getitem__(self, key):
        try:
            return np.asarray(self.variable[key].values)
        except Exception as exc:  # HDF/netCDF errors surface as RuntimeError, OSError ...
            raise DataIntegrityError(
                f"cannot read variable {self.name!r} of {self.path}: {type(exc).__name__}: "
                f"{exc}. The file's data region is corrupt (bit rot, or a partial copy). "
                f"{self.fix}"
            ) from exc


def open_netcdf_lazily(path, chunks="auto", *, fix: str = "") -> xr.Dataset:
    """Open ``path`` lazily with dask; a corrupt file raises ``DataIntegrityError`` naming it.

    Parameters
    ----------
    path : str or Path
    chunks : dict or str, default="auto"
        As for :func:`xarray.open_dataset` (never None: the data stay lazy).
    fix : str
        What the user should do about a damaged file, appended to the message.

    Returns
    -------
    xarray.Dataset
        Every data variable dask-backed, with the chunks ``xarray.open_dataset``
        would choose; reading a damaged chunk raises ``DataIntegrityError``.

    Raises
    ------
    DataIntegrityError
        The file does not open, holds no data variable, or differs from the
        sha256 the registry pins for it.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, xarray as xr
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.nc"
    >>> xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(path)
    >>> ds = open_netcdf_lazily(path)
    >>> type(ds.a.data).__name__, float(ds.a.sum())
    ('Array', 3.0)
    >>> _ = path.write_bytes(b"CDF\\x01 not really")
    >>> open_netcdf_lazily(path, fix="Restore it.")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xdyn.datasets.registry.DataIntegrityError: data file ... cannot be opened ... Restore it.
    """
    path = Path(path)
    check_known_hash(path, fix)
    try:
        chunked = xr.open_dataset(path, chunks=chunks)
        lazy = xr.open_dataset(path)  # lazily indexed, nothing read yet
    except Exception as exc:  # truncated/corrupt: OSError, ValueError, RuntimeError ...
        raise DataIntegrityError(
            f"data file {path} is corrupt or truncated and cannot be opened "
            f"({type(exc).__name__}: {exc}). {fix}"
        ) from exc
    if not chunked.data_vars:
        # a damaged header can parse as an empty file; no caller wants one
        raise DataIntegrityError(
            f"data file {path} holds no data variables: it is empty, truncated or corrupt. {fix}"
        )
    stamp = path.stat()
    for name, var in chunked.data_vars.items():
        reader = _NamedReads(lazy[name].variable, path, str(name), fix)
        token = tokenize(str(path.resolve()), stamp.st_size, stamp.st_mtime_ns, name, var.chunks)
        data = dsa.from_array(
            reader, chunks=var.chunks, name=f"xdyn-read-{name}-{token}", asarray=False,
            meta=np.empty((0,) * var.ndim, dtype=var.dtype),
        )
        chunked[name] = var.copy(data=data)
    return chunked
