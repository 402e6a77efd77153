"""The forecast part of ``kolmogorov-closure``: resolved models against persistence, closed ensembles.

Forecasts of the resolved scales from starts of the held-out trajectory by
:class:`xdyn.rom.PODLinearDynamics` and the beta-VAE + transformer
:class:`xdyn.rom.LatentTransformerROM` (its spread calibrated on the
validation trajectory), scored against persistence over the first leads and,
in Lyapunov times of the data's flow, out to a horizon; closed ensembles
(resolved model + each closure) scored against the full field. Split from
:mod:`xdyn.experiments.kolmogorov_closure`, which runs it.
"""

from __future__ import annotations

import time

import numpy as np
import xarray as xr
from scipy.stats import t as student_t

from xdyn.experiments._kolmogorov_symmetry import _symmetry_copies
from xdyn.metrics import (crps_ensemble, interval_coverage, picp, relative_l1, relative_l2,
                          spread_skill_ratio)

VARS = ["u", "v"]
LATENT_MEAN = "LatentTransformerROM (resolved)"
LATENT_ENSEMBLE = "LatentTransformerROM ensemble mean (resolved)"


def _full_field(ds):
    """The velocity components of ``ds`` as one DataArray with a ``variable`` dim."""
    return ds[VARS].to_dataarray("variable")


def _make_latent_rom(setup, seed, device):
    """The original's resolved model (2 attention blocks of 8 heads) behind a POD front end."""
    from xdyn.rom import POD, LatentTransformerROM

    reducer = POD(setup.latent_reducer_modes) if setup.latent_reducer_modes else None
    return LatentTransformerROM(
        setup.latent_n_latent, seq_len=setup.latent_seq_len,
        pred_horizon=setup.latent_pred_horizon, beta=setup.latent_beta,
        hidden=setup.latent_hidden, architecture=setup.latent_architecture,
        d_model=setup.latent_d_model, n_heads=8, n_layers=2,
        window_stride=setup.latent_window_stride,
        shift_augmentation=setup.latent_shift_augmentation, reducer=reducer,
        anchored=setup.latent_anchored, recentred=setup.latent_recentred,
        max_epochs=setup.latent_epochs, lr=setup.latent_lr,
        batch_size=setup.latent_batch_size, device=device, random_state=seed)


def _closure_spread_scale(closure, resolved, unresolved):
    """``spread_scale`` that makes ``closure``'s +-1 std interval cover 68.3% of ``unresolved``.

    The 68.3% quantile of ``|truth - mean| / std`` over every point of a
    calibration trajectory (never the test one): a split-conformal scale.
    """
    mean, std = closure.predict(resolved, return_std=True)
    return _coverage_scale(_full_field(unresolved), _full_field(mean), _full_field(std),
                           closure.spread_scale)


def _fit_part(estimator, X, Y=None, calibration=None, n_images=1, Y_mean=None):
    """Fit one independent part (a closure, or the latent ROM when ``Y`` is None): a job.

    A closure with ``calibration`` (resolved, unresolved validation fields) gets
    the ``spread_scale`` that calibrates it there. ``n_images`` > 1: the fit is
    on ``X``'s images under the shift-reflect symmetry, made here, in the job
    (for the original's data they are 2.5 GB the parent need not hold). Returns
    the fitted estimator and its wall time. ``Y_mean``: a closure's prefit mean
    model's prediction at ``X``, when known.
    """
    t0 = time.perf_counter()
    if n_images > 1:
        X = _symmetry_copies(X, n_images, _n_forcing(X))
    if Y is None:
        estimator.fit(X)
    elif Y_mean is None:
        estimator.fit(X, Y)
    else:
        estimator.fit(X, Y, Y_mean=Y_mean)
    if calibration is not None:
        estimator.set_params(spread_scale=_closure_spread_scale(estimator, *calibration))
    return estimator, time.perf_counter() - t0


def _latent_rom_job(setup, seed, device, res_tr):
    """The latent ROM's job, the arguments of :func:`_fit_part`: the ROM
    unfitted, ``res_tr``, and the number of its symmetry images to train on."""
    return (_make_latent_rom(setup, seed, device), res_tr, None, None,
            setup.latent_symmetry_copies)


def _n_forcing(ds):
    """The forcing wavenumber recorded in the data's attrs (4 without them)."""
    import json

    return int(json.loads(ds.attrs.get("system_params", "{}")).get("n_forcing", 4))


def _score_ensemble(ens, truth, dims):
    """CRPS, spread-skill, +-1 std and 90% coverage of an ensemble DataArray.

    The 90% interval is the members' own (:func:`xdyn.metrics.interval_coverage`) when
    there are enough of them (19 or more); with fewer no interval between members reaches
    90% (10 members' range covers 82% when calibrated), and it is the Gaussian prediction
    interval of their mean and spread for one more draw (the truth), ``mean +- t_{m-1}(0.95)
    std sqrt(1 + 1/m)``: Student's t, as the spread is estimated from the same members
    (1.92 std with 10 members).
    """
    # skipna=False: a failed (NaN) member makes the scores NaN, not those of the others
    mean = ens.mean("member", skipna=False)
    std = ens.std("member", ddof=1, skipna=False)
    m = ens.sizes["member"]
    if m >= 19:
        coverage = interval_coverage(ens, truth, level=0.9, dim=dims)
    else:
        k = float(student_t.ppf(0.95, m - 1)) * np.sqrt(1 + 1 / m)
        coverage = picp(mean, std, truth, k=k, dim=dims)
    return {
        "CRPS": crps_ensemble(ens, truth, dim=dims),
        "spread-skill": spread_skill_ratio(ens, truth, dim=dims),
        "PICP(1 std)": picp(mean, std, truth, k=1.0, dim=dims),
        "90% coverage": coverage,
        "rel-L2": relative_l2(mean, truth, dim=dims),
    }


def _windows(ds, starts, n_ctx):
    """Context windows ending at each start, as trajectories with a common time axis."""
    dt = float(ds.time[1] - ds.time[0])
    parts = [ds.isel(time=slice(s - n_ctx + 1, s + 1)).assign_coords(
        time=dt * np.arange(n_ctx)) for s in starts]
    return xr.concat(parts, dim="trajectory").assign_coords(trajectory=np.arange(len(starts)))


def _targets(ds, starts, n_leads):
    dt = float(ds.time[1] - ds.time[0])
    parts = [ds.isel(time=slice(s + 1, s + 1 + n_leads)).assign_coords(
        time=dt * np.arange(1, n_leads + 1)) for s in starts]
    return xr.concat(parts, dim="trajectory").assign_coords(trajectory=np.arange(len(starts)))


def _starts(setup, n_time, n_leads):
    """``n_starts`` forecast starts on a trajectory of ``n_time`` snapshots.

    The latent ROM reads ``seq_len`` snapshots: every model starts where it can.
    """
    return np.linspace(_first_start(setup), n_time - n_leads - 1, setup.n_starts).astype(int)


def _first_start(setup):
    """The first start every model can forecast from (the latent ROM's context, the lags)."""
    return max(2, setup.latent_seq_len - 1, max(setup.closure_lags, default=0) - 1)


def _coverage_scale(truth, mean, std, current):
    """``current`` times the factor that makes ``mean +- std`` cover 68.27% of ``truth``.

    The 68.27% quantile of ``|truth - mean| / std`` over every point: a
    split-conformal scale when ``truth`` is a calibration set (never the test
    one). ``current`` comes back unchanged when the quantile is not finite
    and positive.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> truth = 3.0 * rng.standard_normal(100_000)
    >>> round(_coverage_scale(truth, 0.0, 1.0, 1.0), 1)
    3.0
    """
    z = abs(truth - mean) / std  # xarray inputs align by dimension name
    scale = float(np.nanquantile(np.asarray(z), 0.6827))
    return current * scale if np.isfinite(scale) and scale > 0 else current


def _calibrate_spread(rom, res_val, setup, n_leads):
    """``spread_inflation`` that makes the ROM's +-1 std interval cover 68.3% on ``res_val``.

    The 68.3% quantile of ``|truth - mean| / std`` over the points of
    ``n_members`` rollouts from ``n_starts`` starts of the validation
    trajectory, never of the test one (a split-conformal scale). Matching the
    spread to the RMSE instead (spread-skill 1) over-covers: the errors are
    heavier-tailed than a Gaussian (measured on the quick data: spread-skill
    0.98 gave a coverage of 0.737).

    Members as drawn (``rom.recentred`` False): one factor over every lead and
    start, in one step. One factor per lead does not work there: ``m``
    members' +-1 sample-std interval covers at most ``P(|t_{m-1}| < (1 +
    1/m)^-1/2)`` of a truth drawn as they are (63.5% for 10 members, 62% for
    8), so at a lead whose error is the members' own spread the factor grows
    without reaching 68.3% (a toy ROM with 8 members: lead 4's factor 2.2 /
    3.1 / 4.1 after one to three steps, its coverage 0.39 / 0.45 / 0.57). The
    pooled factor leaves the first leads over-dispersed (quick validation
    trajectory: coverage 0.98 at lead 1, 0.39 at lead 20).

    Members centred on the mean path (``rom.recentred``): the centre does not
    move with the factor, so one factor per lead reaches 68.3%; two steps,
    since a lead's spread also grows from the noise of the leads before it
    (quick validation trajectory, calibrated on half of the starts and scored
    on the other: coverage 0.68 at leads 1-10, 0.69-0.76 at 11-20; CRPS over
    20 leads 0.0244 against 0.0272 for the pooled factor on the members as
    drawn).
    """
    starts = _starts(setup, res_val.sizes["time"], n_leads)
    truth = _full_field(_targets(res_val, starts, n_leads))
    context = _windows(res_val, starts, setup.latent_seq_len)
    factor = rom.spread_inflation
    for _ in range(2 if rom.recentred else 1):
        ens = _full_field(rom.set_params(spread_inflation=factor).predict(
            context, n_steps=n_leads, n_samples=setup.n_members).assign_coords(time=truth.time))
        mean, std = ens.mean("member", skipna=False), ens.std("member", ddof=1, skipna=False)
        if not rom.recentred:
            return _coverage_scale(truth, mean, std, factor)
        f = np.atleast_1d(np.asarray(factor, dtype=float))
        factor = np.array([_coverage_scale(truth.isel(time=k), mean.isel(time=k),
                                           std.isel(time=k), f[min(k, f.size - 1)])
                           for k in range(n_leads)])
    return factor


def _horizon_leads(setup, n_time, dt, n_leads, lyapunov_time):
    """Leads (``dt`` apart) out to ``setup.lyapunov_horizon`` Lyapunov times, at least ``n_leads``.

    Capped where ``setup.n_starts`` distinct starts still fit on a trajectory
    of ``n_time`` snapshots.

    Examples
    --------
    >>> from xdyn.experiments.kolmogorov_closure import ClosureSetup
    >>> setup = ClosureSetup()  # 1.25 Lyapunov times, 12 starts, the first at 19
    >>> _horizon_leads(setup, 400, 0.1, 20, 12.0), _horizon_leads(setup, 400, 0.1, 20, None)
    (150, 20)
    >>> _horizon_leads(setup, 100, 0.1, 20, 12.0)  # room for 12 starts: 100 - 19 - 12
    69
    """
    if lyapunov_time is None or not np.isfinite(lyapunov_time):
        return n_leads
    wanted = int(np.ceil(setup.lyapunov_horizon * lyapunov_time / dt - 1e-9))
    room = n_time - _first_start(setup) - setup.n_starts
    return max(n_leads, min(wanted, room))


def _lead_ahead(error, reference, leads):
    """The largest lead ``L`` with ``error < reference`` at every lead up to ``L`` (0: none).

    Examples
    --------
    >>> _lead_ahead([0.1, 0.2, 0.5, 0.2], [0.2, 0.3, 0.4, 0.5], [1, 2, 3, 4])
    2.0
    >>> _lead_ahead([0.3, 0.2], [0.2, 0.3], [1, 2]), _lead_ahead([0.1, 0.2], [0.2, 0.3], [1, 2])
    (0.0, 2.0)
    """
    behind = np.flatnonzero(~(np.asarray(error) < np.asarray(reference)))
    n = int(behind[0]) if len(behind) else len(leads)
    return float(leads[n - 1]) if n else 0.0


def _forecast_section(setup, seed, device, fitted, res_tr, res_te, full_te, res_val=None,
                      lyapunov_time=None, latent_fit=None):
    """Resolved forecasts (persistence, POD+linear, LatentTransformerROM) and closed ensembles.

    ``fitted`` maps closure names to fitted closures; ``res_tr`` is the
    resolved training set, ``res_te`` / ``full_te`` one resolved / full test
    trajectory; with ``res_val`` (a resolved validation trajectory) the latent
    ROM's ensemble spread is calibrated on it (:func:`_calibrate_spread`).
    Scores run over the first ``n_leads`` leads; with ``lyapunov_time`` (of
    the data's flow) the mean forecasts and persistence are also scored out
    to ``setup.lyapunov_horizon`` Lyapunov times, from starts that leave room
    for it (``horizon_error``), every lead gets its value in Lyapunov times
    (coordinates ``lead_lyapunov``, ``horizon_lead_lyapunov``), and
    ``latent_ahead_lead`` is the largest lead up to which the latent ROM's
    mean forecast beats persistence at every lead (:func:`_lead_ahead`).
    Returns a dict of the forecasts, their verifying fields and their scores
    (see :func:`kolmogorov_closure_experiment`). ``latent_fit``: the latent ROM
    already fitted (on the symmetry images of ``res_tr``) and its fit's wall
    time; None fits it here.
    """
    from xdyn.closure import ClosedModel
    from xdyn.rom import PODLinearDynamics

    n_test = full_te.sizes["time"]
    # the baseline learns from the same symmetry images as the latent ROM: on the raw
    # training trajectories alone its lead-1 error was 4.4x persistence's (0.045 vs 0.010)
    rom, _ = _fit_part(PODLinearDynamics(setup.n_rom_modes), res_tr,
                       n_images=setup.latent_symmetry_copies)
    if latent_fit is None:
        latent_fit = _fit_part(*_latent_rom_job(setup, seed, device, res_tr))
    latent_rom, latent_fit_time = latent_fit
    n_leads = min(setup.n_leads, n_test // 4)
    if res_val is not None and setup.latent_calibrate_spread:
        latent_rom.set_params(spread_inflation=_calibrate_spread(latent_rom, res_val, setup,
                                                                 n_leads))
    starts = _starts(setup, n_test, n_leads)
    ctx = _windows(res_te, starts, 2)
    latent_ctx = _windows(res_te, starts, setup.latent_seq_len)
    # a closure that reads the past gets it from the context before the first lead
    closed_ctx = _windows(res_te, starts, max(2, setup.latent_seq_len,
                                              max(setup.closure_lags, default=0)))
    truth_res = _targets(res_te, starts, n_leads)
    truth_f = _targets(full_te, starts, n_leads)
    rom_fc = rom.predict(ctx, n_steps=n_leads).assign_coords(time=truth_res.time)
    latent_fc = latent_rom.predict(latent_ctx, n_steps=n_leads).assign_coords(
        time=truth_res.time)
    latent_ens = latent_rom.predict(latent_ctx, n_steps=n_leads, n_samples=setup.n_members
                                    ).assign_coords(time=truth_res.time)
    persist = ctx.isel(time=[-1] * n_leads).assign_coords(time=truth_res.time)
    lead_dims = ("variable", "trajectory", "y", "x")
    resolved_truth = _full_field(truth_res)

    def error(fc):
        return relative_l2(_full_field(fc), resolved_truth, dim=lead_dims).values

    persist_full = relative_l2(_full_field(_windows(full_te, starts, 1).isel(
        time=[0] * n_leads).assign_coords(time=truth_f.time)), _full_field(truth_f),
        dim=lead_dims)
    # the latent ROM's own ensemble against the resolved truth: the ROM targets
    latent_scores = _score_ensemble(_full_field(latent_ens), resolved_truth,
                                    ("time", *lead_dims))
    latent_scores["rel-L1"] = relative_l1(_full_field(latent_ens.mean("member", skipna=False)),
                                          resolved_truth, dim=("time", *lead_dims))
    latent_rom_scores = xr.DataArray(
        [float(v) for v in latent_scores.values()], dims="metric_rom",
        coords={"metric_rom": list(latent_scores)},
        attrs={"long_name": f"LatentTransformerROM {setup.n_members}-member ensemble scores "
                            "against the resolved truth, all leads", "units": "1"})
    fc_scores, latent_fc_scores, forecasts = {}, {}, {}
    for name in fitted:
        for resolved_model, scores in ((rom, fc_scores), (latent_rom, latent_fc_scores)):
            model = ClosedModel(rom=resolved_model, closure=fitted[name], prefit=True,
                                n_members=setup.n_members, random_state=seed + 2,
                                lags=tuple(setup.closure_lags)).fit(res_tr)
            fc = model.predict(closed_ctx, n_steps=n_leads).assign_coords(time=truth_res.time)
            scores[name] = _score_ensemble(_full_field(fc), _full_field(truth_f), lead_dims)
            if resolved_model is latent_rom:
                forecasts[name] = fc
    fc_metrics = list(next(iter(fc_scores.values())))
    lead = xr.DataArray(truth_res.time.values, dims="lead",
                        attrs={"long_name": "lead time", "units": "1"})
    lyapunov_coords = {}
    if lyapunov_time is not None:
        lyapunov_coords["lead_lyapunov"] = ("lead", lead.values / lyapunov_time, {
            "long_name": "lead time in Lyapunov times of the data's flow", "units": "1"})

    def closed_scores(scores, resolved_name):
        return xr.DataArray(
            np.array([[scores[c][m].values for m in fc_metrics] for c in fitted]),
            dims=("closure", "metric_fc", "lead"),
            coords={"closure": list(fitted), "metric_fc": fc_metrics, "lead": lead,
                    **lyapunov_coords},
            attrs={"long_name": f"closed-model ({resolved_name} + closure) ensemble scores "
                                "against the full field", "units": "1"})

    forecast_scores = closed_scores(fc_scores, "POD+linear")
    latent_forecast_scores = closed_scores(latent_fc_scores, "LatentTransformerROM")
    lead_err = xr.DataArray(
        np.stack([error(rom_fc), error(persist), persist_full.values, error(latent_fc),
                  error(latent_ens.mean("member", skipna=False))]),
        dims=("model", "lead"),
        coords={"model": ["POD+linear ROM (resolved)", "persistence (resolved)",
                          "persistence (full)", LATENT_MEAN, LATENT_ENSEMBLE], "lead": lead,
                **lyapunov_coords},
        attrs={"long_name": "rel-L2 forecast error", "units": "1"})

    # the mean forecasts out to the horizon, from starts that leave room for it (the
    # scores keep theirs, spread over the whole trajectory)
    n_horizon = _horizon_leads(setup, n_test, float(res_te.time[1] - res_te.time[0]), n_leads,
                               lyapunov_time)
    long_starts = _starts(setup, n_test, n_horizon)
    long_ctx = _windows(res_te, long_starts, setup.latent_seq_len)
    truth_long = _targets(res_te, long_starts, n_horizon)

    def long_error(fc):
        fc = fc.assign_coords(time=truth_long.time)
        return relative_l2(_full_field(fc), _full_field(truth_long), dim=lead_dims).values

    rom_long = rom.predict(long_ctx.isel(time=slice(-2, None)), n_steps=n_horizon)
    latent_long = latent_rom.predict(long_ctx, n_steps=n_horizon)
    persist_long = long_ctx.isel(time=[-1] * n_horizon)
    horizon_lead = truth_long.time.values
    horizon_coords = {"horizon_lead": ("horizon_lead", horizon_lead, {
        "long_name": "lead time", "units": "1"})}
    if lyapunov_time is not None:
        horizon_coords["horizon_lead_lyapunov"] = ("horizon_lead", horizon_lead / lyapunov_time, {
            "long_name": "lead time in Lyapunov times of the data's flow", "units": "1"})
    horizon_err = xr.DataArray(
        np.stack([long_error(rom_long), long_error(persist_long), long_error(latent_long)]),
        dims=("horizon_model", "horizon_lead"),
        coords={"horizon_model": ["POD+linear ROM (resolved)", "persistence (resolved)",
                                  LATENT_MEAN], **horizon_coords},
        attrs={"long_name": "rel-L2 error of the mean forecasts out to the horizon",
               "units": "1"})
    latent_ahead = _lead_ahead(horizon_err.sel(horizon_model=LATENT_MEAN),
                               horizon_err.sel(horizon_model="persistence (resolved)"),
                               horizon_lead)

    return {"rom_fc": rom_fc, "latent_fc": latent_fc, "latent_rom": latent_rom,
            "latent_fit_time": latent_fit_time, "forecasts": forecasts, "truth_f": truth_f,
            "truth_res": truth_res, "lead_error": lead_err, "forecast_scores": forecast_scores,
            "latent_forecast_scores": latent_forecast_scores,
            "latent_rom_scores": latent_rom_scores, "horizon_error": horizon_err,
            "latent_ahead_lead": latent_ahead, "lyapunov_time": lyapunov_time}
