"""ERA5 forecast experiments: ``era5-uk-t2m``, ``era5-forecast`` and ``era5-monthly``.

``era5-uk-t2m`` (real data): the hourly ERA5 2-m temperature of March 2019 over
the UK (744 hours, 0.25°, xarray's tutorial file; see
:mod:`xdyn.experiments._era5_data` for where it is looked up). Every forecaster
is fitted on the first three weeks (March 1-21, 504 hours) and forecasts from
every hour of the rest (March 22-31, 240 initialisations) at leads of 1-24 h,
against persistence and the diurnal (hour-of-day) climatology of the training
weeks. Every method forecasts from the same initialisations, each with a day
of data before it. VGB-DM (its weather model,
:class:`~xdyn.forecast.TransportVGBDM`) stops training on the last days of the
training weeks (``early_stopping``); ClimODE trains its epochs through, without
``memory`` (the choice of these settings on the last four training days is
below). ``quick`` averages the grid 2x2 (0.5°) and trains shorter.

How the settings were chosen (2026-12-07, quick, seeds 0 and 1): fitted on
March 1-17 and scored on every hour of March 18-21, nothing of the test week
read. ClimODE's mean RMSE over 3-24 h: ``memory=24`` with early stopping 2.07 /
1.97 K, without it 1.91 / 1.90; no memory with early stopping 2.12 / 2.12,
without 1.73 / 1.76 (picked). VGB-DM with early stopping 1.59 / 1.55, without
2.30 / 2.03 (picked: with); the trajectory VGBDM (black box, no clock) 2.34 /
2.79. Persistence scored 1.65 there, the diurnal climatology 2.53. Before this
ClimODE ran with ``memory=24`` and early stopping, chosen on the test week.

What three weeks can teach about 12-24 h (measured 2026-12-03 at 0.5°, RMSE of
all test forecasts pooled): a linear regression of the hourly anomaly (from the
diurnal climatology) on the 24 anomalies before the initialisation, one per
lead and fitted on the training weeks, scores 1.65 K at 12 h against the
climatology's 1.66 K. The weeks differ: the anomaly's correlation 12 h apart
is 0.57 in the training weeks and 0.13 in the test week, 24 h apart 0.35 and
0.57 (days of larger range, 3.9 K against 3.4 K, warmer afternoons and colder
nights than the climatology's). A blend of the climatology with the same hour
yesterday scores 1.40 K at every lead, but a validation split of the last four
training days picks the regression, so that blend cannot be chosen from the
training weeks. Measured again 2026-12-06 (0.5°, this experiment's metric, the
anomaly from the forecasters' own fitted climatology): least squares of the
12-h anomaly on the anomaly at the initialisation (a) and at the valid hour
yesterday (b) gives a, b = 0.52, 0.06 on the training weeks, 0.72, 0.18 on their
last four days and 0.00, 0.50 on the test week. Fitted on the training weeks it
scores 1.62 / 1.68 K at 9 / 12 h (climatology 1.58 / 1.57): the weeks reward
carrying the present anomaly forward, the test week does not, so a forecaster
fitted and chosen on them loses at 9-15 h whatever its form.

``era5-forecast`` (6-hourly data, leads 6-144 h) and ``era5-monthly`` (monthly
means on a 360-day calendar, leads 1-5 months) follow ClimODE (Verma et al.,
ICLR 2024) and VGB-DM (Singh et al., AISTATS 2026) on WeatherBench 5.625°
(Rasp et al. 2020): z500, t850, t2m, u10, v10, trained on 2006-2015 and tested
on 2017-2018; VGB-DM is :class:`~xdyn.forecast.TransportVGBDM`, the transport +
source model of its weather row (z500 114 / 308 / 490 m²/s² at 6 / 24 / 42 h).
They run on the WeatherBench files :func:`xdyn.datasets.load_weatherbench`
finds (``$XDYN_DATA_DIR/weatherbench``, or ``root``); where no ``root`` is
given and that folder holds none of the variables at all, they run, with a
warning, on xdyn's WeatherBench-format test set (NOT ERA5: 36 days of 2016 to
train on, 12 of 2017 to test on, quick; 72 and 24 in full; whole years
2015-2017 for ``era5-monthly``), and every output says which
(``results.attrs["data"]``). Samples are taken every 6 hours, never filling a
gap between records; monthly means are of whole calendar months only.

All forecasts verify through :func:`xdyn.forecast.verify_forecast`: the
latitude-weighted RMSE, the ACC against the training climatology and the CRPS,
per variable and lead, on the same initialisations for every method.
"""

from __future__ import annotations

import datetime
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from xdyn.experiments._era5_data import (WB_TEST_SET_NOTE, load_uk_t2m,
                                         write_weatherbench_test_set)
from xdyn.experiments._era5_figures import error_maps, score_curves
from xdyn.experiments.catalogue import ExperimentResult, register, summary_rows
from xdyn.forecast import (ClimODE, Climatology, NeuralODE, Persistence,
                           TransportVGBDM, lead_aligned_truth, verify_forecast)
from xdyn.forecast._time import _as_timedelta64, _time_kind, add_lead
from xdyn.forecast._trajectories import TrajectoryForecaster

__all__ = ["uk_t2m_experiment", "weatherbench_experiment", "compare_forecasters",
           "write_weatherbench_test_set", "load_uk_t2m"]

LEARNED = ("ClimODE", "NeuralODE", "VGBDM")


def _model_time(ds, start):
    """``ds`` with hours since ``start`` as its time (for forecasters of dynamical systems).

    cftime times (``era5-monthly``'s 360-day calendar) are subtracted in their
    own calendar, as :class:`datetime.timedelta`, and then counted in hours.
    """
    delta = np.asarray(ds.time.values - start)
    if delta.dtype == object:  # cftime: differences are datetime.timedelta
        h = np.array([d / datetime.timedelta(hours=1) for d in delta.ravel()], dtype=float)
    else:
        h = delta / np.timedelta64(1, "h")
    return ds.assign_coords(time=("time", h, {"units": "h", "long_name": "time"}))


def _fit(est, train):
    # forecasters of dynamical systems take model time: they see hours since the start
    # of the training data, and their forecasts get the calendar back
    est.fit(_model_time(train, train.time.values[0])
            if isinstance(est, TrajectoryForecaster) else train)


def _predict(est, train, test, lead_times):
    if not isinstance(est, TrajectoryForecaster):
        return est.predict(test, lead_times)
    lead_times = _as_timedelta64(lead_times)
    fc = est.predict(_model_time(test, train.time.values[0]), lead_times / np.timedelta64(1, "h"))
    valid = add_lead(test.time.values, lead_times, _time_kind(test.time.values))
    return fc.assign_coords(time=test.time.values, lead_time=lead_times,
                            valid_time=(("time", "lead_time"), valid))


def _valid_starts(fc, truth):
    """Per variable and lead, how many starts of ``fc`` have their whole truth."""
    aligned = lead_aligned_truth(truth, fc)
    return {v: aligned[v].notnull().all([d for d in aligned[v].dims
                                         if d not in ("time", "lead_time")]).sum("time")
            for v in fc.data_vars}


def compare_forecasters(forecasters, train, test, lead_times, climatology="Climatology",
                        n_history=1, progress=False, chunk=None):
    """Fit every forecaster on ``train``, forecast ``test`` and score per variable and lead.

    Parameters
    ----------
    forecasters : dict
        Name -> unfitted :class:`~xdyn.forecast.BaseForecaster`.
    train, test : xarray.Dataset
        ``test`` starts ``n_history`` samples before the first initialisation
        (a model that reads the previous sample, as ClimODE, needs them);
        forecasts start from every later sample.
    lead_times : sequence of timedelta
        Forecast leads (anything :class:`numpy.timedelta64` takes, e.g. ``"12h"``).
    climatology : str, default="Climatology"
        The name in ``forecasters`` whose forecast is the ACC's reference (no ACC
        when no forecaster has that name).
    n_history : int, default=1
        Samples at the start of ``test`` that are history only, not
        initialisations; forecasts are scored from the sample after them on.
    progress : bool, default=False
        Print each forecaster's fit and predict wall time.
    chunk : int, optional
        Forecast and verify ``chunk`` starts at a time (each with its
        ``n_history`` samples before it) and pool the scores, weighted by the
        starts that have a truth at each lead: every score is a mean over
        starts, so the result is the same as all at once, and memory holds
        one chunk of every method's ensemble (two years of 6-hourly starts at
        24 leads, 10 members and 5 fields on 32 x 64 are 57 GB per method).

    Returns
    -------
    scores : xarray.Dataset
        ``<var>_rmse``, ``<var>_acc``, ``<var>_crps`` on ``(method, lead_time)``:
        RMSE and ACC of each forecast's ensemble mean, but of the emission mean
        itself for ClimODE (whose members are independent draws around it, as
        the ClimODE paper scores it), CRPS of the members.
    forecasts : dict
        Name -> forecast Dataset on the test initialisations (of the last
        chunk, with ``chunk``).
    timing : dict
        Name -> (fit seconds, predict seconds).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from xdyn.forecast import Persistence, Climatology
    >>> time = np.datetime64("2019-03-01", "ns") + np.arange(48) * np.timedelta64(1, "h")
    >>> ds = xr.Dataset({"T": ("time", np.sin(np.arange(48) * np.pi / 12), {"units": "K"})},
    ...                 coords={"time": time})
    >>> scores, _, _ = compare_forecasters(
    ...     {"Persistence": Persistence(), "Climatology": Climatology(groupby="hour")},
    ...     ds.isel(time=slice(0, 24)), ds.isel(time=slice(23, None)), ["12h"])
    >>> scores["T_rmse"].sel({"method": "Climatology"}).values.round(6).tolist()
    [0.0]
    """
    try:  # "12h", datetime.timedelta, numpy.timedelta64 -> timedelta64[ns], once for all
        lead_times = _as_timedelta64(lead_times)
    except TypeError:  # numbers: leads in model time, passed on as they are
        lead_times = np.atleast_1d(np.asarray(lead_times))
    timing = {}
    for name, est in forecasters.items():
        t0 = time.perf_counter()
        _fit(est, train)
        timing[name] = [time.perf_counter() - t0, 0.0]
    n_starts = test.sizes["time"] - n_history
    size = n_starts if chunk is None else max(1, int(chunk))
    sums, counts, attrs = {}, {}, {}
    for first in range(0, n_starts, size):
        window = test.isel(time=slice(first, first + n_history + size))
        forecasts, means = {}, {}
        for name, est in forecasters.items():
            t0 = time.perf_counter()
            fc = _predict(est, train, window, lead_times).isel(time=slice(n_history, None))
            if _has_exact_mean(est):
                means[name] = _exact_mean(est, train, window, lead_times).isel(
                    time=slice(n_history, None))
            timing[name][1] += time.perf_counter() - t0
            _check_every_start(name, fc, n_history)
            forecasts[name] = fc
        clim = forecasts.get(climatology)
        n_valid = {}  # starts with a whole truth per variable and lead: the same for every method
        for name, fc in forecasts.items():
            scores = verify_forecast(fc, test, climatology=clim)
            if name in means:  # RMSE and ACC of the exact mean; CRPS of the members
                exact = verify_forecast(means[name], test, climatology=clim)
                scores = scores.assign({k: exact[k] for k in exact.data_vars
                                        if not k.endswith("_crps")})
            missing = [v for v in fc.data_vars if v not in n_valid]
            if missing:
                n_valid.update(_valid_starts(fc[missing], test))
            n = xr.Dataset({key: n_valid[key.rsplit("_", 1)[0]] for key in scores.data_vars})
            sums[name] = sums.get(name, 0) + (scores * n).where(n > 0, 0.0)
            counts[name] = counts.get(name, 0) + n
            attrs[name] = {key: da.attrs for key, da in scores.data_vars.items()}
    per_method = []
    for name in forecasters:
        pooled = sums[name] / counts[name].where(counts[name] > 0)
        for key, da in pooled.data_vars.items():
            da.attrs = attrs[name][key]
        per_method.append(pooled)
    scores = xr.concat(per_method, dim="method", join="outer")
    scores = scores.assign_coords(method=("method", list(forecasters),
                                          {"long_name": "forecaster"}))
    if progress:
        for name, (fit_s, predict_s) in timing.items():
            print(f"  {name}: fit {fit_s:.1f} s, predict {predict_s:.1f} s", flush=True)
    return scores, forecasts, {name: tuple(t) for name, t in timing.items()}


def _has_exact_mean(est):
    """Whether ``est`` forecasts a Gaussian emission whose mean it can give exactly
    (ClimODE): its members are independent draws around it."""
    return isinstance(est, ClimODE) and int(est.n_members) > 1


def _exact_mean(est, train, test, lead_times):
    """ClimODE's emission mean (``n_members=1``): its deterministic forecast, as the
    ClimODE paper scores it; the mean of its members adds their sampling noise."""
    members = est.n_members
    try:
        return _predict(est.set_params(n_members=1), train, test, lead_times)
    finally:
        est.set_params(n_members=members)


def _check_every_start(name, fc, n_history):
    """Scores pool the same starts for every method: a forecaster that needs more history
    than ``test`` gives would be scored on fewer of them."""
    for var, da in fc.data_vars.items():
        missing = da.isnull().any([d for d in da.dims if d != "time"])
        if bool(missing.any()):
            raise ValueError(f"{name} has no {var} forecast from {int(missing.sum())} of "
                             f"{missing.size} initialisations (the first at "
                             f"{fc.time.values[int(np.argmax(missing.values))]}): it needs "
                             f"more than the n_history={n_history} samples before them")


def _hours(scores):
    lead = scores["lead_time"].values / np.timedelta64(1, "h")
    return scores.assign_coords(lead_time=("lead_time", lead,
                                           {"long_name": "forecast lead time", "units": "h"}))


def _table(scores, var, leads_shown, unit="h"):
    rm = scores[f"{var}_rmse"]
    head = f"{'method':<12}" + "".join(f"{f'{h:g} {unit}':>9}" for h in leads_shown)
    rows = [f"{var} latitude-weighted RMSE [{rm.attrs.get('units', '')}]", head]
    for m in rm.method.values:
        vals = rm.sel({"method": m, "lead_time": list(leads_shown)}).values
        rows.append(f"{str(m):<12}" + "".join(f"{v:9.3f}" for v in vals))
    return "\n".join(rows)


def _summary(scores, **settings):
    """Summary rows of the ``<variable>_<metric>`` scores, one per method and lead.

    The variable is a setting (``variable=z500``), not part of the metric's
    name: the anchors of ``anchors.csv`` select it the same way
    (``variable=z500;lead_time=24``).

    Examples
    --------
    >>> import xarray as xr
    >>> scores = xr.Dataset({"z500_rmse": (("method", "lead_time"), [[114.0]],
    ...                                    {"units": "m**2 s**-2"})},
    ...                     coords={"method": ["VGBDM"], "lead_time": [6.0]})
    >>> row = _summary(scores)[0]
    >>> row["method"], row["metric"], row["variable"], row["lead_time"], row["units"]
    ('VGBDM', 'latitude-weighted RMSE', 'z500', 6.0, 'm**2 s**-2')
    """
    rows = []
    for name, da in scores.data_vars.items():
        if "method" not in da.dims:
            continue
        var, metric = name.rsplit("_", 1)
        if metric not in ("rmse", "acc", "crps"):
            continue
        # every ERA5 grid has a latitude: its RMSE and CRPS are weighted by cos(lat)
        label = {"rmse": "latitude-weighted RMSE", "acc": "ACC",
                 "crps": "latitude-weighted CRPS"}[metric]
        rows += summary_rows(da, label, method_dim="method", lower_is_better=metric != "acc",
                             variable=var, **settings)
    return rows


# ----------------------------------------------------------------- UK t2m
# every method gets the same test initialisations, the first with a day of data before it;
# ClimODE's memory and early stopping as chosen on the last training days (module docstring;
# validated at the quick size only)
UK_HISTORY_HOURS = 24

def _uk_forecasters(quick, seed, device, progress):
    common = dict(random_state=seed, device=device, progress=progress)
    return {
        "Persistence": Persistence(),
        "Climatology": Climatology(groupby="hour"),
        "ClimODE": ClimODE(hidden=16, n_steps=24, stride=3, max_epochs=10 if quick else 30,
                           lr=3e-3, batch_size=16, step_size=2.0, n_members=10,
                           **common),
        "NeuralODE": NeuralODE(window=6, hidden=64, max_epochs=10 if quick else 40, **common),
        # VGB-DM's weather model: transport + source with a clock (the black-box
        # trajectory VGBDM, autonomous in the field alone, scored 2.95 / 2.48 K at 12 / 24 h)
        "VGBDM": TransportVGBDM(hidden=32, len_episode=4, max_epochs=60 if quick else 200,
                                batch_size=16, early_stopping=True, n_members=10, **common),
    }


def uk_t2m_experiment(quick=False, seed=0, device="cpu", progress=True, data=None,
                      forecasters=None, lead_hours=tuple(range(1, 25))):
    """Run ``era5-uk-t2m`` (see the module docstring); ``data``/``forecasters`` for tests.

    Parameters
    ----------
    quick : bool, default=False
        Average the grid 2x2 (0.5 deg) and train the learned forecasters for fewer
        epochs.
    seed : int, default=0
        ``random_state`` of the learned forecasters.
    device : str, default="cpu"
        Torch device of the learned forecasters.
    progress : bool, default=True
        Show the forecasters' training progress and print their wall times.
    data : xarray.Dataset, optional
        Hourly ``t2m`` on ``(time, lat, lon)`` instead of the March 2019 UK sample
        (:func:`load_uk_t2m`); its first two thirds of times are the training data
        (the sample's: the first 21 days). The test initialisations follow, each with
        the 24 hours before it.
    forecasters : dict, optional
        Name -> unfitted forecaster, replacing the default five (persistence, diurnal
        climatology, ClimODE, neural ODE, VGB-DM). It must hold ``"Persistence"``
        and ``"Climatology"`` (the baselines; the latter is the ACC's reference).
    lead_hours : sequence of int, default=(1, 2, ..., 24)
        Forecast leads, in hours.

    Returns
    -------
    ExperimentResult
        Scores per method and lead, whether each learned forecaster beats both
        baselines at every lead from 3 h on, wall times, figures and summary.

    Examples
    --------
    The baselines only, on the real sample (minutes with the learned forecasters):

    >>> from xdyn.forecast import Persistence, Climatology
    >>> res = uk_t2m_experiment(quick=True, progress=False, lead_hours=(1, 24),
    ...     forecasters={"Persistence": Persistence(),
    ...                  "Climatology": Climatology(groupby="hour")})  # doctest: +SKIP
    >>> res.results["t2m_rmse"].dims  # doctest: +SKIP
    ('method', 'lead_time')
    """
    t_start = time.perf_counter()
    ds = load_uk_t2m() if data is None else data
    coarsen = 2 if quick else 1
    if coarsen > 1:
        ds = ds.coarsen(lat=coarsen, lon=coarsen, boundary="trim").mean(keep_attrs=True)
    n_train = 21 * 24 if data is None else ds.sizes["time"] * 2 // 3
    n_history = UK_HISTORY_HOURS
    train = ds.isel(time=slice(0, n_train))
    test = ds.isel(time=slice(n_train - n_history, None))
    leads = [np.timedelta64(int(h), "h") for h in lead_hours]
    forecasters = _uk_forecasters(quick, seed, device, progress) if forecasters is None \
        else forecasters
    scores, forecasts, timing = compare_forecasters(forecasters, train, test, leads,
                                                    n_history=n_history, progress=progress)
    scores = _hours(scores)
    rm = scores["t2m_rmse"]
    baselines = rm.sel({"method": ["Persistence", "Climatology"]}).min("method")
    window = rm.lead_time >= 3
    learned = [m for m in rm.method.values if m in LEARNED]
    met = xr.DataArray([bool((rm.sel({"method": m}) < baselines).where(window, True).all())
                        for m in learned], dims="learned", coords={"learned": learned},
                       attrs={"long_name": "beats persistence and the diurnal climatology at "
                                           "every lead from 3 to 24 h", "units": "1"})
    results = scores.assign(
        target_met=met.astype("int8"),
        fit_seconds=("method", [timing[m][0] for m in rm.method.values],
                     {"long_name": "fit wall time", "units": "s"}),
        predict_seconds=("method", [timing[m][1] for m in rm.method.values],
                         {"long_name": "predict wall time", "units": "s"}))
    grid = f"{ds.sizes['lat']}x{ds.sizes['lon']} ({0.25 * coarsen:g} deg)"
    results.attrs.update(
        data=ds.attrs.get("source", "user data"), grid=grid,
        config_json=json.dumps({"quick": quick, "seed": seed, "n_train_hours": n_train,
                                "n_test_inits": int(test.sizes["time"] - n_history),
                                "lead_hours": list(lead_hours), "coarsen": coarsen,
                                "forecasters": {k: repr(v) for k, v in forecasters.items()}}),
        wall_seconds=time.perf_counter() - t_start)
    shown = [h for h in (1, 3, 6, 12, 24) if h in lead_hours]
    table = "\n".join([f"era5-uk-t2m on {results.attrs['data']}", f"grid {grid}, train "
                       f"{n_train} h, {test.sizes['time'] - n_history} test initialisations",
                       _table(results, "t2m", shown)]
                      + [f"target (beat both baselines at 3-24 h) {m}: "
                         f"{'met' if bool(met.sel(learned=m)) else 'missed'}" for m in learned])
    figures = {"rmse_by_lead": score_curves(results, "t2m"),
               "maps": error_maps(forecasts, test, "t2m", lead=leads[-1])}
    summary = _summary(scores) + [
        {"method": m, "metric": "beats both baselines at 3-24 h", "value": int(met.sel(learned=m)),
         "units": "1", "lower_is_better": False} for m in learned]
    return ExperimentResult(results, figures, table, summary)


@register("era5-uk-t2m",
          "Real ERA5 2-m temperature over the UK, March 2019 (hourly, 0.25 deg): ClimODE, "
          "neural ODE and VGB-DM against persistence and the diurnal climatology at 1-24 h",
          "ERA5 (Hersbach et al. 2020) via xarray-data; ClimODE (Verma et al., ICLR 2024)",
          quick_wall_s=220)
def era5_uk_t2m(quick=False, seed=0, device="cpu", progress=True):
    return uk_t2m_experiment(quick=quick, seed=seed, device=device, progress=progress)


# ----------------------------------------------------------- WeatherBench
# every method forecasts from the same starts, each with the samples a method reads before
# it: VGB-DM's episode of 4 (len_episode) ends at the start, ClimODE reads the one before
WB_HISTORY = 3
# starts forecast and verified at a time: 64 x 24 leads x 10 members x 5 fields on 32 x 64
# is 1.3 GB per method (full WeatherBench has 2920 test starts)
WB_CHUNK = 64


def _weatherbench_absent(variables, root):
    """Whether no WeatherBench data exist at all for ``variables``: ``root`` holds no
    folder of any of them (or does not exist)."""
    from xdyn.datasets.weatherbench import _parse

    return not any((Path(root) / folder).is_dir()
                   for name in variables for folder, *_ in _parse(name)[1])


def _test_set_days_per_year(monthly, quick, test_set_days):
    """Days per year of xdyn's test set: ``{year: days}``."""
    if monthly:  # whole calendar years, so that every month is whole (366 days in 2016)
        if test_set_days is not None:
            raise ValueError(
                f"test_set_days={test_set_days!r} with monthly=True: xdyn's test set would "
                "hold only the first days of each year, so months would be partial or "
                "missing between the years, and a monthly mean of them would not be one; "
                "monthly runs use whole years of the test set (leave test_set_days=None)")
        return {year: 366 if year % 4 == 0 else 365 for year in (2015, 2016, 2017)}
    days = test_set_days or (12 if quick else 24)
    return {2016: 3 * days, 2017: days}  # three times as many training days as test days


def _monthly_means(ds, where):
    """Means of whole calendar months of ``ds``; ValueError where a month of the record
    (between its first and last) lacks a sample, naming the month and ``where``."""
    times = ds.indexes["time"]
    step = np.min(np.diff(ds.time.values))
    per_day = np.timedelta64(1, "D") / step
    count = ds.time.resample(time="1MS").count()
    month = count.indexes["time"]
    expected = np.asarray(month.days_in_month) * per_day
    partial = np.flatnonzero(count.values < expected)
    if partial.size:
        j = partial[0]
        raise ValueError(
            f"monthly means need whole months, but {month[j]:%Y-%m} has "
            f"{int(count.values[j])} of its {expected[j]:g} samples (one every "
            f"{step / np.timedelta64(1, 'h'):g} h) between {times[0]} and {times[-1]} in "
            f"{where}; {partial.size} month(s) are partial or missing. Give whole months")
    return ds.resample(time="1MS").mean()


def _open_weatherbench(variables, monthly, quick, root=None, test_set_days=None):
    """(train, test, note, tempdir): real WeatherBench when found, else xdyn's test set.

    xdyn's test set stands in (with a warning) only where no WeatherBench data
    exist at all -- no folder of any of ``variables`` in the default folder
    (``$XDYN_DATA_DIR/weatherbench``) -- and no ``root`` was given; any other
    missing folder or year raises the loader's FileNotFoundError, which names it.

    ``test`` starts ``WB_HISTORY`` samples before the first test sample where
    the training record runs up to it (real WeatherBench); after a gap (xdyn's
    test set: the first days of each year) it starts at the first test sample,
    and its first ``WB_HISTORY`` samples are then history only.
    """
    from xdyn.datasets import data_dir, load_weatherbench

    tmp = None
    years = ((2006, 2015), (2017, 2018)) if not quick else ((2015, 2015), (2017, 2017))
    try:
        ds = load_weatherbench(list(variables), root=root,
                               years=list(range(years[0][0], years[1][1] + 1)))
        note = f"WeatherBench ERA5 5.625 deg at {ds.attrs.get('weatherbench_root')}"
    except FileNotFoundError as err:
        default = data_dir() / "weatherbench"
        if root is not None or not _weatherbench_absent(variables, default):
            raise  # data exist (or were pointed at) but lack a folder or a year: say which
        days = _test_set_days_per_year(monthly, quick, test_set_days)
        warnings.warn(f"no WeatherBench data for {list(variables)} in {default} ({err}); "
                      f"running on {WB_TEST_SET_NOTE}. Pass root= the WeatherBench folder "
                      "or set XDYN_DATA_DIR to run on ERA5", UserWarning, stacklevel=3)
        tmp = tempfile.TemporaryDirectory(prefix="xdyn-wb-")
        years = ((2015, 2016), (2017, 2017)) if monthly else ((2016, 2016), (2017, 2017))
        for year, n_days in days.items():
            write_weatherbench_test_set(tmp.name, years=(year,), days=n_days,
                                        freq="1D" if monthly else "6h", variables=variables)
        ds = load_weatherbench(list(variables), root=tmp.name)
        note = WB_TEST_SET_NOTE
    if monthly:
        try:
            ds = _monthly_means(ds, note)
        except ValueError:
            if tmp is not None:
                tmp.cleanup()
            raise
        # a 360-day calendar makes months equal: leads of k * 30 days hit month k exactly
        import cftime
        ds = ds.assign_coords(time=[cftime.Datetime360Day(t.year, t.month, 16) for t in
                                    ds.indexes["time"]])
    else:  # 6-hourly samples (WeatherBench is hourly); never filling a gap
        ds = ds.sel(time=(ds.time.dt.hour % 6 == 0) & (ds.time.dt.minute == 0))
    ds = ds.load()
    year = ds["time"].dt.year
    train = ds.sel(time=(year >= years[0][0]) & (year <= years[0][1]))
    first = int(np.argmax((year >= years[1][0]).values))
    contiguous = monthly or (first > 0 and ds.time.values[first] - ds.time.values[first - 1]
                             == np.timedelta64(6, "h"))
    test = ds.isel(time=slice(first - WB_HISTORY if contiguous else first, None))
    return train, test, note, tmp


def _wb_forecasters(monthly, quick, seed, device, progress):
    """The forecasters of ``era5-forecast`` / ``era5-monthly``, by the method names of their
    summary rows (and of the anchors in ``anchors.csv``)."""
    common = dict(random_state=seed, device=device, progress=progress)
    return {
        "Persistence": Persistence(),
        "Climatology": Climatology(groupby="month" if monthly else "dayofyear+hour"),
        "ClimODE": ClimODE(hidden=16, n_steps=2, max_epochs=3 if quick else 20, batch_size=8,
                           step_size=1.0, **common),
        "VGBDM": TransportVGBDM(hidden=32, z_dim=4, len_episode=4,
                                max_epochs=60 if quick else 200, batch_size=16,
                                early_stopping=True, **common)}


def weatherbench_experiment(monthly=False, quick=False, seed=0, device="cpu", progress=True,
                            variables=("z500", "t850", "t2m", "u10", "v10"), root=None,
                            forecasters=None, leads=None, test_set_days=None):
    """Run ``era5-forecast`` (``monthly=False``) or ``era5-monthly`` (see the module docstring).

    Parameters
    ----------
    monthly : bool, default=False
        Forecast monthly means (on a 360-day calendar, leads in months of 30 days,
        against the monthly climatology) instead of 6-hourly samples.
    quick : bool, default=False
        Fewer data (real WeatherBench: train on 2015, test on 2017; xdyn's 6-hourly
        test set: 12 test days instead of 24) and fewer training epochs.
    seed, device, progress
        As in :func:`uk_t2m_experiment`.
    variables : sequence of str, default=("z500", "t850", "t2m", "u10", "v10")
        WeatherBench variables to forecast and score (the first two get score-curve
        figures, the first an error map).
    root : str or Path, optional
        Folder of the WeatherBench files (see :func:`xdyn.datasets.load_weatherbench`;
        default ``$XDYN_DATA_DIR/weatherbench``). Only where ``root`` is None and
        the default folder holds none of ``variables`` at all is xdyn's
        WeatherBench-format test set written to a temporary folder and used,
        with a warning; a missing folder or year otherwise raises.
    forecasters : dict, optional
        Name -> unfitted forecaster, replacing the default persistence, climatology,
        ClimODE and VGB-DM; the one named ``"Climatology"``, if any, is the ACC's
        reference.
    leads : sequence of int, optional
        Forecast leads, in hours (default 6, 12, ..., 144) or, with ``monthly``, in
        months of 30 days (default 1-5).
    test_set_days : int, optional
        Only for xdyn's test set: days of its test year 2017 (the training year 2016
        gets three times as many; default 12 quick, 24 in full). Not with
        ``monthly``, whose test set is the whole years 2015-2017 (fewer days
        would leave partial or missing months).

    Returns
    -------
    ExperimentResult
        Scores per method, variable and lead; ``results.attrs["data"]`` says which
        data were used.

    Raises
    ------
    FileNotFoundError
        ``root`` was given, or the default folder holds some of the WeatherBench
        data, and a folder or year is missing (the message names it).
    ValueError
        ``test_set_days`` with ``monthly``, or monthly data with a partial month.

    Warns
    -----
    UserWarning
        When it runs on xdyn's test set, not on ERA5.

    Examples
    --------
    Without WeatherBench files (none in ``$XDYN_DATA_DIR/weatherbench``, no
    ``root``) it runs on xdyn's test set, warns and says so:

    >>> from xdyn.forecast import Persistence, Climatology
    >>> res = weatherbench_experiment(variables=("z500",), leads=[6], test_set_days=2,
    ...     forecasters={"Persistence": Persistence(), "Climatology": Climatology()},
    ...     progress=False)  # doctest: +SKIP
    >>> "NOT ERA5" in res.results.attrs["data"]  # doctest: +SKIP
    True
    """
    t_start = time.perf_counter()
    train, test, note, tmp = _open_weatherbench(variables, monthly, quick, root, test_set_days)
    try:
        if leads is None:
            leads = range(1, 6) if monthly else range(6, 145, 6)
        unit = "month" if monthly else "h"
        lead_times = [np.timedelta64(30 * int(k), "D") if monthly else np.timedelta64(int(k), "h")
                      for k in leads]
        if forecasters is None:
            forecasters = _wb_forecasters(monthly, quick, seed, device, progress)
        scores, forecasts, timing = compare_forecasters(forecasters, train, test, lead_times,
                                                        n_history=WB_HISTORY, progress=progress,
                                                        chunk=WB_CHUNK)
    finally:
        if tmp is not None:
            tmp.cleanup()
    scale = np.timedelta64(30, "D") if monthly else np.timedelta64(1, "h")
    scores = scores.assign_coords(lead_time=("lead_time", scores.lead_time.values / scale,
                                             {"long_name": "forecast lead time",
                                              "units": "30 days" if monthly else "h"}))
    scores = scores.assign(fit_seconds=("method", [timing[m][0] for m in scores.method.values],
                                        {"long_name": "fit wall time", "units": "s"}))
    scores.attrs.update(data=note, config_json=json.dumps(
        {"quick": quick, "seed": seed, "monthly": monthly, "variables": list(variables),
         "n_train": int(train.sizes["time"]),
         "n_test_inits": int(test.sizes["time"] - WB_HISTORY),
         "leads": [int(k) for k in leads], "lead_unit": unit}),
        wall_seconds=time.perf_counter() - t_start)
    shown = [k for k in ((1, 3, 5) if monthly else (6, 24, 72, 144)) if k in list(leads)]
    table = "\n\n".join([f"data: {note}"] + [_table(scores, v, shown, unit) for v in variables])
    figures = {f"{v}_scores": score_curves(scores, v, unit=unit) for v in variables[:2]}
    figures["maps"] = error_maps(forecasts, test, variables[0], lead=lead_times[-1],
                                 unit="months" if monthly else "h", scale=scale)
    return ExperimentResult(scores, figures, table, _summary(scores, data=note))


@register("era5-forecast",
          "VGB-DM (transport physics, flow matching) and the ClimODE-style forecaster against "
          "persistence and climatology on WeatherBench 5.625 deg (z500, t850, t2m, u10, v10), "
          "6-hourly leads 6-144 h; on xdyn's test set when no WeatherBench files are found",
          "Rasp et al. (2020) WeatherBench; Verma et al. (ICLR 2024) ClimODE; Singh et al. "
          "(AISTATS 2026) VGB-DM",
          quick_wall_s=368)
def era5_forecast(quick=False, seed=0, device="cpu", progress=True):
    return weatherbench_experiment(False, quick=quick, seed=seed, device=device,
                                   progress=progress)


@register("era5-monthly",
          "Monthly-mean forecasts (leads 1-5 months) on WeatherBench 5.625 deg: VGB-DM and "
          "ClimODE-style against persistence and the monthly climatology",
          "Verma et al. (ICLR 2024) ClimODE, monthly setup; Singh et al. (AISTATS 2026) VGB-DM")
def era5_monthly(quick=False, seed=0, device="cpu", progress=True):
    return weatherbench_experiment(True, quick=quick, seed=seed, device=device,
                                   progress=progress, variables=("z500", "t850"))
