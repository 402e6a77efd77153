"""Figures of ``kolmogorov-ldensf``: fields, error through time, parameter recovery."""

from __future__ import annotations

import numpy as np

__all__ = ["ldensf_figures"]


def ldensf_figures(res, test, obs, analyses):
    """Three figures: ``fields``, ``error_through_time``, ``parameter_recovery``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t = np.arange(3.0)
    >>> res = xr.Dataset({
    ...     "field_rel_rmse": (("assimilator", "time"), np.ones((1, 3))),
    ...     "latent_rel_error": (("assimilator", "time"), np.ones((1, 3))),
    ...     "Re_true": ("trajectory", [900.0]),
    ...     "Re_estimate": (("trajectory", "time"), np.full((1, 3), 950.0)),
    ...     "Re_spread": (("trajectory", "time"), np.full((1, 3), 30.0))},
    ...     coords={"assimilator": ["LD-EnSF"], "time": t})
    >>> truth = xr.Dataset({"vorticity": (("trajectory", "time", "y", "x"), np.zeros((1, 3, 4, 4)))},
    ...                    coords={"time": t})
    >>> obs = xr.Dataset({"observation": (("trajectory", "time", "obs"), np.zeros((1, 3, 2)))},
    ...                  coords={"x_index": ("obs", [0, 2]), "y_index": ("obs", [0, 2])})
    >>> figs = ldensf_figures(res, truth, obs, {"LD-EnSF": truth["vorticity"]})
    >>> sorted(figs)
    ['error_through_time', 'fields', 'parameter_recovery']
    >>> import matplotlib.pyplot as plt; plt.close("all")
    """
    import matplotlib.pyplot as plt

    figs = {}
    truth = test["vorticity"].isel(trajectory=0, time=-1)
    panels = [("truth", truth.values)] + [
        (m, np.asarray(a.isel(trajectory=0, time=-1).transpose(*truth.dims).values))
        for m, a in analyses.items()]
    lim = float(np.nanmax(np.abs(truth.values))) or 1.0
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(2.6 * (len(panels) + 1), 2.8),
                             constrained_layout=True)
    for ax, (name, field) in zip(axes[1:], panels):
        ax.imshow(field, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(name, fontsize=9)
    ax = axes[0]
    ax.imshow(truth.values, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=0.15)
    ax.scatter(obs["x_index"], obs["y_index"], c=obs["observation"].isel(trajectory=0, time=-1),
               cmap="RdBu_r", vmin=-lim, vmax=lim, s=12, edgecolors="k", linewidths=0.3)
    ax.set_title("observations", fontsize=9)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("vorticity at the last step (test trajectory 0)", fontsize=10)
    figs["fields"] = fig

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
    for i, m in enumerate(res["assimilator"].values):
        color = f"C{i}"  # one colour per method in both panels
        axes[0].plot(res["time"], res["field_rel_rmse"].sel(assimilator=m), label=str(m),
                     color=color)
        if np.isfinite(res["latent_rel_error"].sel(assimilator=m)).any():
            axes[1].plot(res["time"], res["latent_rel_error"].sel(assimilator=m), label=str(m),
                         color=color)
    axes[0].set(xlabel="time", ylabel="relative RMSE", title="field", yscale="log")
    axes[1].set(xlabel="time", ylabel="relative error", title="latent state")
    axes[0].legend(fontsize=8)
    figs["error_through_time"] = fig

    fig, ax = plt.subplots(figsize=(5, 3.2), constrained_layout=True)
    for i in range(res.sizes["trajectory"]):
        est, spread = res["Re_estimate"].isel(trajectory=i), res["Re_spread"].isel(trajectory=i)
        line, = ax.plot(res["time"], est)
        ax.fill_between(res["time"], est - spread, est + spread, color=line.get_color(), alpha=0.2)
        ax.axhline(float(res["Re_true"][i]), color=line.get_color(), ls="--", lw=0.8)
    ax.set(xlabel="time", ylabel="Re", title="LD-EnSF parameter recovery (dashed: truth)")
    figs["parameter_recovery"] = fig
    return figs
