"""Verification of forecasts: the truth at ``init + lead``, and scores per lead.

Every forecaster's :meth:`~xdyn.forecast.BaseForecaster.score` and every
forecast experiment verify through these functions, so that a table of
persistence, climatology and a learned model compares like with like: the same
verifying truth (:func:`lead_aligned_truth`), the same initialisations (those
whose valid time lies inside the truth), the same latitude weighting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from xdyn._labels import step_tolerance
from xdyn._units import canonical_units, other_units, step_units
from xdyn.forecast._time import LEAD_DIM, MEMBER_DIM, VALID_TIME, _time_kind, add_lead
from xdyn.metrics import (_align, _coord_units, _where_forecast_known, crps_ensemble,
                          lat_weights, rmse, weighted_acc, weighted_rmse)

__all__ = ["lead_aligned_truth", "forecast_rmse", "verify_forecast"]


def lead_aligned_truth(truth, forecast, sample_dim="time"):
    """The truth at the valid times ``init + lead`` of a forecast.

    Parameters
    ----------
    truth : xarray.Dataset or xarray.DataArray
        A time series along ``sample_dim`` (datetime64, cftime or model time).
    forecast : xarray.Dataset or xarray.DataArray
        Has ``sample_dim`` (initialisation times) and ``lead_time`` coordinates,
        as :meth:`~xdyn.forecast.BaseForecaster.predict` returns.
    sample_dim : str, default="time"

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        ``truth`` with dims ``(sample_dim, "lead_time", ...)`` on the
        forecast's coordinates (and its ``valid_time``); NaN where the valid
        time is not a time of ``truth`` (past its end, or between its samples).
        Model times match within a millionth of the truth's smallest step, plus
        the rounding of the truth's and the forecast's times (float32 times far
        from zero hold a few digits only).

    Raises
    ------
    ValueError
        The truth's ``sample_dim`` coordinate in other ``units`` than the
        forecast's (or its ``lead_time``), where both state them. No valid
        time a time of the truth, although they overlap the truth's times (the
        leads not multiples of its step, or the times offset from its times).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> truth = xr.DataArray(np.arange(5.0) * 10, dims="time", coords={"time": np.arange(5.0)})
    >>> fc = xr.DataArray(np.zeros((3, 2)), dims=("time", "lead_time"),
    ...                   coords={"time": [0.0, 2.0, 4.0], "lead_time": [1.0, 2.0]})
    >>> lead_aligned_truth(truth, fc).values.tolist()
    [[10.0, 20.0], [30.0, 40.0], [nan, nan]]
    """
    sd = sample_dim
    for name, obj in (("truth", truth), ("forecast", forecast)):
        if sd not in obj.coords:
            raise ValueError(f"{name} has no {sd!r} coordinate; its coords are {list(obj.coords)}")
    if LEAD_DIM not in forecast.coords:
        raise ValueError(f"forecast has no {LEAD_DIM!r} coordinate; make it with "
                         "BaseForecaster.predict(ds, lead_times)")
    # the truth is read at the forecast's numbers: in hours against days, other times
    _coord_units(forecast, truth, [sd], ("forecast", "truth"))
    # a lead is a duration: compare the units of steps ("hours" of "hours since ...")
    lead_units, units = (step_units(obj.attrs.get("units"))
                         for obj in (forecast[LEAD_DIM], truth[sd]))
    if other_units(lead_units, units):
        raise ValueError(f"the forecast's {LEAD_DIM!r} is in {lead_units!r} but the truth's "
                         f"{sd!r} in {units!r}: convert one to the other's units first")
    init = np.asarray(forecast[sd].values)
    leads = np.asarray(forecast[LEAD_DIM].values)
    kind = _time_kind(init)
    truth_kind = _time_kind(truth[sd].values)
    if (truth_kind == "model") != (kind == "model"):  # dates against numbers: none found
        raise ValueError(f"the forecast's {sd!r} are {kind} times and the truth's {truth_kind} "
                         f"times: decode both the same way (xarray.decode_cf, or numbers in the "
                         f"same units on both sides)")
    valid = add_lead(init, _lead_deltas(np.atleast_1d(leads), lead_units, kind), kind)
    truth = truth.drop_vars([k for k, c in truth.coords.items() if sd in c.dims and k != sd])
    kwargs, tol = {}, 0
    if kind == "model":
        t = np.asarray(truth[sd].values)
        step = float(np.min(np.diff(t.astype(float)))) if t.size > 1 else 1.0
        # float32 times (as read from a file) hold init + lead and the truth's times to
        # their rounding only: a millionth of the step found none of them
        tol = max(step_tolerance(v, step) for v in (t, init, valid) if v.size)
        tol = min(tol, abs(step) / 4)  # never the neighbouring sample
        kwargs = {"method": "nearest", "tolerance": tol}
    _check_some_found(truth.get_index(sd), valid, kwargs, tol, sd)
    per_lead = []
    for j in range(valid.shape[1]):
        at = truth.reindex({sd: valid[:, j]}, **kwargs)
        per_lead.append(at.assign_coords({sd: forecast[sd].values}))
    out = xr.concat(per_lead, dim=xr.DataArray(leads, dims=LEAD_DIM, name=LEAD_DIM),
                    coords="minimal", compat="override", join="override")
    out = out.assign_coords({LEAD_DIM: forecast[LEAD_DIM],
                             VALID_TIME: ((sd, LEAD_DIM), valid)})
    return out.transpose(sd, LEAD_DIM, ...)


_DELTA_UNITS = {"d": "D", "h": "h", "min": "min", "s": "s"}  # canonical -> pandas


def _lead_deltas(leads, units, kind):
    """Numeric leads of dated initialisations as timedeltas: a ``lead_time`` in ``units``
    (``'hours'``), as a file read back without ``decode_timedelta`` holds it."""
    if kind == "model" or leads.dtype.kind not in "iuf":
        return leads
    unit = _DELTA_UNITS.get(canonical_units(units))
    if unit is None:
        raise ValueError(f"the forecast's {LEAD_DIM!r} is numbers in {units!r}, not a "
                         f"duration, and its initialisations are dates ({kind}): give its "
                         "'units' ('hours') or read the file with decode_timedelta=True")
    return pd.to_timedelta(leads, unit=unit).to_numpy()


def _check_some_found(index, valid, kwargs, tol, sd):
    """Raise where no valid time is a time of the truth although they overlap its times.

    Valid times outside the truth's times are NaN (not verifiable); inside them, none
    found is an offset or leads off the truth's step, not an all-NaN score to return.
    """
    flat = valid.ravel()
    if index.size == 0 or flat.size == 0 or (index.get_indexer(flat, **kwargs) >= 0).any():
        return
    lo, hi = index.min(), index.max()
    if flat.min() > (hi + tol if tol else hi) or flat.max() < (lo - tol if tol else lo):
        return
    within = f" (within {tol:.3g})" if tol else ""
    raise ValueError(f"no valid time (init + lead) of the forecast is a time of the truth's "
                     f"{sd!r}{within}, although they lie between its first and last "
                     f"({lo} to {hi}): the leads are not multiples of its step or the times "
                     "are offset from its times; verify on the truth's times")


_LAT_NAMES = ("lat", "latitude")


def _lat_dim(dims, lat=None):
    """The latitude dim among ``dims`` that the scores weight by: ``lat`` where given,
    else ``"lat"`` or ``"latitude"`` (ERA5's name as downloaded); None without one."""
    return next((d for d in ((lat,) if lat is not None else _LAT_NAMES) if d in dims), None)


def _spatial_dims(obj, sample_dim):
    return [d for d in obj.dims if d not in (sample_dim, LEAD_DIM, MEMBER_DIM)]


def forecast_rmse(forecast, truth, sample_dim="time", lat=None):
    """RMSE per lead (and per variable): latitude-weighted where a latitude dim exists.

    Parameters
    ----------
    forecast : xarray.Dataset or xarray.DataArray
        From :meth:`~xdyn.forecast.BaseForecaster.predict`; an ensemble
        (``member`` dim) is scored by its mean.
    truth : same kind
        From :func:`lead_aligned_truth`, on the forecast's coordinates
        (exactly: a truth on another grid raises, and so does the series
        itself, on ``time`` without ``lead_time``). NaN truth (valid time outside the
        data) is left out, and so are the initialisations the forecast is NaN
        from at every lead (not issued: ClimODE's first sample). A forecast
        NaN in part where the truth is known (a diverged lead, a failed
        member) gives NaN at its lead.
    sample_dim : str, default="time"
    lat : str, optional
        The latitude dim; default ``"lat"`` or ``"latitude"``, whichever the
        forecast has. Without one (a Cartesian grid: ``y``/``x``) the RMSE is
        not weighted.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Dim ``lead_time``: the square root is taken per initialisation over the
        spatial dims (with the weights of :func:`xdyn.metrics.weighted_rmse`),
        then averaged over initialisations.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> fc = xr.DataArray(np.ones((2, 3, 4)), dims=("time", "lead_time", "x"),
    ...                   coords={"time": [0.0, 1.0], "lead_time": [1.0, 2.0, 3.0]})
    >>> forecast_rmse(fc, xr.zeros_like(fc)).values.tolist()
    [1.0, 1.0, 1.0]
    """
    if isinstance(forecast, xr.Dataset):
        return xr.Dataset({name: forecast_rmse(forecast[name], truth[name], sample_dim, lat)
                           for name in forecast.data_vars})
    forecast, truth = _align(forecast, truth, names=("forecast", "truth"))
    truth = _issued_only(truth, forecast, sample_dim)
    if MEMBER_DIM in forecast.dims:
        forecast = forecast.mean(MEMBER_DIM, keep_attrs=True, skipna=False)
    dims = _spatial_dims(forecast, sample_dim)
    lat = _lat_dim(dims, lat)
    if lat is not None:
        return weighted_rmse(forecast, truth, dim=dims, lat=lat, time_dim=sample_dim)
    if not dims:
        return rmse(forecast, truth, dim=sample_dim)
    per_init = np.sqrt(((forecast - truth) ** 2).mean(dims))
    out = _per_init_mean(per_init, forecast, sample_dim)
    return _where_forecast_known(out, forecast, truth, [*dims, sample_dim])


def _issued_only(truth, forecast, sample_dim):
    """``truth``, NaN at the initialisations the forecast is NaN from everywhere.

    A forecaster that cannot start from a sample (ClimODE's first, whose velocity
    needs the one before) returns NaN from it: not a forecast, so not scored. A
    forecast NaN only in part stays, for the scores to be NaN there.
    """
    # exactly aligned: where() would join inner, keeping a smaller grid's overlap silently
    forecast, truth = _align(forecast, truth, names=("forecast", "truth"))
    issued = forecast.notnull().any([d for d in forecast.dims if d != sample_dim])
    return truth.where(issued)


def _per_init_mean(per_init, like, sample_dim):
    out = per_init.mean(sample_dim)
    out.attrs = {"long_name": f"root-mean-square error of {like.attrs.get('long_name', like.name)}"}
    if "units" in like.attrs:
        out.attrs["units"] = like.attrs["units"]
    return out


def verify_forecast(forecast, truth, climatology=None, sample_dim="time", lat=None):
    """RMSE, ACC and CRPS per variable and lead: the table of a forecast experiment.

    Parameters
    ----------
    forecast : xarray.Dataset or xarray.DataArray
        From :meth:`~xdyn.forecast.BaseForecaster.predict`. A DataArray (the
        forecast from a DataArray) is taken as the Dataset of its one variable,
        named as it is, or else as a DataArray ``truth`` or ``climatology`` is
        (``"variable"`` where none is named).
    truth : xarray.Dataset or xarray.DataArray
        A time series (not yet lead-aligned): :func:`lead_aligned_truth` is applied.
    climatology : xarray.Dataset or xarray.DataArray, optional
        The climatology's forecast on the same coordinates (from
        :class:`~xdyn.forecast.Climatology`), for the ACC's anomalies; without
        it there is no ACC.
    sample_dim : str, default="time"
    lat : str, optional
        The latitude dim the scores weight by, as for :func:`forecast_rmse`
        (default ``"lat"`` or ``"latitude"``; none: unweighted).

    Returns
    -------
    xarray.Dataset
        Variables ``<var>_rmse``, ``<var>_acc`` (with a climatology and a
        latitude dim), ``<var>_crps`` (ensemble forecasts; the MAE of a
        deterministic one, which is its CRPS), each on ``lead_time``; the RMSE
        and CRPS latitude-weighted where the variable has a latitude dim (their
        ``long_name`` says so). Each variable's scores are taken over its own
        spatial dims (a ``T`` on ``lat``, ``lon`` next to a ``z`` also on
        ``level``).

    Notes
    -----
    Every score of a lead is computed on the same samples. An initialisation
    is scored where its truth at ``init + lead`` is known at some point and
    the forecast was issued (:func:`forecast_rmse`); the points where the truth
    is missing leave every score's spatial mean (the weights of the others
    renormalised), and the per-initialisation scores are then averaged over the
    scored initialisations. A forecast NaN where the truth is known (a diverged
    lead, a failed member) makes the score of its lead NaN.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> truth = xr.Dataset({"T": ("time", np.arange(6.0), {"units": "K"})},
    ...                    coords={"time": np.arange(6.0)})
    >>> from xdyn.forecast import Persistence
    >>> fc = Persistence().fit(truth).predict(truth, lead_times=[1.0, 2.0])
    >>> verify_forecast(fc, truth)["T_rmse"].values.tolist()
    [1.0, 2.0]
    """
    forecast, truth, climatology = _as_datasets(forecast, truth, climatology)
    aligned = _issued_only(lead_aligned_truth(truth, forecast, sample_dim=sample_dim),
                           forecast, sample_dim)
    rm = forecast_rmse(forecast, aligned, sample_dim=sample_dim, lat=lat)
    out = {}
    for name in forecast.data_vars:
        # per variable: a Dataset's dims include those of its other variables (level)
        dims = _spatial_dims(forecast[name], sample_dim)
        lat_dim = _lat_dim(dims, lat)
        out[f"{name}_rmse"] = rm[name]
        if climatology is not None and lat_dim is not None:
            mean = forecast[name]
            if MEMBER_DIM in mean.dims:
                mean = mean.mean(MEMBER_DIM, skipna=False)
            clim = climatology[name]
            acc = weighted_acc(mean, aligned[name], clim, dim=dims, lat=lat_dim, time_dim=None)
            # an init without truth is NaN and left out, as in the RMSE (see Notes)
            out[f"{name}_acc"] = acc.mean(sample_dim)
        ens = forecast[name] if MEMBER_DIM in forecast[name].dims \
            else forecast[name].expand_dims(MEMBER_DIM, axis=-1)
        crps = crps_ensemble(ens, aligned[name])
        # the missing truth points leave the spatial means (skipna), as in the RMSE
        if lat_dim is not None:
            crps = crps.weighted(lat_weights(forecast[lat_dim])).mean(dims)
        else:
            crps = crps.mean(dims) if dims else crps
        out[f"{name}_crps"] = crps.mean(sample_dim)
        # a forecast missing where the truth is known is not scored on its other points
        for key in ("acc", "crps"):
            if f"{name}_{key}" in out:
                out[f"{name}_{key}"] = _where_forecast_known(
                    out[f"{name}_{key}"], forecast[name], aligned[name],
                    [*dims, sample_dim, MEMBER_DIM])
        units = forecast[name].attrs.get("units")
        weighted = "latitude-weighted " if lat_dim else ""
        for key, long in (("rmse", f"{weighted}RMSE"), ("acc", "anomaly correlation coefficient"),
                          ("crps", f"{weighted}CRPS")):
            if f"{name}_{key}" in out:
                out[f"{name}_{key}"].attrs = {
                    "long_name": f"{long} of {forecast[name].attrs.get('long_name', name)}",
                    "units": "1" if key == "acc" else (units or "1")}
    return xr.Dataset(out)


def _as_datasets(*objs):
    """The DataArrays among ``objs`` as one-variable Datasets of one name (see
    :func:`verify_forecast`); raise where they are named differently."""
    arrays = [o for o in objs if isinstance(o, xr.DataArray)]
    names = list(dict.fromkeys(o.name for o in arrays if o.name is not None))
    if len(names) > 1:
        raise ValueError(f"the DataArrays are named differently ({', '.join(map(repr, names))}):"
                         " give one variable under one name (or Datasets)")
    name = names[0] if names else "variable"
    return tuple(o.to_dataset(name=name) if isinstance(o, xr.DataArray) else o for o in objs)

