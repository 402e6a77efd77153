"""Speed (and accuracy) benchmarks behind ``xdyn bench``, side by side with the
peers of the ``bench`` extra (DAPPER, KolSol) when they are installed.

Benchmarks measure wall time with :func:`time.perf_counter` after a warm-up
and report the peak resident memory of the process while each ran (one peak per
bench, not per row; since the process started where Linux cannot reset it);
they are not part of the test suite.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
import warnings

import numpy as np
import torch

from xdyn._threads import threads_for
from xdyn.experiments.catalogue import peak_memory_mb, reset_peak_memory

__all__ = ["bench_systems", "bench_da", "bench_forecast", "has_peer"]


def has_peer(name: str) -> bool:
    """True when the peer package ``name`` (``"dapper"``, ``"kolsol"``) is importable.

    Parameters
    ----------
    name : str
        Top-level import name of the package; it is looked up, not imported.

    Examples
    --------
    >>> has_peer("numpy"), has_peer("no_such_peer_package")
    (True, False)
    """
    return importlib.util.find_spec(name) is not None


def _rate(fn, n_steps, repeats=3):
    fn(max(1, n_steps // 10))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(n_steps)
        times.append(time.perf_counter() - t0)
    return n_steps / float(np.median(times))


def _paired_rates(ours, theirs, n_steps, rounds=3):
    """Medians of ``rounds`` alternating :func:`_rate` of each side (the machine may be
    shared: both sides see the same load); the peer's rate is None without ``theirs``."""
    pairs = [(_rate(ours, n_steps), None if theirs is None else _rate(theirs, n_steps))
             for _ in range(rounds)]
    rate_ours = float(np.median([p[0] for p in pairs]))
    return rate_ours, None if theirs is None else float(np.median([p[1] for p in pairs]))


def _peak_line(reset):
    """The peak memory line of a bench; ``reset``: what its first
    :func:`reset_peak_memory` returned."""
    since = "during this bench" if reset else "since it started"
    return f"peak memory {peak_memory_mb():.0f} MiB (process, {since})"


def _load_line():
    """The machine's load when the benchmark ran (a shared machine skews wall times)."""
    try:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load average unavailable"
    return f"load average (1, 5, 15 min) at the end: {load} on {os.cpu_count()} CPUs"


def _row(name, ours, peer=None):
    if peer is None:
        return f"{name:<44}{ours:>14,.0f}{'':>14}{'':>8}"
    return f"{name:<44}{ours:>14,.0f}{peer:>14,.0f}{ours / peer:>8.2f}"


def bench_systems(quick: bool = False) -> str:
    """Steps per second of the systems (and of the peers on the same work).

    Parameters
    ----------
    quick : bool, default False
        Fewer steps (seconds instead of a minute).

    Returns
    -------
    str
        The table ``xdyn bench systems`` prints; peer columns when the
        ``bench`` extra (DAPPER, KolSol) is installed.

    Examples
    --------
    A benchmark, not a test: it runs for seconds and its numbers depend on the
    machine (shown, not run):

    >>> print(bench_systems(quick=True))  # doctest: +SKIP
    work                                          xdyn steps/s  peer steps/s   ratio
    Lorenz-96 n=40, one state                           22,929         5,216    4.40
    Lorenz-96 n=40, 1000-member ensemble                 1,994           771    2.59
    ...
    """
    from xdyn.systems import Lorenz96

    reset = reset_peak_memory()
    n = 200 if quick else 2000
    lines = [f"{'work':<44}{'xdyn steps/s':>14}{'peer steps/s':>14}{'ratio':>8}"]
    dt = 0.05
    dapper_step = None
    if has_peer("dapper"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from dapper.mods.Lorenz96 import step as dapper_step  # noqa: N813
    for n_members, dtype, label in [(1, "float64", "Lorenz-96 n=40, one state"),
                                    (1000, "float64", "Lorenz-96 n=40, 1000-member ensemble"),
                                    (1000, "float32", "  same, float32 (DAPPER float64)")]:
        system = Lorenz96(dtype=dtype)
        x0 = system.random_initial_state(n_members, 0)
        xt = system.as_tensor(x0 if n_members > 1 else x0[0])

        def ours(k, xt=xt, system=system):
            with threads_for(xt.numel()), torch.no_grad():
                system.forecast(xt, dt, k)

        if dapper_step is not None:
            xn = x0 if n_members > 1 else x0[0]

            def theirs(k, xn=xn):
                x = xn
                for _ in range(k):
                    x = dapper_step(x, 0.0, dt)
        else:
            theirs = None

        steps = n if n_members == 1 else n // 4
        lines.append(_row(label, *_paired_rates(ours, theirs, steps)))
    lines.extend(_bench_kolmogorov(quick))
    lines.append(f"{_peak_line(reset)}; {_load_line()}")
    if dapper_step is None:
        lines.append("(install the bench extra for the DAPPER/KolSol columns)")
    return "\n".join(lines)


def _bench_kolmogorov(quick):
    try:
        from xdyn.systems import KolmogorovFlow
    except ImportError:
        return []
    from xdyn.bench_kolsol import kolsol_stepper

    out = []
    n = 20 if quick else 100
    for N in (64, 128):
        system = KolmogorovFlow(N=N)
        dt = 0.01
        x = system.as_tensor(system.random_initial_state(1, 0)[0])

        def ours(k, x=x, system=system):
            with torch.no_grad(), threads_for(x.numel()):
                system.forecast(x, dt, k)

        theirs = kolsol_stepper(N, dt) if has_peer("kolsol") else None  # numpy: one thread
        # timed as the Lorenz-96 rows: alternating, medians of three rates of each side
        out.append(_row(f"Kolmogorov flow {N}x{N}, Re=34, one state",
                        *_paired_rates(ours, theirs, n)))
    return out


# ----------------------------------------------------------------- DA
# What the timed regions of bench_da compute (its docstring says more), under the header
_WHAT_IS_TIMED = ["(timed: xdyn fit + predict (mean, spread, lost-track flags) and the RMSE,"
                  " after an untimed",
                  " warm-up; DAPPER assimilate with error_only=True: mean and error, not its"
                  " full per-cycle statistics)"]


@contextlib.contextmanager
def _dapper_error_only():
    """Within the block DAPPER computes only errors: ``rc.comps["error_only"] = True``.

    DAPPER's default per-cycle statistics (``Stats.assess`` at every forecast and
    analysis time: spread, CRPS, skewness, kurtosis, mean absolute deviation,
    Gaussian score, singular values, rank histogram) are most of its time on
    Lorenz-96; xdyn computes none of them but the spread. With ``error_only``,
    DAPPER 1.7's ``assess_ens`` / ``assess_ext`` keep only the mean and the error
    (mean minus truth), each with its field summaries (by default mean, RMS and
    mean absolute value): the spread is not computed, and ``avrgs.err.rms.a``
    (the RMSE the bench reports) is unchanged. The previous setting is restored
    on leaving, also after an exception.
    """
    from dapper.dpr_config import rc

    before = rc.comps["error_only"]
    rc.comps["error_only"] = True
    try:
        yield
    finally:
        rc.comps["error_only"] = before


def _warm_up(run, obs, truth, n_times=10):
    """Untimed ``run(obs, truth)`` on the first ``n_times`` times of both.

    It pays the one-off costs a timed run should not: the climatological pool
    the lost-track monitor builds once per system configuration, and torch's
    first calls of each operation.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(obs.isel(time=slice(0, n_times)), truth.isel(time=slice(0, n_times)))


def _dapper_setup(name, n_cycles):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name.startswith("lorenz96"):
            from dapper.mods.Lorenz96.sakov2008 import HMM
        else:
            from dapper.mods.Lorenz63.sakov2012 import HMM
    HMM = HMM.copy()
    HMM.tseq.Ko = n_cycles
    if name == "lorenz96-every4":
        # sakov2008 dynamics, every 4th site observed with noise 1 (the hard case)
        import dapper.mods as modelling
        from dapper.tools.localization import nd_Id_localization

        sites = np.arange(0, 40, 4)
        obs = modelling.partial_Id_Obs(40, sites)
        obs["noise"] = 1
        obs["localizer"] = nd_Id_localization((40,), (2,), sites)
        HMM = modelling.HiddenMarkovModel(HMM.Dyn, obs, HMM.tseq, HMM.X0)
    return HMM


# The bench setup names -> the published setups (xdyn.experiments.setups), whose tuning
# tables hold the methods, their parameters and their DAPPER equivalents
_SETUPS = {"lorenz96": "sakov2008", "lorenz96-every4": "sakov2008-every4",
           "lorenz63": "sakov2012"}

# rows benched per setup: (tuning label, start), where start "truth" gives xdyn DAPPER's
# initial distribution (centred on the truth's start, as its published benchmarks) and
# "climatology" the default start that needs no truth (DAPPER always starts from its
# own initial distribution)
_BENCH_ROWS = {
    "lorenz96-every4": [("LETKF-N N=40 r=8 xN=1.5", "climatology"),
                        ("EnKF-N N=60 (no tuning)", "climatology")],
    "lorenz96": [("3D-Var (B x 0.02)", "truth"),
                 ("EnKF sqrt N=28 infl 1.02 rot", "truth"),
                 ("EnKF sqrt N=28 infl 1.02 rot", "climatology"),
                 ("EnKF sqrt N=40 infl 1.01", "truth"),
                 ("EnKF-N N=40 (no inflation to tune)", "truth"),
                 ("EnKF-N N=40 (no inflation to tune)", "climatology"),
                 ("EnKF-N N=20 xN=2", "truth"),
                 ("DEnKF N=40 infl 1.01", "truth"),
                 ("LETKF N=40 infl 1.01 r=4", "truth"),
                 ("LETKF N=40 infl 1.01 r=4", "climatology")],
    "lorenz63": [("OI", "truth"),
                 ("3D-Var (B x 0.1)", "truth"),
                 ("ExtKF (infl 180)", "truth"),
                 ("EnKF sqrt N=10 infl 1.02 rot", "truth"),
                 ("EnKF sqrt N=10 infl 1.02 rot", "climatology"),
                 ("EnKF-N N=10 (no inflation to tune)", "truth"),
                 ("PF N=100 reg 2.4 NER 0.3", "truth"),
                 ("PF N=100 reg 2.4 NER 0.3", "climatology")],
}


def _configs(name):
    """Rows (label, xdyn method, xdyn params, (DAPPER method, DAPPER params), start)."""
    from xdyn.experiments.setups import get_setup

    setup = get_setup(_SETUPS[name])
    rows, previous = [], None
    for label, start in _BENCH_ROWS[name]:
        cfg = setup.methods([label])[0]
        # a row repeating the one above from the climatological start
        shown = "  same, climatological start" if label == previous else label
        rows.append((shown, cfg.method, dict(cfg.params),
                     (cfg.dapper[0], dict(cfg.dapper[1])), start))
        previous = label
    return rows


def _dapper_burn_in(tseq):
    """The ``burn_in`` with which xdyn's scores average DAPPER's set of analysis times.

    DAPPER averages the analyses at ``tseq.tto > tseq.BurnIn`` (``tseq.masko``);
    :func:`~xdyn.metrics.mean_after_burn_in` keeps ``time >= time.min() + burn_in``,
    which would also score an observation exactly at ``BurnIn``. Half an
    observation interval before DAPPER's first scored time keeps the same times.
    The estimator's ``burn_in`` only scores: the filter runs the same.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> tto = np.arange(1, 9) * 0.5
    >>> tseq = SimpleNamespace(tt=np.arange(9) * 0.5, tto=tto, dto=0.5, masko=tto > 2.0)
    >>> _dapper_burn_in(tseq)  # scores 2.5, 3.0, ... (2.0 is DAPPER's burn-in, not scored)
    2.25
    """
    scored = np.asarray(tseq.tto)[np.asarray(tseq.masko)]
    if scored.size == 0:
        raise ValueError(f"DAPPER scores no analysis time after BurnIn={tseq.BurnIn}: "
                         "lengthen the run")
    return float(scored[0]) - 0.5 * float(tseq.dto) - float(tseq.tt[0])


def _as_datasets(HMM, xx, yy, system, operator=None):
    import xarray as xr

    from xdyn.observe import Identity

    tseq = HMM.tseq
    truth = system.from_state(xx, dims=("time",), coords={"time": tseq.tt})
    y = np.stack([np.asarray(v, dtype=float) for v in yy])
    # DAPPER draws its initial ensemble at t=0, one observation interval before the
    # first observation: an all-missing observation at t=0 puts ours there too
    y = np.concatenate([np.full((1, y.shape[1]), np.nan), y])
    op = Identity() if operator is None else operator
    coords = op.obs_coords(system)
    coords["time"] = np.concatenate([[tseq.tt[0]], tseq.tto])
    std = float(np.sqrt(HMM.Obs(0).noise.C.diag[0]))
    obs = xr.Dataset({"observation": (("time", "obs"), y),
                      "noise_std": ("obs", np.full(y.shape[1], std))}, coords=coords)
    obs.attrs.update(system.describe())
    obs.attrs.update({"operator": op.spec(), "dt": tseq.dt})
    return truth, obs


def bench_da(quick: bool = False, setups=("lorenz96", "lorenz96-every4", "lorenz63"),
             n_repeats: int = 4) -> str:
    """Analysis RMSE and wall time of xdyn and DAPPER on DAPPER's own truth and observations.

    DAPPER's random numbers come from its own generator, seeded per setup and per
    filter seed (``dapper.tools.seeding.set_seed``); no global numpy seed is set.

    The timed regions compute comparable things. xdyn: ``fit().predict()``
    (per analysis time the mean, the ensemble's standard deviation and spread
    where it has one, the lost-track flags) and the analysis RMSE. DAPPER:
    ``assimilate`` with ``rc.comps["error_only"] = True``, which keeps only the
    mean and the error (mean minus truth) with their field summaries, not its
    default full per-cycle statistics (spread, CRPS, skewness, kurtosis, rank
    histogram, singular values; xdyn computes only the spread of these); the
    setting is restored afterwards. Each row's xdyn filter first runs once, untimed, on
    the first 10 observation times (the lost-track monitor's climatological
    pool, torch's first calls); DAPPER has no such one-off cost.

    Parameters
    ----------
    quick : bool, default False
        Fewer cycles (1000 on Lorenz-96, 300 on Lorenz-63, instead of 5000 and 1000).
    setups : sequence of str, default ("lorenz96", "lorenz96-every4", "lorenz63")
        DAPPER's sakov2008 Lorenz-96 (every site observed, or every fourth) and
        sakov2012 Lorenz-63 setups.
    n_repeats : int, default 4
        Filter seeds averaged on Lorenz-63 (one on Lorenz-96).

    Returns
    -------
    str
        The table ``xdyn bench da`` prints (a hint to install the ``bench``
        extra when DAPPER is missing).

    Examples
    --------
    A benchmark, not a test: it runs for tens of seconds (shown, not run):

    >>> print(bench_da(quick=True, setups=("lorenz63",), n_repeats=1))  # doctest: +SKIP
    setup / method                             xdyn RMSE   DAPPER   xdyn s  DAPPER s  speed-up  lost
    ...
    lorenz63 (300 cycles, burn-in 16.0 time units)
      OI                                           1.243    1.242     0.71      1.08      1.53     0
    ...
    """
    from sklearn.base import clone

    from xdyn.assimilation import analysis_rmse, make_assimilator
    from xdyn.experiments.setups import get_setup
    from xdyn.observe import make_operator

    if not has_peer("dapper"):
        return ("xdyn bench da compares with DAPPER: install the bench extra "
                "(pip install -e '.[bench]')")
    import dapper.da_methods as da
    import dapper.tools.progressbar as dapper_progress
    from dapper.tools.seeding import set_seed

    dapper_progress.disable_progbar = True  # keep the comparison table readable

    reset = reset_peak_memory()
    lines = [f"{'setup / method':<42}{'xdyn RMSE':>10}{'DAPPER':>9}{'xdyn s':>9}{'DAPPER s':>10}"
             f"{'speed-up':>10}{'lost':>6}",
             *_WHAT_IS_TIMED,
             "(RMSE of both: the analysis times after the burn-in, as DAPPER averages them)",
             "(DAPPER starts from its initial distribution, centred on the truth's start; xdyn"
             " too, except in the 'climatological start' rows)"]
    for name in setups:
        n_cycles = {"lorenz96": 1000 if quick else 5000, "lorenz96-every4": 1000 if quick else 5000,
                    "lorenz63": 300 if quick else 1000}[name]
        HMM = _dapper_setup(name, n_cycles)
        setup = get_setup(_SETUPS[name])
        system = setup.make_system()
        operator = make_operator(setup.operator)
        set_seed(3000)  # the truth and observations of this setup
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xx, yy = HMM.simulate()
        truth, obs = _as_datasets(HMM, xx, yy, system, operator)
        burn = _dapper_burn_in(HMM.tseq)  # both sides score the times after BurnIn
        lines.append(f"{name} ({HMM.tseq.Ko} cycles, burn-in {HMM.tseq.BurnIn} time units)")
        # Lorenz-63 filters with 10 members or particles are noisy from one seed to the
        # next: average a few filter seeds there
        repeats = 1 if name.startswith("lorenz96") else n_repeats
        for label, method, params, (dname, dparams), start in _configs(name):
            if start == "climatology" and "climatological" not in label:
                label += " [clim. start]"
            ours, theirs, lost, t_ours, t_dapper = [], [], 0, 0.0, 0.0
            for seed in range(1, repeats + 1):
                first = {} if start == "climatology" else {
                    "initial_state": HMM.X0.mu, "initial_spread": float(np.sqrt(HMM.X0.C.diag[0]))}
                est = make_assimilator(method, system=system, burn_in=burn, random_state=seed,
                                       raise_on_divergence=False, **first, **params)
                if hasattr(est, "return_ensemble"):
                    est.set_params(return_ensemble=False)
                if seed == 1:  # untimed, once per row, on a copy: see _warm_up
                    warm = clone(est)
                    with contextlib.suppress(Exception):  # the timed run reports an error
                        _warm_up(lambda o, t: warm.fit(o, t).predict(o), obs, truth)
                t0 = time.perf_counter()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # a lost filter is counted below
                        an = est.fit(obs, truth).predict(obs)
                    ours.append(analysis_rmse(an, truth, burn_in=burn))
                    lost += int("lost" in an and bool(an["lost"].any()))
                except Exception as err:  # an error is a result here
                    ours.append(float("nan"))
                    label += f" [{type(err).__name__}]"
                t_ours += time.perf_counter() - t0
                xp = getattr(da, dname)(**dparams)
                set_seed(seed)
                t0 = time.perf_counter()
                with warnings.catch_warnings(), _dapper_error_only():
                    warnings.simplefilter("ignore")
                    xp.assimilate(HMM, xx, yy, liveplots=False)
                t_dapper += time.perf_counter() - t0
                xp.stats.average_in_time()
                theirs.append(float(xp.avrgs.err.rms.a.val))
            lines.append(f"  {label:<40}{np.mean(ours):>10.3f}{np.mean(theirs):>9.3f}"
                         f"{t_ours / repeats:>9.2f}{t_dapper / repeats:>10.2f}"
                         f"{t_dapper / t_ours:>10.2f}{lost:>6d}")
        if repeats > 1:
            lines.append(f"  (RMSE and wall time averaged over {repeats} filter seeds; "
                         "'lost': runs flagged as lost)")
    lines.append(f"{_peak_line(reset)}; {_load_line()}")
    return "\n".join(lines)


def bench_forecast(quick: bool = False) -> str:
    """Training throughput of VGB-DM (simulation-free) next to simulation-based peers.

    Two comparisons on the same data and vector-field width each: VGB-DM
    against the neural ODE on damped-pendulum trajectories, and VGB-DM's
    transport model of gridded weather (:class:`~xdyn.forecast.TransportVGBDM`)
    against ClimODE on xdyn's WeatherBench-format test set (5 fields on
    32 x 64). A *sample* is one consecutive-state transition the loss sees
    (VGB-DM: ``n_pairs`` per trajectory per epoch, here as many as the
    trajectory has, or one per training window; the neural ODE:
    ``window - 1`` per integrated window; ClimODE: ``n_steps`` per start), as
    the fitted model counts it (the windows and starts: the items its last
    epoch trained on). Wall time of ``fit`` after a one-epoch warm-up.

    Parameters
    ----------
    quick : bool, default False
        Smaller data and fewer epochs (32 pendulum trajectories of 40 times and 8 days
        of weather, 3 epochs, instead of 256 of 100 times and 30 days, 5 epochs).

    Returns
    -------
    str
        The table, one line per model, and the machine's load.

    Examples
    --------
    A benchmark, not a test: it runs for tens of seconds (shown, not run):

    >>> print(bench_forecast(quick=True))  # doctest: +SKIP
    """
    import tempfile

    from xdyn.datasets import load_weatherbench
    from xdyn.experiments._era5_data import write_weatherbench_test_set
    from xdyn.forecast import VGBDM, NeuralODE
    from xdyn.systems import DampedPendulum

    reset = reset_peak_memory()
    n_traj, n_times, epochs = (32, 40, 3) if quick else (256, 100, 5)
    ds = DampedPendulum().simulate(
        n_trajectories=n_traj, t_span=(n_times - 1) * 0.1, dt=0.02, save_every=5,
        random_state=0, parameter_ranges={"omega0": (1.0, 2.5), "damping": (0.6, 1.5)})
    models = {
        "VGB-DM (flow matching)": (lambda e: VGBDM(
            "pendulum", z_dim=2, len_episode=20, hidden=64, batch_size=32, max_epochs=e,
            n_pairs=n_times - 1, device="cpu", random_state=0), _pairs),
        "neural ODE (RK4, window 10)": (lambda e: NeuralODE(
            hidden=64, window=10, batch_size=32, max_epochs=e, device="cpu",
            random_state=0), _pairs),
    }
    lines = [f"forecast training throughput: damped pendulum, {n_traj} trajectories x "
             f"{n_times} times, {epochs} epochs, CPU"]
    lines += _throughput_lines(models, ds, epochs)
    days = 8 if quick else 30
    variables = ["z500", "t850", "t2m", "u10", "v10"]
    with tempfile.TemporaryDirectory() as root:
        write_weatherbench_test_set(root, years=(2016,), days=days, variables=variables)
        grid = load_weatherbench(variables, root=root).load()
    lines.append(f"gridded weather: xdyn's WeatherBench-format test set, 5 fields on 32 x 64, "
                 f"{grid.sizes['time']} 6-hourly times, {epochs} epochs, CPU")
    lines += _throughput_lines(_weather_models(), grid, epochs)
    lines += [_peak_line(reset), _load_line()]
    return "\n".join(lines)


def _trained_items(model):
    """The items (windows, starts) the last epoch of ``model``'s fit trained on: the sizes
    of its batches, which skorch records."""
    return int(sum(model.net_.history[-1, "batches", :, "train_batch_size"]))


def _weather_models():
    """The gridded-weather rows: ``name -> (make(epochs), samples per epoch of the fitted
    model)``; a TransportVGBDM window (``len_episode`` + 2 samples with the cubic
    interpolant) is one sample, a ClimODE start ``n_steps``."""
    from xdyn.forecast import ClimODE, TransportVGBDM

    return {
        "VGB-DM transport (flow match.)": (lambda e: TransportVGBDM(
            hidden=32, z_dim=4, len_episode=4, batch_size=16, max_epochs=e, device="cpu",
            random_state=0), _trained_items),
        "ClimODE (RK4, 2 steps)": (lambda e: ClimODE(
            hidden=32, n_steps=2, batch_size=16, max_epochs=e, step_size=0.5, device="cpu",
            random_state=0), lambda model: model.n_steps * _trained_items(model)),
    }


def _pairs(model):
    """The pendulum models' samples per epoch: their own count of transitions."""
    return model.n_train_pairs_


def _throughput_lines(models, data, epochs):
    """Table rows of samples per second of each ``(make(epochs), count)``, where
    ``count(fitted model)`` is its samples per epoch, and the first's speed-up over the
    second."""
    lines = [f"{'method':<32}{'samples/epoch':>14}{'samples/s':>12}"]
    rates = {}
    for name, (make, count) in models.items():
        make(1).fit(data)  # warm-up (imports, allocator)
        t0 = time.perf_counter()
        model = make(epochs).fit(data)
        elapsed = time.perf_counter() - t0
        per_epoch = count(model)
        rates[name] = per_epoch * epochs / elapsed
        lines.append(f"{name:<32}{per_epoch:>14,d}{rates[name]:>12,.0f}")
    simulation_free, simulated = rates.values()
    lines.append(f"simulation-free speed-up per sample: {simulation_free / simulated:.1f}x "
                 "(target >= 3x)")
    return lines
