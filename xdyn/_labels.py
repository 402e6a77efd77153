"""Matching coordinate labels: the one place that decides when data stored in another
order (a descending axis) is the same grid, so that every reader of a state, a truth or
a field reorders it the same way instead of reading it by position; and when two time
steps are the same step (numeric, datetime64 or timedelta64 times)."""

from __future__ import annotations

import numpy as np


def grid_order(got, want, *, rtol, atol):
    """Indices ``p`` with ``got[p]`` equal to ``want`` within ``rtol`` / ``atol``, or None.

    ``p`` is ``arange`` when ``got`` already matches in order; otherwise the
    k-th smallest of ``got`` goes to the place of the k-th smallest of ``want``
    (the same labels stored in another order). None when the labels are others
    or their numbers differ.

    Examples
    --------
    >>> grid_order([2.0, 1.0, 0.0], [0.0, 1.0, 2.0], rtol=1e-9, atol=0.0).tolist()
    [2, 1, 0]
    >>> grid_order([0.0, 1.5], [0.0, 1.0], rtol=1e-9, atol=0.0) is None
    True
    """
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if got.shape != want.shape or got.ndim != 1:
        return None
    if np.allclose(got, want, rtol=rtol, atol=atol):
        return np.arange(len(want))
    order = np.empty(len(want), dtype=int)
    order[np.argsort(want, kind="stable")] = np.argsort(got, kind="stable")
    return order if np.allclose(got[order], want, rtol=rtol, atol=atol) else None


def label_order(got, want):
    """Indices ``p`` with ``got[p]`` equal to ``want`` (exact, hashable labels), or None.

    None when the labels differ as sets or either repeats one: data paired by
    label (trajectories, observation sites) must label the same elements.

    Examples
    --------
    >>> label_order(["b", "a"], ["a", "b"]).tolist()
    [1, 0]
    >>> label_order([1, 1], [1, 2]) is None
    True
    """
    got, want = list(got), list(want)
    where = {k: i for i, k in enumerate(got)}
    if len(where) < len(got) or len(set(want)) < len(want) or set(where) != set(want):
        return None
    return np.array([where[k] for k in want], dtype=int)


STEP_RTOL = 1e-6  # relative tolerance on time steps (float times carry rounding errors)


def is_datetime(values):
    """datetime64 or timedelta64 values."""
    return np.issubdtype(values.dtype, np.datetime64) or np.issubdtype(values.dtype,
                                                                         np.timedelta64)


def is_cftime(values):
    """cftime datetimes (an object array of them: non-standard calendars)."""
    values = np.asarray(values)
    if values.dtype != object or values.size == 0:
        return False
    import cftime

    return isinstance(values.flat[0], cftime.datetime)


def is_time(values):
    """Times whose steps can be read and added: numeric, datetime64 or timedelta64."""
    return is_datetime(values) or np.issubdtype(values.dtype, np.number)


def step_tolerance(values, step):
    """Tolerance on a time step of ``values``: relative, plus the rounding of the times
    themselves (float32 times far from zero hold a step to a few digits only)."""
    tol = STEP_RTOL * abs(step)
    if np.issubdtype(values.dtype, np.floating):
        tol += 4 * np.finfo(values.dtype).eps * float(np.abs(values).max())
    return tol


def format_step(step):
    """A time step for a message (floats to 6 digits: 0.1, not 0.10000000000000009;
    timedeltas as days and hours: 1 days 06:00:00, not 108000000000 microseconds)."""
    if isinstance(step, np.timedelta64):
        import pandas as pd

        return str(pd.Timedelta(step))
    return f"{step:.6g}" if isinstance(step, float) else str(step)


def format_time(value):
    """A time or time step for a message (numbers as :func:`format_step` gives floats)."""
    if isinstance(value, np.timedelta64):  # a step: days and hours, as format_step writes
        return format_step(value)
    numeric = np.issubdtype(np.asarray(value).dtype, np.number)
    return format_step(float(value)) if numeric else str(value)


def steps_as_float(steps):
    """Time steps as float64 (timedelta64 in nanoseconds) to compare them."""
    steps = np.asarray(steps)
    if np.issubdtype(steps.dtype, np.timedelta64):
        return steps / np.timedelta64(1, "ns")
    return steps.astype(np.float64)


def same_step(a, b, values, tolerance=0.0):
    """Whether time steps ``a`` and ``b`` agree (to the rounding of times ``values``, or
    to ``tolerance``, the rounding of the times another step was read from)."""
    if isinstance(a, np.timedelta64) != isinstance(b, np.timedelta64):
        return False
    ref = float(steps_as_float(a))
    tol = max(step_tolerance(np.asarray(values), ref), tolerance)
    return abs(float(steps_as_float(b)) - ref) <= tol


def even_step(values, where, consequence, calendar=False):
    """The step of strictly increasing, evenly spaced times; None where there is none to read.

    None for fewer than two values or values that are not times (see
    :func:`is_time`; cftime datetimes are times here too); otherwise a float
    for numeric times and a ``timedelta64`` for datetime64, timedelta64 and
    cftime ones. The reference is the median step, so that a gap cannot set
    it. The ValueError starts with ``where`` (what the times are), names the
    first step that goes back, repeats or departs from the reference, and ends
    with ``consequence`` (why the caller needs them even).

    Parameters
    ----------
    values : array-like
    where : str
    consequence : str
    calendar : bool, default=False
        Also accept datetimes regular in the calendar but not in seconds
        (monthly, yearly: months and years differ in length): their pandas
        frequency string is returned (``"MS"``, ``"YS-JAN"``).

    Examples
    --------
    >>> even_step(np.array([0.0, 0.5, 1.0]), "t", "")
    0.5
    >>> even_step(np.array(["a", "b"]), "t", "") is None
    True
    >>> months = np.array(["2000-01", "2000-02", "2000-03"], dtype="datetime64[ns]")
    >>> even_step(months, "t", "", calendar=True)
    'MS'
    """
    values = _as_datetime64(np.asarray(values))
    if values.ndim != 1 or values.size < 2:
        return None
    cf = is_cftime(values)
    if not (cf or is_time(values)):
        return None
    timelike = cf or is_datetime(values)
    diffs = np.array([b - a for a, b in zip(values[:-1], values[1:])],
                     dtype="timedelta64[us]") if cf else np.diff(values)
    steps = steps_as_float(diffs)
    if not (steps > 0).all():
        i = int(np.flatnonzero(~(steps > 0))[0])
        raise ValueError(f"{where} must increase strictly: it goes from "
                         f"{format_time(values[i])} to {format_time(values[i + 1])}; "
                         f"{consequence}")
    step = np.sort(diffs)[len(diffs) // 2]
    step = step if timelike else float(step)
    ref = float(steps_as_float(step))
    bad = np.flatnonzero(np.abs(steps - ref) > step_tolerance(values, ref))
    if not bad.size:
        return step
    freq = _calendar_frequency(values) if calendar and timelike else None
    if freq is not None:
        return freq
    i = int(bad[0])
    gap = diffs[i] if timelike else float(diffs[i])
    also = " (nor regular in calendar months or years)" if calendar and timelike else ""
    raise ValueError(f"{where} is unevenly spaced{also}: a step of {format_step(gap)} from "
                     f"{format_time(values[i])} to {format_time(values[i + 1])} (the "
                     f"median step is {format_step(step)}); {consequence}")


def _as_datetime64(values):
    """Python datetimes (an object array: how xarray gives time-zone aware times) as
    datetime64, in UTC where they state a zone; other values as they are."""
    import datetime

    if values.dtype != object or values.size == 0 or is_cftime(values) \
            or not isinstance(values.flat[0], datetime.datetime):
        return values
    import pandas as pd

    try:  # naive ones are read as UTC too: their steps are the same
        return pd.to_datetime(values, utc=True).tz_localize(None).values
    except (TypeError, ValueError):
        return values


def _calendar_frequency(values):
    """The pandas frequency of datetimes regular in calendar months, quarters or years
    (``"MS"``, ``"YS-JAN"``), or None: business days and hours skip times, they are gaps."""
    import pandas as pd
    import xarray as xr

    if values.size < 3:
        return None
    try:
        freq = xr.infer_freq(xr.DataArray(values, dims="time"))
        offset = None if freq is None else pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError):
        return None
    calendar = (pd.offsets.MonthBegin, pd.offsets.MonthEnd, pd.offsets.QuarterBegin,
                pd.offsets.QuarterEnd, pd.offsets.YearBegin, pd.offsets.YearEnd)
    return freq if type(offset) in calendar else None
