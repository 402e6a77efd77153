"""Delay embedding: a state next to its own past, as more variables of one Dataset.

A closure of unresolved scales conditioned on the resolved state alone treats
the unresolved field as a function of that state; where it is not slaved to it,
the past of the resolved state carries what the present lacks (the memory term
of the Mori-Zwanzig formalism; Chorin, Hald & Kupferman 2002, Physica D 166).
:func:`delay_embedding` gives an estimator that reads Datasets that past as
variables ``{name}_lag{lag}``, so any Dataset estimator (a convolutional
regressor reads them as channels, a PCA as features) can use it unchanged.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xdyn._labels import (calendar_months, even_step, offset_months, same_step,
                          step_tolerance)
from xdyn._units import step_units
from xdyn.utils._validation import is_integer

__all__ = ["delay_embedding", "delayed_variables", "lagged_name"]


def lagged_name(name, lag):
    """The name :func:`delay_embedding` gives variable ``name`` ``lag`` steps back.

    Parameters
    ----------
    name : str
        The variable's name.
    lag : int
        Number of steps back (formatted as given).

    Returns
    -------
    str
        ``"<name>_lag<lag>"``.

    Examples
    --------
    >>> lagged_name("u", 10)
    'u_lag10'
    """
    return f"{name}_lag{lag}"


def delayed_variables(data, dim="time"):
    """The variables of ``data`` that :func:`delay_embedding` delays: those with ``dim``.

    Parameters
    ----------
    data : xarray.Dataset
        The data to embed.
    dim : str, default="time"
        The dim along which the embedding delays.

    Returns
    -------
    list of str
        Their names, in the order of ``data.data_vars``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"u": ("time", np.zeros(3)), "nu": ((), 0.1)})
    >>> delayed_variables(ds)
    ['u']
    """
    return [name for name, var in data.data_vars.items() if dim in var.dims]


def lag_step(data, dim, name="data"):
    """The time step one lag along ``dim`` stands for; None without times to read it from.

    Times are a 1-D numeric, datetime64, timedelta64 or cftime coordinate of
    ``dim`` (else the lags are positional: None). They must increase strictly
    and be evenly spaced, or a lag would pair samples that many steps apart in
    storage across a gap; the ValueError names the first step that breaks it.
    Datetimes may instead be regular in the calendar (monthly, yearly means).

    Returns
    -------
    float, str or None
        The step of numeric times; for datetimes its pandas frequency string
        (``"D"``, ``"6h"``, ``"MS"``), which a netCDF attribute can hold.

    Examples
    --------
    >>> import pandas as pd, xarray as xr
    >>> lag_step(xr.Dataset(coords={"time": pd.date_range("2000", periods=4, freq="6h")}),
    ...          "time")
    '6h'
    """
    if dim not in data.coords:
        return None
    step = even_step(data[dim], f"{name}'s {dim!r} coordinate",
                     "a lag would pair samples across it: split the data at the gap, or "
                     "resample it evenly", calendar=True)
    return _frequency(step) if isinstance(step, np.timedelta64) else step


def _frequency(step):
    import pandas as pd

    return pd.tseries.frequencies.to_offset(pd.Timedelta(step)).freqstr


def same_lag_step(a, b, values, tolerance=0.0):
    """Whether lag steps ``a`` and ``b`` (as :func:`lag_step` gives them) are one step.

    A ``timedelta64`` (recorded before steps were frequency strings) is read as
    its frequency; numeric steps agree to the rounding of the times ``values``
    or to ``tolerance`` (a fitted step's ``lag_step_tolerance``). Calendar steps
    agree by their months (``"MS"`` and ``"ME"``: one); a calendar step and a
    fixed one agree where the times ``values`` are that many calendar months
    apart (see :func:`xdyn._labels.calendar_months`): July to September are 31
    days apart each.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> same_lag_step("D", np.timedelta64(24, "h"), None), same_lag_step("D", "MS", None)
    (True, False)
    >>> same_lag_step("MS", "744h", pd.date_range("2000-07", periods=3, freq="MS").values)
    True
    """
    if not any(isinstance(s, (str, np.timedelta64)) for s in (a, b)):
        return same_step(a, b, values, tolerance)
    import pandas as pd

    try:  # "D" and "24h" are one step; "MS" a calendar step, as "ME" is
        a, b = (pd.tseries.frequencies.to_offset(_frequency(s) if isinstance(s, np.timedelta64)
                                                 else s) for s in (a, b))
    except (ValueError, TypeError):
        return False
    fixed = [_timedelta(s) for s in (a, b)]
    if None not in fixed:
        return fixed[0] == fixed[1]
    months = [offset_months(s) for s in (a, b)]
    if fixed == [None, None]:  # "MS" and "ME" are both one calendar month
        return months[0] is not None and months[0] == months[1]
    # a short or lucky run of months reads as a fixed step: whether its times are months
    calendar = months[fixed.index(None)]
    return calendar is not None and values is not None and calendar_months(values) == calendar


def _timedelta(offset):
    """The fixed length of a pandas ``offset`` ("D", "6h"); None for a calendar one ("MS")."""
    import pandas as pd

    try:
        return pd.Timedelta(offset)
    except (ValueError, TypeError):
        return None


def delay_embedding(data, lags, dim="time"):
    """``data`` with each variable's values ``lags`` steps back along ``dim`` beside it.

    Parameters
    ----------
    data : xarray.Dataset
    lags : sequence of int
        Positive delays, in steps along ``dim``. Empty: ``data`` unchanged.
    dim : str, default="time"
        Where ``dim`` has a coordinate of times (numeric, datetime64 or
        timedelta64), they must increase strictly and be evenly spaced, so
        that a lag is one time (a ValueError names a gap); without one the
        lags are positional, the samples taken as evenly spaced.

    Returns
    -------
    xarray.Dataset
        Every variable of ``data`` that has ``dim`` and, for each lag ``l``,
        ``{name}_lag{l}`` (:func:`lagged_name`): its value ``l`` steps earlier,
        with the attrs ``delay_of`` (``name``), ``lag`` and, with a coordinate
        of times, ``lag_step``: the time step one lag stands for (the delay is
        ``lag * lag_step``; see :func:`lag_step`) and, for model times that state
        their ``units``, ``lag_step_units``, for whoever reads them to check (and,
        for float32 times, the rounding they hold the step to, ``lag_step_tolerance``).
        Only the steps
        that have their whole past are kept: the first ``max(lags)`` are
        dropped, so the result is ``max(lags)`` shorter along ``dim`` (per
        trajectory, when other dims such as ``trajectory`` are present).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"u": ("time", np.arange(6.0))}, coords={"time": np.arange(6) / 2})
    >>> out = delay_embedding(ds, [1, 3])
    >>> out.time.values.tolist(), out.u.values.tolist(), out.u_lag3.values.tolist()
    ([1.5, 2.0, 2.5], [3.0, 4.0, 5.0], [0.0, 1.0, 2.0])
    >>> out.u_lag3.attrs
    {'delay_of': 'u', 'lag': 3, 'lag_step': 0.5}
    """
    if not isinstance(data, xr.Dataset):
        raise TypeError(f"delay_embedding takes an xarray.Dataset; got {type(data).__name__}")
    lags = list(lags)
    if any(not is_integer(lag) or lag < 1 for lag in lags):
        raise ValueError(f"lags must be positive integers; got {lags}")
    if len(set(lags)) != len(lags):
        raise ValueError(f"lags must be distinct; got {lags}")
    if not lags:
        return data
    if dim not in data.dims:
        raise ValueError(f"data has no dim {dim!r} to delay along; its dims are "
                         f"{tuple(data.dims)}")
    longest, n = max(lags), data.sizes[dim]
    if n <= longest:
        raise ValueError(f"a delay of {longest} steps needs more than {longest} along "
                         f"{dim!r}; the data have {n}")
    delayed = delayed_variables(data, dim)
    if not delayed:
        raise ValueError(f"no variable of data has the dim {dim!r}")
    clash = [lagged_name(v, lag) for v in delayed for lag in lags
             if lagged_name(v, lag) in data.data_vars]
    if clash:
        raise ValueError(f"data already has the variables {clash}; delay it once")
    step = lag_step(data, dim)
    extra = {} if step is None else {"lag_step": step}
    # model time: 0.5 in hours is not 0.5 in days (a step's units: "hours" of "hours since")
    units = step_units(data[dim].attrs.get("units")) if isinstance(step, float) else None
    if units is not None:
        extra["lag_step_units"] = units
    times = data[dim].values if step is not None else None
    if isinstance(step, float) and times.dtype.itemsize < 8:
        # float32 times (a netCDF file) hold the step to a few digits only: whoever
        # compares it with a step of other times needs that rounding
        extra["lag_step_tolerance"] = float(step_tolerance(times, step))
    out = data.isel({dim: slice(longest, None)})
    for name in delayed:
        for lag in lags:
            # a bare Variable: the past keeps its values, not its own time coordinate
            past = data[name].variable[{dim: slice(longest - lag, n - lag)}]
            out[lagged_name(name, lag)] = past.copy(deep=False)
            out[lagged_name(name, lag)].attrs.update(delay_of=name, lag=lag, **extra)
    return out
