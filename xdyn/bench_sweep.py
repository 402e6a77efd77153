"""The sweep row of ``xdyn bench da``: many twin experiments in one batched call vs DAPPER's loop.

64 Lorenz-96 EnKF experiments (Sakov & Oke 2008: 8 truths x 8 inflation
factors, square-root EnKF N=28 with random rotation) run by
:func:`xdyn.experiments.sweep` in one batched call, next to DAPPER running the
same 64 configurations one after the other on the same truths and
observations. DAPPER is imported only here, inside the function.

Timed: xdyn's sweep, which returns the analysis RMSE of each experiment, after
an untimed warm-up; DAPPER's loop with ``rc.comps["error_only"] = True`` (its
mean and error per forecast and analysis time, then its time-averaged RMSE),
not its default full per-cycle statistics, which xdyn does not compute. Both
average the analysis times after DAPPER's burn-in (``tto > BurnIn``). The
rows end with the process's peak memory during the sweep rows.
"""

from __future__ import annotations

import contextlib
import time
import warnings

import numpy as np

__all__ = ["bench_sweep"]

LABEL = "EnKF sqrt N=28 infl 1.02 rot"


def bench_sweep(quick: bool = False, n_seeds: int = 8,
                inflations=(1.0, 1.01, 1.02, 1.03, 1.04, 1.06, 1.08, 1.1), client=None) -> list:
    """Rows comparing a 64-experiment xdyn sweep with DAPPER's loop over the same experiments.

    Parameters
    ----------
    quick : bool, default False
        300 cycles per experiment instead of 1000.
    n_seeds : int, default 8
        Truths (DAPPER seeds 3000 + i), each with its own observations.
    inflations : sequence of float
        Inflation factors of the sweep (8 by default: 64 experiments).
    client : distributed.Client, optional
        Run the sweep's chunks on this client (one chunk per worker thread).

    Returns
    -------
    list of str
        The table rows ``xdyn bench da`` prints.

    Examples
    --------
    A benchmark, not a test: it runs for minutes (shown, not run):

    >>> print("\\n".join(bench_sweep(quick=True)))  # doctest: +SKIP
    sweep: 64 Lorenz-96 EnKF experiments (8 truths x 8 inflations, 300 cycles)
    ...
    """
    import xarray as xr

    from xdyn.assimilation import make_assimilator
    from xdyn.bench import (_as_datasets, _dapper_burn_in, _dapper_error_only, _dapper_setup,
                            _load_line, _peak_line, _warm_up)
    from xdyn.experiments import sweep
    from xdyn.experiments.catalogue import reset_peak_memory
    from xdyn.experiments.setups import get_setup

    import dapper.da_methods as da
    import dapper.tools.progressbar as dapper_progress
    from dapper.tools.seeding import set_seed

    dapper_progress.disable_progbar = True
    reset = reset_peak_memory()
    n_cycles = 300 if quick else 1000
    HMM = _dapper_setup("lorenz96", n_cycles)
    setup = get_setup("sakov2008")
    cfg = setup.methods([LABEL])[0]
    system = setup.make_system()
    twins = []
    for i in range(n_seeds):
        set_seed(3000 + i)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xx, yy = HMM.simulate()
        twins.append((xx, yy, *_as_datasets(HMM, xx, yy, system)))
    truth = xr.concat([t[2] for t in twins], "trajectory")
    obs = xr.concat([t[3].drop_vars("noise_std") for t in twins], "trajectory")
    obs["noise_std"] = twins[0][3]["noise_std"]
    burn = _dapper_burn_in(HMM.tseq)  # the times DAPPER's averages keep
    params = {k: v for k, v in cfg.params.items() if k != "inflation"}
    est = make_assimilator(cfg.method, system=system, burn_in=burn, random_state=1,
                           raise_on_divergence=False, initial_state=HMM.X0.mu,
                           initial_spread=float(np.sqrt(HMM.X0.C.diag[0])), **params)
    batch = None
    if client is not None:
        batch = max(1, n_seeds * len(inflations) // max(1, sum(client.nthreads().values())))

    def run(o, t):
        return sweep(est, o, t, inflation=list(inflations), batch_size=batch, client=client)

    def run_ours():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lost filters are counted in the scores
            scores = run(obs, truth)
        return scores, time.perf_counter() - t0

    # an untimed warm-up (xdyn.bench._warm_up), then xdyn timed before and after DAPPER's
    # loop: the machine may be shared. Its few times lie within the burn-in, which leaves
    # none to score (mean_after_burn_in raises): the run, not its score, is the warm-up
    with contextlib.suppress(ValueError):
        _warm_up(run, obs, truth)
    ours, t_before = run_ours()
    dname, dparams = cfg.dapper
    theirs = np.full((len(inflations), n_seeds), np.nan)
    t0 = time.perf_counter()
    # DAPPER computes only its errors (xdyn.bench._dapper_error_only), not its default
    # full per-cycle statistics, which xdyn's sweep does not compute either
    with _dapper_error_only():
        for j, (xx, yy, *_rest) in enumerate(twins):
            for i, infl in enumerate(inflations):
                xp = getattr(da, dname)(**{**dparams, "infl": infl})
                set_seed(j + 1)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    xp.assimilate(HMM, xx, yy, liveplots=False)
                xp.stats.average_in_time()
                theirs[i, j] = float(xp.avrgs.err.rms.a.val)
    t_dapper = time.perf_counter() - t0
    t_ours = 0.5 * (t_before + run_ours()[1])
    n = n_seeds * len(inflations)
    # skipna=False: an inflation that diverged on one truth is not best (DAPPER's NaN
    # propagates through its mean too)
    ours_mean = ours.mean("trajectory", skipna=False)
    best_ours = float(ours_mean.min())
    best_theirs = float(np.nanmin(theirs.mean(1)))
    where = "one batched call" if client is None else f"chunks of {batch} on the client"
    return [f"sweep: {n} Lorenz-96 EnKF experiments ({n_seeds} truths x {len(inflations)} "
            f"inflations, {n_cycles} cycles; xdyn: {where}; DAPPER: a loop, error_only)",
            f"  {'best mean RMSE (xdyn, DAPPER), wall s':<40}{best_ours:>10.3f}{best_theirs:>9.3f}"
            f"{t_ours:>9.2f}{t_dapper:>10.2f}{t_dapper / t_ours:>10.2f}",
            f"  (best inflation xdyn {float(ours_mean.idxmin('inflation')):.2f}, "
            f"DAPPER {inflations[int(np.nanargmin(theirs.mean(1)))]:.2f}; {_load_line()})",
            f"  ({_peak_line(reset)})"]
