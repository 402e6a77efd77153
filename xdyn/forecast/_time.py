"""Time coordinates of forecasts: their kind, lead times, ``init + lead``."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

__all__ = ["LEAD_DIM", "MEMBER_DIM", "VALID_TIME", "add_lead"]

LEAD_DIM = "lead_time"
MEMBER_DIM = "member"
VALID_TIME = "valid_time"


def _time_kind(values) -> str:
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.datetime64):
        return "datetime"
    if values.dtype == object and values.size and hasattr(values.flat[0], "calendar"):
        return "cftime"
    if np.issubdtype(values.dtype, np.number):
        return "model"
    raise TypeError(f"the sample coordinate must be numeric, datetime64 or cftime; "
                    f"got dtype {values.dtype}")


def _calendar(values, kind):
    """The calendar of ``kind`` times: cftime's (canonical, e.g. ``"standard"`` for
    ``"gregorian"``), ``"proleptic_gregorian"`` for datetime64 (numpy's), None for model time."""
    if kind == "cftime":
        return str(np.asarray(values).flat[0].calendar)
    return "proleptic_gregorian" if kind == "datetime" else None


def _as_timedelta64(values):
    """Timedelta-likes (``timedelta64``, :class:`datetime.timedelta`, ``"6h"``) -> ns array."""
    values = np.atleast_1d(np.asarray(values, dtype=object if _mixed(values) else None))
    if np.issubdtype(values.dtype, np.timedelta64):
        return values.astype("timedelta64[ns]")
    if values.dtype.kind in "iufb":
        raise TypeError
    return pd.to_timedelta(list(values)).to_numpy().astype("timedelta64[ns]")


def _mixed(values):
    return isinstance(values, (list, tuple)) and any(
        isinstance(v, (str, datetime.timedelta)) for v in values)


def add_lead(times, leads, kind):
    """``times[:, None] + leads[None, :]`` for datetime64, cftime or model time.

    Examples
    --------
    >>> import numpy as np
    >>> add_lead(np.array([0.0, 1.0]), np.array([0.5]), "model").tolist()
    [[0.5], [1.5]]
    """
    times, leads = np.asarray(times), np.asarray(leads)
    if kind == "cftime":
        deltas = [datetime.timedelta(microseconds=int(d) // 1000)
                  for d in leads.astype("timedelta64[ns]").astype(np.int64)]
        out = np.empty((times.size, leads.size), dtype=object)
        for j, d in enumerate(deltas):
            out[:, j] = [t + d for t in times]
        return out
    return times[:, None] + leads[None, :]
