"""Figures of ``lorenz63-neural-var``: attractor and components, error in time,
worst cases, a score overview and an animation of the attractor."""

from __future__ import annotations

import numpy as np

from xdyn.assimilation.base import state_rmse

__all__ = ["neural_var_figures", "attractor_animation"]

_VARS = ("x", "y", "z")


def _pick(examples, res):
    """The cell shown in the panels: the best encoder on (x, y) at the noise nearest 0.5."""
    modes = list(res["mode"].values)
    mode = "xy" if "xy" in modes else modes[0]
    noise = float(res["noise_std"].values[np.argmin(np.abs(res["noise_std"].values - 0.5))])
    cell = res.analysis_rmse.sel(mode=mode, noise_std=noise).mean("training_seed")
    best = int(np.nanargmin(cell.values)) if np.isfinite(cell.values).any() else 0
    enc = str(cell["encoder"].values[best])
    return enc, mode, noise, examples[(enc, mode, noise)]


def background_of(an):
    """The background state (``x_background`` ... renamed ``x`` ...) of an analysis."""
    return an[[f"{v}_background" for v in _VARS]].rename({f"{v}_background": v for v in _VARS})


def neural_var_figures(res, examples, baselines, test, free, setup):
    """Every figure of the experiment, by name (an Animation for the GIF)."""
    import matplotlib.pyplot as plt

    figs = {}
    if not examples:
        return figs
    enc, mode, noise, an = _pick(examples, res)
    title = f"NeuralVar3D {enc}, observing {mode}, noise {noise}"
    err = state_rmse(an, test, keep_dims=("trajectory",))
    j = int(err.mean("time").argsort().values[len(err.trajectory) // 2])  # a typical trajectory
    tr, a, b = (d.isel(trajectory=j) for d in (test, an, background_of(an)))

    fig = plt.figure(figsize=(13, 7.5))
    for i, (ds, name) in enumerate(((tr, "truth"), (b, "background (forecast)"), (a, "analysis"))):
        ax = fig.add_subplot(2, 3, i + 1, projection="3d")
        ax.plot(ds.x, ds.y, ds.z, lw=0.8, color=("k", "tab:orange", "tab:blue")[i])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_zlabel("z")
    for i, v in enumerate(_VARS):
        ax = fig.add_subplot(2, 3, 4 + i)
        ax.plot(tr.time, tr[v], "k", lw=1.2, label="truth")
        ax.plot(b.time, b[v], color="tab:orange", lw=0.8, label="background")
        ax.plot(a.time, a[v], color="tab:blue", lw=0.8, ls="--", label="analysis")
        ax.plot(free.time, free[v].isel(trajectory=j), color="0.6", lw=0.7, label="free run")
        ax.set_xlabel("model time")
        ax.set_ylabel(v)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"{title}: test trajectory {j}")
    fig.tight_layout()
    figs["attractor_and_components"] = fig

    fig, ax = plt.subplots(figsize=(8, 4))
    t = err["time"]
    for e in res["encoder"].values:
        if (str(e), mode, noise) in examples:
            ax.plot(t, state_rmse(examples[(str(e), mode, noise)], test), lw=1, label=f"NeuralVar3D {e}")
    ax.plot(t, state_rmse(background_of(an), test), color="tab:orange", lw=1, ls=":",
            label=f"background of {enc}")
    for label, row in baselines.get((mode, noise), {}).items():
        if "analysis_ds" in row:
            ax.plot(t, state_rmse(row["analysis_ds"], test), lw=0.8, ls="--", label=label)
    ax.plot(t, state_rmse(free, test), color="0.6", lw=0.8, label="free run (no DA)")
    ax.set_yscale("log")
    ax.set_xlabel("model time")
    ax.set_ylabel("RMSE over test trajectories")
    ax.set_title(f"error through time, observing {mode}, noise {noise}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    figs["error_in_time"] = fig

    worst = err.mean("time").argsort().values[::-1][:4]
    fig, axes = plt.subplots(len(worst), 1, figsize=(9, 2 * len(worst)), sharex=True, squeeze=False)
    for ax, jj in zip(axes[:, 0], worst):
        ax.plot(test.time, test.x.isel(trajectory=jj), "k", lw=1.1, label="truth x")
        ax.plot(an.time, an.x.isel(trajectory=jj), color="tab:blue", lw=0.9, label="analysis x")
        ax.plot(an.time, an.z.isel(trajectory=jj), color="tab:green", lw=0.8, label="analysis z")
        ax.plot(test.time, test.z.isel(trajectory=jj), color="tab:green", lw=0.8, ls=":",
                label="truth z")
        ax.set_ylabel(f"traj {int(jj)}\nRMSE {float(err.isel(trajectory=jj).mean()):.2f}", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].set_xlabel("model time")
    fig.suptitle(f"worst test trajectories, {title}")
    fig.tight_layout()
    figs["worst_cases"] = fig

    fig, axes = plt.subplots(1, len(res["mode"]), figsize=(4 * len(res["mode"]), 3.5), squeeze=False)
    for ax, m in zip(axes[0], res["mode"].values):
        cell = res.sel(mode=m, noise_std=noise)
        names = [f"NV {e}" for e in cell["encoder"].values]
        vals = [float(cell.analysis_rmse.sel(encoder=e).mean()) for e in cell["encoder"].values]
        errs = [float(cell.analysis_rmse.sel(encoder=e).std()) for e in cell["encoder"].values]
        if "baseline_rmse" in cell:
            names += [str(b).split(" ")[0] for b in cell["baseline"].values]
            vals += [float(v) for v in cell.baseline_rmse.values]
            errs += [0.0] * cell.sizes["baseline"]
        ax.bar(range(len(vals)), vals, yerr=errs, color=["tab:blue"] * cell.sizes["encoder"]
               + ["0.6"] * (len(vals) - cell.sizes["encoder"]))
        ax.set_xticks(range(len(vals)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"observing {m}, noise {noise}", fontsize=9)
        ax.set_ylabel("analysis RMSE")
    fig.tight_layout()
    figs["scores"] = fig
    figs["attractor_animation"] = attractor_animation(tr, a, title=title)
    return figs


def attractor_animation(truth, analysis, title="", n_frames=50):
    """Animate the truth and the analysis moving on the attractor (save with Pillow).

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> tr = Lorenz63().simulate(n_steps=20, random_state=0)
    >>> anim = attractor_animation(tr, tr, n_frames=3)
    >>> type(anim).__name__
    'FuncAnimation'
    >>> import matplotlib.pyplot as plt; plt.close("all")
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig = plt.figure(figsize=(5, 4.5))
    ax = fig.add_subplot(projection="3d")
    ax.plot(truth.x, truth.y, truth.z, color="0.8", lw=0.6)
    (lt,) = ax.plot([], [], [], "k", lw=1.2, label="truth")
    (la,) = ax.plot([], [], [], color="tab:blue", lw=1.0, ls="--", label="analysis")
    (pt,) = ax.plot([], [], [], "ko", ms=4)
    (pa,) = ax.plot([], [], [], "o", color="tab:blue", ms=4)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    T = truth.sizes["time"]
    frames = np.unique(np.linspace(1, T, min(n_frames, T)).astype(int))
    t_xyz = np.stack([truth[v].values for v in _VARS])
    a_xyz = np.stack([analysis[v].values for v in _VARS])

    def update(n):
        lt.set_data_3d(*t_xyz[:, :n])
        la.set_data_3d(*a_xyz[:, :n])
        pt.set_data_3d(*t_xyz[:, n - 1:n])
        pa.set_data_3d(*a_xyz[:, n - 1:n])
        return lt, la, pt, pa

    return FuncAnimation(fig, update, frames=frames, interval=80, blit=False)
