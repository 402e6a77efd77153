"""Twin experiments: a perfect-model truth, synthetic observations, and every
classical assimilator compared on the same data.

Setups follow DAPPER's named configurations of the literature, declared once in
:mod:`xdyn.experiments.setups` (model, observations, start, tuned methods and
their reference RMSEs):

* ``lorenz63-twin`` — Sakov, Oliver & Bertino (2012): dt 0.01, all three
  variables observed every 25 steps with noise variance 2.
* ``lorenz96-twin`` — Sakov & Oke (2008): 40 sites, F=8, dt 0.05, every site
  observed every step with unit noise variance (the default of ``xdyn run``).
* ``lorenz96-twin-partial`` — the same, observing every 4th site.
"""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from xdyn.exceptions import DivergenceError
from xdyn.experiments.catalogue import ExperimentResult, config_json, register
from xdyn.experiments.setups import (SAKOV2008, SAKOV2008_EVERY4, SAKOV2012, MethodConfig,
                                    twin_data)
from xdyn.metrics import state_rmse
from xdyn.observe import make_operator
from xdyn.utils._validation import is_integer

__all__ = ["MethodConfig", "twin_experiment", "format_table", "summary"]


def twin_experiment(system, operator, noise_std, obs_every, n_cycles, methods, seed=0,
                    burn_in_cycles=0, spin_up=10.0, initial_spread=1.0, progress=True, dt=None):
    """Run every method on one truth and one set of observations.

    Returns the results Dataset (dims ``assimilator``, ``time``; not ``method``,
    which would clash with the ``method=`` argument of ``Dataset.sel``), a dict
    of the analyses by label (methods that ran to the end), the truth and the
    observations. A method that diverges keeps its RMSE series up to
    ``divergence_time`` (NaN after, no time average) and its full ``status``.
    The truth and observations come from
    :func:`xdyn.experiments.setups.twin_data` (``seed`` and ``seed + 1``); a
    published setup's are ``setup.make_twin(n_cycles, seed)``.

    Parameters
    ----------
    system : DynamicalSystem
        The model of the truth and of every method (perfect model).
    operator : ObservationOperator or spec
        Anything :func:`xdyn.observe.make_operator` takes (``"identity"`` ...).
    noise_std : float
        Observation error standard deviation.
    obs_every : int
        Model steps between observations.
    n_cycles : int
        Observation times after the first.
    methods : sequence of MethodConfig
        The configurations to run (label, assimilator name, parameters). Every
        name must be one :func:`xdyn.assimilation.registered_assimilators` knows.
    seed : int, default=0
        Seed of the truth (``seed``), the observations (``seed + 1``), the
        methods' common perturbed start (``seed + 2``) and their ``random_state``
        (``seed + 3``); from 0 to ``2**32 - 4``.
    burn_in_cycles : int, default=0
        Observation times at the start that the time averages leave out, from 0
        to ``n_cycles``.
    spin_up : float, default=10.0
        Model time run and discarded before the truth starts.
    initial_spread : float, default=1.0
        Std of the perturbation of the true start that gives the methods'
        initial state, and their initial ensemble spread.
    progress : bool, default=True
        Show a progress bar over the methods (and the methods' own bars).
    dt : float or None, default=None
        Model step; the system's ``default_dt`` if None.

    Returns
    -------
    res : xarray.Dataset
        RMSE and spread per assimilator and time, their time means after the
        burn-in, wall time, divergence time, status, parameters, and
        ``spread_kind``: what the spread is the std of (``"ensemble"``,
        ``"filter covariance"``, or ``"static background covariance"`` for OI
        and 3D-Var, whose spread is the constant analysis std their fixed ``B``
        implies, as DAPPER reports it, not a measured spread). The attrs'
        ``config_json`` records the run's settings and the system (class,
        parameters, integrator).
    analyses : dict
        Label -> analysis Dataset of each method that ran to the end.
    truth, obs : xarray.Dataset

    Raises
    ------
    ValueError
        A method name that no assimilator is registered under (checked, with
        ``seed``, ``n_cycles`` and ``burn_in_cycles``, before the truth is simulated).

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> res, analyses, truth, obs = twin_experiment(
    ...     Lorenz96(n=10), "identity", 1.0, 1, 20,
    ...     [MethodConfig("EnKF N=10", "enkf", {"n_members": 10, "inflation": 1.05})],
    ...     progress=False)
    >>> res.rmse.dims, str(res.status.values[0])
    (('assimilator', 'time'), 'ok')
    """
    from xdyn.assimilation import make_assimilator

    _check_run(methods, seed, n_cycles, burn_in_cycles)
    dt = system.default_dt if dt is None else dt
    op = make_operator(operator)
    truth, obs = twin_data(system, op, noise_std, obs_every, n_cycles, dt=dt, seed=seed,
                           spin_up=spin_up)
    rng = np.random.RandomState(seed + 2)
    x0_truth = system.to_state(truth.isel(time=0)).cpu().numpy()
    initial_state = x0_truth + initial_spread * rng.standard_normal(x0_truth.shape)
    t_burn = float(obs["time"][burn_in_cycles] - obs["time"][0])
    rows, analyses = [], {}
    iterator = tqdm(methods, desc="methods", disable=not progress)
    for cfg in iterator:
        iterator.set_postfix_str(cfg.label)
        params = dict(system=system, operator=op, initial_state=initial_state,
                      initial_spread=initial_spread, random_state=seed + 3, burn_in=t_burn)
        params.update(cfg.params)
        est = make_assimilator(cfg.method, **params)
        settable = est.get_params()
        if "return_ensemble" in settable:
            est.set_params(return_ensemble=False)
        if "progress" in settable:  # a bar per method: the LETKF row alone runs for seconds
            est.set_params(progress=progress)
        start = time.perf_counter()
        t_div = np.nan
        try:
            # fit(obs, truth): OI and 3D-Var take their background mean and B from the scored
            # truth, as DAPPER's baselines do (its reference values come from that). Measured
            # on lorenz63-twin (seed 0, 2026-12-07) against B from an independent truth: OI
            # 1.2494 / 1.2492, 3D-Var 1.2112 / 1.2083, B x 0.1 1.0496 / 1.0502
            an = est.fit(obs, truth).predict(obs)
            status = "ok"
            wall = time.perf_counter() - start
        except DivergenceError as err:
            # the time to divergence: the rerun that keeps the series is not the method's cost
            wall = time.perf_counter() - start
            status = f"diverged: {err}"
            t_div = np.nan if err.time is None else float(err.time)
            an = _until_divergence(est, obs, truth, t_div, settable)
        rows.append((cfg, an, wall, status, t_div, _spread_kind(est, an)))
        if an is not None and status == "ok":
            analyses[cfg.label] = an
    times = obs["time"]
    time_units = times.attrs.get("units", "1")
    labels = [r[0].label for r in rows]
    err = np.full((len(rows), times.size), np.nan)
    spread = np.full_like(err, np.nan)
    for i, (cfg, an, wall, status, t_div, _) in enumerate(rows):
        if an is not None:
            err[i] = state_rmse(an, truth).values
            if "spread" in an:
                spread[i] = an["spread"].values
            if np.isfinite(t_div):  # the series up to the divergence, NaN from there on
                err[i, times.values >= t_div] = np.nan
                spread[i, times.values >= t_div] = np.nan
    keep = (times.values - times.values[0]) >= t_burn
    ok = np.array([r[3] == "ok" for r in rows])[:, None]
    units = next(iter(truth.data_vars.values())).attrs.get("units", "1")
    res = xr.Dataset(
        {
            "rmse": (("assimilator", "time"), err,
                     {"long_name": "analysis RMSE of the ensemble mean (NaN after a divergence)",
                      "units": units}),
            "spread": (("assimilator", "time"), spread,
                       {"long_name": "analysis spread: rms over the state of the analysis std "
                                     "(see spread_kind)", "units": units}),
            # a diverged method has no time average: its partial record is not comparable
            "rmse_mean": ("assimilator", _nanmean_rows(np.where(keep & ok, err, np.nan)),
                          {"long_name": "time-averaged analysis RMSE after burn-in",
                           "units": units}),
            "spread_mean": ("assimilator", _nanmean_rows(np.where(keep & ok, spread, np.nan)),
                            {"long_name": "time-averaged spread after burn-in", "units": units}),
            "spread_kind": ("assimilator", np.array([r[5] for r in rows], dtype=str),
                            {"long_name": "what the spread is the std of: ensemble, filter "
                                          "covariance, or static background covariance (OI, "
                                          "3D-Var: the analysis std their fixed B implies, "
                                          "constant in time, not a measured spread)"}),
            "wall_time": ("assimilator", np.array([r[2] for r in rows], float),
                          {"long_name": "wall-clock time of fit and predict", "units": "s"}),
            "divergence_time": ("assimilator", np.array([r[4] for r in rows], float),
                                {"long_name": "model time at which the method diverged "
                                              "(NaN: it did not)", "units": time_units}),
            "status": ("assimilator", np.array([r[3] for r in rows], dtype=str),
                       {"long_name": "outcome: ok or diverged: <why>"}),
            "params": ("assimilator", np.array([json.dumps({"method": r[0].method, **r[0].params},
                                                           default=str) for r in rows], dtype=str),
                       {"long_name": "method name and parameters (JSON)"}),
        },
        coords={"assimilator": ("assimilator", labels,
                                {"long_name": "assimilation method configuration"}),
                "time": times},
    )
    # the system's class, parameters and integrator: its repr hides the defaults (n, F)
    described = system.describe()
    res.attrs["config_json"] = config_json(
        system=described["system"], system_params=json.loads(described["system_params"]),
        integrator=described["integrator"], operator=op.spec(), noise_std=noise_std,
        obs_every=obs_every, n_cycles=n_cycles, burn_in_cycles=burn_in_cycles, t_burn=t_burn,
        dt=dt, seed=seed, initial_spread=initial_spread, spin_up=spin_up)
    return res, analyses, truth, obs


def _check_run(methods, seed, n_cycles, burn_in_cycles):
    """Refuse bad settings before the truth is simulated.

    An unknown method name raises (it became a NaN row with status
    "unavailable" before, and the run went on): every assimilator is part of
    the package, so no name is legitimately missing from a build.
    """
    from xdyn.assimilation.base import ASSIMILATORS

    for cfg in methods:
        try:
            ASSIMILATORS.get(cfg.method)
        except ValueError as err:  # its message lists the known names
            raise ValueError(f"method {cfg.label!r}: {err}") from None
    if not is_integer(seed) or not 0 <= seed <= 2**32 - 4:
        raise ValueError(f"seed must be an integer in [0, 2**32 - 4] (the parts use seed .. "
                         f"seed + 3), got {seed!r}")
    if not is_integer(n_cycles) or n_cycles < 1:
        raise ValueError(f"n_cycles must be a positive integer, got {n_cycles!r}")
    # a negative count indexed from the end and one past the record was clamped: the "time
    # mean" was then the last time's RMSE alone; True passed as 1
    if not is_integer(burn_in_cycles) or not 0 <= burn_in_cycles <= n_cycles:
        raise ValueError(f"burn_in_cycles must be an integer in [0, {n_cycles}] (the "
                         f"observation times after the first), got {burn_in_cycles!r}")


def _spread_kind(est, an):
    """What the analysis spread of ``est`` is the std of ('' when it gives none)."""
    return "" if an is None or "spread" not in an else est._spread_source


def _until_divergence(est, obs, truth, t_div, settable):
    """The diverged run again, told to continue, to keep its record up to ``t_div``.

    Same seeds, so the same trajectory up to the divergence; None when the
    method cannot continue (or ``t_div`` is unknown).
    """
    if not np.isfinite(t_div) or "raise_on_divergence" not in settable:
        return None
    est.set_params(raise_on_divergence=False)
    if "progress" in settable:
        est.set_params(progress=False)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its divergence is already the status
            return est.fit(obs, truth).predict(obs)
    except Exception:  # noqa: BLE001 - a method that cannot continue keeps its NaN record
        return None


def _nanmean_rows(a):
    out = np.full(a.shape[0], np.nan)
    for i, row in enumerate(a):
        if np.isfinite(row).any():
            out[i] = np.nanmean(row)
    return out


def format_table(res: xr.Dataset, reference: dict | None = None) -> str:
    """The comparison table: method, RMSE, spread, wall time, a DAPPER reference, status.

    Long statuses (a divergence's message) are numbered notes under the table,
    never cut. The notes say what the columns hold, and which rows' spread is
    the nominal std of a static background covariance (``spread_kind``).

    Parameters
    ----------
    res : xarray.Dataset
        Results of :func:`twin_experiment` (``rmse_mean``, ``spread_mean``,
        ``wall_time``, ``status`` on ``assimilator``; ``spread_kind`` if present).
    reference : dict, optional
        Label -> reference RMSE (the ``ref`` column; blank where missing): for
        the catalogue's twins, DAPPER 1.7.1's analysis RMSE as xdyn measured it
        on DAPPER's own truth of the setup, with DAPPER's burn-in.

    Returns
    -------
    str

    Examples
    --------
    >>> res = xr.Dataset({"rmse_mean": ("assimilator", [0.2]), "spread_mean": ("assimilator", [0.25]),
    ...                   "wall_time": ("assimilator", [1.5]), "status": ("assimilator", ["ok"])},
    ...                  coords={"assimilator": ["EnKF"]})
    >>> print(format_table(res, {"EnKF": 0.18}).splitlines()[2])
    EnKF                                 0.200    0.250      1.50   0.180  ok
    """
    reference = reference or {}
    head = f"{'method':<34}{'RMSE':>8}{'spread':>9}{'wall [s]':>10}{'ref':>8}  status"
    lines = [head, "-" * len(head)]
    notes = []
    for i, m in enumerate(res["assimilator"].values):
        ref = reference.get(str(m))
        status = str(res.status.values[i])
        if len(status) > 24:
            notes.append(status)
            status = f"{status.split(':')[0]} [{len(notes)}]"
        lines.append(
            f"{str(m):<34}{float(res.rmse_mean[i]):>8.3f}{float(res.spread_mean[i]):>9.3f}"
            f"{float(res.wall_time[i]):>10.2f}{'' if ref is None else f'{ref:.3f}':>8}  {status}")
    lines.append("RMSE: of the analysis mean; spread: analysis std, rms over the state; "
                 "both time averages after burn-in")
    if "spread_kind" in res:
        static = [str(m) for m, kind in zip(res["assimilator"].values, res.spread_kind.values)
                  if kind == "static background covariance"]
        if static:
            lines.append(f"spread of {', '.join(static)}: the analysis std implied by the "
                         "static background covariance (constant; not a measured spread)")
    lines.append("ref: DAPPER 1.7.1 analysis RMSE, measured by xdyn on DAPPER's own truth of "
                 "this setup with DAPPER's burn-in, not on this run; blank: not measured")
    lines += [f"[{k}] {note}" for k, note in enumerate(notes, 1)]
    return "\n".join(lines)


def summary(res: xr.Dataset) -> list[dict]:
    """Tidy summary rows of a twin experiment: RMSE and wall time per method.

    Parameters
    ----------
    res : xarray.Dataset
        Results of :func:`twin_experiment` (``rmse_mean``, ``wall_time``,
        ``status``; ``reference_rmse`` when present becomes ``reference_value``).

    Returns
    -------
    list of dict
        Rows for :func:`xdyn.experiments.catalogue.write_summary`, with the
        run's ``noise_std``, ``obs_every`` and ``n_cycles`` and each method's status.

    Examples
    --------
    >>> res = xr.Dataset({"rmse_mean": ("assimilator", [0.2], {"units": "1"}),
    ...                   "wall_time": ("assimilator", [1.5], {"units": "s"}),
    ...                   "status": ("assimilator", ["ok"])}, coords={"assimilator": ["EnKF"]})
    >>> [(r["metric"], r["value"], r["units"]) for r in summary(res)]
    [('analysis RMSE', 0.2, '1'), ('wall time', 1.5, 's')]
    """
    from xdyn.experiments.catalogue import summary_rows

    config = json.loads(res.attrs.get("config_json", "{}"))
    settings = {k: config[k] for k in ("noise_std", "obs_every", "n_cycles") if k in config}
    rows = (summary_rows(res["rmse_mean"], "analysis RMSE", method_dim="assimilator", **settings)
            + summary_rows(res["wall_time"], "wall time", method_dim="assimilator", **settings))
    by_method = {str(m): i for i, m in enumerate(res["assimilator"].values)}
    for row in rows:
        i = by_method[row["method"]]
        row["status"] = str(res.status.values[i]).split(":")[0]
        if "reference_rmse" in res and row["metric"] == "analysis RMSE":
            row["reference_value"] = float(res.reference_rmse.values[i])
    return rows


def _figures(res, analyses, truth, obs, variable, site):
    from xdyn.plot import plot_scores, plot_twin

    figs = {"rmse_spread": plot_scores(res)}
    finite = res.rmse_mean.fillna(np.inf)
    if len(analyses):
        best = str(res.assimilator.values[int(np.argmin(finite.values))])
        chosen = {best: analyses[best]}
        worst_ok = [m for m in res.assimilator.values if str(m) in analyses and str(m) != best]
        if worst_ok:
            chosen[str(worst_ok[0])] = analyses[str(worst_ok[0])]
        # 20 model time units: a few dozen Lorenz-63 loops, a readable stretch of Lorenz-96
        tmax = float(truth.time[0]) + 20.0
        tr = truth.sel(time=truth.time[truth.time <= tmax])
        figs["twin_panel"] = plot_twin(
            tr, obs.sel(time=obs.time[obs.time <= tmax]),
            {k: v.sel(time=v.time[v.time <= tmax]) for k, v in chosen.items()},
            variable=variable, site=site)
    return figs


# ----------------------------------------------------------------- catalogue
# The setups, their tuning tables and reference RMSEs live in xdyn.experiments.setups;
# these tables pick the rows each experiment runs.
L63_REFERENCE = SAKOV2012.reference()
L96_REFERENCE = SAKOV2008.reference()


def lorenz63_methods():
    return SAKOV2012.methods(["OI", "3D-Var (B clim)", "3D-Var (B x 0.1)", "ExtKF (infl 180)",
                              "EnKF sqrt N=10 infl 1.02 rot", "PF N=100 reg 2.4 NER 0.3"])


def lorenz96_methods(partial=False):
    if partial:
        return SAKOV2008_EVERY4.methods(["3D-Var (B x 0.02)", "EnKF sqrt N=40 infl 1.05",
                                         "LETKF N=40 infl 1.05 r=4", "LETKF-N N=40 r=8 xN=1.5",
                                         "LETKF-N N=40 r=8 xN=1.5, clim. start"])
    return SAKOV2008.methods(["OI", "3D-Var (B clim)", "3D-Var (B x 0.02)",
                              "EnKF sqrt N=28 infl 1.02 rot", "EnKF sqrt N=40 infl 1.01",
                              "DEnKF N=40 infl 1.01", "LETKF N=40 infl 1.01 r=4"])


def _run_twin(setup, device, n_cycles, burn_in_cycles, methods, reference, seed, progress,
              variable, site):
    res, analyses, truth, obs = twin_experiment(
        setup.make_system(device=device), setup.operator, setup.noise_std, setup.obs_every,
        n_cycles, methods, seed=seed, burn_in_cycles=burn_in_cycles, spin_up=setup.spin_up,
        initial_spread=setup.initial_spread, progress=progress, dt=setup.dt)
    res["reference_rmse"] = ("assimilator", np.array([reference.get(str(m), np.nan)
                                                 for m in res.assimilator.values]),
                             {"long_name": "DAPPER 1.7.1 analysis RMSE, measured by xdyn on "
                                           "DAPPER's own truth of this setup with DAPPER's "
                                           "burn-in (NaN: not measured)",
                              "units": res["rmse"].attrs["units"]})
    # the setup the system, operator and reference values come from
    res.attrs["config_json"] = config_json(setup=setup.name,
                                           **json.loads(res.attrs["config_json"]))
    table = format_table(res, reference)
    return ExperimentResult(res, _figures(res, analyses, truth, obs, variable, site), table,
                            summary=summary(res))


@register("lorenz63-twin", "Lorenz-63 twin experiment, all variables observed every 25 steps "
          "(noise variance 2); OI, 3D-Var, ExtKF, EnKF, particle filter",
          SAKOV2012.citation)
def lorenz63_twin(quick=False, seed=0, device="cpu", progress=True):
    n_cycles = 300 if quick else 1000 + 80  # T=250 after a burn-in of 20 time units
    return _run_twin(SAKOV2012, device, n_cycles, 80 if not quick else 40, lorenz63_methods(),
                     L63_REFERENCE, seed, progress, variable="x", site=0)


@register("lorenz96-twin", "Lorenz-96 (40 sites, F=8) twin experiment, every site observed "
          "every step (unit noise); OI, 3D-Var, EnKF sqrt, DEnKF, LETKF",
          SAKOV2008.citation)
def lorenz96_twin(quick=False, seed=0, device="cpu", progress=True):
    n_cycles = 600 if quick else 5000 + 200
    return _run_twin(SAKOV2008, device, n_cycles, 100 if quick else 200, lorenz96_methods(),
                     L96_REFERENCE, seed, progress, variable="x", site=0)


@register("lorenz96-twin-partial", "Lorenz-96 twin experiment observing every 4th site every step",
          "Sakov & Oke (2008) setup with sparse observations")
def lorenz96_twin_partial(quick=False, seed=0, device="cpu", progress=True):
    n_cycles = 600 if quick else 3000 + 200
    return _run_twin(SAKOV2008_EVERY4, device, n_cycles, 100 if quick else 200,
                     lorenz96_methods(partial=True), SAKOV2008_EVERY4.reference(), seed, progress,
                     variable="x", site=1)
