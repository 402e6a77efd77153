"""netCDF encoding of generated sets: HDF5 chunks of one trajectory, with checksums.

A training set is read a trajectory (or a window of one) at a time, so its
files are chunked that way; ``chunks={}`` then opens them lazily along the same
blocks. Every numeric variable also gets HDF5's fletcher32 checksum, per chunk:
a generated file has no registered sha256, and without a checksum a byte that
rots in its data region is read back as a wrong number without any error.
Used by the generated sets' cache files and by their part files.
"""

from __future__ import annotations

import math

import xarray as xr

__all__ = ["chunk_encoding"]

_CHUNK_BYTES = 4 * 2**20  # HDF5 chunks of a few MiB: big enough to read fast, small to slice


def chunk_encoding(ds: xr.Dataset, target_bytes: int = _CHUNK_BYTES) -> dict:
    """netCDF encoding with fletcher32 checksums and HDF5 chunks of one trajectory.

    A variable with a ``trajectory`` dim and at least two dims is chunked by
    one trajectory and at most ``target_bytes``: the time dim is cut so that a
    chunk holds about ``target_bytes``; other dims are kept whole. Every
    numeric variable with a dim (coordinates too) gets ``fletcher32=True``, so
    reading a chunk whose bytes changed raises an HDF error instead of
    returning wrong numbers.

    Parameters
    ----------
    ds : xarray.Dataset
        The dataset to write.
    target_bytes : int, default=4 MiB
        Upper bound of a chunk's size in bytes (a chunk holds at least one time).

    Returns
    -------
    dict
        ``{variable: {"fletcher32": True, "chunksizes": tuple}}`` (``chunksizes``
        for trajectory variables only), for ``Dataset.to_netcdf(encoding=...)``.

    Examples
    --------
    >>> import numpy as np
    >>> ds = xr.Dataset({"u": (("trajectory", "time", "x"), np.zeros((2, 1000, 64)))},
    ...                 coords={"time": np.arange(1000.0)})
    >>> chunk_encoding(ds, target_bytes=8 * 64 * 100)["u"]
    {'fletcher32': True, 'chunksizes': (1, 100, 64)}
    >>> chunk_encoding(ds)["time"]
    {'fletcher32': True}
    """
    encoding = {}
    for name, var in ds.variables.items():
        # HDF5 filters need a dim (chunked storage) and fixed-size elements (no strings)
        if var.ndim and var.dtype.kind in "biufcmM":
            encoding[name] = {"fletcher32": True}
    for name, var in ds.data_vars.items():
        if "trajectory" not in var.dims or var.ndim < 2:
            continue
        sizes = dict(var.sizes)
        sizes["trajectory"] = 1
        if "time" in sizes:
            row = var.dtype.itemsize * math.prod(n for d, n in sizes.items() if d != "time")
            sizes["time"] = max(1, min(sizes["time"], target_bytes // max(row, 1)))
        encoding.setdefault(name, {})["chunksizes"] = tuple(sizes[d] for d in var.dims)
    return encoding
