"""The original research pipeline's background protocol, for ``lorenz63-neural-var``.

The pipeline :class:`~xdyn.assimilation.NeuralVar3D` rebuilds (GitHub
``SriVidyaYeluripati/Data-Assimilation``, read at commit ``d741542``) defined
its background ``x_b`` in two places:

* training and single analyses (``data /dataset.py``, ``__getitem__``, lines
  96-101): ``x_b ~ N(B_mean, B)`` drawn afresh for every training sample
  (the "resample" branch), or ``x_b = B_mean`` (validation and the
  "fixedmean" branch), where ``B_mean`` and ``B`` are the mean and covariance
  (plus ``1e-3 I``) of every state of the training trajectories
  (``data /generation.py`` lines 97-102): a climatological state, unrelated to
  the truth at that time;
* its scores (``src/evaluation.py``, ``sequential_eval_fast``, lines 28-68):
  a cycle started from ``B_mean`` (line 38), one model step between analyses
  (line 53), background and analysis RMSE over the first 50 steps (from
  ``SEQ_LEN - 1 = 4``, lines 57-58) of 5 test trajectories. Its "background
  RMSE 6.4-14" (``results/resample .../notebook_eval_results.csv``) is that
  cycle's background: the one-step forecast of its own analysis, in the
  spin-up from the climatological mean.

Made correct here: the statistics come from the training split only (they
did there too, but its windows were split into train/validation by sample,
not by trajectory: ``data /dataset.py`` lines 52-80), the model is RK4 (it
was forward Euler), every test trajectory counts, and each test truth is
scored against its own observations (the original paired test truth ``i``,
trajectory ``1000 + i``, with the observations of training trajectory ``i``:
``src/evaluation.py`` lines 36-37 with ``data /generation.py`` line 113).

Two scores follow, next to the experiment's own (cycled from the spun-up
prior mean, after burn-in; single analyses of forecasts of the perturbed
truth):

* ``original_draw_*``: single analyses of climatological draws
  ``x_b ~ N(mean, cov)`` of the training states, at every test time;
* ``original_cycle_*``: the cycle from the training-state mean, scored over
  its first :data:`ORIGINAL_CYCLE_STEPS` analyses (the original scored steps 4
  to 49 of a cycle it started at step 4 with a full window; here the cycle
  starts at step 0, where the window holds one observation).
"""

from __future__ import annotations

import contextlib
import time
import warnings

import numpy as np
import torch
import xarray as xr

from xdyn.assimilation._cycle import LostTrackWarning
from xdyn.assimilation._neural_var_data import climatology_draws
from xdyn.experiments._neural_var_figures import background_of
from xdyn.metrics import state_rmse

__all__ = ["ORIGINAL_CYCLE_STEPS", "original_statistics", "original_draws", "window_rmse",
           "score_original", "original_cycle_baselines", "var3d_draw_rmse"]

#: Analyses of the original's scored cycle (``src/evaluation.py``: ``steps=50``).
ORIGINAL_CYCLE_STEPS = 50


def original_statistics(train: xr.Dataset):
    """Mean and covariance (plus ``1e-3 I``, as the original) of every training state.

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> train = Lorenz63().simulate(n_trajectories=4, n_steps=99, random_state=0)
    >>> mean, cov = original_statistics(train)
    >>> mean.shape, cov.shape, bool(np.all(np.linalg.eigvalsh(cov) > 0))
    ((3,), (3, 3), True)
    """
    from xdyn.systems import Lorenz63

    x = Lorenz63().to_state(train).numpy().reshape(-1, 3)
    return x.mean(0), np.cov(x.T) + 1e-3 * np.eye(3)


def original_draws(mean, cov, truth: xr.Dataset, seed: int) -> xr.Dataset:
    """Climatological backgrounds ``x_b ~ N(mean, cov)``, one per (time, trajectory) of ``truth``.

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> truth = Lorenz63().simulate(n_trajectories=2, n_steps=9, random_state=0)
    >>> dict(original_draws(np.zeros(3), np.eye(3), truth, 0)["z"].sizes)
    {'time': 10, 'trajectory': 2}
    """
    from xdyn.systems import Lorenz63

    truth = truth.transpose("time", "trajectory")
    shape = (truth.sizes["time"], truth.sizes["trajectory"])
    x_b = climatology_draws(mean, cov, shape, np.random.RandomState(seed + 30_000))
    return Lorenz63().from_state(torch.as_tensor(x_b), dims=("time", "trajectory"),
                                 coords={"time": truth["time"],
                                         "trajectory": truth["trajectory"]})


def window_rmse(states: xr.Dataset, truth: xr.Dataset, stop=None) -> float:
    """RMSE per time over the first ``stop`` times (all when None), time mean per
    trajectory, then the mean over trajectories.

    Examples
    --------
    >>> import xarray as xr
    >>> tr = xr.Dataset({v: (("time", "trajectory"), np.zeros((4, 2))) for v in "xyz"},
    ...                 coords={"time": [0.0, 0.01, 0.02, 0.03]})
    >>> est = tr + xr.DataArray([1.0, 1.0, 3.0, 3.0], dims="time")
    >>> window_rmse(est, tr, stop=2), window_rmse(est, tr)
    (1.0, 2.0)
    """
    per_time = state_rmse(states, truth, keep_dims=("trajectory",))
    # NaN (a filter that diverged) stays NaN: skipping it would score the times before
    return float(per_time.isel(time=slice(0, stop)).mean("time", skipna=False).mean(skipna=False))


def score_original(est, obs, truth, draws, mean, cov):
    """The two original-protocol scores of a fitted NeuralVar3D on test ``obs``/``truth``.

    Returns a dict with ``draw_analysis`` (single analyses of ``draws``),
    ``cycle_analysis`` and ``cycle_background`` (the cycle from ``mean``, its
    first :data:`ORIGINAL_CYCLE_STEPS` analyses).
    """
    out = {"draw_analysis": window_rmse(est.analyze(obs, draws), truth)}
    params = {k: est.get_params()[k] for k in ("initial_state", "initial_spread",
                                               "return_background")}
    try:  # the fitted network is unchanged: only where the cycle starts
        est.set_params(initial_state=np.asarray(mean), return_background=True,
                       initial_spread=float(np.sqrt(np.trace(cov) / len(mean))))
        with _spin_up_warnings():
            an = est.predict(obs)
    finally:
        est.set_params(**params)
    out["cycle_analysis"] = window_rmse(an, truth, ORIGINAL_CYCLE_STEPS)
    out["cycle_background"] = window_rmse(background_of(an), truth, ORIGINAL_CYCLE_STEPS)
    return out


def var3d_draw_rmse(obs, truth, draws, B, n_outer=3) -> float:
    """RMSE (as :func:`window_rmse`) of Var3D's single analyses of the climatological
    ``draws`` with background covariance ``B``.

    A draw is independent of the truth, so its error covariance is twice the
    climatological one: with ``B = 2 cov`` this is 3D-Var of the draw with its
    true error covariance (the BLUE of that background for a linear operator;
    the Gauss-Newton minimum with ``n_outer`` loops for ``x**2``), the classical
    answer to the question the original's networks were trained on. (The draw
    tells nothing of the truth: the climatological mean would be a better
    background still, as for any method.)
    """
    from xdyn.assimilation import Var3D

    var = Var3D(B=np.asarray(B), n_outer=n_outer).fit(obs)  # B given: nothing is learned
    return window_rmse(var.analyze(obs, draws), truth)


@contextlib.contextmanager
def _spin_up_warnings():
    """Silence the lost-track warnings of a cycle started from the climatological mean:
    the spin-up is what this protocol measures (a diverged run still scores NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LostTrackWarning)
        yield


def original_cycle_baselines(methods, mean, cov, obs_valid, truth_valid, obs_test, truth_test):
    """The classical filters (already configured) cycled from the training-state mean.

    ``methods``: label -> unfitted estimator; each is fitted on the validation
    observations and run on the test ones with ``initial_state=mean`` and an
    initial spread of the climatological size. Returns label -> dict of
    ``analysis``/``background`` RMSE over the first :data:`ORIGINAL_CYCLE_STEPS`
    analyses and ``wall``.
    """
    spread = float(np.sqrt(np.trace(cov) / len(mean)))
    out = {}
    for label, est in methods.items():
        start = time.perf_counter()
        try:
            est.set_params(initial_state=np.asarray(mean), initial_spread=spread,
                           return_background=True)
            with _spin_up_warnings():
                an = est.fit(obs_valid, truth_valid).predict(obs_test)
            out[label] = {"analysis": window_rmse(an, truth_test, ORIGINAL_CYCLE_STEPS),
                          "background": window_rmse(background_of(an), truth_test,
                                                    ORIGINAL_CYCLE_STEPS)}
        except Exception as err:  # a baseline that cannot run is reported, not fatal
            out[label] = {"analysis": np.nan, "background": np.nan, "error": str(err)[:200]}
        out[label]["wall"] = time.perf_counter() - start
    return out


def add_original_results(res, orig, draw_bg, clim_cycled, trainings, baselines,
                         draw_var3d=None):
    """The original-protocol arrays as variables of the results Dataset ``res``."""
    dims = ("encoder", "mode", "noise_std", "training_seed", "training_background")
    res = res.assign_coords(training_background=(
        "training_background", list(trainings),
        {"long_name": "backgrounds the network was trained on (forecasts of the perturbed "
                      "truth, or climatological draws as the original)"}))
    res["original_draw_background_rmse"] = (("mode", "noise_std"), draw_bg, {
        "long_name": "RMSE of climatological draws x_b ~ N(mean, cov) of the training states "
                     "(the original pipeline's background)", "units": "1"})
    if draw_var3d is not None and np.isfinite(draw_var3d).any():
        res["var3d_original_draw_analysis_rmse"] = (("mode", "noise_std"), draw_var3d, {
            "long_name": "RMSE of Var3D's single analyses of those climatological draws "
                         "(B = 2 x their covariance: the draw's error covariance)",
            "units": "1"})
    res["original_draw_analysis_rmse"] = (dims, orig["draw_analysis"], {
        "long_name": "RMSE of single analyses of those climatological draws", "units": "1"})
    res["original_cycle_background_rmse"] = (dims, orig["cycle_background"], {
        "long_name": f"background RMSE of the cycle from the training-state mean, first "
                     f"{ORIGINAL_CYCLE_STEPS} analyses (where the original measured 6.4-14)",
        "units": "1"})
    res["original_cycle_analysis_rmse"] = (dims, orig["cycle_analysis"], {
        "long_name": f"analysis RMSE of that cycle, first {ORIGINAL_CYCLE_STEPS} analyses",
        "units": "1"})
    res["original_training_wall_time"] = (dims, orig["wall"], {
        "long_name": "fit + cycled predict wall time of the climatology-trained network",
        "units": "s"})
    res["climatology_trained_analysis_rmse"] = (dims[:4], clim_cycled, {
        "long_name": "cycled analysis RMSE (after burn-in, from the prior mean) of the network "
                     "trained on climatological draws", "units": "1"})
    if baselines:
        labels = list(next(iter(baselines.values())))
        shape = (len(labels), res.sizes["mode"], res.sizes["noise_std"])
        an, bg = np.full(shape, np.nan), np.full(shape, np.nan)
        modes, noises = list(res["mode"].values), list(res["noise_std"].values)
        for (mode, noise), rows in baselines.items():
            for ib, label in enumerate(labels):
                idx = (ib, modes.index(mode), noises.index(noise))
                an[idx], bg[idx] = rows[label]["analysis"], rows[label]["background"]
        bdims = ("baseline", "mode", "noise_std")
        res["baseline_original_cycle_analysis_rmse"] = (bdims, an, {
            "long_name": f"analysis RMSE of the classical filter cycled from the training-state "
                         f"mean, first {ORIGINAL_CYCLE_STEPS} analyses", "units": "1"})
        res["baseline_original_cycle_background_rmse"] = (bdims, bg, {
            "long_name": "background RMSE of that cycle", "units": "1"})
    return res


def _original_run(res):
    """Where the networks of the original protocol ran: the experiment's own network
    (trained on forecasts) in every cell, the climatology-trained one where it has a wall
    time (``original_training_noise``)."""
    return (res.original_training_wall_time.notnull()
            | (res["training_background"] == "forecast"))


def original_summary(res) -> list[dict]:
    """Summary rows of the original-protocol variables.

    The cells not run are left out; a run that diverged keeps its row, valued NaN.
    """
    from xdyn.experiments.catalogue import summary_rows

    run = _original_run(res)

    def network_rows(da, metric, **settings):
        ran = run if "training_background" in da.dims else run.sel(
            training_background="climatology")
        rows = summary_rows(da, metric, method="NeuralVar3D", **settings)
        return [r for r, k in zip(rows, ran.transpose(*da.dims).values.ravel()) if k]

    rows = (network_rows(res.original_draw_analysis_rmse,
                         "original-protocol single-analysis RMSE")
            + summary_rows(res.original_draw_background_rmse,
                           "original-protocol single-analysis background RMSE",
                           method="climatological draw")
            + network_rows(res.original_cycle_analysis_rmse,
                           "original-protocol cycled analysis RMSE")
            + network_rows(res.original_cycle_background_rmse,
                           "original-protocol cycled background RMSE"))
    if "climatology" in res["training_background"].values:
        rows += network_rows(res.climatology_trained_analysis_rmse, "analysis RMSE",
                             training_background="climatology")
    if "var3d_original_draw_analysis_rmse" in res:
        rows += summary_rows(res.var3d_original_draw_analysis_rmse,
                             "original-protocol single-analysis RMSE",
                             method="Var3D (B = 2 x climatological covariance)")
    if "baseline_original_cycle_analysis_rmse" in res:
        rows += (summary_rows(res.baseline_original_cycle_analysis_rmse,
                              "original-protocol cycled analysis RMSE", method_dim="baseline")
                 + summary_rows(res.baseline_original_cycle_background_rmse,
                                "original-protocol cycled background RMSE", method_dim="baseline"))
    return rows


def _mean_std(da):
    # np.mean, not nanmean: one diverged seed makes the cell nan, not the others' score
    v = np.asarray(da.values, float)
    return f"{np.mean(v):>7.3f}±{np.std(v):<5.3f}"


def original_table(res) -> str:
    """The original protocol's scores: background -> analysis and the gain, per cell."""
    lines = ["original pipeline's protocol (training-split statistics): single analyses of "
             "climatological draws, and the cycle from their mean (first "
             f"{ORIGINAL_CYCLE_STEPS} analyses); gain = 1 - analysis/background; cycled: the "
             "experiment's cycle from the prior mean, after burn-in; mean±std over training "
             "seeds, nan where a seed diverged",
             f"{'mode':<5}{'noise':>6}  {'method':<22}{'trained on':<12}{'draw bg':>9}"
             f"{'draw an':>14}{'gain':>7}{'cycle bg':>14}{'cycle an':>14}{'gain':>7}"
             f"{'cycled':>9}", "-" * 119]
    run = _original_run(res)
    for mode in res["mode"].values:
        for noise in res["noise_std"].values:
            cell = res.sel(mode=mode, noise_std=noise)
            bg = float(cell.original_draw_background_rmse)
            for enc in res["encoder"].values:
                for kind in res["training_background"].values:
                    c = cell.sel(encoder=enc, training_background=kind)
                    if not run.sel(mode=mode, noise_std=noise, encoder=enc,
                                   training_background=kind).any():
                        continue
                    da, cb, ca = (float(np.mean(c[v].values)) for v in (
                        "original_draw_analysis_rmse", "original_cycle_background_rmse",
                        "original_cycle_analysis_rmse"))
                    cycled = c.analysis_rmse if kind == "forecast" else \
                        c.climatology_trained_analysis_rmse
                    lines.append(
                        f"{mode:<5}{noise:>6}  {'NeuralVar3D ' + str(enc):<22}{str(kind):<12}"
                        f"{bg:>9.3f}{_mean_std(c.original_draw_analysis_rmse):>14}"
                        f"{1 - da / bg:>7.0%}{_mean_std(c.original_cycle_background_rmse):>14}"
                        f"{_mean_std(c.original_cycle_analysis_rmse):>14}{1 - ca / cb:>7.0%}"
                        f"{float(np.mean(cycled.values)):>9.3f}")
            if "var3d_original_draw_analysis_rmse" in res:
                da = float(cell.var3d_original_draw_analysis_rmse)
                lines.append(f"{'':<11}  {'Var3D (B = 2 x clim. cov)':<34}{bg:>9.3f}"
                             f"{da:>14.3f}{1 - da / bg:>7.0%}")
            if "baseline_original_cycle_analysis_rmse" in res:
                for lab in res["baseline"].values:
                    cb = float(cell.baseline_original_cycle_background_rmse.sel(baseline=lab))
                    ca = float(cell.baseline_original_cycle_analysis_rmse.sel(baseline=lab))
                    lines.append(f"{'':<11}  {str(lab):<34}{'':<30}{cb:>14.3f}{ca:>14.3f}"
                                 f"{1 - ca / cb:>7.0%}")
    return "\n".join(lines)
