"""``lorenz63-neural-var``: neural fixed-point 3D-Var against the classical filters.

Data protocol: Lorenz-63 (dt 0.01, RK4) trajectories of 200 steps, each
started from one spun-up state plus N(0, 2^2 I); 1000 training and 500
validation trajectories split *by trajectory* from one seeded draw, and a test
set of 500 from a separately seeded draw. Every trajectory is observed at
every step (``x``, ``x`` and ``y``, or ``x**2``) with noise std in
{0.05, 0.1, 0.5, 1.0}. Every filter, learned or classical, starts from the
spun-up state (the prior mean, spread 2) and cycles over each test
trajectory; the statistics of NeuralVar3D (scalers, ``B``) come from the
training split only, and the validation split only monitors its loss and
tunes the ``B_scale`` of the 3D-Var baseline.

Three protocols, side by side (each an RMSE against the truth, per time,
then the time mean per test trajectory, then the mean over trajectories):

* cycled (``analysis_rmse``, ``background_rmse``): the method's own cycle from
  the spun-up prior mean, after ``burn_in`` (0.5 model time); the background
  is its one-step forecast, so analysis and background differ little with an
  observation every step;
* single analyses (``single_*``): one analysis of a forecast over 10 steps of
  the perturbed test truth (errors 0.02 to 1.5, independent of the
  observations);
* the original pipeline's (``original_*``, see
  :mod:`xdyn.experiments._neural_var_original`, made leakage-free): single
  analyses of climatological draws ``x_b ~ N(mean, cov)`` of the training
  states (``original_draw_*``: the background the original trained its
  network to correct), and the cycle from the training-state mean over its
  first 50 analyses (``original_cycle_*``: where the original measured its
  background RMSE of 6.4-14). The network trained on forecast backgrounds
  (``training_background="forecast"``, the estimator's default) and, when
  ``original_training`` is set, a second one trained on the original's
  backgrounds, climatological draws (``"climatology"``, with
  ``B_scale=original_B_scale``), are both scored there (dim
  ``training_background``). That second network keeps the setup's ``loss``
  (``"supervised"``: against the truth), where the original trained on its 3D-Var
  cost alone, without the truth: with that cost (``loss="var"``) a network can
  only learn each draw's 3D-Var analysis (a 40-trajectory probe: 3.724 against
  3D-Var's 3.739 and the supervised loss's 2.380, the draws 10.68; 2026-12-07).

Each encoder trains on single analyses or through cycles of analyses
(``NeuralVar3D(seq_len=)``: with the single-analysis loss of each cycle's
first analysis, ``single_analysis_weight``; or with each analysis's error
relative to its own background's, ``cycle_loss="relative"``, with the
estimator's ``B_scale`` or with the one tuned for Var3D on the validation
split): per mode and noise level, the candidate that scores best cycled on
the validation split among those whose analyses there beat their
backgrounds, cycled and single (``seq_len``, ``single_analysis_weight``,
``cycle_loss``, ``B_scale_source``, ``candidate_validation_rmse``,
``candidate_validation_single_ratio``, ``candidate_validation_cycled_ratio``;
see :func:`training_candidates`). A cell whose candidates all diverged on the
validation split keeps the first, with a warning and ``validation_diverged``.

Also: the free run from the prior mean (no assimilation) and the share of
analyses on the wrong wing of the attractor (sign of ``x``), which ``x**2``
observations cannot see.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
import xarray as xr
from sklearn.base import clone

from xdyn.assimilation._neural_var_data import wrong_wing_share
from xdyn.experiments._neural_var_figures import background_of
from xdyn.experiments._neural_var_original import (add_original_results,
                                                   original_cycle_baselines, original_draws,
                                                   original_statistics, original_summary,
                                                   original_table, score_original,
                                                   var3d_draw_rmse, window_rmse)
from xdyn.experiments._parallel import n_processes, run_jobs
from xdyn.experiments.catalogue import ExperimentResult, config_json, register, summary_rows
from xdyn.metrics import mean_after_burn_in, state_rmse
from xdyn.observe import observe

__all__ = ["NeuralVarSetup", "make_trajectories", "neural_var_experiment", "training_candidates",
           "MODES"]

MODES = {"x": "x", "xy": ["x", "y"], "x2": "x^2"}


@dataclasses.dataclass
class NeuralVarSetup:
    """Sizes and settings of the experiment (defaults: the full protocol).

    Every encoder x mode x noise level (a cell) is trained once per training
    seed; the networks are :class:`~xdyn.assimilation.NeuralVar3D`.

    Parameters
    ----------
    n_train : int, default=1000
        Training trajectories.
    n_valid : int, default=500
        Validation trajectories (drawn with the training ones, split by
        trajectory): they monitor the networks' loss, tune the ``B_scale`` of the
        3D-Var baseline and choose each cell's training candidate.
    n_test : int, default=500
        Test trajectories, from a separately seeded draw.
    n_steps : int, default=200
        States per trajectory (every one observed).
    dt : float, default=0.01
        Model time step (RK4) of the trajectories, and the time between observations.
    initial_std : float, default=2.0
        Std of the Gaussian perturbation of the spun-up state that starts each
        trajectory, and the initial spread of the networks' cycle.
    encoders : tuple of {"mlp", "gru", "lstm"}, default=("mlp", "gru", "lstm")
        Encoders of the observation window to compare.
    modes : tuple of {"x", "xy", "x2"}, default=("x", "xy", "x2")
        Observed quantities: ``x``, ``x`` and ``y``, or ``x**2`` (see ``MODES``).
    noise_levels : tuple of float, default=(0.05, 0.1, 0.5, 1.0)
        Observation noise standard deviations.
    seeds : tuple of int, default=(0, 1, 2)
        Training seeds (the networks' ``random_state``); the training candidate is
        chosen with the first.
    window : int, default=8
        Observation times the encoder reads (the current one included).
    n_iterations : int, default=2
        Unrolled fixed-point steps of each analysis.
    max_epochs : int, default=15
        Training epochs of every network.
    n_rounds : int, default=1
        Training rounds (each further one continues on the network's own cycled
        backgrounds).
    batch_size : int, default=512
        Training samples per batch of single-analysis training (``seq_len`` 1).
    hidden_size : int, default=64
        Hidden size of the encoder (``module__hidden_size``).
    loss : {"supervised", "var"}, default="supervised"
        Training loss of the networks: squared analysis error against the truth, or
        the 3D-Var cost.
    burn_in : float, default=0.5
        Model time at the start of each cycle that the cycled RMSEs do not score.
    baselines : bool, default=True
        Also run the classical filters (3D-Var with its ``B_scale`` tuned on the
        validation split, extended Kalman filter, EnKF, particle filter).
    original_training : bool, default=True
        Also train each cell's network like the original pipeline, on
        climatological draws (``training_background="climatology"``,
        ``B_scale=original_B_scale``), and score it under the original protocol.
    original_B_scale : float, default=2.0
        ``B_scale`` of that training (the error covariance of a climatological draw
        is twice the climatological one), and of the 3D-Var baseline on those draws.
    original_training_noise : tuple of float or None, default=None
        Noise levels at which that training runs; None: all.
    seq_lens : tuple of int, default=(1, 10)
        Training-cycle lengths (``NeuralVar3D(seq_len=)``) among which each encoder,
        mode and noise level picks the one whose cycled analysis RMSE on the
        validation split is lowest (fitted with the first training seed; the other
        seeds train with it). Cycles help where the network must find the
        attractor's wing from a far start (x observed, noise 0.5 and 1) and cost
        accuracy where it need not.
    single_analysis_weights : tuple of float, default=(0.05,)
        With cycles, each weight (``NeuralVar3D(single_analysis_weight=)``) of the
        first analysis's single-analysis loss is a candidate (with the absolute
        cycle loss).
    cycle_losses : tuple of {"absolute", "relative"}, default=("absolute", "relative")
        With cycles, each cycle loss (``NeuralVar3D(cycle_loss=)``) is a candidate.
    var3d_B_losses : tuple of str, default=("relative",)
        Cycle losses that are also candidates with the ``B_scale`` tuned for the
        3D-Var baseline. The choice prefers the candidates whose analyses beat
        their backgrounds on the validation split, cycled and single (see
        :func:`training_candidates` and :func:`_choose_candidate`).
    cycle_batch_size : int or None, default=None
        Training cycles per batch when ``seq_len > 1``; None: ``batch_size // seq_len``.
    n_jobs : int or None, default=None
        Processes for the networks' fits, which are independent (the same fitted
        networks in any number of processes); None: one per core when run alone,
        one inside ``xdyn run --all``'s dask workers (each owns a core) or on an
        accelerator.

    Examples
    --------
    >>> NeuralVarSetup().n_train, NeuralVarSetup.quick().n_train
    (1000, 150)
    """

    n_train: int = 1000
    n_valid: int = 500
    n_test: int = 500
    n_steps: int = 200
    dt: float = 0.01
    initial_std: float = 2.0
    encoders: tuple = ("mlp", "gru", "lstm")
    modes: tuple = ("x", "xy", "x2")
    noise_levels: tuple = (0.05, 0.1, 0.5, 1.0)
    seeds: tuple = (0, 1, 2)
    window: int = 8
    n_iterations: int = 2
    max_epochs: int = 15
    n_rounds: int = 1
    batch_size: int = 512
    hidden_size: int = 64
    loss: str = "supervised"
    burn_in: float = 0.5
    baselines: bool = True
    original_training: bool = True
    original_B_scale: float = 2.0
    original_training_noise: tuple | None = None
    seq_lens: tuple = (1, 10)
    single_analysis_weights: tuple = (0.05,)
    cycle_losses: tuple = ("absolute", "relative")
    var3d_B_losses: tuple = ("relative",)
    cycle_batch_size: int | None = None
    n_jobs: int | None = None

    @classmethod
    def quick(cls):
        """CPU-sized: all nine encoder x mode cells at the four noise levels, one seed;
        the original-protocol training at noise 0.5 only."""
        return cls(n_train=150, n_valid=50, n_test=50, seeds=(0,), max_epochs=8,
                   hidden_size=32, original_training_noise=(0.5,), cycle_batch_size=256)


def make_trajectories(setup: NeuralVarSetup, seed: int = 0):
    """Spun-up prior mean, and the train / validation / test truths (split by trajectory).

    Parameters
    ----------
    setup : NeuralVarSetup
        Numbers and length of the trajectories, ``dt`` and ``initial_std``.
    seed : int, default=0
        Seed of the spin-up and of the training / validation starts; the test
        starts are drawn with ``seed + 10_000``.

    Returns
    -------
    prior_mean : numpy.ndarray
        The spun-up state, shape ``(3,)``.
    train, valid, test : xarray.Dataset
        Lorenz-63 trajectories (``trajectory``, ``time``).

    Examples
    --------
    >>> setup = NeuralVarSetup(n_train=3, n_valid=2, n_test=2, n_steps=10)
    >>> prior, train, valid, test = make_trajectories(setup, seed=0)
    >>> train.sizes["trajectory"], valid.sizes["trajectory"], test.sizes["time"]
    (3, 2, 10)
    """
    from xdyn.systems import Lorenz63

    system = Lorenz63()
    start = system.simulate(n_steps=0, burn_in=20.0, random_state=seed)
    prior_mean = system.to_state(start.isel(time=0)).numpy()
    rng = np.random.RandomState(seed)
    n_pool = setup.n_train + setup.n_valid
    x0 = prior_mean + setup.initial_std * rng.standard_normal((n_pool, 3))
    pool = system.simulate(n_trajectories=n_pool, n_steps=setup.n_steps - 1, dt=setup.dt, x0=x0)
    pool.attrs["random_state"] = int(seed)
    train = pool.isel(trajectory=slice(0, setup.n_train))
    valid = pool.isel(trajectory=slice(setup.n_train, n_pool))
    rng_test = np.random.RandomState(seed + 10_000)  # its own draw: nothing shared with the pool
    x0 = prior_mean + setup.initial_std * rng_test.standard_normal((setup.n_test, 3))
    test = system.simulate(n_trajectories=setup.n_test, n_steps=setup.n_steps - 1, dt=setup.dt,
                           x0=x0)
    test = test.assign_coords(trajectory=np.arange(setup.n_test))
    return prior_mean, train, valid, test


def _trajectory_mean_rmse(analysis, truth, burn_in):
    """Time mean after burn-in per trajectory, then the mean over trajectories (NaN when
    the method failed on any trajectory: the others do not stand in for it)."""
    per_time = state_rmse(analysis, truth, keep_dims=("trajectory",))
    return float(mean_after_burn_in(per_time, burn_in).mean(skipna=False))


def _scores(analysis, truth, burn_in, background=True):
    """Analysis (and background) RMSE as :func:`_trajectory_mean_rmse`; wrong-wing share."""
    out = {"analysis": _trajectory_mean_rmse(analysis, truth, burn_in)}
    if background and "x_background" in analysis:
        out["background"] = _trajectory_mean_rmse(background_of(analysis), truth, burn_in)
    t = analysis["time"]
    out["wrong_wing"] = float(wrong_wing_share(analysis.where(t >= t[0] + burn_in, drop=True),
                                               truth))
    return out


def _single_backgrounds(est, obs, truth, seed):
    """Forecasts over 10 steps of the perturbed test truth: the backgrounds of single analyses."""
    from xdyn.assimilation._neural_var_data import aligned_truth, perturbed_backgrounds

    ctx = est._context(obs, fitted=True)
    x_b = perturbed_backgrounds(ctx.system, aligned_truth(truth, ctx), ctx.dt, 10,
                                np.random.RandomState(seed + 20_000), n_steps=ctx.n_steps)
    # at the observations' times, in their trajectory order (that of aligned_truth): labelled
    # with the truth's coordinates they were paired with the wrong trajectories
    return ctx.system.from_state(x_b, dims=("time",) + ctx.batch_dims,
                                 coords={"time": ctx.obs["time"], **ctx.batch_coords})


def _baseline_methods(prior_mean, seed, scale):
    """The classical filters, fresh and configured (Var3D with ``B_scale=scale``)."""
    from xdyn.assimilation import EnKF, ExtendedKalmanFilter, ParticleFilter, Var3D

    common = dict(initial_state=prior_mean, initial_spread=2.0, raise_on_divergence=False,
                  random_state=seed)
    return {
        # one label for every cell (the tuned B_scale is its own results variable)
        "Var3D (B_scale tuned)": Var3D(B_scale=scale, n_outer=3, **common),
        "ExtKF": ExtendedKalmanFilter(inflation=1.02, **common),
        "EnKF sqrt N=20 infl 1.02": EnKF(kind="sqrt", n_members=20, inflation=1.02,
                                         return_ensemble=False, **common),
        "PF N=200 reg 2.4": ParticleFilter(n_members=200, regularization=2.4,
                                           resampling_threshold=0.3, return_ensemble=False,
                                           **common),
    }


def _tune_var3d_scale(prior_mean, obs_valid, truth_valid, burn_in, seed):
    """The ``B_scale`` of Var3D with the lowest cycled RMSE on the validation split."""
    from xdyn.assimilation import Var3D

    best = None
    # down to 1e-5: with little observation noise the best static gain is small (measured,
    # x and y observed with noise 0.05: 0.048 cycled with 0.01, 0.018 with 1e-5; x**2 with
    # noise 0.05: 1.6 with 0.003, the cycle on the wrong wing, and 0.021 with 1e-5)
    for scale in (1e-5, 1e-4, 1e-3, 0.003, 0.01, 0.03, 0.1):
        v = Var3D(B_scale=scale, n_outer=3, initial_state=prior_mean, initial_spread=2.0,
                  raise_on_divergence=False, random_state=seed).fit(obs_valid, truth_valid)
        score = _scores(v.predict(obs_valid), truth_valid, burn_in, background=False)["analysis"]
        score = score if np.isfinite(score) else np.inf  # a Var3D that failed is not chosen
        if best is None or score < best[0]:
            best = (score, scale)
    return best[1]


def _baselines(prior_mean, obs_valid, truth_valid, obs_test, truth_test, burn_in, seed, scale):
    """Var3D (with the ``B_scale`` tuned on validation), ExtKF, EnKF and PF on the test
    observations; the scores by label."""
    out = {}
    for label, est in _baseline_methods(prior_mean, seed, scale).items():
        start = time.perf_counter()
        try:
            an = est.fit(obs_valid, truth_valid).predict(obs_test)
            out[label] = {**_scores(an, truth_test, burn_in, background=False),
                          "wall": time.perf_counter() - start, "analysis_ds": an}
        except Exception as err:  # a baseline that cannot run is reported, not fatal
            out[label] = {"analysis": np.nan, "wrong_wing": np.nan,
                          "wall": time.perf_counter() - start, "error": str(err)[:200]}
    return out


def training_candidates(setup):
    """The trainings each encoder, mode and noise level chooses among: ``(seq_len,
    single_analysis_weight, cycle_loss, B_scale)``.

    Single analyses (``seq_len`` 1) once; every cycle length above 1 with the absolute
    cycle loss and each single-analysis weight, and with each other cycle loss (without
    the single-analysis term). ``B_scale`` is ``"default"`` (the estimator's) or, for the
    cycle losses in ``var3d_B_losses``, also ``"var3d"``: that of the Var3D baseline,
    tuned on the validation split for the mode and noise level (small where the noise is:
    the first 3D-Var step of the analysis then moves the background little, and from
    near ``x = 0`` an ``x**2`` observation no longer throws it onto the other wing).

    Parameters
    ----------
    setup : NeuralVarSetup
        ``seq_lens``, ``cycle_losses``, ``single_analysis_weights`` and
        ``var3d_B_losses``.

    Returns
    -------
    list of tuple
        ``(seq_len, single_analysis_weight, cycle_loss, B_scale)`` per candidate.

    Examples
    --------
    >>> for c in training_candidates(NeuralVarSetup()):
    ...     print(c)
    (1, 0.0, 'absolute', 'default')
    (10, 0.05, 'absolute', 'default')
    (10, 0.0, 'relative', 'default')
    (10, 0.0, 'relative', 'var3d')
    """
    out = []
    for L in setup.seq_lens:
        if L > 1 and setup.loss == "var":
            continue  # the variational loss scores single analyses only (NeuralVar3D refuses)
        if L == 1:
            out.append((1, 0.0, "absolute", "default"))
            continue
        for loss in setup.cycle_losses:
            weights = setup.single_analysis_weights if loss == "absolute" else (0.0,)
            sources = ("default", "var3d") if loss in setup.var3d_B_losses else ("default",)
            out += [(int(L), float(w), str(loss), b) for b in sources for w in weights]
    return out


def candidate_label(seq_len, single_analysis_weight, cycle_loss="absolute", B_scale="default"):
    """The name of a training candidate, in the results' ``candidate`` coordinate and the table.

    Examples
    --------
    >>> [candidate_label(*c) for c in training_candidates(NeuralVarSetup())]
    ['seq 1', 'seq 10 single 0.05', 'seq 10 relative', 'seq 10 relative, B of Var3D']
    """
    weight = float(single_analysis_weight)
    return (f"seq {int(seq_len)}" + (f" single {weight:g}" if weight else "")
            + (f" {cycle_loss}" if str(cycle_loss) != "absolute" else "")
            + (", B of Var3D" if str(B_scale) == "var3d" else ""))


def _fit_candidate(est, obs, train, obs_valid, valid, burn_in, seed):
    """Fit one training candidate (one job); its fit time, cycled validation RMSE, the
    single-analysis ratio and the cycled ratio (analysis over background RMSE) on the
    validation split."""
    start = time.perf_counter()
    est.fit(obs, train)
    seconds = time.perf_counter() - start
    cycled = _scores(est.set_params(return_background=True).predict(obs_valid), valid, burn_in)
    backgrounds = _single_backgrounds(est, obs_valid, valid, seed)  # the same for every one
    background_rmse = _scores(backgrounds, valid, 0.0, background=False)["analysis"]
    single = _scores(est.analyze(obs_valid, backgrounds), valid, 0.0, background=False)
    return (est, seconds, cycled["analysis"], single["analysis"] / background_rmse,
            cycled["analysis"] / cycled["background"])


def _fit_timed(est, obs, train, validation):
    """Fit ``est`` with a validation monitor (one job); the estimator and its fit time."""
    start = time.perf_counter()
    est.fit(obs, train, validation=validation)
    return est, time.perf_counter() - start


def _choose_candidate(fits):
    """The candidate of ``fits`` (:func:`_fit_candidate` results, in the order of
    :func:`training_candidates`) with the lowest cycled validation RMSE among those whose
    analyses beat their backgrounds on the validation split, both cycled and single; failing
    that, among those that do cycled, then single; among all when none does. When every
    candidate's validation cycle failed (NaN RMSE, possible with ``raise_on_divergence=False``)
    it warns and returns the first candidate (single analyses); the cell's
    ``candidate_validation_rmse`` is then NaN throughout and ``validation_diverged`` True.

    Returns its index, the cycled validation RMSEs, the single-analysis ratios and the
    cycled ratios.
    """
    cycled = np.array([f[2] for f in fits], float)
    ratio = np.array([f[3] for f in fits], float)
    cycled_ratio = np.array([f[4] for f in fits], float)
    if not np.isfinite(cycled).any():
        warnings.warn("every training candidate of this cell diverged on the validation "
                      "split (NaN cycled RMSE): keeping the first; its results are recorded "
                      "with validation_diverged=True", RuntimeWarning, stacklevel=2)
        return 0, cycled, ratio, cycled_ratio
    for keep in ((ratio < 1.0) & (cycled_ratio < 1.0), cycled_ratio < 1.0, ratio < 1.0,
                 np.ones(len(fits), bool)):
        pool = np.flatnonzero(keep & np.isfinite(cycled))  # a diverged one is not chosen
        if pool.size:
            break
    return int(pool[np.nanargmin(cycled[pool])]), cycled, ratio, cycled_ratio


def neural_var_experiment(setup: NeuralVarSetup, seed=0, device="cpu", progress=True):
    """Run the grid encoders x modes x noise levels x seeds; returns an ExperimentResult.

    Parameters
    ----------
    setup : NeuralVarSetup
        The grid and the sizes (:meth:`NeuralVarSetup.quick` for a CPU-sized run).
    seed : int, default=0
        Seed of the trajectories, the observations and the baselines (the networks
        use ``setup.seeds``).
    device : str, default="cpu"
        Torch device of the networks.
    progress : bool, default=True
        Show progress bars over the fits and the cells.

    Returns
    -------
    ExperimentResult
    """
    from tqdm.auto import tqdm

    from xdyn.assimilation import NeuralVar3D

    prior_mean, train, valid, test = make_trajectories(setup, seed)
    from xdyn.systems import Lorenz63

    free = Lorenz63().simulate(n_trajectories=setup.n_test, n_steps=setup.n_steps - 1,
                               dt=setup.dt, x0=np.broadcast_to(prior_mean, (setup.n_test, 3)))
    free = free.assign_coords(trajectory=test["trajectory"])
    free_rmse = _trajectory_mean_rmse(free, test, setup.burn_in)
    orig_mean, orig_cov = original_statistics(train)  # the training split's states only
    trainings = ("forecast", "climatology") if setup.original_training else ("forecast",)
    shape = (len(setup.encoders), len(setup.modes), len(setup.noise_levels), len(setup.seeds))
    an_rmse, bg_rmse, wing, wall, one_an, one_bg, clim_cycled = (np.full(shape, np.nan)
                                                                 for _ in range(7))
    orig = {k: np.full(shape + (len(trainings),), np.nan)
            for k in ("draw_analysis", "cycle_analysis", "cycle_background", "wall")}
    draw_bg, draw_var3d = np.full(shape[1:3], np.nan), np.full(shape[1:3], np.nan)
    baseline_rows, examples, single_backgrounds, draws, orig_baselines = {}, {}, {}, {}, {}
    var3d_scale = np.full(shape[1:3], np.nan)
    candidates = training_candidates(setup)
    chosen = np.full(shape[:3], -1, dtype=int)
    candidate_cycled = np.full(shape[:3] + (len(candidates),), np.nan)
    candidate_ratio = np.full(shape[:3] + (len(candidates),), np.nan)
    candidate_cycled_ratio = np.full(shape[:3] + (len(candidates),), np.nan)

    def make(enc, train_seed, im, isg, seq_len, weight, cycle_loss, B_scale):
        scale = {} if B_scale == "default" else {"B_scale": float(var3d_scale[im, isg])}
        return NeuralVar3D(encoder=enc, window=setup.window, n_iterations=setup.n_iterations,
                           loss=setup.loss, n_rounds=setup.n_rounds, seq_len=seq_len,
                           single_analysis_weight=weight, cycle_loss=cycle_loss, **scale,
                           max_epochs=setup.max_epochs,
                           batch_size=(setup.batch_size if seq_len == 1
                                       else setup.cycle_batch_size
                                       or max(1, setup.batch_size // seq_len)),
                           initial_state=prior_mean, initial_spread=setup.initial_std,
                           device=device, raise_on_divergence=False, return_background=True,
                           random_state=train_seed, module__hidden_size=setup.hidden_size)
    # keyed on the mode and noise themselves: a sub-grid draws the same observations
    observations = {}
    for mode in setup.modes:
        for noise in setup.noise_levels:
            obs_seed = 1000 + 100 * list(MODES).index(mode) + int(round(1000 * noise)) * 7 + seed
            observations[(mode, noise)] = {
                name: observe(tr, MODES[mode], noise_std=noise, random_state=obs_seed + j)
                for j, (name, tr) in enumerate((("train", train), ("valid", valid),
                                                ("test", test)))}
    cell_keys = [(e, m, s) for m in range(len(setup.modes)) for s in range(len(setup.noise_levels))
                 for e in range(len(setup.encoders))]
    n_jobs = n_processes(setup.n_jobs, device)
    # Var3D's B_scale: a baseline, and a candidate B_scale of the networks
    if setup.baselines or any(c[3] == "var3d" for c in candidates):
        for im, mode in enumerate(setup.modes):
            for isg, noise in enumerate(setup.noise_levels):
                var3d_scale[im, isg] = _tune_var3d_scale(
                    prior_mean, observations[(mode, noise)]["valid"], valid, setup.burn_in, seed)

    def cell_obs(im, isg):
        return observations[(setup.modes[im], setup.noise_levels[isg])]

    # every training candidate of every cell with the first training seed, then the other
    # seeds with the chosen candidates: independent fits, in parallel where cores are free
    fits = run_jobs(_fit_candidate, [
        (make(setup.encoders[ie], setup.seeds[0], im, isg, *cand), cell_obs(im, isg)["train"],
         train, cell_obs(im, isg)["valid"], valid, setup.burn_in, seed)
        for ie, im, isg in cell_keys for cand in candidates], n_jobs, desc="neural-var training "
        "candidates", progress=progress)
    fitted = {}
    for i, key in enumerate(cell_keys):
        cell_fits = fits[i * len(candidates):(i + 1) * len(candidates)]
        (chosen[key], candidate_cycled[key], candidate_ratio[key],
         candidate_cycled_ratio[key]) = _choose_candidate(cell_fits)
        # the estimator of the choice is the cell's first seed (same data, parameters and
        # seed; its fit had no validation loss monitor, which changes nothing fitted)
        fitted[key + (0,)] = cell_fits[chosen[key]][:2]
    del fits
    later = [(ie, im, isg, ir) for ie, im, isg in cell_keys for ir in range(1, len(setup.seeds))]
    for cell, result in zip(later, run_jobs(_fit_timed, [
            (make(setup.encoders[ie], setup.seeds[ir], im, isg,
                  *candidates[chosen[ie, im, isg]]),
             cell_obs(im, isg)["train"], train, (cell_obs(im, isg)["valid"], valid))
            for ie, im, isg, ir in later], n_jobs, desc="neural-var seeds", progress=progress)):
        fitted[cell] = result
    cells = [key + (r,) for key in cell_keys for r in range(len(setup.seeds))]
    bar = tqdm(cells, desc="neural-var cells", disable=not progress)
    for ie, im, isg, ir in bar:
        mode, noise = setup.modes[im], setup.noise_levels[isg]
        enc, train_seed = setup.encoders[ie], setup.seeds[ir]
        bar.set_postfix_str(f"{enc} {mode} {noise} seed {train_seed}")
        obs = cell_obs(im, isg)
        if setup.baselines and (mode, noise) not in baseline_rows:
            scale = float(var3d_scale[im, isg])
            baseline_rows[(mode, noise)] = _baselines(prior_mean, obs["valid"], valid,
                                                      obs["test"], test, setup.burn_in, seed,
                                                      scale)
            orig_baselines[(mode, noise)] = original_cycle_baselines(
                _baseline_methods(prior_mean, seed, scale), orig_mean, orig_cov, obs["valid"],
                valid, obs["test"], test)
        # the cell's wall time: its fit (timed in the job) and its predict
        est, fit_seconds = fitted.pop((ie, im, isg, ir))
        start = time.perf_counter() - fit_seconds
        analysis = est.predict(obs["test"])
        wall[ie, im, isg, ir] = time.perf_counter() - start
        if (mode, noise) not in single_backgrounds:
            single_backgrounds[(mode, noise)] = _single_backgrounds(est, obs["test"], test, seed)
        single = est.analyze(obs["test"], single_backgrounds[(mode, noise)])
        one_an[ie, im, isg, ir] = _scores(single, test, 0.0, background=False)["analysis"]
        one_bg[ie, im, isg, ir] = _scores(single_backgrounds[(mode, noise)], test, 0.0,
                                          background=False)["analysis"]
        sc = _scores(analysis, test, setup.burn_in)
        an_rmse[ie, im, isg, ir], bg_rmse[ie, im, isg, ir] = sc["analysis"], sc["background"]
        wing[ie, im, isg, ir] = sc["wrong_wing"]
        if ir == 0:
            examples[(enc, mode, noise)] = analysis
        # the original pipeline's protocol: climatological draws, and the cycle from their mean
        if (mode, noise) not in draws:
            draws[(mode, noise)] = original_draws(orig_mean, orig_cov, test, seed)
            draw_bg[im, isg] = window_rmse(draws[(mode, noise)], test)
            if setup.baselines:
                draw_var3d[im, isg] = var3d_draw_rmse(obs["test"], test, draws[(mode, noise)],
                                                      setup.original_B_scale * orig_cov)
        cell = (ie, im, isg, ir)
        for it, kind in enumerate(trainings):
            if kind == "climatology":
                if (setup.original_training_noise is not None
                        and noise not in setup.original_training_noise):
                    continue
                start = time.perf_counter()
                est = clone(est).set_params(training_background="climatology",
                                            B_scale=setup.original_B_scale, seq_len=1,
                                            batch_size=setup.batch_size)
                est.fit(obs["train"], train, validation=(obs["valid"], valid))
                clim_cycled[cell] = _scores(est.predict(obs["test"]), test, setup.burn_in,
                                            background=False)["analysis"]
                orig["wall"][cell + (it,)] = time.perf_counter() - start
            sc = score_original(est, obs["test"], test, draws[(mode, noise)], orig_mean, orig_cov)
            for k, v in sc.items():
                orig[k][cell + (it,)] = v
    coords = {"encoder": list(setup.encoders), "mode": list(setup.modes),
              "noise_std": ("noise_std", np.asarray(setup.noise_levels, float),
                            {"long_name": "observation noise std", "units": "1"}),
              # not "seed": the summary's seed column is the run's (write_summary adds it),
              # and the report drops it as bookkeeping, which merged the training seeds' rows
              "training_seed": ("training_seed", np.asarray(setup.seeds),
                                {"long_name": "training seed", "units": "1"})}
    dims = ("encoder", "mode", "noise_std", "training_seed")
    res = xr.Dataset(
        {"analysis_rmse": (dims, an_rmse, {"long_name": "analysis RMSE (test, after burn-in)",
                                           "units": "1"}),
         "background_rmse": (dims, bg_rmse, {"long_name": "RMSE of the cycled background "
                                             "(the network's own forecast)", "units": "1"}),
         "wrong_wing_share": (dims, wing, {"long_name": "share of analyses with the wrong sign "
                                           "of x", "units": "1"}),
         "single_analysis_rmse": (dims, one_an, {"long_name": "RMSE of single (not cycled) "
                                                  "analyses of perturbed-truth forecasts",
                                                  "units": "1"}),
         "single_background_rmse": (dims, one_bg, {"long_name": "RMSE of those backgrounds "
                                                   "(forecasts of the perturbed truth, lead 10)",
                                                   "units": "1"}),
         "wall_time": (dims, wall, {"long_name": "fit + predict wall time per cell", "units": "s"}),
         "free_run_rmse": ((), free_rmse, {"long_name": "RMSE of the free run from the prior mean "
                                           "(no assimilation)", "units": "1"})},
        coords=coords)
    res["encoder"].attrs["long_name"] = "encoder of the observation window"
    cell_dims = ("encoder", "mode", "noise_std")
    res["seq_len"] = (cell_dims, np.array([c[0] for c in candidates])[chosen], {
        "long_name": "training-cycle length of the networks, chosen on the validation split",
        "units": "1"})
    res["single_analysis_weight"] = (cell_dims, np.array([c[1] for c in candidates])[chosen], {
        "long_name": "weight of the first analysis's single-analysis loss in training cycles, "
                     "chosen on the validation split", "units": "1"})
    res["cycle_loss"] = (cell_dims, np.array([c[2] for c in candidates])[chosen], {
        "long_name": "loss of the training cycles, chosen on the validation split"})
    res["B_scale_source"] = (cell_dims, np.array([c[3] for c in candidates])[chosen], {
        "long_name": "B_scale of the networks, chosen on the validation split: the "
                     "estimator's default, or the Var3D baseline's tuned one (var3d)"})
    res["candidate_validation_rmse"] = (cell_dims + ("candidate",), candidate_cycled, {
        "long_name": "cycled validation RMSE of the encoder trained with each candidate",
        "units": "1"})
    res["validation_diverged"] = (cell_dims, ~np.isfinite(candidate_cycled).any(-1), {
        "long_name": "every training candidate diverged on the validation split (NaN cycled "
                     "RMSE): the first candidate was kept, not chosen"})
    res["candidate_validation_single_ratio"] = (cell_dims + ("candidate",), candidate_ratio, {
        "long_name": "single-analysis over background RMSE on the validation split, per "
                     "candidate (the choice needs it below 1 where a candidate has it)",
        "units": "1"})
    res["candidate_validation_cycled_ratio"] = (cell_dims + ("candidate",),
                                                candidate_cycled_ratio, {
        "long_name": "cycled analysis over cycled background RMSE on the validation split, per "
                     "candidate (the choice needs it below 1 where a candidate has it)",
        "units": "1"})
    res = res.assign_coords(
        candidate=("candidate", [candidate_label(*c) for c in candidates],
                   {"long_name": "training candidate"}),
        candidate_seq_len=("candidate", [c[0] for c in candidates]),
        candidate_single_analysis_weight=("candidate", [c[1] for c in candidates]),
        candidate_cycle_loss=("candidate", [c[2] for c in candidates]),
        candidate_B_scale=("candidate", [c[3] for c in candidates]))
    res["mode"].attrs["long_name"] = "observed quantities (x, x and y, x squared)"
    if baseline_rows:
        labels = list(next(iter(baseline_rows.values())))
        bshape = (len(labels), len(setup.modes), len(setup.noise_levels))
        b_rmse, b_wing, b_wall = (np.full(bshape, np.nan) for _ in range(3))
        for (mode, noise), rows in baseline_rows.items():
            im, isg = setup.modes.index(mode), setup.noise_levels.index(noise)
            for ib, label in enumerate(labels):
                b_rmse[ib, im, isg] = rows[label]["analysis"]
                b_wing[ib, im, isg] = rows[label]["wrong_wing"]
                b_wall[ib, im, isg] = rows[label]["wall"]
        bdims = ("baseline", "mode", "noise_std")
        res["baseline_rmse"] = (bdims, b_rmse, {"long_name": "analysis RMSE of a classical filter",
                                                "units": "1"})
        res["baseline_wrong_wing_share"] = (bdims, b_wing, {"long_name": "share of analyses with "
                                                            "the wrong sign of x", "units": "1"})
        res["baseline_wall_time"] = (bdims, b_wall, {"long_name": "fit + predict wall time",
                                                     "units": "s"})
        res = res.assign_coords(baseline=("baseline", labels, {"long_name": "classical filter"}))
    res["var3d_B_scale"] = (("mode", "noise_std"), var3d_scale, {
        "long_name": "B_scale of Var3D, tuned on the validation split (the baseline's, and "
                     "the networks' with B_scale_source var3d)", "units": "1"})
    res = add_original_results(res, orig, draw_bg, clim_cycled, trainings, orig_baselines,
                               draw_var3d)
    res.attrs["config_json"] = config_json(**dataclasses.asdict(setup))
    summary = (summary_rows(res.analysis_rmse, "analysis RMSE", method="NeuralVar3D")
               + summary_rows(res.background_rmse, "background RMSE", method="NeuralVar3D")
               + summary_rows(res.wrong_wing_share, "wrong-wing share", method="NeuralVar3D")
               + summary_rows(res.single_analysis_rmse, "single-analysis RMSE",
                              method="NeuralVar3D")
               + summary_rows(res.single_background_rmse, "single-analysis background RMSE",
                              method="NeuralVar3D")
               + summary_rows(res.free_run_rmse, "analysis RMSE", method="free run (no DA)"))
    if "baseline_rmse" in res:
        summary += (summary_rows(res.baseline_rmse, "analysis RMSE", method_dim="baseline")
                    + summary_rows(res.baseline_wrong_wing_share, "wrong-wing share",
                                   method_dim="baseline"))
    summary += original_summary(res)
    from xdyn.experiments._neural_var_figures import neural_var_figures

    figures = neural_var_figures(res, examples, baseline_rows, test, free, setup)
    return ExperimentResult(res, figures, _format_table(res) + "\n\n" + original_table(res),
                            summary)


def _format_table(res: xr.Dataset) -> str:
    """Analysis RMSE (mean +- std over training seeds) per cell next to the classical filters."""
    lines = [f"{'mode':<5}{'noise':>6}  {'method':<36}{'analysis':>16}{'background':>16}"
             f"{'wrong wing':>11}{'wall [s]':>10}{'single an/bg':>16}", "-" * 110]
    for mode in res["mode"].values:
        for noise in res["noise_std"].values:
            cell = res.sel(mode=mode, noise_std=noise)
            for enc in res["encoder"].values:
                c = cell.sel(encoder=enc)
                a, b = c.analysis_rmse.values, c.background_rmse.values
                label = f"NeuralVar3D {enc} " + candidate_label(
                    c.seq_len, c.single_analysis_weight, str(c.cycle_loss.values),
                    str(c.B_scale_source.values))
                lines.append(
                    f"{mode:<5}{noise:>6}  {label:<36}"
                    f"{np.mean(a):>9.3f}±{np.std(a):<6.3f}"
                    f"{np.mean(b):>9.3f}±{np.std(b):<6.3f}"
                    f"{float(np.mean(c.wrong_wing_share)):>11.3f}"
                    f"{float(np.mean(c.wall_time)):>10.1f}"
                    f"{float(np.mean(c.single_analysis_rmse)):>9.3f}/"
                    f"{float(np.mean(c.single_background_rmse)):.3f}")
            if "baseline_rmse" in res:
                for lab in res["baseline"].values:
                    name = str(lab)
                    if name.startswith("Var3D") and "var3d_B_scale" in res:
                        name = f"Var3D (B_scale {float(cell.var3d_B_scale):g})"
                    lines.append(
                        f"{'':<11}  {name:<36}{float(cell.baseline_rmse.sel(baseline=lab)):>9.3f}"
                        f"{'':<23}{float(cell.baseline_wrong_wing_share.sel(baseline=lab)):>11.3f}"
                        f"{float(cell.baseline_wall_time.sel(baseline=lab)):>10.1f}")
    lines.append(f"free run from the prior mean (no assimilation): RMSE "
                 f"{float(res.free_run_rmse):.3f}; analysis/background: cycled (the background "
                 "is the method's own forecast); single an/bg: one analysis of a forecast of the "
                 "perturbed truth; NeuralVar3D: mean (±std) over training seeds, nan where a "
                 "seed diverged")
    return "\n".join(lines)


@register("lorenz63-neural-var",
          "Neural fixed-point 3D-Var (MLP/GRU/LSTM encoders) on Lorenz-63 observed as x, (x, y) "
          "or x^2 at four noise levels, against 3D-Var, ExtKF, EnKF and a particle filter",
          "Lorenc (1986); Fablet et al. (2021) JAMES 13; DAPPER Lorenz63 with observations "
          "every step",
          quick_wall_s=603)
def lorenz63_neural_var(quick=False, seed=0, device="cpu", progress=True):
    setup = NeuralVarSetup.quick() if quick else NeuralVarSetup()
    return neural_var_experiment(setup, seed=seed, device=device, progress=progress)
