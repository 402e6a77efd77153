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


MEMBER_DIM = "member"  # an ensemble's members, in every family's data and outputs


def check_trajectory_dim(trajectory_dim, reserved, who):
    """Refuse a ``trajectory_dim`` among ``reserved``, the dims ``who`` keeps for its own
    samples or outputs: runs on ``member`` would be read as an ensemble (by its mean).

    Examples
    --------
    >>> check_trajectory_dim("trajectory", ("time", MEMBER_DIM), "POD")
    >>> check_trajectory_dim("member", ("time", MEMBER_DIM), "POD")
    Traceback (most recent call last):
    ...
    ValueError: trajectory_dim='member' names a dim that POD keeps for its own samples or \
outputs ('time', 'member'): rename the runs' dim, e.g. to 'trajectory'
    """
    if trajectory_dim in reserved:
        raise ValueError(f"trajectory_dim={trajectory_dim!r} names a dim that {who} keeps for "
                         f"its own samples or outputs ({', '.join(map(repr, reserved))}): "
                         f"rename the runs' dim, e.g. to 'trajectory'")


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
    themselves (float32 times far from zero hold a step to a few digits only): the
    difference of two rounded times is off by up to one spacing of the floats there,
    two allowed (not more: 0.4 h near 1e6 h in float32 would pass another step)."""
    tol = STEP_RTOL * abs(step)
    if np.issubdtype(values.dtype, np.floating) and values.size:
        tol += 2 * float(np.spacing(np.abs(values).max()))
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

    Time-zone aware times (Python datetimes) are read in UTC, and where that
    reading is uneven, on their wall clock: local midnights across a change to
    summer time are a day apart.

    Parameters
    ----------
    values : array-like or xarray.DataArray
        A time coordinate (a DataArray) keeps the zone of a time-zone aware
        index, which its ``.values`` drop.
    where : str
    consequence : str
    calendar : bool, default=False
        Also accept datetimes regular in the calendar but not in seconds
        (monthly, yearly: months and years differ in length): one calendar
        month, quarter or year apart, stamped at the start, the end or the
        middle of each (monthly means). Their pandas frequency string is
        returned (``"MS"``, ``"YS-JAN"``; ``"MS"``, ``"3MS"`` or ``"12MS"`` where
        pandas names none, e.g. for mid-month stamps).

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
    utc, wall = _readings(values)
    try:
        return _even_step(utc, where, consequence, calendar)
    except ValueError as utc_error:
        if wall is None:  # no zone: no other reading
            raise
        try:
            return _even_step(wall, where, consequence, calendar)
        except ValueError:
            raise utc_error from None


def _readings(values):
    """Times as compared (UTC datetime64 for zoned ones) and, for zoned times, their wall
    clock (else None). A DataArray's index keeps the zone its ``.values`` drop."""
    indexes = getattr(values, "indexes", None)  # an indexed coordinate's own index
    index = None if indexes is None else indexes.get(getattr(values, "name", None))
    if getattr(index, "tz", None) is not None:
        return index.tz_convert(None).to_numpy(), index.tz_localize(None).to_numpy()
    raw = np.asarray(values)
    utc = _as_datetime64(raw)
    return utc, (None if utc is raw else _wall_clock(raw))


def _even_step(values, where, consequence, calendar):
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
        if timelike:
            return step
        # even: the mean step, from the ends (float32 times far from zero round each step to
        # a float spacing, and k median steps drifted off the k-th time: 3584 s for 1 h)
        return float((np.float64(values[-1]) - np.float64(values[0])) / (values.size - 1))
    freq = _calendar_frequency(values) if calendar and timelike else None
    if freq is not None:
        return freq
    i = int(bad[0])
    gap = diffs[i] if timelike else float(diffs[i])
    also = " (nor regular in calendar months or years)" if calendar and timelike else ""
    if not timelike and ((steps >= 28) & (steps <= 31)).all():
        also = (" (steps of 28 to 31 look like calendar months in days: decode the times, "
                "xarray.decode_cf, so that their months can be read)")
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


def _wall_clock(values):
    """Python datetimes as datetime64 of their wall clock (their zone dropped, not converted)."""
    try:
        return np.array([v.replace(tzinfo=None) for v in values], dtype="datetime64[ns]")
    except (AttributeError, TypeError, ValueError):
        return values


def _month_index(values):
    """Months since year 0 (datetime64: since 1970) of datetimes, month 0 = January."""
    if is_cftime(values):
        return np.array([12 * v.year + v.month - 1 for v in values])
    return values.astype("datetime64[M]").astype(np.int64)


def _place_in_period(values, months, n, phase):
    """Seconds from the start of each value's period of ``n`` months (periods starting in
    the months ``phase`` mod ``n``: ``n=3, phase=11`` is DJF, MAM, ...) and its length."""
    first = months - (months - phase) % n
    if is_cftime(values):
        import cftime

        def start(m, calendar):
            return cftime.datetime(m // 12, m % 12 + 1, 1, calendar=calendar)

        cal = values[0].calendar
        offset = np.array([(v - start(m, cal)).total_seconds() for v, m in zip(values, first)])
        length = np.array([(start(m + n, cal) - start(m, cal)).total_seconds() for m in first])
        return offset, length
    begin = first.astype("datetime64[M]").astype(values.dtype)
    end = (first + n).astype("datetime64[M]").astype(values.dtype)
    seconds = np.timedelta64(1, "s")
    return (values - begin) / seconds, (end - begin) / seconds


def calendar_months(values):
    """How many calendar months apart consecutive ``values`` are, or None.

    Datetimes (datetime64, cftime, or Python datetimes, read on their wall clock)
    the same number of months apart in their calendar (one: monthly, twelve:
    yearly), each at one place in its period of that many months (however the
    periods are anchored: seasons DJF, MAM ...): the same day and time (month
    starts, the 15th), or the same fraction of it to within a day (means
    stamped mid-month or mid-season, month ends). A time off that place is not
    of the series (month starts with a 3rd of March; 31-day steps).

    Examples
    --------
    >>> mid = np.array(["2000-01-16T12", "2000-02-15", "2000-03-16T12"], dtype="datetime64[ns]")
    >>> calendar_months(mid), calendar_months(mid[:1])
    (1, None)
    """
    utc, wall = _readings(values)  # months are read on the wall clock
    values = utc if wall is None else wall
    if values.ndim != 1 or values.size < 2:
        return None
    if not (is_cftime(values) or np.issubdtype(values.dtype, np.datetime64)):
        return None
    months = _month_index(values)
    steps = np.diff(months)
    n = int(steps[0])
    if n < 1 or not (steps == n).all():
        return None
    # the place in a period of n months, however the periods are anchored (seasons DJF ...)
    for phase in range(min(n, 12)):
        offset, length = _place_in_period(values, months, n, phase)
        same_day = np.ptp(offset) == 0
        same_fraction = np.ptp(offset / length) * length.min() <= 86400.0
        if same_day or same_fraction:
            return n
    return None


def _calendar_frequency(values):
    """The pandas frequency of datetimes regular in calendar months, quarters or years
    (``"MS"``, ``"YS-JAN"``), or None: business days and hours skip times, they are gaps."""
    import pandas as pd
    import xarray as xr

    n = calendar_months(values)
    if n is None:
        return None
    try:  # pandas' own name, where it has one (month ends: "ME")
        freq = xr.infer_freq(xr.DataArray(values, dims="time")) if values.size > 2 else None
        offset = None if freq is None else pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError):
        offset = None
    if offset is not None and offset_months(offset) == n:
        return freq
    return "MS" if n == 1 else f"{n}MS"


def offset_months(offset):
    """Calendar months of a pandas ``offset`` (``"MS"``: 1, ``"QS-OCT"``: 3, ``"2YS"``: 24),
    or None where it is not months, quarters or years (a fixed step such as ``"6h"``).

    Examples
    --------
    >>> offset_months("ME"), offset_months("QS-OCT"), offset_months("YS-JAN"), offset_months("D")
    (1, 3, 12, None)
    """
    import pandas as pd

    try:
        offset = pd.tseries.frequencies.to_offset(offset)
    except (ValueError, TypeError):
        return None
    months = {pd.offsets.MonthBegin: 1, pd.offsets.MonthEnd: 1, pd.offsets.QuarterBegin: 3,
              pd.offsets.QuarterEnd: 3, pd.offsets.YearBegin: 12, pd.offsets.YearEnd: 12}
    per = months.get(type(offset))
    return None if per is None else per * offset.n
