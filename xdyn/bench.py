"""Speed (and accuracy) benchmarks behind ``xdyn bench``, side by side with the
peers of the ``bench`` extra (DAPPER, KolSol) when they are installed.

Benchmarks measure wall time with :func:`time.perf_counter` after a warm-up
and report peak memory; they are not part of the test suite.
"""

from __future__ import annotations

import importlib.util
import time
import warnings

import numpy as np
import torch

from xdyn._threads import threads_for
from xdyn.experiments.catalogue import peak_memory_mb

__all__ = ["bench_systems", "bench_da", "has_peer"]


def has_peer(name: str) -> bool:
    """True when the peer package ``name`` (``"dapper"``, ``"kolsol"``) is importable."""
    return importlib.util.find_spec(name) is not None


def _rate(fn, n_steps, repeats=3):
    fn(max(1, n_steps // 10))  # warm-up
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(n_steps)
        best = min(best, time.perf_counter() - t0)
    return n_steps / best


def _row(name, ours, peer=None):
    if peer is None:
        return f"{name:<44}{ours:>14,.0f}{'':>14}{'':>8}"
    return f"{name:<44}{ours:>14,.0f}{peer:>14,.0f}{ours / peer:>8.2f}"


def bench_systems(quick: bool = False) -> str:
    """Steps per second of the systems (and of the peers on the same work)."""
    from xdyn.systems import Lorenz96

    n = 200 if quick else 2000
    lines = [f"{'work':<44}{'xdyn steps/s':>14}{'peer steps/s':>14}{'ratio':>8}"]
    system = Lorenz96()
    dt = 0.05
    dapper_step = None
    if has_peer("dapper"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from dapper.mods.Lorenz96 import step as dapper_step  # noqa: N813
    for n_members, label in [(1, "Lorenz-96 n=40, one state"),
                             (1000, "Lorenz-96 n=40, 1000-member ensemble")]:
        x0 = system.random_initial_state(n_members, 0)
        xt = system.as_tensor(x0 if n_members > 1 else x0[0])

        def ours(k, xt=xt):
            with threads_for(xt.numel()), torch.no_grad():
                system.forecast(xt, dt, k)

        peer = None
        if dapper_step is not None:
            xn = x0 if n_members > 1 else x0[0]

            def theirs(k, xn=xn):
                x = xn
                for _ in range(k):
                    x = dapper_step(x, 0.0, dt)

            peer = _rate(theirs, n if n_members == 1 else n // 4)
        lines.append(_row(label, _rate(ours, n if n_members == 1 else n // 4), peer))
    lines.extend(_bench_kolmogorov(quick))
    lines.append(f"peak memory {peak_memory_mb():.0f} MiB")
    if dapper_step is None:
        lines.append("(install the bench extra for the DAPPER/KolSol columns)")
    return "\n".join(lines)


def _bench_kolmogorov(quick):
    try:
        from xdyn.systems import KolmogorovFlow
    except ImportError:
        return []
    from xdyn.bench_kolsol import kolsol_rate

    out = []
    n = 20 if quick else 100
    for N in (64, 128):
        system = KolmogorovFlow(N=N)
        dt = 0.01
        x = system.as_tensor(system.random_initial_state(1, 0)[0])

        def ours(k, x=x, system=system):
            with torch.no_grad(), threads_for(x.numel()):
                system.forecast(x, dt, k)

        peer = None
        if has_peer("kolsol"):
            with threads_for(x.numel()):
                peer = kolsol_rate(N, dt, n)
        out.append(_row(f"Kolmogorov flow {N}x{N}, Re=34, one state", _rate(ours, n), peer))
    return out


# ----------------------------------------------------------------- DA
def _dapper_setup(name, n_cycles):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "lorenz96":
            from dapper.mods.Lorenz96.sakov2008 import HMM
        else:
            from dapper.mods.Lorenz63.sakov2012 import HMM
    HMM = HMM.copy()
    HMM.tseq.Ko = n_cycles
    return HMM


def _configs(name):
    if name == "lorenz96":
        return [
            ("3D-Var (B x 0.02)", "3dvar", {"B_scale": 0.02}, ("Var3D", {"xB": 0.02})),
            ("EnKF sqrt N=28 infl 1.02 rot", "enkf",
             {"kind": "sqrt", "n_members": 28, "inflation": 1.02, "rotate": True},
             ("EnKF", {"upd_a": "Sqrt", "N": 28, "infl": 1.02, "rot": True})),
            ("EnKF sqrt N=40 infl 1.01", "enkf", {"kind": "sqrt", "n_members": 40, "inflation": 1.01},
             ("EnKF", {"upd_a": "Sqrt", "N": 40, "infl": 1.01})),
            ("DEnKF N=40 infl 1.01", "enkf", {"kind": "denkf", "n_members": 40, "inflation": 1.01},
             ("EnKF", {"upd_a": "DEnKF", "N": 40, "infl": 1.01})),
            ("LETKF N=40 infl 1.01 r=4", "letkf",
             {"n_members": 40, "inflation": 1.01, "localization_radius": 4.0},
             ("LETKF", {"N": 40, "infl": 1.01, "loc_rad": 4})),
        ]
    return [
        ("OI", "oi", {}, ("OptInterp", {})),
        ("3D-Var (B x 0.1)", "3dvar", {"B_scale": 0.1}, ("Var3D", {"xB": 0.1})),
        ("ExtKF (infl 180)", "extkf", {"inflation": 180.0}, ("ExtKF", {"infl": 180})),
        ("EnKF sqrt N=10 infl 1.02 rot", "enkf",
         {"kind": "sqrt", "n_members": 10, "inflation": 1.02, "rotate": True},
         ("EnKF", {"upd_a": "Sqrt", "N": 10, "infl": 1.02, "rot": True})),
        ("PF N=100 reg 2.4 NER 0.3", "pf",
         {"n_members": 100, "regularization": 2.4, "resampling_threshold": 0.3},
         ("PartFilt", {"N": 100, "reg": 2.4, "NER": 0.3})),
    ]


def _as_datasets(HMM, xx, yy, system):
    import xarray as xr

    from xdyn.observe import Identity

    tseq = HMM.tseq
    truth = system.from_state(xx, dims=("time",), coords={"time": tseq.tt})
    y = np.stack([np.asarray(v, dtype=float) for v in yy])
    # DAPPER draws its initial ensemble at t=0, one observation interval before the
    # first observation: an all-missing observation at t=0 puts ours there too
    y = np.concatenate([np.full((1, y.shape[1]), np.nan), y])
    op = Identity()
    coords = op.obs_coords(system)
    coords["time"] = np.concatenate([[tseq.tt[0]], tseq.tto])
    std = float(np.sqrt(HMM.Obs(0).noise.C.diag[0]))
    obs = xr.Dataset({"observation": (("time", "obs"), y),
                      "noise_std": ("obs", np.full(y.shape[1], std))}, coords=coords)
    obs.attrs.update(system.describe())
    obs.attrs.update({"operator": op.spec(), "dt": tseq.dt})
    return truth, obs


def bench_da(quick: bool = False, setups=("lorenz96", "lorenz63"), n_repeats: int = 4) -> str:
    """Analysis RMSE and wall time of xdyn and DAPPER on DAPPER's own truth and observations."""
    from xdyn.assimilation import analysis_rmse, make_assimilator
    from xdyn.systems import Lorenz63, Lorenz96

    if not has_peer("dapper"):
        return "xdyn bench da compares with DAPPER: install the bench extra (pip install -e '.[bench]')"
    import dapper.da_methods as da
    import dapper.tools.progressbar as dapper_progress

    dapper_progress.disable_progbar = True  # keep the comparison table readable

    lines = [f"{'setup / method':<42}{'xdyn RMSE':>10}{'DAPPER':>9}{'xdyn s':>9}{'DAPPER s':>10}{'speed-up':>10}"]
    for name in setups:
        n_cycles = {"lorenz96": 1000 if quick else 5000, "lorenz63": 300 if quick else 1000}[name]
        HMM = _dapper_setup(name, n_cycles)
        system = Lorenz96() if name == "lorenz96" else Lorenz63()
        np.random.seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xx, yy = HMM.simulate()
        truth, obs = _as_datasets(HMM, xx, yy, system)
        burn = float(HMM.tseq.BurnIn)
        lines.append(f"{name} ({HMM.tseq.Ko} cycles, burn-in {HMM.tseq.BurnIn} time units)")
        # Lorenz-63 filters with 10 members or particles are noisy from one seed to the
        # next: average a few filter seeds (same truth) on both sides there
        repeats = 1 if name == "lorenz96" else n_repeats
        for label, method, params, (dname, dparams) in _configs(name):
            ours, theirs, t_ours, t_dapper = [], [], 0.0, 0.0
            for seed in range(1, repeats + 1):
                est = make_assimilator(method, system=system, initial_state=HMM.X0.mu,
                                       initial_spread=float(np.sqrt(HMM.X0.C.diag[0])),
                                       burn_in=burn, random_state=seed, **params)
                if hasattr(est, "return_ensemble"):
                    est.set_params(return_ensemble=False)
                t0 = time.perf_counter()
                try:
                    an = est.fit(obs, truth).predict(obs)
                    ours.append(analysis_rmse(an, truth, burn_in=burn))
                except Exception as err:  # DivergenceError is a result here
                    ours.append(float("nan"))
                    label += f" [{type(err).__name__}]"
                t_ours += time.perf_counter() - t0
                xp = getattr(da, dname)(**dparams)
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    xp.assimilate(HMM, xx, yy, liveplots=False)
                t_dapper += time.perf_counter() - t0
                xp.stats.average_in_time()
                theirs.append(float(xp.avrgs.err.rms.a.val))
            lines.append(f"  {label:<40}{np.mean(ours):>10.3f}{np.mean(theirs):>9.3f}"
                         f"{t_ours / repeats:>9.2f}{t_dapper / repeats:>10.2f}"
                         f"{t_dapper / t_ours:>10.2f}")
        if repeats > 1:
            lines.append(f"  (RMSE and wall time averaged over {repeats} filter seeds)")
    lines.append(f"peak memory {peak_memory_mb():.0f} MiB")
    return "\n".join(lines)
