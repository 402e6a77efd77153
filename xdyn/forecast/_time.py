"""Time coordinates of forecasts: their kind, lead times, ``init + lead``."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

from xdyn._labels import MEMBER_DIM

__all__ = ["LEAD_DIM", "MEMBER_DIM", "VALID_TIME", "add_lead"]

LEAD_DIM = "lead_time"
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
    """Timedelta-likes (``timedelta64``, :class:`datetime.timedelta`, ``"6h"``) -> ns array.

    A string without a unit (``"6"``) is refused (:func:`_refuse_unitless`).
    """
    _refuse_unitless(values)
    values = np.atleast_1d(np.asarray(values, dtype=object if _mixed(values) else None))
    if np.issubdtype(values.dtype, np.timedelta64):
        return values.astype("timedelta64[ns]")
    if values.dtype.kind in "iufb":
        raise TypeError
    return pd.to_timedelta(list(values)).to_numpy().astype("timedelta64[ns]")


def _refuse_unitless(values):
    """Raise ValueError naming a string lead without a unit, or a bare number among
    timedelta-likes: pandas reads ``"6"`` (and the 12 of ``["6h", 12]``) as
    nanoseconds, a forecast labelled so without an error."""
    flat = np.atleast_1d(np.asarray(values, dtype=object)).ravel()
    if _mixed(values) and any(isinstance(v, (int, float, np.number)) and
                              not isinstance(v, (bool, np.timedelta64)) for v in flat):
        raise ValueError(f"lead_times {list(flat)!r} mix numbers with durations: a number "
                         f"would be read as nanoseconds; give every lead with a unit")
    for v in flat:
        if isinstance(v, str):
            try:
                float(v)
            except ValueError:
                continue
            raise ValueError(f"lead time {v!r} has no unit (it would be read as nanoseconds): "
                             f"give one, e.g. '{v.strip()}h'")


def _mixed(values):
    if isinstance(values, np.ndarray) and values.dtype == object:
        values = values.ravel().tolist()
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
    if kind == "datetime":
        return _add_datetime(times, leads)
    return times[:, None] + leads[None, :]


def _add_datetime(times, leads):
    """``times[:, None] + leads[None, :]`` in the times' own unit, or raise where it overflows.

    pandas >= 3 keeps dates outside the nanosecond range (past 2262) as
    ``datetime64[us]``: numpy adds a ``timedelta64[ns]`` lead in nanoseconds and
    wraps around silently (2300-01-01 + 6 h gave 1715-06-13). A lead is added in
    the times' unit where it is a whole number of it, else in the lead's finer unit.
    """
    leads = np.asarray(leads)
    unit = np.datetime_data(times.dtype)[0]
    if leads.dtype.kind == "m" and unit != "generic":
        coarse = leads.astype(f"timedelta64[{unit}]")
        if np.array_equal(coarse.astype(leads.dtype), leads, equal_nan=True):
            leads = coarse
    common = np.promote_types(times.dtype, leads.dtype)
    known = ~np.isnat(times)
    if common != times.dtype:
        moved = times.astype(common)
        if not np.array_equal(moved[known].astype(times.dtype), times[known]):
            raise OverflowError(f"the times do not fit {common} (needed for lead_times of "
                                f"{leads.dtype}): give whole leads in {unit!r}")
        times = moved
    out = times[:, None] + leads[None, :]
    # numpy's datetime arithmetic wraps around on int64 overflow: a sum that moved against
    # the sign of its lead has wrapped
    t, d, o = times.view(np.int64)[:, None], leads.view(np.int64)[None, :], out.view(np.int64)
    wrapped = (known[:, None] & ~np.isnat(leads)[None, :]
               & (((d > 0) & (o < t)) | ((d < 0) & (o > t))))
    if wrapped.any():
        i, j = np.argwhere(wrapped)[0]
        raise OverflowError(f"init + lead leaves the range of {out.dtype}: {times[i]} + "
                            f"{pd.to_timedelta(leads[j])}; give the times in a coarser unit, "
                            "e.g. ds['time'].astype('datetime64[s]')")
    return out
