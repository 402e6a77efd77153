"""Climatology: the mean state of the training data at the valid time's season/hour.

For calendar time (``datetime64`` or any ``cftime`` calendar) the mean is taken
per day of year and hour of day (``groupby=("dayofyear", "hour")``), per hour
only (a diurnal climatology, what a few weeks of hourly data support), per
month, or per day of year; a forecast valid at a key the training data lack
falls back to the hour-of-day mean when it has one, else the overall mean. For
model time the climatology is the time mean (a forecast of the attractor's mean).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from sklearn.utils._param_validation import StrOptions

from xdyn.forecast.base import BaseForecaster

__all__ = ["Climatology"]

_KEYS = {"dayofyear+hour": ("dayofyear", "hour"), "hour": ("hour",),
         "dayofyear": ("dayofyear",), "month": ("month",), "none": ()}


def _calendar_keys(times, keys):
    """Integer keys (one column per key) of datetime64 or cftime ``times``."""
    da = xr.DataArray(np.asarray(times).ravel(), dims="t")
    cols = [np.asarray(getattr(da.dt, k).values, dtype=np.int64) for k in keys]
    return np.stack(cols, -1) if cols else np.zeros((da.size, 0), np.int64)


class Climatology(BaseForecaster):
    """Forecast the training mean at the valid time's day of year and hour.

    Parameters
    ----------
    groupby : {"dayofyear+hour", "hour", "dayofyear", "month", "none"}, default="dayofyear+hour"
        The calendar keys of the mean (calendar time only; model time always
        uses the time mean). ``"hour"`` is a diurnal cycle, ``"none"`` the
        time mean. The day of year (of ``"dayofyear+hour"`` and
        ``"dayofyear"``) is the ordinal day (1-366), not the date, as in
        WeatherBench: in a leap year of a calendar with leap days, every date
        from 1 March on has a day of year one more than in other years, so
        1 March 2000 (day 61) is pooled with 2 March 2001, and day 366
        (31 December of a leap year) exists only in leap years (without one in
        training, a forecast valid then falls back to the hour-of-day mean).
        ``"month"`` and ``"hour"`` are unaffected, as are calendars without
        leap years (``"noleap"``, ``"360_day"``).
    sample_dim : str, default="time"
        The time (sample) dimension; every other dim is a feature.

    Attributes
    ----------
    keys_ : ndarray of shape (n_groups, n_keys)
        The calendar keys seen in training.
    means_ : ndarray of shape (n_groups, n_features)
        The mean per key.
    hour_means_ : dict
        Hour-of-day means, the fallback for keys unseen in training.
    mean_ : ndarray of shape (n_features,)
        The time mean.
    layout_, n_features_in_, time_kind_, time_calendar_, time_units_, dt_
        See :class:`~xdyn.forecast.BaseForecaster`.

    Examples
    --------
    A diurnal cycle (+1 K at noon) is forecast at the valid hour, also with a
    cftime calendar:

    >>> import numpy as np, xarray as xr
    >>> time = xr.date_range("2000-01-01", periods=8, freq="12h", calendar="noleap",
    ...                      use_cftime=True)
    >>> ds = xr.Dataset({"T": ("time", np.tile([0.0, 1.0], 4), {"units": "K"})},
    ...                 coords={"time": time})
    >>> clim = Climatology(groupby="hour").fit(ds)
    >>> clim.predict(ds.isel(time=[0]), lead_times=["12h", "24h"])["T"].values.tolist()
    [[1.0, 0.0]]
    """

    _parameter_constraints = {
        **BaseForecaster._parameter_constraints,
        "groupby": [StrOptions(set(_KEYS))],
    }

    def __init__(self, *, groupby="dayofyear+hour", sample_dim="time"):
        self.groupby = groupby
        self.sample_dim = sample_dim

    def _fit(self, X, times):
        self.mean_ = X.mean(0)
        keys = _KEYS[self.groupby] if self.time_kind_ != "model" else ()
        self.keys_ = np.zeros((1, 0), np.int64)
        self.means_ = self.mean_[None]
        self.hour_means_ = {}
        if keys:
            k = _calendar_keys(times, keys)
            self.keys_, inverse = np.unique(k, axis=0, return_inverse=True)
            self.means_ = _group_means(X, inverse.ravel(), len(self.keys_))
            hours = _calendar_keys(times, ("hour",))[:, 0]
            uh, ih = np.unique(hours, return_inverse=True)
            self.hour_means_ = dict(zip(uh.tolist(), _group_means(X, ih.ravel(), len(uh))))
        return self

    def _predict(self, X, times, lead_times):
        n, n_lead = len(times), len(lead_times)
        keys = _KEYS[self.groupby] if self.time_kind_ != "model" else ()
        if not keys:
            return np.broadcast_to(self.mean_, (n, n_lead, self.mean_.size)).copy()
        valid = self.valid_times(times, lead_times).ravel()
        wanted = _calendar_keys(valid, keys)
        hours = _calendar_keys(valid, ("hour",))[:, 0]
        lookup = {tuple(k): i for i, k in enumerate(self.keys_.tolist())}
        out = np.empty((valid.size, self.mean_.size))
        for i, key in enumerate(wanted.tolist()):
            j = lookup.get(tuple(key))
            if j is not None:
                out[i] = self.means_[j]
            else:
                out[i] = self.hour_means_.get(int(hours[i]), self.mean_)
        return out.reshape(n, n_lead, -1)


def _group_means(X, inverse, n_groups):
    sums = np.zeros((n_groups, X.shape[1]))
    np.add.at(sums, inverse, X)
    return sums / np.bincount(inverse, minlength=n_groups)[:, None]
