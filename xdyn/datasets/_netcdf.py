"""Open netCDF files lazily so that a damaged file is named when it is read.

A netCDF4 file whose header is intact but whose data region has rotted opens
fine. Where the rotted chunk is checksummed (fletcher32, which xdyn writes into
every generated file) or compressed, reading it fails, deep inside a dask
compute, with ``RuntimeError: NetCDF: HDF error`` and no file name; an
unfiltered chunk is read back as wrong numbers without any error, which only a
sha256 of the whole file catches. :func:`open_netcdf_lazily` checks what can be
checked at open (the registry's sha256 when it pins the file; that the file
opens at all) and wraps every data variable's reads, so a read error becomes a
:class:`~xdyn.datasets.DataIntegrityError` that names the file, the variable
and the fix -- while the Dataset stays lazy.

A netCDF3 file (classic, 64-bit offset or CDF-5) has no checksums: its
libraries read a truncated data region as zeros (or fill values) without an
error. Its header says where every variable's data end, so the file size is
checked against it at open (:func:`netcdf3_data_end`), reading the header only.
"""

from __future__ import annotations

import functools
import os
import struct
from pathlib import Path

import dask.array as dsa
import numpy as np
import xarray as xr
from dask.base import tokenize

from xdyn.datasets.registry import DataIntegrityError, check_known_hash

__all__ = ["netcdf3_data_end", "open_netcdf_lazily"]


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
        Its ``close()`` closes every handle on the file that this opened.

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
    _check_netcdf3_size(path, fix)
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
    # the reads go through ``lazy``'s handle: close it with the Dataset, or it stays open
    # (a file that cannot be replaced on Windows; a truncated copy served from it by HDF5)
    chunked.set_close(functools.partial(_close_all, lazy, chunked._close))
    return chunked


def _close_all(lazy: xr.Dataset, close_chunked) -> None:
    lazy.close()
    if close_chunked is not None:
        close_chunked()


# --- netCDF3 size check ---------------------------------------------------------
# Sizes in bytes of the netCDF3 external types (NC_BYTE=1 ... NC_UINT64=11; 7-11 are CDF-5)
_NC_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
_NC_DIMENSION, _NC_VARIABLE, _NC_ATTRIBUTE = 10, 11, 12


class _Header:
    """Big-endian reader of a netCDF3 header, sized by the format version."""

    def __init__(self, file, version: int, size: int):
        self.file = file
        self.size = size
        self.count = ">Q" if version == 5 else ">I"  # lengths, dim ids: 64-bit in CDF-5
        self.offset = ">I" if version == 1 else ">Q"  # a variable's begin

    def read(self, n: int) -> bytes:
        # a damaged length would otherwise allocate gigabytes before failing
        if self.file.tell() + n > self.size:
            raise EOFError("the header ends early")
        return self.file.read(n)

    def skip(self, n: int) -> None:
        if self.file.tell() + n > self.size:
            raise EOFError("the header ends early")
        self.file.seek(n, 1)

    def unpack(self, fmt: str) -> int:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def tagged_list(self, tag: int) -> int:
        found, n = self.unpack(">I"), self.unpack(self.count)
        if found not in (0, tag) or (found == 0 and n):
            raise ValueError(f"expected list tag {tag} or ABSENT, found {found} with {n} items")
        return n

    def skip_name(self) -> None:
        n = self.unpack(self.count)
        self.skip(n + (-n % 4))

    def skip_attributes(self) -> None:
        for _ in range(self.tagged_list(_NC_ATTRIBUTE)):
            self.skip_name()
            nc_type, n = self.unpack(">I"), self.unpack(self.count)
            size = n * _type_size(nc_type)
            self.skip(size + (-size % 4))


def _type_size(nc_type: int) -> int:
    if nc_type not in _NC_TYPE_SIZE:
        raise ValueError(f"unknown netCDF type {nc_type}")
    return _NC_TYPE_SIZE[nc_type]


def netcdf3_data_end(path) -> int | None:
    """Smallest size in bytes a netCDF3 file must have to hold all the data its header declares.

    Reads the header only. Follows the classic format specification
    (https://docs.unidata.ucar.edu/netcdf-c/current/file_format_specifications.html):
    each variable has a ``begin`` offset; a record variable's data repeat every
    record (the record size is the sum of the record variables' padded sizes,
    unpadded when there is only one).

    Returns
    -------
    int or None
        The byte the data end at; None when ``path`` is not a netCDF3 file, or
        a streamed one whose record count is not recorded.

    Raises
    ------
    ValueError, EOFError
        The header is damaged or cut short.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, xarray as xr
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.nc"
    >>> xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(path, format="NETCDF3_CLASSIC")
    >>> netcdf3_data_end(path) == path.stat().st_size
    True
    """
    with open(path, "rb") as file:
        magic = file.read(4)
        if len(magic) < 4 or magic[:3] != b"CDF" or magic[3] not in (1, 2, 5):
            return None
        header = _Header(file, magic[3], os.fstat(file.fileno()).st_size)
        n_records = header.unpack(header.count)
        dims = []
        for _ in range(header.tagged_list(_NC_DIMENSION)):
            header.skip_name()
            dims.append(header.unpack(header.count))  # 0: the record (unlimited) dimension
        header.skip_attributes()
        fixed_end, records = 0, []  # records: (begin, bytes per record) of record variables
        for _ in range(header.tagged_list(_NC_VARIABLE)):
            header.skip_name()
            dim_ids = [header.unpack(header.count) for _ in range(header.unpack(header.count))]
            header.skip_attributes()
            size = _type_size(header.unpack(">I"))
            header.unpack(header.count)  # vsize: capped at 2**32 - 1, so recomputed below
            begin = header.unpack(header.offset)
            if any(i >= len(dims) for i in dim_ids):
                raise ValueError(f"a variable refers to dimension {max(dim_ids)} of {len(dims)}")
            shape = [dims[i] for i in dim_ids]
            if shape and shape[0] == 0:
                for n in shape[1:]:
                    size *= n
                records.append((begin, size))
            else:
                for n in shape:
                    size *= n
                fixed_end = max(fixed_end, begin + size)
    if not records or n_records == 0:
        return fixed_end
    if n_records == (1 << (8 * struct.calcsize(header.count))) - 1:
        return None  # STREAMING: the writer did not record the number of records
    # one record variable: no padding between its records; else each is padded to 4 bytes
    record = records[0][1] if len(records) == 1 else sum(s + (-s % 4) for _, s in records)
    return max(fixed_end, *(begin + (n_records - 1) * record + s for begin, s in records))


def _check_netcdf3_size(path: Path, fix: str) -> None:
    """Refuse a netCDF3 file shorter than its header says: its libraries read the gap as 0."""
    try:
        end = netcdf3_data_end(path)
    except (ValueError, EOFError, struct.error) as exc:
        raise DataIntegrityError(
            f"data file {path} is corrupt or truncated and cannot be opened (its netCDF3 "
            f"header is damaged or cut short: {type(exc).__name__}: {exc}). {fix}"
        ) from exc
    size = path.stat().st_size
    if end is not None and size < end:
        raise DataIntegrityError(
            f"data file {path} is truncated: it has {size} bytes, its netCDF3 header "
            f"declares data up to byte {end} (a partial copy or download). {fix}"
        )
