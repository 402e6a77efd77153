"""netCDF chunking of trajectory sets: one trajectory and a few MiB per HDF5 chunk.

A training set is read a trajectory (or a window of one) at a time, so its
files are chunked that way; ``chunks={}`` then opens them lazily along the same
blocks. Used by the generated sets' cache files and by their part files.
"""

from __future__ import annotations

import math

import xarray as xr

__all__ = ["chunk_encoding"]

_CHUNK_BYTES = 4 * 2**20  # HDF5 chunks of a few MiB: big enough to read fast, small to slice


def chunk_encoding(ds: xr.Dataset, target_bytes: int = _CHUNK_BYTES) -> dict:
    """netCDF encoding with HDF5 chunks of one trajectory and at most ``target_bytes``.

    The time dim is cut so that a chunk holds about ``target_bytes``; other
    dims are kept whole.

    Parameters
    ----------
    ds : xarray.Dataset
        The dataset to write; only variables with a ``trajectory`` dim and at least two
        dims get an encoding.
    target_bytes : int, default=4 MiB
        Upper bound of a chunk's size in bytes (a chunk holds at least one time).

    Returns
    -------
    dict
        ``{variable: {"chunksizes": tuple}}``, for ``Dataset.to_netcdf(encoding=...)``.

    Examples
    --------
    >>> import numpy as np
    >>> ds = xr.Dataset({"u": (("trajectory", "time", "x"), np.zeros((2, 1000, 64)))})
    >>> chunk_encoding(ds, target_bytes=8 * 64 * 100)["u"]["chunksizes"]
    (1, 100, 64)
    """
    encoding = {}
    for name, var in ds.data_vars.items():
        if "trajectory" not in var.dims or var.ndim < 2:
            continue
        sizes = dict(var.sizes)
        sizes["trajectory"] = 1
        if "time" in sizes:
            row = var.dtype.itemsize * math.prod(n for d, n in sizes.items() if d != "time")
            sizes["time"] = max(1, min(sizes["time"], target_bytes // max(row, 1)))
        encoding[name] = {"chunksizes": tuple(sizes[d] for d in var.dims)}
    return encoding
