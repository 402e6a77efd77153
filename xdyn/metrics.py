"""Verification metrics on labelled data: errors, skill scores and spectra.

Deterministic scores (:func:`rmse`, :func:`mae`, :func:`bias`), the
latitude-weighted RMSE and anomaly correlation coefficient of WeatherBench
(Rasp et al. 2020), the continuous ranked probability score of an ensemble and
its fair version (Gneiting & Raftery 2007; Ferro 2014), the spread-skill ratio
(Fortin et al. 2014), and 1-D and isotropic 2-D energy spectra.

Every function takes a :class:`xarray.DataArray` or a :class:`xarray.Dataset`
(a Dataset is scored per data variable that all inputs share, as xarray's
arithmetic joins them, and gives a Dataset back), reduces over
named dimensions, keeps dask arrays lazy, and sets ``units`` and ``long_name``
on its result. Inputs must align exactly: forecast and truth whose coordinates
differ raise a :class:`ValueError` rather than being silently intersected, as
do inputs that each have a dim the other lacks (``valid_time`` against
``time`` would broadcast to an outer product), a forecast with a ``lead_time``
dim against a truth on its initialisation times (not lead-aligned), and inputs
whose ``units`` attributes differ (compared as units, per variable and per
shared coordinate, where both state them).

References
----------
Rasp, S., Dueben, P. D., Scher, S., Weyn, J. A., Mouatadid, S., & Thuerey, N.
(2020). WeatherBench: a benchmark data set for data-driven weather forecasting.
*J. Adv. Model. Earth Syst.*, 12, e2020MS002203.

Gneiting, T., & Raftery, A. E. (2007). Strictly proper scoring rules,
prediction, and estimation. *J. Am. Stat. Assoc.*, 102(477), 359-378.

Ferro, C. A. T. (2014). Fair scores for ensemble forecasts. *Q. J. R.
Meteorol. Soc.*, 140(683), 1917-1923.

Fortin, V., Abaza, M., Anctil, F., & Turcotte, R. (2014). Why should ensemble
spread match the RMSE of the ensemble mean? *J. Hydrometeorol.*, 15,
1708-1713.
"""

from __future__ import annotations

import functools
import inspect
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from xdyn._labels import grid_order, is_cftime
from xdyn._units import other_units, power_units, stated_units

__all__ = [
    "rmse",
    "mae",
    "bias",
    "lat_weights",
    "weighted_rmse",
    "weighted_acc",
    "crps_ensemble",
    "spread",
    "spread_skill_ratio",
    "energy_spectrum",
    "isotropic_spectrum",
]


def _per_variable(*data_args):
    """Decorate a DataArray metric so Dataset inputs are scored per data variable."""

    def decorator(func):
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            call = signature.bind(*args, **kwargs).arguments
            for name in data_args:
                if not isinstance(call[name], (xr.DataArray, xr.Dataset)):
                    raise TypeError(f"{name} must be an xarray DataArray or Dataset, "
                                    f"got {type(call[name]).__name__}")
            first = call[data_args[0]]
            if isinstance(first, xr.DataArray):
                if any(isinstance(call[n], xr.Dataset) for n in data_args):
                    raise TypeError(f"{data_args[0]} is a DataArray, so the other inputs must be too")
                return func(**call)
            # Variables that every Dataset input has, as xarray's own arithmetic joins
            # them: an analysis's diagnostics (spread, x_std, n_assimilated ...) have
            # no counterpart in the truth and are left out.
            others = [call[n] for n in data_args[1:] if isinstance(call[n], xr.Dataset)]
            shared = [v for v in first.data_vars if all(v in o.data_vars for o in others)]
            if not shared:
                raise ValueError(
                    f"{data_args[0]} (variables {list(first.data_vars)}) and "
                    f"{', '.join(data_args[1:])} (variables "
                    f"{[list(o.data_vars) for o in others]}) share no data variable")
            results = {}
            for var in shared:
                per_var = dict(call)
                for name in data_args:
                    if isinstance(call[name], xr.Dataset):
                        per_var[name] = call[name][var]
                results[var] = func(**per_var)
            return xr.Dataset(results, attrs=dict(first.attrs))

        return wrapper

    return decorator


def _units(obj):
    """``{variable: units}`` of a DataArray (key None) or of each Dataset variable, where stated."""
    items = obj.data_vars.items() if isinstance(obj, xr.Dataset) else [(None, obj)]
    units = {var: stated_units(da.attrs.get("units")) for var, da in items}
    return {var: u for var, u in units.items() if u is not None}


# a forecast's lead: xdyn's forecasters' (xdyn.forecast._time.LEAD_DIM), and durations named
# as cfgrib, WeatherBench 2 and CF name them; a standard_name forecast_period counts too
_LEAD_DIM = "lead_time"
_LEAD_NAMES = ("step", "prediction_timedelta", "forecast_period")


def _coord_units(a, b, dims, names):
    """Raise where ``a`` and ``b`` state other ``units`` for a coordinate in ``dims``.

    Times in hours against times in days with the same numbers align exactly: the
    units of the labels are compared as the data's are (spellings of one unit agree).
    """
    for d in dims:
        if d not in a.coords or d not in b.coords:
            continue
        ua, ub = a.coords[d].attrs.get("units"), b.coords[d].attrs.get("units")
        if other_units(ua, ub):
            raise ValueError(
                f"{names[0]}'s {d!r} coordinate is in {ua!r} but {names[1]}'s in {ub!r}: "
                f"the same numbers are other {d} values; convert one coordinate to the "
                "other's units (and set its 'units' attribute) first")


def _is_time_axis(coord):
    """Whether a coordinate holds dates (datetime64 or cftime) or says it is time (CF's
    ``axis: T``, a time ``standard_name`` or ``units`` of the form "hours since ...")."""
    attrs = coord.attrs
    return (np.issubdtype(coord.dtype, np.datetime64) or is_cftime(coord.values)
            or attrs.get("axis") == "T" or " since " in str(attrs.get("units", ""))
            or attrs.get("standard_name") in ("time", "forecast_reference_time"))


def _lead_name(obj):
    """The name of ``obj``'s forecast lead coordinate (see ``_LEAD_NAMES``), or None.

    A single lead of zero is none: an analysis (cfgrib reads one with ``step = 0``) is
    at its initialisation time.
    """
    return next((k for k, c in obj.coords.items()
                 if (k == _LEAD_DIM or c.attrs.get("standard_name") == "forecast_period"
                     or (k in _LEAD_NAMES and np.issubdtype(c.dtype, np.timedelta64)))
                 and not (c.ndim == 0 and not c.values.astype(bool))), None)


def _same_valid_times(a, b):
    """Whether ``a`` and ``b`` both state their valid times (``valid_time``) and agree."""
    va, vb = a.coords.get("valid_time"), b.coords.get("valid_time")
    if va is None or vb is None:
        return False
    try:
        return bool((va == vb).all())
    except (TypeError, ValueError):
        return False


def _indexed_by_valid_time(a, lead):
    """Whether ``a``'s lead lies along one dim not its own (a lead per sample) that says
    it is valid time: a ``valid_time`` equal to its values, else a stated initialisation
    (``forecast_reference_time``: iris's forecast from one start), else leads that vary
    along it (a forecast from one start indexed by valid time). One lead picked per
    initialisation (the same lead at every sample) is not."""
    coord = a.coords[lead]
    if coord.ndim != 1 or lead in coord.dims:
        return False
    dim, valid = coord.dims[0], a.coords.get("valid_time")
    if valid is not None:
        return valid.dims == (dim,) and dim in a.coords \
            and np.array_equal(np.asarray(valid.values), np.asarray(a[dim].values))
    values = np.asarray(coord.values)
    return "forecast_reference_time" in a.coords or bool((values != values[0]).any())


def _lead_against_init(a, b, names):
    """Raise where ``a`` is a forecast (a lead coordinate, ``lead_time`` or cfgrib's
    ``step``: a dim, or one lead selected) and ``b`` a series on its initialisation
    times without one: ``b`` would be read at the initialisation times, each forecast
    scored against the state it started from (persistence would score 0). The
    initialisation dims are ``time``, those of a ``valid_time`` coordinate and any
    other dim of dates or CF times (an ``init_time``), but not ``valid_time`` itself:
    a forecast indexed by its valid times is compared at them, as is one whose lead
    varies along a dim that is not its own (each valid time its lead: iris's
    ``forecast_period`` along ``time``). Both stating the same valid times (a
    lead-aligned truth against the forecast) are compared at them."""
    lead = _lead_name(a)
    if lead is None or _lead_name(b) is not None or _same_valid_times(a, b):
        return
    if _indexed_by_valid_time(a, lead):
        return
    valid = a.coords.get("valid_time")
    dated = [d for d in a.dims if d in a.coords and _is_time_axis(a.coords[d])]
    init = {"time", *dated, *(() if valid is None else valid.dims)} - {lead, "valid_time"}
    shared = [d for d in a.dims if d in init and d in b.dims]
    if shared:
        raise ValueError(
            f"{names[0]} has a {lead!r} coordinate and {names[1]} has not, but shares "
            f"its {shared[0]!r} dim: {names[1]} would be read at the initialisation times, "
            f"not at init + lead; score against the lead-aligned truth, "
            f"xdyn.forecast.lead_aligned_truth(truth, forecast), or with "
            f"xdyn.forecast.verify_forecast(forecast, truth) (or drop {names[0]}'s "
            f"{lead!r} if {names[1]} is already at its valid times)")


def _align(*objs, names, broadcast=()):
    """``objs`` aligned exactly; raises on crossed dims or on different ``units``.

    Each of two inputs having a dim the other lacks (a forecast on ``valid_time``
    against a truth on ``time``) would broadcast to an outer product; one-sided
    extra dims (a forecast's ``member``, a climatology without ``time``) and the
    dims in ``broadcast`` are allowed, but not a forecast's ``lead_time`` against
    a series on its initialisation times. Units are compared per variable, and
    per shared coordinate, where both inputs state them (as units: ``"m s-1"``
    is ``"m s**-1"``, see :func:`xdyn._units.same_units`).
    """
    for i, (a, a_name) in enumerate(zip(objs, names)):
        for b, b_name in zip(objs[i + 1:], names[i + 1:]):
            a_only = [d for d in a.dims if d not in b.dims and d not in broadcast]
            b_only = [d for d in b.dims if d not in a.dims and d not in broadcast]
            if a_only and b_only:
                raise ValueError(
                    f"{a_name} has dims {a_only} that {b_name} lacks and {b_name} has dims "
                    f"{b_only} that {a_name} lacks: scoring them would broadcast to an outer "
                    f"product; rename matching dims to one name (e.g. "
                    f"{a_name}.rename({a_only[0]}={b_only[0]!r})) or select or reduce the "
                    "extra dims first")
            _lead_against_init(a, b, (a_name, b_name))
            _lead_against_init(b, a, (b_name, a_name))
            _coord_units(a, b, [d for d in a.dims if d in b.dims], (a_name, b_name))
            b_units = _units(b)
            for var, unit in _units(a).items():
                if var in b_units and other_units(b_units[var], unit):
                    label = a.name if var is None else var
                    which = "" if label is None else f" (variable {label!r})"
                    raise ValueError(
                        f"{a_name} is in {unit!r} but {b_name} in {b_units[var]!r}{which}; "
                        f"convert one to the other's units and set its 'units' attribute "
                        "before scoring")
    try:
        return xr.align(*objs, join="exact", copy=False)
    except ValueError as err:
        raise ValueError(f"{', '.join(names)} do not align ({err}); select matching "
                         "coordinates first, e.g. truth.sel(time=forecast.time)") from err


def _dims(dim, *objs):
    """The dims named by ``dim`` (str, sequence, or None for all), checked to exist."""
    present = list(dict.fromkeys(d for obj in objs for d in obj.dims))
    if dim is None:
        return present
    dims = [dim] if isinstance(dim, str) else list(dim)
    for d in dims:
        if d not in present:
            raise ValueError(f"dimension {d!r} not found in {objs[0].name or 'the input'!r}; "
                             f"its dims are {tuple(present)}")
    return dims


def _finish(result, like, what, units=None):
    result.name = like.name
    units = like.attrs.get("units") if units is None else units
    result.attrs = {"long_name": f"{what} of {like.attrs.get('long_name', like.name or 'data')}"}
    if units is not None:
        result.attrs["units"] = units
    return result


def _float_dtype(*dtypes):
    return np.result_type(*dtypes, np.float32)


def _where_forecast_known(score, forecast, truth, dims):
    """``score``, NaN where it averaged over a missing forecast of a known truth.

    Skipping NaN leaves out the points without a truth (missing observations);
    a forecast missing where the truth is known (a diverged run, a failed member)
    must not be scored on its other points.
    """
    failed = forecast.isnull() & truth.notnull()
    return score.where(~failed.any([d for d in failed.dims if d in dims]))


def _error_stat(forecast, truth, dim, skipna, transform):
    forecast, truth = _align(forecast, truth, names=("forecast", "truth"))
    dims = _dims(dim, forecast, truth)
    out = transform(forecast - truth).mean(dims, skipna=skipna)
    return _where_forecast_known(out, forecast, truth, dims) if skipna else out


@_per_variable("forecast", "truth")
def rmse(forecast, truth, dim=None, skipna=True, member_dim="member"):
    """Root-mean-square error ``sqrt(mean_dim (forecast - truth)**2)``.

    An ensemble forecast (a ``member_dim`` dimension that ``truth`` lacks) is
    scored by its ensemble mean, the usual score of data assimilation; pass
    ``member_dim=None`` to pool the members' errors instead. Datasets are
    scored on the variables both have, so an analysis's own diagnostics
    (``spread``, ``x_std``, ``n_assimilated`` ...) are left out.

    Parameters
    ----------
    forecast, truth : DataArray or Dataset
        Aligned inputs; they broadcast against each other by dimension name.
    dim : str or sequence of str, optional
        Dimensions to average over; default all dimensions (after the
        ensemble mean).
    skipna : bool, default True
        Leave out the points where ``truth`` is NaN (missing observations). A
        NaN forecast where the truth is known gives NaN (a diverged forecast is
        not scored on its other points); False: any NaN gives NaN.
    member_dim : str or None, default "member"
        Ensemble dimension of ``forecast`` averaged before scoring; None
        treats it as any other dimension.

    Returns
    -------
    DataArray or Dataset
        The RMSE, in the units of ``forecast``.

    Raises
    ------
    ValueError
        Inputs whose coordinates differ, that each have a dim the other lacks
        (an outer product), a forecast's ``lead_time`` against a truth on its
        initialisation ``time`` (use :func:`xdyn.forecast.verify_forecast`),
        or inputs (or their shared coordinates) whose ``units`` differ.

    Examples
    --------
    >>> import xarray as xr
    >>> f = xr.DataArray([1.0, 2.0, 3.0], dims="x", attrs={"units": "m"})
    >>> t = xr.DataArray([1.0, 2.0, 5.0], dims="x")
    >>> r = rmse(f, t)
    >>> round(float(r), 4), r.attrs["units"]
    (1.1547, 'm')
    >>> rmse(f, t.rename(x="y"))
    Traceback (most recent call last):
    ...
    ValueError: forecast has dims ['x'] that truth lacks and truth has dims ['y'] ...
    >>> rmse(f, t.assign_attrs(units="km"))
    Traceback (most recent call last):
    ...
    ValueError: forecast is in 'm' but truth in 'km'; convert one to the other's units ...

    Two members on either side of the truth: their mean is exact, the members
    are not.

    >>> ens = xr.DataArray([[0.0, 2.0]], dims=["x", "member"])
    >>> truth = xr.DataArray([1.0], dims="x")
    >>> float(rmse(ens, truth)), float(rmse(ens, truth, member_dim=None))
    (0.0, 1.0)
    """
    what = "root-mean-square error"
    if member_dim is not None and member_dim in forecast.dims and member_dim not in truth.dims:
        if dim is not None and member_dim in ([dim] if isinstance(dim, str) else list(dim)):
            raise ValueError(f"dim names the member dimension {member_dim!r}, which rmse averages "
                             "first (ensemble mean); pass member_dim=None to pool the members' errors")
        # skipna=False: a failed (NaN) member makes the mean NaN, not the mean of the others
        forecast = forecast.mean(member_dim, keep_attrs=True, skipna=False)
        what = "root-mean-square error of the ensemble mean"
    out = np.sqrt(_error_stat(forecast, truth, dim, skipna, lambda e: e**2))
    return _finish(out, forecast, what)


@_per_variable("forecast", "truth")
def mae(forecast, truth, dim=None, skipna=True):
    """Mean absolute error ``mean_dim |forecast - truth|``; arguments as :func:`rmse`.

    Parameters
    ----------
    forecast, truth : DataArray or Dataset
        Aligned inputs; they broadcast against each other by dimension name. Datasets
        are scored on the variables both have.
    dim : str or sequence of str, optional
        Dimensions to average over; default all dimensions. A ``member`` dim is
        averaged like any other (no ensemble mean is taken first, unlike :func:`rmse`).
    skipna : bool, default True
        Leave out the points where ``truth`` is NaN (missing observations); a NaN
        forecast where the truth is known gives NaN. False: any NaN gives NaN.

    Returns
    -------
    DataArray or Dataset
        The mean absolute error, in the units of ``forecast``.

    Examples
    --------
    >>> import xarray as xr
    >>> f = xr.DataArray([1.0, 2.0, 3.0], dims="x")
    >>> float(mae(f, xr.DataArray([2.0, 2.0, 5.0], dims="x")))
    1.0
    """
    out = _error_stat(forecast, truth, dim, skipna, abs)
    return _finish(out, forecast, "mean absolute error")


@_per_variable("forecast", "truth")
def bias(forecast, truth, dim=None, skipna=True):
    """Mean error ``mean_dim (forecast - truth)``; arguments as :func:`rmse`.

    Parameters
    ----------
    forecast, truth, dim, skipna
        As in :func:`mae`.

    Returns
    -------
    DataArray or Dataset
        The mean error (forecast minus truth), in the units of ``forecast``.

    Examples
    --------
    >>> import xarray as xr
    >>> f = xr.DataArray([1.0, 2.0, 3.0], dims="x")
    >>> float(bias(f, xr.DataArray([2.0, 2.0, 5.0], dims="x")))
    -1.0
    """
    out = _error_stat(forecast, truth, dim, skipna, lambda e: e)
    return _finish(out, forecast, "mean error (bias)")


def lat_weights(lat):
    """Latitude weights ``cos(lat) / mean(cos(lat))`` (WeatherBench), mean 1.

    Parameters
    ----------
    lat : DataArray or array-like
        Latitudes in degrees; an array-like becomes a DataArray on dim ``lat``.

    Returns
    -------
    DataArray
        Weights on the dims of ``lat``, with ``units`` "1".

    Raises
    ------
    ValueError
        Latitudes outside [-90, 90] or with ``units`` of radians (weights from
        radians read as degrees are almost uniform: no error otherwise).

    Examples
    --------
    >>> lat_weights([-60.0, 0.0, 60.0]).values.round(3).tolist()
    [0.75, 1.5, 0.75]
    """
    if not isinstance(lat, xr.DataArray):
        lat = xr.DataArray(np.asarray(lat, dtype=float), dims="lat")
    if str(lat.attrs.get("units", "")).lower() in ("rad", "radian", "radians"):
        raise ValueError(f"latitudes {lat.name or ''!r} are in radians; lat_weights takes "
                         "degrees (np.rad2deg first)")
    if np.any(np.abs(lat.values) > 90):
        raise ValueError(f"latitudes must be degrees in [-90, 90]; got values from "
                         f"{float(lat.min())} to {float(lat.max())}")
    weights = np.cos(np.deg2rad(lat))
    weights = weights / weights.mean()
    weights.name = "lat_weights"
    weights.attrs = {"long_name": "latitude weights", "units": "1"}
    return weights


def _spatial_weights(forecast, truth, dims, lat):
    if lat not in dims:
        raise ValueError(f"the latitude dimension {lat!r} must be one of dim={tuple(dims)}")
    source = forecast if lat in forecast.coords else truth
    if lat not in source.coords:
        raise ValueError(f"latitude coordinate {lat!r} not found on forecast or truth")
    return lat_weights(source[lat])


def _time_mean(score, time_dim):
    return score.mean(time_dim) if time_dim is not None and time_dim in score.dims else score


@_per_variable("forecast", "truth")
def weighted_rmse(forecast, truth, dim=("lat", "lon"), lat="lat", time_dim="time"):
    """Latitude-weighted RMSE of WeatherBench (Rasp et al. 2020).

    ``RMSE = mean_t sqrt(mean_{lat,lon} L(lat) (f - t)**2)`` with
    ``L = cos(lat) / mean(cos(lat))``: the square root is taken per time, then
    averaged over time.

    Parameters
    ----------
    forecast, truth : DataArray or Dataset
        Aligned inputs with a latitude coordinate in degrees.
    dim : str or sequence of str, default ("lat", "lon")
        Spatial dimensions of the weighted mean; must include ``lat``.
    lat : str, default "lat"
        Name of the latitude dimension and coordinate.
    time_dim : str or None, default "time"
        Averaged over after the square root when present; None keeps it.

    Returns
    -------
    DataArray or Dataset
        The weighted RMSE, in the units of ``forecast``. Points (and times)
        without a truth are left out; a NaN forecast where the truth is known
        gives NaN.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> coords = {"time": [0, 1], "lat": [-45.0, 0.0, 45.0], "lon": [0.0, 180.0]}
    >>> truth = xr.DataArray(np.zeros((2, 3, 2)), coords=coords, dims=list(coords))
    >>> round(float(weighted_rmse(truth + 2.0, truth)), 6)
    2.0
    """
    forecast, truth = _align(forecast, truth, names=("forecast", "truth"))
    dims = _dims(dim, forecast, truth)
    weights = _spatial_weights(forecast, truth, dims, lat)
    per_time = np.sqrt(((forecast - truth) ** 2).weighted(weights).mean(dims))
    score = _where_forecast_known(_time_mean(per_time, time_dim), forecast, truth,
                                  [*dims, time_dim])
    return _finish(score, forecast, "latitude-weighted RMSE")


@_per_variable("forecast", "truth", "climatology")
def weighted_acc(forecast, truth, climatology, dim=("lat", "lon"), lat="lat", time_dim="time"):
    """Latitude-weighted anomaly correlation coefficient of WeatherBench.

    With anomalies ``f' = f - C`` and ``t' = t - C`` relative to the
    climatology ``C``, per time
    ``ACC = sum L f' t' / sqrt(sum L f'**2 * sum L t'**2)`` over ``dim``,
    then averaged over time, as written in Rasp et al. (2020). (The original
    WeatherBench code instead re-centres the anomalies on their overall mean
    and sums over time as well; scores differ slightly.)

    Parameters
    ----------
    forecast, truth : DataArray or Dataset
        Aligned inputs with a latitude coordinate in degrees.
    climatology : DataArray or Dataset
        Broadcastable against ``truth`` with no dims of its own (e.g. a time
        mean, or a day-of-year climatology already selected on ``time``).
    dim, lat, time_dim
        As in :func:`weighted_rmse`.

    Returns
    -------
    DataArray or Dataset
        The ACC, dimensionless (``units`` "1").

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> coords = {"lat": [-30.0, 0.0, 30.0], "lon": [0.0, 120.0, 240.0]}
    >>> truth = xr.DataArray(np.arange(9.0).reshape(3, 3), coords=coords, dims=["lat", "lon"])
    >>> clim = truth.mean()
    >>> float(weighted_acc(truth, truth, clim)), float(weighted_acc(2 * clim - truth, truth, clim))
    (1.0, -1.0)
    """
    extra = set(climatology.dims) - set(forecast.dims) - set(truth.dims)
    if extra:
        raise ValueError(f"climatology has dims {sorted(extra)} that forecast and truth lack; "
                         "select it on their coordinates first")
    forecast, truth, climatology = _align(forecast, truth, climatology,
                                          names=("forecast", "truth", "climatology"))
    dims = _dims(dim, forecast, truth)
    weights = _spatial_weights(forecast, truth, dims, lat)
    # the three sums over the same points: those with a truth (a missing observation left
    # out of the forecast's variance too, else a perfect forecast scores below 1)
    f_anom, t_anom = (forecast - climatology).where(truth.notnull()), truth - climatology

    def wsum(x):
        return x.weighted(weights).sum(dims)

    per_time = wsum(f_anom * t_anom) / np.sqrt(wsum(f_anom**2) * wsum(t_anom**2))
    score = _where_forecast_known(_time_mean(per_time, time_dim), forecast, truth,
                                  [*dims, time_dim])
    return _finish(score, forecast, "anomaly correlation coefficient", "1")


def _check_member_dim(ensemble, truth, member_dim, what, min_members=2):
    if member_dim not in ensemble.dims:
        raise ValueError(f"member dimension {member_dim!r} not found in ensemble {ensemble.name!r}; "
                         f"its dims are {ensemble.dims}")
    if truth is not None and member_dim in truth.dims:
        raise ValueError(f"truth must not have the member dimension {member_dim!r}")
    n_members = ensemble.sizes[member_dim]
    if n_members < min_members:
        # one member has no spread (ddof=1 divides by zero) and no pair for E|X - X'|
        raise ValueError(f"{what} needs at least {min_members} member{'s' * (min_members > 1)} "
                         f"along {member_dim!r}, got {n_members}")
    return n_members


def _crps_kernel(ens, obs, fair, dtype):
    n_members = ens.shape[-1]
    skill = np.abs(ens - obs[..., None]).mean(-1)
    # sum_{i,j} |x_i - x_j| = 2 sum_i (2i - m - 1) x_(i) for sorted x: O(m log m).
    rank_coef = 2 * np.arange(1, n_members + 1) - n_members - 1
    pair_sum = 2 * (np.sort(ens, axis=-1) * rank_coef).sum(-1)
    norm = 2 * n_members * (n_members - 1 if fair else n_members)
    return (skill - pair_sum / norm).astype(dtype, copy=False)


@_per_variable("ensemble", "truth")
def crps_ensemble(ensemble, truth, member_dim="member", dim=None, fair=False):
    """Continuous ranked probability score of an ensemble forecast.

    ``CRPS = E|X - y| - 1/2 E|X - X'|`` with the empirical distribution of the
    ``m`` members (Gneiting & Raftery 2007). The fair CRPS
    (Ferro 2014) replaces ``E|X - X'|`` by ``sum_{i != j} |x_i - x_j| / (m (m - 1))``,
    so that its expectation does not depend on ``m`` for exchangeable members.

    Parameters
    ----------
    ensemble : DataArray or Dataset
        Forecast with a ``member_dim`` dimension (taken as one dask chunk): at
        least one member, two for the fair CRPS (one member gives the MAE).
    truth : DataArray or Dataset
        Verifying values, without ``member_dim``.
    member_dim : str, default "member"
        Ensemble dimension.
    dim : str or sequence of str, optional
        Dimensions to average the pointwise CRPS over; default none (only
        ``member_dim`` is reduced).
    fair : bool, default False
        Return the fair CRPS.

    Returns
    -------
    DataArray or Dataset
        The CRPS, in the units of ``ensemble``. A NaN member or truth gives
        NaN at its point; the mean over ``dim`` leaves out the points without a
        truth and is NaN where a member is NaN at a point with one.

    Examples
    --------
    >>> import xarray as xr
    >>> ens = xr.DataArray([[0.0, 1.0, 2.0]], dims=["time", "member"])
    >>> truth = xr.DataArray([1.0], dims="time")
    >>> round(float(crps_ensemble(ens, truth, dim="time")), 4)
    0.2222
    >>> round(float(crps_ensemble(ens, truth, dim="time", fair=True)), 4)
    0.0
    """
    _check_member_dim(ensemble, truth, member_dim, "the fair CRPS" if fair else "the CRPS",
                      min_members=2 if fair else 1)
    ensemble, truth = _align(ensemble, truth, names=("ensemble", "truth"))
    dtype = _float_dtype(ensemble.dtype, truth.dtype)
    score = xr.apply_ufunc(
        _crps_kernel, ensemble, truth,
        input_core_dims=[[member_dim], []],
        kwargs={"fair": fair, "dtype": dtype},
        dask="parallelized", output_dtypes=[dtype],
        dask_gufunc_kwargs={"allow_rechunk": True},
    )
    if dim is not None:
        dims = _dims(dim, score)
        score = _where_forecast_known(score.mean(dims), ensemble, truth, [*dims, member_dim])
    return _finish(score, ensemble, "fair CRPS" if fair else "CRPS")


@_per_variable("ensemble")
def spread(ensemble, member_dim="member", dim=None):
    """Ensemble spread ``sqrt(mean_dim var_member(ensemble))`` with ``ddof=1``.

    Parameters
    ----------
    ensemble : DataArray or Dataset
        Forecast with a ``member_dim`` dimension of at least two members.
    member_dim : str, default "member"
        Ensemble dimension.
    dim : str or sequence of str, optional
        Dimensions to average the variance over; default all but ``member_dim``.

    Returns
    -------
    DataArray or Dataset
        The spread, in the units of ``ensemble``. Points where every member is
        NaN (no forecast there) are left out; NaN where some members are NaN
        and others not (a failed member).

    Examples
    --------
    >>> import xarray as xr
    >>> ens = xr.DataArray([[0.0, 2.0], [1.0, 1.0]], dims=["time", "member"])
    >>> float(spread(ens))
    1.0
    """
    _check_member_dim(ensemble, None, member_dim, "the ensemble spread")
    variance = ensemble.var(member_dim, ddof=1, skipna=False)
    dims = _dims(dim, variance)
    missing = ensemble.isnull()
    failed = (missing.any(member_dim) & ~missing.all(member_dim)).any(dims)
    return _finish(np.sqrt(variance.mean(dims)).where(~failed), ensemble, "ensemble spread")


@_per_variable("ensemble", "truth")
def spread_skill_ratio(ensemble, truth, member_dim="member", dim=None, correct_finite_members=True):
    """Spread of the ensemble over the RMSE of its mean.

    A calibrated ensemble of ``m`` members has
    ``RMSE(mean) = sqrt((m + 1) / m) * spread`` (Fortin et al. 2014);
    with ``correct_finite_members`` the spread is multiplied by that factor so
    a calibrated ensemble scores 1 for any ``m``.

    Parameters
    ----------
    ensemble, truth, member_dim
        As in :func:`crps_ensemble`.
    dim : str or sequence of str, optional
        Dimensions the spread and the RMSE average over; default all but
        ``member_dim``.
    correct_finite_members : bool, default True
        Apply the ``sqrt((m + 1) / m)`` correction.

    Returns
    -------
    DataArray or Dataset
        The ratio, dimensionless (``units`` "1").

    Examples
    --------
    >>> import xarray as xr
    >>> ens = xr.DataArray([[0.0, 2.0], [1.0, 3.0]], dims=["time", "member"])
    >>> truth = xr.DataArray([1.0 + 2**0.5, 2.0 - 2**0.5], dims="time")
    >>> round(float(spread_skill_ratio(ens, truth, correct_finite_members=False)), 6)
    1.0
    """
    n_members = _check_member_dim(ensemble, truth, member_dim, "the spread-skill ratio")
    ensemble, truth = _align(ensemble, truth, names=("ensemble", "truth"))
    dims = _dims(dim, ensemble.isel({member_dim: 0}, drop=True), truth)
    mean = ensemble.mean(member_dim, skipna=False)
    # the spread over the points the error is scored on (those with a truth)
    ratio = spread(ensemble.where(truth.notnull()), member_dim, dims) / rmse(mean, truth, dims)
    if correct_finite_members:
        ratio = ratio * np.sqrt((n_members + 1) / n_members)
    return _finish(ratio, ensemble, "spread-skill ratio", "1")


def _line_spectrum(u, dtype):
    n = u.shape[-1]
    energy = 0.5 * np.abs(np.fft.rfft(u, axis=-1) / n) ** 2
    # One-sided: every mode but k = 0 and the Nyquist mode (n even) has a twin at -k.
    twin = np.full(n // 2 + 1, 2.0)
    twin[0] = 1.0
    if n % 2 == 0:
        twin[-1] = 1.0
    return (energy * twin).astype(dtype, copy=False)


def _shell_spectrum(u, shell, n_shells, dtype):
    ny, nx = u.shape[-2:]
    energy = 0.5 * np.abs(np.fft.fft2(u, axes=(-2, -1)) / (ny * nx)) ** 2
    batch = energy.shape[:-2]
    energy = energy.reshape(-1, ny * nx)
    # Offset each sample's shell indices so one bincount bins the whole batch.
    index = shell.ravel() + n_shells * np.arange(energy.shape[0])[:, None]
    binned = np.bincount(index.ravel(), weights=energy.ravel(), minlength=energy.shape[0] * n_shells)
    return binned.reshape(*batch, n_shells).astype(dtype, copy=False)


def _wavenumber_attrs(da, dims, lengths):
    """Attrs of the ``wavenumber`` coordinate: mode numbers ("1") without ``lengths``,
    else ``2 pi n / L`` in the inverse units of the ``dims``' coordinates where they
    state one (as :mod:`xdyn.experiments.spectrum` spells them: ``"m-1"``)."""
    attrs = {"long_name": "wavenumber"}
    if lengths is None:
        return {**attrs, "units": "1"}
    units = {stated_units(da[d].attrs.get("units")) if d in da.coords else None for d in dims}
    if len(units) == 1 and None not in units:
        attrs["units"] = power_units(units.pop(), -1)
    return attrs


def _check_lengths(lengths, n_dims, name):
    lengths = np.atleast_1d(np.asarray(lengths, dtype=float))
    if lengths.shape != (n_dims,):
        raise ValueError(f"{name} must give one domain length per dimension ({n_dims}); "
                         f"got {lengths.tolist()}")
    if not np.all(np.isfinite(lengths) & (lengths > 0)):
        raise ValueError(f"{name} must be positive and finite; got {lengths.tolist()}")
    return lengths


def _spectrum(da, kernel, core_dims, wavenumbers, kwargs, mean_dims, attrs):
    dtype = _float_dtype(da.dtype)
    out = xr.apply_ufunc(
        kernel, da,
        input_core_dims=[core_dims], output_core_dims=[["wavenumber"]],
        kwargs={**kwargs, "dtype": dtype},
        dask="parallelized", output_dtypes=[dtype],
        dask_gufunc_kwargs={"output_sizes": {"wavenumber": len(wavenumbers)}, "allow_rechunk": True},
    )
    out = out.assign_coords(wavenumber=wavenumbers)
    out["wavenumber"].attrs = attrs
    if mean_dims is not None:
        # skipna=False: a diverged (NaN) sample makes the mean NaN, not the mean of the others
        out = out.mean(_dims(mean_dims, out), skipna=False)
    return _finish(out, da, "energy spectrum", power_units(da.attrs.get("units"), 2))


@_per_variable("da")
def energy_spectrum(da, dim="x", length=None, mean_dims=None):
    """1-D energy spectrum of a periodic line, ``E(k)`` with ``sum_k E(k) = mean(0.5 u**2)``.

    Parameters
    ----------
    da : DataArray or Dataset
        Field sampled on a uniform periodic grid along ``dim`` (taken as one
        dask chunk).
    dim : str, default "x"
        The periodic dimension.
    length : float, optional
        Domain length along ``dim`` (positive); wavenumbers are then ``2 pi k / length``,
        in the inverse units of the ``dim`` coordinate where it states them.
        Default: the integer mode number ``k = 0 .. n // 2`` (units "1").
    mean_dims : str or sequence of str, optional
        Other dims to average the spectrum over; default none. A sample with a NaN
        (a diverged run) makes the average NaN: it is not left out.

    Returns
    -------
    DataArray or Dataset
        Energy per wavenumber on dim ``wavenumber`` (one-sided, so the sum is
        the line mean of ``0.5 u**2`` by Parseval), in the input units squared.
        A NaN anywhere on a line makes its whole spectrum NaN.

    Raises
    ------
    ValueError
        ``length`` not positive and finite.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> x = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    >>> spec = energy_spectrum(xr.DataArray(np.cos(3 * x), dims="x"))
    >>> int(spec.idxmax()), round(float(spec.sum()), 6)
    (3, 0.25)
    """
    if not isinstance(dim, str):
        raise TypeError(f"dim must be one dimension name, got {dim!r}")
    _dims(dim, da)
    k = np.arange(da.sizes[dim] // 2 + 1)
    if length is not None:
        (length,) = _check_lengths(length, 1, "length")
    wavenumbers = k if length is None else 2 * np.pi * k / length
    return _spectrum(da, _line_spectrum, [dim], wavenumbers, {}, mean_dims,
                     _wavenumber_attrs(da, [dim], length))


@_per_variable("da")
def isotropic_spectrum(da, dims=("y", "x"), lengths=None, mean_dims=None):
    """Isotropic 2-D energy spectrum: ``0.5 |u_hat|**2`` summed over shells ``|k|``.

    Every 2-D Fourier mode goes to the shell nearest to its ``|k|`` (corners
    beyond the Nyquist circle included), so ``sum_k E(k) = mean(0.5 u**2)``.

    Parameters
    ----------
    da : DataArray or Dataset
        Field on a uniform, doubly periodic grid (``dims`` taken as one dask
        chunk each).
    dims : pair of str, default ("y", "x")
        The two periodic dimensions.
    lengths : pair of float, optional
        Domain lengths along ``dims`` (positive); wavenumbers are then ``2 pi n / L``
        (in the inverse units of the ``dims``' coordinates where both state the same)
        and shells are ``2 pi / max(lengths)`` wide. Default: integer mode numbers
        (a square domain), shells ``0, 1, 2, ...`` (units "1").
    mean_dims : str or sequence of str, optional
        Other dims to average the spectrum over; default none. A sample with a NaN
        (a diverged run) makes the average NaN: it is not left out.

    Returns
    -------
    DataArray or Dataset
        Energy per shell on dim ``wavenumber``, in the input units squared. A NaN
        anywhere in a field makes its whole spectrum NaN.

    Raises
    ------
    ValueError
        ``dims`` not two dimensions; ``lengths`` not two positive, finite numbers.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> x = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    >>> u = xr.DataArray(np.cos(3 * x + 4 * x[:, None]), dims=["y", "x"])
    >>> spec = isotropic_spectrum(u)
    >>> int(spec.idxmax()), round(float(spec.sum()), 6)
    (5, 0.25)
    """
    dims = _dims(dims, da)
    if len(dims) != 2:
        raise ValueError(f"dims must name exactly two dimensions, got {dims}")
    if lengths is not None:
        lengths = _check_lengths(lengths, 2, "lengths")
    scale = (1.0, 1.0) if lengths is None else tuple(2 * np.pi / L for L in lengths)
    ky, kx = (s * np.fft.fftfreq(da.sizes[d], 1 / da.sizes[d]) for d, s in zip(dims, scale))
    dk = min(scale)
    shell = np.rint(np.hypot(ky[:, None], kx[None, :]) / dk).astype(int)
    n_shells = int(shell.max()) + 1
    wavenumbers = np.arange(n_shells) if lengths is None else np.arange(n_shells) * dk
    return _spectrum(da, _shell_spectrum, dims, wavenumbers,
                     {"shell": shell, "n_shells": n_shells}, mean_dims,
                     _wavenumber_attrs(da, dims, lengths))


# --- scores of an analysis against the truth (every assimilator's ``score``) ----
def state_rmse(analysis, truth, keep_dims=()):
    """RMSE over every state variable and spatial point, per analysis time.

    The ensemble mean is scored when there is a ``member`` dim; ``keep_dims``
    (e.g. batch dims of a sweep) are not reduced. The state variables both
    have are scored: an analysis's diagnostics (``spread``, ``<var>_std``)
    are left out, and so are truth variables the analysis lacks (the fast
    ``y`` of a two-scale Lorenz-96 truth, for a one-scale model's analysis of
    ``x``), unless the analysis has a variable the truth lacks on the dims of
    a missing one: a renamed state variable is not silently left unscored. Every state
    entry weighs the same (DAPPER's RMSE of the flat state vector): the 36 slow
    variables of a two-scale Lorenz-96 weigh 36 of 396, not half.

    Parameters
    ----------
    analysis : xarray.Dataset
        State variables over ``time`` (and optionally ``member`` and ``keep_dims``).
    truth : xarray.Dataset
        The true states; selected at the analysis times, so it may hold more times.
    keep_dims : sequence of str, default=()
        Dims kept in the result besides ``time``; a kept dim only one side has is
        broadcast to the other.

    Returns
    -------
    xarray.DataArray
        RMSE over the flat state, with dims ``time`` and the ``keep_dims`` present.

    Raises
    ------
    ValueError
        A truth variable over ``time`` missing from ``analysis`` while
        ``analysis`` has one on its dims that ``truth`` lacks (a renamed
        variable), no shared variable, or variables on different grids or in
        different ``units``.

    Examples
    --------
    >>> import xarray as xr
    >>> truth = xr.Dataset({"x": ("time", [0.0, 0.0]), "y": ("time", [0.0, 0.0])},
    ...                    coords={"time": [0.0, 1.0]})
    >>> an = xr.Dataset({"x": ("time", [3.0, 1.0]), "y": ("time", [4.0, 1.0])},
    ...                 coords={"time": [0.0, 1.0]})
    >>> state_rmse(an, truth).values.round(4).tolist()
    [3.5355, 1.0]
    >>> state_rmse(an[["x"]], truth).values.tolist()  # x only: y is not scored
    [3.0, 1.0]
    >>> state_rmse(an.rename(y="Y"), truth)
    Traceback (most recent call last):
    ...
    ValueError: the analysis lacks the truth's state variables ['y'] and has ... ['Y'] ...
    """
    missing = [v for v in truth.data_vars
               if "time" in truth[v].dims and v not in analysis.data_vars]
    # a renamed state variable keeps its dims; diagnostics have others (spread) or the
    # name of a scored variable before a suffix (x_std, x_background)
    shapes = [set(truth[v].dims) for v in missing]
    names = [v for v in truth.data_vars if v in analysis.data_vars]
    unmatched = [v for v in analysis.data_vars if v not in truth.data_vars
                 and set(analysis[v].dims) - {"member"} in shapes
                 and not any(str(v).startswith(f"{s}_") for s in names)]
    if missing and unmatched:
        # a state variable under another name would silently score 0 (not scored at all)
        raise ValueError(
            f"the analysis lacks the truth's state variables {missing} and has state "
            f"variables {unmatched} the truth lacks; rename them to the truth's names, or "
            f"drop them (truth.drop_vars({missing})) to leave them out of the score")
    if not names:
        raise ValueError(f"analysis (variables {list(analysis.data_vars)}) and truth "
                         f"(variables {list(truth.data_vars)}) share no state variable")
    an = analysis[names]
    if "member" in an.dims:
        an = an.mean("member", skipna=False, keep_attrs=True)
    tr = _matched_state(truth[names].sel(time=an["time"]), an, ("time", *keep_dims))
    # one flat state per time: to_array would broadcast a variable over another's dims
    # (x(k) repeated along j) and weigh each variable equally, whatever its size

    def flat(ds):
        # the kept dims each side has (a sweep's analysis has 'inflation', its truth not),
        # on every variable of that side; each variable's points in the analysis' order
        samples = [d for d in ("time", *keep_dims) if d in ds.dims]
        parts = []
        for name in names:
            v = ds[name].expand_dims({d: ds.sizes[d] for d in samples if d not in ds[name].dims})
            space = [d for d in an[name].dims if d not in ("time", *keep_dims)]
            v = v.transpose(*samples, *space).drop_vars(space, errors="ignore")
            parts.append(v.stack(state=space, create_index=False) if space
                         else v.expand_dims("state", axis=-1))
        return xr.concat(parts, "state", coords="minimal", compat="override")

    # kept dims only the analysis has (a sweep's 'inflation') put on the truth: each side
    # may then have its own (rmse refuses dims on both sides that the other lacks)
    an_flat, tr_flat = flat(an), flat(tr)
    tr_flat = tr_flat.expand_dims({d: an_flat.indexes[d] if d in an_flat.indexes
                                   else an_flat.sizes[d] for d in keep_dims
                                   if d in an_flat.dims and d not in tr_flat.dims})
    return rmse(an_flat, tr_flat, dim="state")


def _matched_state(truth, analysis, sample_dims):
    """``truth`` with the analysis' grid: its labels reordered where they are the same
    labels in another order (a descending axis), any other difference an error.

    Flat states are compared entry by entry, so a truth on a transposed or
    reversed grid would be scored against the wrong points.
    """
    for name in truth.data_vars:
        an_space = {d for d in analysis[name].dims if d not in sample_dims}
        tr_space = {d for d in truth[name].dims if d not in sample_dims}
        if an_space != tr_space:
            raise ValueError(f"truth variable {name!r} has dims {truth[name].dims} where the "
                             f"analysis has {analysis[name].dims}")
    for d in analysis.indexes:
        if d not in truth.indexes or d in sample_dims or truth.indexes[d].equals(
                analysis.indexes[d]) or truth.sizes[d] != analysis.sizes[d]:
            continue
        want, got = np.asarray(analysis.indexes[d]), np.asarray(truth.indexes[d])
        if not (np.issubdtype(want.dtype, np.number) and np.issubdtype(got.dtype, np.number)):
            if set(got) == set(want):
                truth = truth.sel({d: want})
            continue
        # labels equal up to rounding (a truth read back in float32) are the analysis' own
        order = grid_order(got, want, rtol=1e-6, atol=1e-9 * float(np.abs(want).max()))
        if order is not None:
            truth = truth.isel({d: order}).assign_coords({d: analysis.indexes[d]})
    return _align(truth, analysis, names=("truth", "analysis"), broadcast=sample_dims)[0]


def mean_after_burn_in(per_time, burn_in=0.0):
    """Time mean of ``per_time`` from ``burn_in`` model time after its first time on.

    The time exactly ``burn_in`` after the first (earliest) is kept (``time >=
    time.min() + burn_in``). A NaN time makes the mean NaN: an assimilator that
    failed part-way (its analysis is NaN from the failure on) must not score the
    times before it. NaN has that meaning only: a ``burn_in`` that leaves no time
    raises.

    Parameters
    ----------
    per_time : DataArray or Dataset
        A score with a numeric ``time`` coordinate (e.g. from :func:`state_rmse`).
    burn_in : float, default=0.0
        Model time after the first time before which the values are left out.

    Returns
    -------
    DataArray or Dataset
        The mean over ``time``; the other dims are kept.

    Raises
    ------
    ValueError
        No time at least ``burn_in`` after the first (the burn-in covers the record).
    TypeError
        A ``time`` coordinate that is neither numeric nor dates (with dates,
        ``burn_in`` is a duration: ``np.timedelta64(1, "D")``).

    Examples
    --------
    >>> import xarray as xr
    >>> e = xr.DataArray([9.0, 1.0, 3.0], dims="time", coords={"time": [0.0, 1.0, 2.0]})
    >>> float(mean_after_burn_in(e, burn_in=1.0))
    2.0
    >>> float(mean_after_burn_in(e.where(e.time < 2.0), burn_in=1.0))  # failed at time 2
    nan
    """
    t = per_time["time"]
    dated = t.dtype.kind == "M"   # dates with a duration as burn_in (np.timedelta64 ...)
    if t.dtype.kind not in "iuf" and not dated:
        raise TypeError(f"mean_after_burn_in needs a numeric (model) 'time' or dates; got "
                        f"{t.dtype} times")
    if not dated and not np.isfinite(burn_in):
        raise ValueError(f"burn_in must be a finite model time; got {burn_in!r}")
    if dated:
        burn_in = pd.to_timedelta(burn_in).to_timedelta64()
    # the earliest time, not time[0]: unsorted times are measured from the first too
    start = t.min().values
    kept = t >= start + burn_in
    if not bool(kept.any()):
        raise ValueError(f"burn_in={burn_in!r} leaves no time to average: the record's "
                         f"{t.size} times span {t.max().values - start} from {start}")
    return per_time.where(kept, drop=True).mean("time", skipna=False)


def analysis_rmse(analysis, truth, burn_in=0.0):
    """Time-averaged RMSE of an analysis against the truth at the analysis times.

    The RMSE is taken over every state variable and spatial point at each
    time (and member mean when a ``member`` dim is present), then averaged over
    the times at least ``burn_in`` after the first analysis time (``time >=
    time.min() + burn_in``, :func:`mean_after_burn_in`). DAPPER's time averages
    keep only the times strictly after its ``BurnIn`` (``tto > BurnIn``): an
    analysis exactly at the boundary is scored here and not there.

    Parameters
    ----------
    analysis : xarray.Dataset
        The analysis, over ``time`` (and optionally ``member``); its extra variables
        (``spread``, ``<var>_std``) are left out.
    truth : xarray.Dataset
        The true states, selected at the analysis times.
    burn_in : float, default=0.0
        Model time after the first analysis time left out of the mean (the
        analysis at exactly ``burn_in`` after it is kept).

    Returns
    -------
    float
        NaN when the analysis is NaN at a scored time.

    Raises
    ------
    ValueError
        A ``burn_in`` that leaves no analysis time to score.

    Examples
    --------
    >>> import xarray as xr
    >>> truth = xr.Dataset({"x": ("time", [0.0, 0.0, 0.0])}, coords={"time": [0.0, 1.0, 2.0]})
    >>> an = xr.Dataset({"x": ("time", [5.0, 1.0, -3.0])}, coords={"time": [0.0, 1.0, 2.0]})
    >>> analysis_rmse(an, truth, burn_in=1.0)
    2.0
    """
    return float(mean_after_burn_in(state_rmse(analysis, truth), burn_in))


__all__ += ["state_rmse", "mean_after_burn_in", "analysis_rmse"]


def _relative_error(forecast, truth, dim, order, member_dim):
    if member_dim is not None and member_dim in forecast.dims and member_dim not in truth.dims:
        # as rmse: an ensemble is scored by its mean (a failed member makes it NaN)
        if dim is not None and member_dim in ([dim] if isinstance(dim, str) else list(dim)):
            raise ValueError(f"dim names the member dimension {member_dim!r}, which the relative "
                             f"L{order} error averages first (ensemble mean); pass "
                             "member_dim=None to sum over the members' errors")
        forecast = forecast.mean(member_dim, keep_attrs=True, skipna=False)
    forecast, truth = _align(forecast, truth, names=("forecast", "truth"))
    dims = _dims(dim, forecast, truth)
    # points without a truth leave both sums; a NaN forecast where the truth is known makes
    # the score NaN (xarray's sums skip NaN: a diverged forecast would score 0)
    known = truth.notnull()
    error, truth = (forecast - truth).where(known, 0.0), truth.where(known, 0.0)
    if order == 1:
        score = abs(error).sum(dims, skipna=False) / abs(truth).sum(dims, skipna=False)
    else:
        score = np.sqrt((error ** 2).sum(dims, skipna=False) / (truth ** 2).sum(dims, skipna=False))
    return _finish(score, forecast, f"relative L{order} error", units="1")


@_per_variable("forecast", "truth")
def relative_l1(forecast, truth, dim=None, member_dim="member"):
    """Relative L1 error ``sum |y - mu| / sum |y|`` over ``dim``.

    The first error measure of Zighed et al. (2025, arXiv:2510.24583);
    ``forecast`` is the (ensemble-mean) prediction ``mu``, ``truth`` is ``y``.

    Parameters
    ----------
    forecast, truth : DataArray or Dataset
        Aligned exactly (same coordinates). A Dataset is scored per variable;
        score a whole multi-variable state with ``ds.to_dataarray("variable")``.
    dim : str or sequence of str, optional
        Dimensions summed over; default all (after the ensemble mean).
    member_dim : str or None, default "member"
        Ensemble dimension of ``forecast`` (one ``truth`` lacks) averaged first, as
        :func:`rmse` does: an ensemble is scored by its mean ``mu`` (NaN where a member
        is NaN). None treats it as any other dimension.

    Returns
    -------
    DataArray or Dataset, dimensionless. Points where ``truth`` is NaN are
    left out; a NaN ``forecast`` where ``truth`` is known gives NaN.

    Examples
    --------
    >>> import xarray as xr
    >>> y = xr.DataArray([1.0, -2.0, 1.0], dims="x")
    >>> float(relative_l1(y + xr.DataArray([0.5, 0.0, -0.5], dims="x"), y))
    0.25
    """
    return _relative_error(forecast, truth, dim, 1, member_dim)


@_per_variable("forecast", "truth")
def relative_l2(forecast, truth, dim=None, member_dim="member"):
    """Relative L2 error ``||y - mu|| / ||y||`` over ``dim``.

    The second error measure of Zighed et al. (2025, arXiv:2510.24583).

    Parameters
    ----------
    forecast, truth : DataArray or Dataset
    dim : str or sequence of str, optional
        Dimensions of the norms; default all (after the ensemble mean).
    member_dim : str or None, default "member"
        As in :func:`relative_l1`: an ensemble is scored by its mean.

    Returns
    -------
    DataArray or Dataset, dimensionless. Points where ``truth`` is NaN are
    left out; a NaN ``forecast`` where ``truth`` is known gives NaN.

    Examples
    --------
    >>> import xarray as xr
    >>> y = xr.DataArray([3.0, 4.0], dims="x")
    >>> float(relative_l2(y + xr.DataArray([0.0, 1.0], dims="x"), y))
    0.2
    >>> float(relative_l2(y * float("nan"), y))  # a diverged forecast scores NaN, not 0
    nan
    """
    return _relative_error(forecast, truth, dim, 2, member_dim)


@_per_variable("mean", "std", "truth")
def picp(mean, std, truth, k=1.0, dim=None):
    """Prediction-interval coverage probability of ``mean +- k std``.

    The share of points with ``|y - mu| <= k sigma`` (Zighed et al. 2025); a
    calibrated Gaussian forecast covers 68.3% at ``k=1`` and 95.4% at ``k=2``.
    With an ``m``-member ensemble's own mean and spread, the truth's distance
    to the mean over the spread follows ``sqrt(1 + 1/m)`` times a Student's t
    with ``m - 1`` degrees of freedom (the spread is estimated from the same
    members): a calibrated ensemble of 10 members covers 63.5% at ``k=1``, and
    68.3% at ``k = t_9(0.841) sqrt(1.1) = 1.11``.

    Parameters
    ----------
    mean, std, truth : DataArray or Dataset
        Predictive mean and standard deviation (e.g. an ensemble's mean and
        ``std(member_dim, ddof=1)``; not negative, NaN where it failed) and the
        verifying values.
    k : float, default=1.0
        Half-width of the interval in standard deviations.
    dim : str or sequence of str, optional
        Dimensions averaged over; default all.

    Returns
    -------
    DataArray or Dataset, a fraction in [0, 1]. Points without a truth are
    left out; a NaN mean or std where the truth is known gives NaN.

    Raises
    ------
    ValueError
        ``k`` not positive and finite; a negative ``std`` (this computes a dask ``std``).

    Examples
    --------
    >>> import xarray as xr
    >>> truth = xr.DataArray([0.0, 0.5, 2.0, -1.5], dims="x")
    >>> mean = xr.zeros_like(truth)
    >>> std = xr.ones_like(truth)
    >>> float(picp(mean, std, truth)), float(picp(mean, std, truth, k=2))
    (0.5, 1.0)
    """
    if not np.isfinite(k) or k <= 0:
        raise ValueError(f"k must be a positive number; got {k!r}")
    mean, std, truth = _align(mean, std, truth, names=("mean", "std", "truth"))
    dims = _dims(dim, mean, std, truth)
    # a negative "std" (a variance's sign, a log-std passed as std) covers nothing: 0, no error
    if bool((std < 0).any()):
        raise ValueError(f"std must not be negative; its minimum is {float(std.min()):g}")
    # a comparison with NaN is False: without the where, a missing observation counted
    # as a miss; a NaN forecast is not scored at all
    covered = (abs(truth - mean) <= k * std).where(truth.notnull())
    score = _where_forecast_known(covered.mean(dims), mean + std, truth, dims)
    return _finish(score, truth, f"coverage of mean +- {k:g} std", units="1")


@_per_variable("ensemble", "truth")
def interval_coverage(ensemble, truth, level=0.9, member_dim="member", dim=None):
    """Share of the truth inside the ensemble's central ``level`` interval.

    The interval runs between the ensemble's empirical ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles at Weibull's plotting positions (member ``i``
    of ``m`` sorted at ``i / (m + 1)``), so that a calibrated ensemble, whose
    truth is one more draw, covers ``level`` of the points. (Linear
    interpolation between members, numpy's default, covers only about
    ``level (m - 1) / (m + 1)``: 0.74 for 90% with 10 members.) A level above
    ``(m - 1) / (m + 1)`` reaches past the outermost members: the interval is
    then the members' range, which a calibrated ensemble covers
    ``(m - 1) / (m + 1)`` of the time, and a warning says so.

    Parameters
    ----------
    ensemble : DataArray or Dataset
        With a ``member_dim`` dimension of at least two members.
    truth : DataArray or Dataset
    level : float in (0, 1), default=0.9
    member_dim : str, default="member"
    dim : str or sequence of str, optional
        Dimensions averaged over; default all that remain.

    Returns
    -------
    DataArray or Dataset, a fraction in [0, 1]. Points without a truth are
    left out; NaN where a member is NaN at a point with a truth (a failed
    member: the other members' interval would be scored as the ensemble's).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ens = xr.DataArray(np.tile(np.linspace(-1, 1, 21), (4, 1)), dims=("x", "member"))
    >>> truth = xr.DataArray([0.0, 0.85, -0.995, 3.0], dims="x")  # the interval: +-0.99
    >>> float(interval_coverage(ens, truth, level=0.9))
    0.5
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    _check_member_dim(ensemble, truth, member_dim, "interval coverage", min_members=2)
    ensemble, truth = _align(ensemble, truth, names=("ensemble", "truth"))
    # a NaN member makes its point's bounds NaN (and the score NaN below): the plain,
    # vectorized quantile (numpy's nanquantile loops over the points in Python)
    m = ensemble.sizes[member_dim]
    if level > (m - 1) / (m + 1) + 1e-12:
        need = int(np.ceil((1 + level) / (1 - level) - 1e-9))
        warnings.warn(f"a central {level:.0%} interval needs at least {need} members; with {m} "
                      f"it is the members' range, which a calibrated ensemble covers "
                      f"{(m - 1) / (m + 1):.0%} of the time", UserWarning, stacklevel=3)
    bounds = ensemble.quantile([(1 - level) / 2, (1 + level) / 2], dim=member_dim,
                               skipna=False, method="weibull")
    inside = (truth >= bounds.isel(quantile=0, drop=True)) & (
        truth <= bounds.isel(quantile=1, drop=True))
    dims = _dims(dim, inside) if dim is not None else list(inside.dims)
    # points without a truth leave the mean (a comparison with NaN is False: a miss)
    score = inside.where(truth.notnull()).mean(dims)
    score = _where_forecast_known(score, ensemble, truth, [*dims, member_dim])
    return _finish(score, truth, f"coverage of the central {level:.0%} ensemble interval",
                   units="1")


__all__ += ["relative_l1", "relative_l2", "picp", "interval_coverage"]
