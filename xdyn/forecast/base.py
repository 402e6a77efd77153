"""The forecaster contract: ``fit(ds)``, ``predict(ds, lead_times)``, ``score``.

Every forecaster of :mod:`xdyn.forecast` subclasses :class:`BaseForecaster`,
which does everything that is not the model itself, once:

* input checks (the sample dim, NaN, numeric variables; at ``predict`` the
  kind, calendar and ``units`` of the time coordinate, as fitted) with errors
  naming the variable or dim, and
  ``_parameter_constraints`` checked once at ``fit``;
* Dataset ⇄ matrix through :func:`xdyn.preprocessing.stack_samples` (every
  non-sample dim is a feature; a 2-D ndarray is a ``(sample, feature)``
  matrix with model time ``0, 1, 2 ...``);
* lead times: timedeltas for ``datetime64``/``cftime`` time coordinates
  (``np.timedelta64(6, "h")``, ``"6h"``, :class:`datetime.timedelta`), plain
  numbers in the time coordinate's units for model time;
* the output layout: a Dataset like the input with dims
  ``(sample_dim, "lead_time"[, "member"], *feature dims)``, where
  ``sample_dim`` now labels the initialisation time, ``lead_time`` is a
  ``timedelta64`` (or float) coordinate and ``valid_time`` a 2-D coordinate
  ``init + lead``; a 2-D array input gives a bare array
  ``(n_init, n_lead[, n_members], n_features)``;
* the verification: :meth:`score` is minus the latitude-weighted RMSE
  (:func:`xdyn.metrics.weighted_rmse`, where a ``lat`` or ``latitude`` dim
  exists) or minus the RMSE (no latitude dim: a Cartesian grid), against
  :func:`xdyn.forecast.lead_aligned_truth` — the one way every forecaster and
  experiment builds its verifying truth.

A subclass writes two hooks (nothing else is required):

``_fit(self, X, times)``
    ``X`` the training matrix ``(n_samples, n_features)`` (numpy float, in the
    order of the sample dim), ``times`` its sample coordinate values. Set the
    learned state (names ending with ``_``). ``self.layout_``
    (:class:`~xdyn.preprocessing.StackInfo`: variables, their feature dims
    and grid coordinates), ``self.dt_`` (median sample spacing: a
    ``numpy.timedelta64`` or a float) and ``self.time_kind_`` are already set.
``_predict(self, X, times, lead_times)``
    Forecasts from every row of ``X`` (the initial states, in sample order;
    a model that needs a history fills NaN where it has none), ``times`` their
    coordinate values and ``lead_times`` a 1-D array (``timedelta64`` or
    float). Returns ``(n_init, n_lead, n_features)``, or
    ``(n_init, n_lead, n_members, n_features)`` when the class sets
    ``_probabilistic = True``. :meth:`lead_steps` turns the lead times into
    (possibly fractional) multiples of ``dt_``; :meth:`valid_times` gives
    ``init + lead``.

Probabilistic forecasters take ``n_members``; :meth:`score` and the RMSE use
their ensemble mean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils._param_validation import StrOptions  # noqa: F401 - for subclasses
from sklearn.utils.validation import check_is_fitted

from xdyn._units import other_units, stated_units, step_units
from xdyn.forecast._time import (LEAD_DIM, MEMBER_DIM, VALID_TIME, _as_timedelta64, _calendar,
                                 _refuse_unitless, _time_kind, add_lead)
from xdyn.forecast._verify import forecast_rmse, lead_aligned_truth
from xdyn.model_selection import unwrap
from xdyn.preprocessing.stacking import FEATURE_DIM, stack_samples

__all__ = ["BaseForecaster", "LEAD_DIM", "MEMBER_DIM", "VALID_TIME"]

class BaseForecaster(RegressorMixin, BaseEstimator):
    """Base class of the forecasters: fit on a time series, forecast at lead times.

    Subclasses implement ``_fit`` and ``_predict`` (see the module docstring,
    which is the contract) and extend ``_parameter_constraints``.

    Parameters
    ----------
    sample_dim : str, default="time"
        The time (sample) dimension; every other dim is a feature.

    Attributes
    ----------
    layout_ : StackInfo
        Variables, feature dims and grid coordinates of the training data.
    n_features_in_ : int
        Columns of the stacked training matrix.
    time_kind_ : {"datetime", "cftime", "model"}
        The kind of the training time coordinate.
    time_calendar_ : str or None
        Its calendar: cftime's (``"360_day"``, ``"standard"`` ...),
        ``"proleptic_gregorian"`` for datetime64, None for model time.
        :meth:`predict` refuses times of another kind or calendar.
    time_units_ : str or None
        The ``units`` attr of a model (numeric) time coordinate (None without
        one, or for calendar time). :meth:`predict` refuses data whose time
        declares other units (compared as units: ``"hours"`` is ``"h"``); data
        without a ``units`` attr (or an empty one) is taken as in these.
    dt_ : numpy.timedelta64 or float
        Median spacing of the training samples (``1.0`` for a bare array).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from xdyn.forecast import Persistence
    >>> ds = xr.Dataset({"T": (("time", "x"), np.arange(8.0).reshape(4, 2), {"units": "K"})},
    ...                 coords={"time": np.arange(4.0)})
    >>> fc = Persistence().fit(ds).predict(ds, lead_times=[1.0, 2.0])
    >>> dict(fc["T"].sizes), fc["valid_time"].values[0].tolist()
    ({'time': 4, 'lead_time': 2, 'x': 2}, [1.0, 2.0])
    >>> round(Persistence().fit(ds).score(ds, lead_times=[1.0]), 6)  # off by 2 K each step
    -2.0
    """

    _parameter_constraints: dict = {"sample_dim": [str]}
    _probabilistic = False

    def __init__(self, *, sample_dim="time"):
        self.sample_dim = sample_dim

    # ------------------------------------------------------------ public API
    def fit(self, X, y=None):
        """Learn from a time series ``X`` (Dataset, DataArray or 2-D array); returns self.

        Parameters
        ----------
        X : xarray.Dataset, xarray.DataArray or ndarray of shape (n_samples, n_features)
            Training states along ``sample_dim``, without NaN.
        y : None
            Ignored (the targets are later samples of ``X``).
        """
        self._validate_params()
        data, is_array = self._as_labelled(X)
        self._check_finite(data)
        matrix, self.layout_ = stack_samples(data, self.sample_dim)
        self.n_features_in_ = self.layout_.n_features
        self._fitted_on_array_ = is_array
        times = self._times(data)
        self.time_kind_ = _time_kind(times)
        self.time_calendar_ = _calendar(times, self.time_kind_)
        self.time_units_ = (stated_units(data[self.sample_dim].attrs.get("units"))
                            if self.time_kind_ == "model" else None)
        self.dt_ = self._median_step(times)
        self._fit(np.asarray(matrix.values, dtype=float), times)
        return self

    def predict(self, X, lead_times=None):
        """Forecast from every sample of ``X`` at each of ``lead_times``.

        Parameters
        ----------
        X : xarray.Dataset, xarray.DataArray or ndarray
            Initial states, with the training layout (any number of samples).
        lead_times : sequence, optional
            Timedeltas for datetime/cftime data, numbers in time units for
            model time. Default: one step, ``[dt_]``.

        Returns
        -------
        xarray.Dataset, xarray.DataArray or ndarray
            See the module docstring: dims ``(sample_dim, "lead_time"[, "member"], ...)``
            and a ``valid_time`` coordinate.
        """
        check_is_fitted(self, "layout_")
        data, is_array = self._as_labelled(X, fitted=True)
        self._check_finite(data, what="initial states")
        self._check_time_coordinate(data)
        leads = self._check_leads(lead_times)
        times = self._times(data)
        matrix = stack_samples(data, self.sample_dim, info=self.layout_)[0]
        out = np.asarray(self._predict(np.asarray(matrix.values, dtype=float), times, leads))
        expected = (matrix.shape[0], leads.size) + ((None,) if self._probabilistic else ()) \
            + (self.n_features_in_,)
        if out.ndim != len(expected) or any(e is not None and e != s
                                            for e, s in zip(expected, out.shape)):
            raise RuntimeError(f"{type(self).__name__}._predict returned shape {out.shape}; "
                               f"expected {tuple('n_members' if e is None else e for e in expected)}")
        if is_array:
            return out
        return self._unstack(out, data, times, leads)

    def score(self, X, lead_times=None):
        """Minus the RMSE of the forecasts from ``X`` against ``X`` itself.

        Forecasts start from every sample of ``X``; those whose valid time lies
        past its end are left out. The RMSE is latitude-weighted
        (:func:`xdyn.metrics.weighted_rmse`) when ``X`` has a ``lat`` or
        ``latitude`` dim (:func:`~xdyn.forecast.forecast_rmse`), unweighted
        without one (data on ``y``/``x``, or another name for latitude),
        averaged over variables (in their units: scale first to mix them) and
        leads; an ensemble is scored by its mean.

        Parameters
        ----------
        X : xarray.Dataset, xarray.DataArray or ndarray
            A time series with the training layout: the initial states and
            their verifying truth.
        lead_times : sequence, optional
            As for :meth:`predict`; default one step, ``[dt_]``. Second
            positional argument, where scikit-learn passes ``y`` (a model
            search's ``score(X, None)`` scores one step).

        Returns
        -------
        float
            Higher is better (scikit-learn's convention); NaN when a forecast
            failed (NaN where ``X`` is known), which a model search ranks last.

        Raises
        ------
        ValueError
            When no forecast at some lead time verifies inside ``X`` (its valid
            times lie past the end of ``X`` or between its samples).

        Notes
        -----
        Through a :class:`~sklearn.pipeline.Pipeline`, pass the lead times
        positionally: ``pipe.score(ds, ["48h"])``. ``Pipeline.score`` hands its
        ``y`` on as the second argument, but drops keyword arguments unless
        scikit-learn's metadata routing is enabled, so ``pipe.score(ds,
        lead_times=["48h"])`` scores the default one-step lead. Enabling
        metadata routing does not help: ``Pipeline.score`` then refuses its own
        ``sample_weight``, which forecasters do not take (scikit-learn 1.9).
        """
        check_is_fitted(self, "layout_")
        forecast = self.predict(X, lead_times)
        data, _ = self._as_labelled(X, fitted=True)
        if isinstance(forecast, np.ndarray):
            forecast = xr.DataArray(forecast, dims=(self.sample_dim, LEAD_DIM)
                                    + ((MEMBER_DIM,) if self._probabilistic else ())
                                    + (FEATURE_DIM,))
            forecast = forecast.assign_coords({self.sample_dim: data[self.sample_dim].values,
                                               LEAD_DIM: self._check_leads(lead_times)})
            data = data.rename(None)
        truth = lead_aligned_truth(data, forecast, sample_dim=self.sample_dim)
        verifiable = truth.notnull()
        if isinstance(verifiable, xr.Dataset):
            verifiable = verifiable.to_array("variable")
        verifiable = verifiable.any([d for d in verifiable.dims if d != LEAD_DIM])
        if not bool(verifiable.all()):
            missing = [_step_str(v) for v in verifiable[LEAD_DIM].values[~verifiable.values]]
            raise ValueError(f"no forecast of X at lead_times {missing} verifies inside X "
                             "(their valid times are past its end or between its samples): "
                             "give more samples or other lead_times")
        per_lead = forecast_rmse(forecast, truth, sample_dim=self.sample_dim)
        if isinstance(per_lead, xr.Dataset):
            per_lead = per_lead.to_array("variable")
        # not skipna: a lead whose forecast failed (NaN where the truth is known) makes the
        # score NaN, as a model search expects, rather than leaving that lead out
        return -float(per_lead.mean(skipna=False))

    def lead_steps(self, lead_times):
        """Lead times as (possibly fractional) multiples of the sample spacing ``dt_``.

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> from xdyn.forecast import Persistence
        >>> ds = xr.Dataset({"a": ("time", np.zeros(3))},
        ...                 coords={"time": np.array(["2000-01-01T00", "2000-01-01T06",
        ...                                           "2000-01-01T12"], dtype="datetime64[ns]")})
        >>> Persistence().fit(ds).lead_steps(np.array([6, 9], dtype="timedelta64[h]")).tolist()
        [1.0, 1.5]
        """
        check_is_fitted(self, "layout_")
        leads = self._check_leads(lead_times)
        return (leads / self.dt_).astype(float)

    def valid_times(self, times, lead_times):
        """``init + lead`` for every pair, shape ``(n_init, n_lead)``.

        Examples
        --------
        >>> import numpy as np
        >>> from xdyn.forecast import Persistence
        >>> fc = Persistence().fit(np.zeros((3, 1)))
        >>> fc.valid_times(np.array([0.0, 1.0]), [2.0]).tolist()
        [[2.0], [3.0]]
        """
        check_is_fitted(self, "layout_")
        return add_lead(times, self._check_leads(lead_times), self.time_kind_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags

    # -------------------------------------------------------- subclass hooks
    def _fit(self, X, times):  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, X, times, lead_times):  # pragma: no cover - abstract
        raise NotImplementedError

    # --------------------------------------------------------------- helpers
    def _as_labelled(self, X, fitted=False):
        """``(Dataset or DataArray, came_as_array)``, with the sample dim checked."""
        X = unwrap(X)
        if isinstance(X, (xr.Dataset, xr.DataArray)):
            if fitted and getattr(self, "_fitted_on_array_", False):
                raise TypeError(f"{type(self).__name__} was fitted on a bare array; "
                                "pass a 2-D array here too")
            if self.sample_dim not in X.dims:
                raise ValueError(f"sample_dim {self.sample_dim!r} not found in the data; "
                                 f"its dims are {tuple(X.dims)}")
            self._check_reserved_dims(X)
            if isinstance(X, xr.Dataset):
                if not X.data_vars:
                    raise ValueError("the Dataset has no data variables")
                for name, var in X.data_vars.items():
                    if self.sample_dim not in var.dims:
                        raise ValueError(f"variable {name!r} lacks the sample dim "
                                         f"{self.sample_dim!r} (dims {var.dims})")
                    if not np.issubdtype(var.dtype, np.number):
                        raise TypeError(f"variable {name!r} is not numeric (dtype {var.dtype})")
            if self.sample_dim not in X.coords:
                X = X.assign_coords({self.sample_dim: np.arange(X.sizes[self.sample_dim],
                                                                dtype=float)})
            return X, False
        if isinstance(X, np.ndarray) or hasattr(X, "__array__"):
            if fitted and not getattr(self, "_fitted_on_array_", True):
                raise TypeError(f"{type(self).__name__} was fitted on labelled data; "
                                "pass a Dataset/DataArray here too")
            arr = np.asarray(X, dtype=float)
            if arr.ndim != 2:
                raise ValueError(f"a bare array X must be 2-D (n_samples, n_features); "
                                 f"got shape {arr.shape}")
            da = xr.DataArray(arr, dims=(self.sample_dim, FEATURE_DIM),
                              coords={self.sample_dim: np.arange(arr.shape[0], dtype=float)})
            return da, True
        raise TypeError(f"X must be an xarray Dataset, DataArray or a 2-D array; "
                        f"got {type(X).__name__}")

    def _check_reserved_dims(self, data):
        """Raise where a dim of ``data`` is named as a dim or coordinate of the forecasts.

        A data dim ``member`` (an ensemble of analyses) was fitted as a feature
        dim and then scored as the forecaster's own ensemble (by its mean); a
        ``lead_time`` or ``valid_time`` dim collides with the forecast's.
        """
        for dim in (MEMBER_DIM, LEAD_DIM, VALID_TIME):
            if dim in data.dims:
                new = {MEMBER_DIM: "number", LEAD_DIM: "step", VALID_TIME: "time"}[dim]
                raise ValueError(f"the data has a dim named {dim!r}, which "
                                 f"{type(self).__name__}'s forecasts reserve (their dims are "
                                 f"(sample_dim, {LEAD_DIM!r}[, {MEMBER_DIM!r}], ...) with a "
                                 f"{VALID_TIME!r} coordinate): rename it first, e.g. "
                                 f"ds.rename({{{dim!r}: {new!r}}})")

    def _check_variables(self, data):
        """Raise unless the variables of ``data`` state the fitted ``units`` (and name).

        The forecast is labelled with the fitted attrs: values in degC would come
        back labelled K, a DataArray ``q`` named as the fitted ``t2m``. A side
        that states no units is taken as in the other's; an unnamed DataArray as
        the fitted one.
        """
        info, name = self.layout_, type(self).__name__
        if isinstance(data, xr.DataArray):
            if info.is_dataarray and None not in (data.name, info.name) \
                    and data.name != info.name:
                raise ValueError(f"{name} was fitted on the DataArray {info.name!r}; got one "
                                 f"named {data.name!r}: give {info.name!r} (or rename it)")
            given = {v.name: data for v in info.variables}
        else:
            given = {v.name: data[v.name] for v in info.variables if v.name in data.data_vars}
        for v in info.variables:
            if v.name not in given:
                continue  # the layout check names a missing variable
            units, fitted = given[v.name].attrs.get("units"), v.attrs.get("units")
            if other_units(units, fitted):
                label = v.name if info.name is None else info.name
                raise ValueError(f"{name} was fitted on variable {label!r} in units "
                                 f"{fitted!r}; this data's {label!r} is in {units!r}: convert "
                                 f"it to {fitted!r} first (its forecast is labelled {fitted!r})")

    def _check_finite(self, data, what="training data"):
        variables = data.data_vars.items() if isinstance(data, xr.Dataset) else [(data.name, data)]
        for name, var in variables:
            if bool(var.isnull().any()):
                raise ValueError(f"variable {name!r} of the {what} has NaN; fill or drop "
                                 f"them first (e.g. ds.dropna({self.sample_dim!r}))")
            if np.issubdtype(var.dtype, np.number) and bool(np.isinf(var).any()):
                raise ValueError(f"variable {name!r} of the {what} has infinite values")

    def _times(self, data):
        return np.asarray(data[self.sample_dim].values)

    def _check_time_coordinate(self, data):
        """Raise unless the time of ``data`` has the fitted kind, calendar and units
        (and its variables the fitted units: :meth:`_check_variables`).

        A forecast from times of another calendar (another day of year) or in
        other units (a lead of 1 read in hours, labelled in days) would be
        wrong silently. Forecasters unpickled from before these were recorded
        are not checked.
        """
        self._check_variables(data)  # every predict (TrajectoryForecaster's too) calls this
        if not hasattr(self, "time_calendar_"):
            return
        sd, name, coord = self.sample_dim, type(self).__name__, data[self.sample_dim]
        kind = _time_kind(coord.values)
        calendar = _calendar(coord.values, kind)
        if (kind, calendar) != (self.time_kind_, self.time_calendar_):
            def what(k, c):
                k = "datetime64" if k == "datetime" else k
                return "model (numeric) time" if k == "model" else f"{k} times in calendar {c!r}"
            hint = ("convert them first, e.g. ds.convert_calendar("
                    f"{self.time_calendar_!r}, use_cftime={self.time_kind_ == 'cftime'})"
                    if calendar and self.time_calendar_ else "give times of the fitted kind")
            raise ValueError(f"{name} was fitted on {sd!r} as "
                             f"{what(self.time_kind_, self.time_calendar_)}; this data's {sd!r} "
                             f"is {what(kind, calendar)}: {hint}")
        units = coord.attrs.get("units") if kind == "model" else None
        fitted = getattr(self, "time_units_", None)
        # compared as units ("hours" is "h"); an empty units attr states none
        if other_units(units, fitted):
            raise ValueError(f"{name} was fitted on {sd!r} in units {fitted!r}; this data's "
                             f"{sd!r} is in {units!r}: convert the times (and lead_times) to "
                             f"{fitted!r} first")

    def _steps(self, times):
        if self.time_kind_ == "cftime":
            steps = np.array([(b - a) for a, b in zip(times[:-1], times[1:])])
            return _as_timedelta64(list(steps))
        return np.diff(times)

    def _check_sample_step(self, times):
        """Raise unless ``times`` are evenly spaced by the fitted ``dt_``.

        For forecasters that read consecutive samples as one ``dt_`` apart
        (a history, an episode, a finite-difference velocity): data at another
        spacing would be read as the fitted one, a wrong forecast returned silently.
        """
        steps = self._steps(np.asarray(times)) if len(times) > 1 else np.array([self.dt_])
        off = np.abs((steps - self.dt_) / self.dt_) > 1e-6
        if np.any(off):
            found = ", ".join(_step_str(v) for v in np.unique(steps[off])[:3])
            raise ValueError(f"{type(self).__name__} reads consecutive samples as one fitted "
                             f"step {_step_str(self.dt_)} apart; the {self.sample_dim!r} steps "
                             f"of this data include {found}: resample or split the series first")

    def _median_step(self, times):
        if times.size < 2:
            raise ValueError(f"need at least 2 samples along {self.sample_dim!r}, "
                             f"got {times.size}")
        steps = self._steps(times)
        step = np.sort(steps)[steps.size // 2]
        if not step > np.zeros((), steps.dtype):
            raise ValueError(f"the {self.sample_dim!r} coordinate must increase")
        return step if self.time_kind_ != "model" else float(step)

    def _check_leads(self, lead_times):
        if lead_times is None:
            return np.atleast_1d(np.asarray(self.dt_))
        if self.time_kind_ == "model":
            leads = np.atleast_1d(np.asarray(lead_times))
            if not (leads.dtype.kind in "iuf" and leads.ndim == 1):
                raise TypeError(f"lead_times must be a 1-D sequence of numbers (in time units of "
                                f"{self.sample_dim!r}) for model time; got {lead_times!r}")
            leads = leads.astype(float)
        else:
            _refuse_unitless(lead_times)  # a ValueError naming it, not the TypeError below
            try:
                leads = _as_timedelta64(lead_times)
            except (TypeError, ValueError):
                raise TypeError(f"lead_times must be timedeltas (np.timedelta64(6, 'h'), '6h') "
                                f"for the {self.time_kind_} coordinate {self.sample_dim!r}; "
                                f"got {lead_times!r}") from None
            if leads.ndim != 1:
                raise ValueError(f"lead_times must be 1-D; got shape {leads.shape}")
        unknown = np.isnat(leads) if leads.dtype.kind == "m" else ~np.isfinite(leads)
        if np.any(unknown):
            bad = ", ".join(_step_str(v) for v in leads[unknown][:3])
            raise ValueError(f"lead_times must be finite; got {bad} in {lead_times!r}")
        if leads.size == 0 or np.any(leads < np.zeros((), leads.dtype)):
            raise ValueError(f"lead_times must be non-empty and >= 0; got {lead_times!r}")
        return leads

    def _unstack(self, out, data, times, leads):
        sd, info = self.sample_dim, self.layout_
        member = (MEMBER_DIM,) if self._probabilistic else ()
        lead_attrs = {"long_name": "forecast lead time"}
        valid_attrs = {"long_name": "time the forecast is valid at"}
        if self.time_kind_ == "model":
            # data whose time states no units is in the fitted ones
            units = stated_units(data[sd].attrs.get("units")) or getattr(self, "time_units_", None)
            if units:
                # a lead is a duration: "hours" of "hours since 2000-01-01" (with the epoch, a
                # file read back would decode the leads as dates); a valid time is a time
                lead_attrs["units"] = step_units(units)
                valid_attrs["units"] = units
        coords = {k: c.variable for k, c in data.coords.items() if c.dims == (sd,)}
        coords[LEAD_DIM] = xr.Variable((LEAD_DIM,), leads, lead_attrs)
        coords[VALID_TIME] = xr.Variable((sd, LEAD_DIM), add_lead(times, leads, self.time_kind_),
                                         valid_attrs)
        if member:
            coords[MEMBER_DIM] = np.arange(out.shape[2])
        data_vars = {}
        lead_shape = out.shape[:-1]
        for v in info.variables:
            block = out[..., v.columns].reshape(lead_shape + tuple(v.shape))
            if np.can_cast(block.dtype, v.dtype, casting="same_kind"):
                block = block.astype(v.dtype, copy=False)
            rest = tuple(d for d in v.dims if d != sd)
            var = xr.Variable((sd, LEAD_DIM) + member + tuple(v.feature_dims), block,
                              dict(v.attrs))
            data_vars[v.name] = var.transpose(sd, LEAD_DIM, *member, *rest)
        ds = xr.Dataset(data_vars, coords=info.coords.coords, attrs=dict(info.attrs))
        ds = ds.assign_coords(coords)
        ds.attrs["forecaster"] = type(self).__name__
        if info.is_dataarray:
            return ds[info.variables[0].name].rename(info.name)
        return ds


def _step_str(step):
    """A time step or lead for a message: ``'0 days 06:00:00'`` or ``'0.1'``."""
    if np.asarray(step).dtype.kind == "m":
        return str(pd.to_timedelta(step))
    return f"{float(step):.6g}"
