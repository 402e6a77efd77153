"""Forecasters of fields on one 2-D grid: layout checks, standardisation, clock, climatology.

Shared by :class:`~xdyn.forecast.ClimODE` and :class:`~xdyn.forecast.TransportVGBDM`.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from sklearn.utils._param_validation import StrOptions

from xdyn.forecast.base import BaseForecaster
from xdyn.nn import best_epoch, keep_best, predefined_split
from xdyn.systems._validation import _check_bool

_LON_NAMES = ("lon", "longitude")
_CARTESIAN_NAMES = ("x", "y")   # xdyn's doubly periodic grids (data model: docs/data_model.rst)


# days in every year of the calendars without leap years (cftime's names and aliases)
_FIXED_YEAR_DAYS = {"360_day": 360.0, "noleap": 365.0, "365_day": 365.0,
                    "all_leap": 366.0, "366_day": 366.0}


def _year_days(calendar):
    """Length of the year phase's cycle in days on ``calendar``.

    The calendar's own year where every year has the same length; 365.25 (the
    tropical-year convention ClimODE and VGB-DM were trained with) on calendars
    with leap years and for datetime64 (``calendar`` "proleptic_gregorian" or None).

    Examples
    --------
    >>> _year_days("360_day"), _year_days("noleap"), _year_days("standard")
    (360.0, 365.0, 365.25)
    """
    return _FIXED_YEAR_DAYS.get(str(calendar).lower(), 365.25)


def _harmonic_basis(phase):
    """``(1, cos(day), sin(day), cos(year), sin(year))`` at ``phase`` (n, 2): ``(n, 5)``."""
    return np.stack([np.ones(len(phase)), np.cos(phase[:, 0]), np.sin(phase[:, 0]),
                     np.cos(phase[:, 1]), np.sin(phase[:, 1])], 1)


def _fit_climate(u, phase, ridge=1e-2):
    """Per grid point, least squares:
    ``c0 + c1 cos(day) + c2 sin(day) + c3 cos(year) + c4 sin(year)``.

    A small ridge keeps a harmonic the data cannot resolve (the year over a few
    weeks, everything for model time, whose phases are zero) near zero.
    """
    basis = _harmonic_basis(phase)
    gram = basis.T @ basis + ridge * len(phase) * np.diag([0.0, 1, 1, 1, 1])
    coef = np.linalg.lstsq(gram, basis.T @ u.reshape(len(u), -1), rcond=None)[0]
    return coef.reshape((5,) + u.shape[1:])


def _relaxation_rate(anomaly, n_steps):
    """Per field, the rate ``r`` of ``rho(L) = exp(-r L)`` fitted to the anomalies'
    lag correlations over ``L = 1 .. n_steps`` (least squares on ``log rho``): the
    initial relaxation rate, fitted from the data as the initial velocities are."""
    rates = []
    for a in np.moveaxis(anomaly, 1, 0):
        lags = np.arange(1, min(n_steps, len(a) - 2) + 1)
        rho = np.array([(a[:-L] * a[L:]).sum() / max((a[:-L] ** 2).sum(), 1e-12) for L in lags])
        rho = np.clip(rho, 1e-3, 0.999)
        rates.append(-(lags * np.log(rho)).sum() / (lags ** 2).sum())
    return np.clip(np.array(rates), 1e-3, 1.0)


def _evenly_spaced(values):
    """Whether the 1-D ``values`` are evenly spaced (one value is), to a thousandth of a
    step: coordinates read as float32 hold their values to a few digits only."""
    steps = np.diff(values)
    return bool(steps.size == 0 or np.allclose(steps, steps[0], rtol=0,
                                               atol=1e-3 * abs(steps[0])))


def _closes_circle(lon):
    """Whether longitudes ``lon`` (degrees) are evenly spaced and span 360 less one step.

    Examples
    --------
    >>> _closes_circle(np.arange(0.0, 360.0, 90.0)), _closes_circle(np.arange(0.0, 180.0, 90.0))
    (True, False)
    """
    if lon.size < 2 or not _evenly_spaced(lon):
        return False
    step = abs(lon[1] - lon[0])
    return bool(abs((lon.max() - lon.min()) + step - 360.0) < 1e-3 * step)


def _climate_series(climate, phase):
    """The fitted climatology at ``phase`` (n, 2): ``(n, K, H, W)``."""
    return np.einsum("nj,jkhw->nkhw", _harmonic_basis(phase), climate)


class GriddedForecaster(BaseForecaster):
    """Base of forecasters whose variables are fields on one 2-D grid, sampled evenly.

    :meth:`_setup_grid` (called first in ``_fit``) checks the layout and sets
    ``variables_``, ``spatial_dims_``, ``grid_shape_`` and ``periodic_``
    (:meth:`_periodic`); :meth:`_fit_standardisation` the per-field ``mean_``,
    ``std_`` (on the training part only, with early stopping); :meth:`_fields` turns a
    stacked matrix into standardised ``(n, K, H, W)`` fields and
    :meth:`_phases` gives the day and year phases of each sample (a year of
    the fitted calendar's length where all its years are equal, 360 days on
    ``360_day``; 365.25 days with leap years, as before). Subclasses
    take a ``periodic`` parameter (``"auto"`` or two booleans), and with
    ``early_stopping`` / ``n_iter_no_change`` parameters use
    :meth:`_stopping_on` and :meth:`_record_best_epoch`.
    """

    _parameter_constraints = {
        **BaseForecaster._parameter_constraints,
        "periodic": [StrOptions({"auto"}), tuple, list],
    }

    def _stopping_on(self, valid):
        """Net arguments that stop on the loss of ``valid`` and keep the best epoch."""
        return {"train_split": predefined_split(valid),
                "callbacks": [keep_best("valid_loss", self.n_iter_no_change)]}

    def _record_best_epoch(self):
        """``n_epochs_`` and ``best_validation_loss_`` of an early-stopped fit (none else)."""
        for stale in ("n_epochs_", "best_validation_loss_"):  # from an earlier fit
            vars(self).pop(stale, None)
        if self.early_stopping:
            self.n_epochs_, self.best_validation_loss_ = best_epoch(self.net_.history,
                                                                    "valid_loss")

    def _setup_grid(self, X, times):
        dims, shape = self._grid()
        self.variables_ = self.layout_.names
        self.spatial_dims_, self.grid_shape_ = tuple(dims), tuple(shape)
        self.periodic_ = self._periodic(dims)
        self._check_even(times)

    def _fit_standardisation(self, X):
        """``mean_`` and ``std_`` per field of the samples ``X`` (the training part)."""
        fields = X.reshape(X.shape[0], len(self.variables_), -1)
        self.mean_ = fields.mean((0, 2))
        self.std_ = fields.std((0, 2)) + 1e-12

    def _grid(self):
        name = type(self).__name__
        vs = self.layout_.variables
        first = vs[0]
        if len(first.feature_dims) != 2:
            raise ValueError(f"{name} needs 2 spatial dims per variable; {first.name!r} has "
                             f"feature dims {first.feature_dims}")
        for v in vs[1:]:
            if v.feature_dims != first.feature_dims or v.shape != first.shape:
                raise ValueError(f"variable {v.name!r} has dims {v.feature_dims} {v.shape}; "
                                 f"{name} needs every field on the grid of {first.name!r} "
                                 f"{first.feature_dims} {first.shape}")
        return first.feature_dims, first.shape

    def _periodic(self, dims):
        """The ``periodic`` parameter as two bools, or its "auto" reading of ``dims``.

        "auto": ``lon``/``longitude`` wrap when their coordinate closes the
        circle (evenly spaced, spanning 360 degrees less one step; without a
        coordinate there is nothing to check: an error asks for ``periodic``);
        ``x`` and ``y`` wrap, as on xdyn's doubly periodic grids (Kolmogorov
        flow, shallow water), unless a coordinate of theirs is unevenly spaced;
        every other dim (``lat``, ``latitude``, ...) is bounded.
        """
        name = type(self).__name__
        if self.periodic != "auto":
            if len(self.periodic) != 2:
                raise ValueError(f"periodic must be 'auto' or two booleans; got {self.periodic!r}")
            return tuple(_check_bool(p, f"periodic[{i}]", name)
                         for i, p in enumerate(self.periodic))
        coords = self.layout_.coords
        out = []
        for d in dims:
            values = np.asarray(coords[d].values, dtype=float) if d in coords else None
            if d in _LON_NAMES:
                if values is None:
                    raise ValueError(f"{name}(periodic='auto') reads whether {d!r} closes the "
                                     f"circle from its coordinate, which the data lacks: give "
                                     f"the coordinate or periodic=(..., ...) explicitly")
                out.append(_closes_circle(values))
            elif d in _CARTESIAN_NAMES:
                out.append(values is None or _evenly_spaced(values))
            else:
                out.append(False)
        return tuple(out)

    def _fields(self, X):
        """Standardised ``(n, K, H, W)`` tensor of a stacked matrix."""
        k = len(self.variables_)
        u = X.reshape(X.shape[0], k, *self.grid_shape_)
        return (u - self.mean_[None, :, None, None]) / self.std_[None, :, None, None]

    def _phases(self, times):
        """Day and year phases (radians) of ``times`` ``(n, 2)``, and their advance per step.

        The year phase is ``2 pi (day of year - 1 + hour / 24) / L`` and advances
        ``2 pi dt / L`` per step, with ``L`` the fitted calendar's year length in
        days (:func:`_year_days`): 360 on the ``360_day`` calendar, 365 on
        ``noleap``, 366 on ``all_leap``, so that the phase is periodic in the
        data's own year; 365.25 (the tropical-year convention) on the calendars
        with leap years (``standard``, ``gregorian``, ``proleptic_gregorian``,
        ``julian``, datetime64).
        """
        if self.time_kind_ == "model":
            return np.zeros((len(times), 2)), (0.0, 0.0)
        da = xr.DataArray(np.asarray(times), dims="t")
        hours = da.dt.hour.values + da.dt.minute.values / 60.0
        day = 2 * math.pi * hours / 24.0
        year_days = _year_days(getattr(self, "time_calendar_", None))
        year = 2 * math.pi * (da.dt.dayofyear.values - 1 + hours / 24.0) / year_days
        dt_hours = self.dt_ / np.timedelta64(1, "h")
        return (np.stack([day, year], -1),
                (2 * math.pi * dt_hours / 24.0, 2 * math.pi * dt_hours / (24.0 * year_days)))

    def _check_even(self, times):
        try:
            self._check_sample_step(times)
        except ValueError as err:
            raise ValueError(f"{type(self).__name__} needs evenly spaced samples along "
                             f"{self.sample_dim!r} (step {self.dt_}); resample or split the "
                             "series first") from err
