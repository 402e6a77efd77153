"""Figures of the LD-EnSF experiments: fields, error through time, parameter recovery."""

from __future__ import annotations

import numpy as np

__all__ = ["ldensf_figures"]


def ldensf_figures(res, test, obs, analyses, display="vorticity"):
    """Three figures: ``fields``, ``error_through_time``, ``parameter_recovery``.

    ``analyses`` maps each method to a Dataset of its analysed fields; the
    ``fields`` figure shows the variable ``display``, and the first observed
    variable at its stations.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t = np.arange(3.0)
    >>> res = xr.Dataset({
    ...     "field_rel_rmse": (("assimilator", "time"), np.ones((1, 3))),
    ...     "latent_rel_error": (("assimilator", "time"), np.ones((1, 3))),
    ...     "parameter_true": (("parameter", "trajectory"), [[900.0]]),
    ...     "parameter_estimate": (("parameter", "trajectory", "time"), np.full((1, 1, 3), 950.0)),
    ...     "parameter_spread": (("parameter", "trajectory", "time"), np.full((1, 1, 3), 30.0))},
    ...     coords={"assimilator": ["LD-EnSF"], "time": t, "parameter": ["Re"]})
    >>> truth = xr.Dataset({"vorticity": (("trajectory", "time", "y", "x"), np.zeros((1, 3, 4, 4)))},
    ...                    coords={"time": t})
    >>> obs = xr.Dataset({"observation": (("trajectory", "time", "obs"), np.zeros((1, 3, 2)))},
    ...                  coords={"x_index": ("obs", [0, 2]), "y_index": ("obs", [0, 2])})
    >>> figs = ldensf_figures(res, truth, obs, {"LD-EnSF": truth})
    >>> sorted(figs)
    ['error_through_time', 'fields', 'parameter_recovery']
    >>> import matplotlib.pyplot as plt; plt.close("all")
    """
    import matplotlib.pyplot as plt

    figs = {}
    truth = test[display].isel(trajectory=0, time=-1)
    panels = [("truth", truth.values)] + [
        (m, np.asarray(a[display].isel(trajectory=0, time=-1).transpose(*truth.dims).values))
        for m, a in analyses.items()]
    lim = float(np.nanmax(np.abs(truth.values))) or 1.0
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(2.6 * (len(panels) + 1), 2.8),
                             constrained_layout=True)
    for ax, (name, field) in zip(axes[1:], panels):
        ax.imshow(field, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(name, fontsize=9)
    ax = axes[0]
    seen = obs
    if "variable" in obs.coords:   # the first observed variable only
        seen = obs.isel(obs=np.flatnonzero(obs["variable"].values == obs["variable"].values[0]))
    name = str(seen["variable"].values[0]) if "variable" in seen.coords else display
    y = seen["observation"].isel(trajectory=0, time=-1)
    ylim = float(np.nanmax(np.abs(y))) or 1.0
    ax.imshow(truth.values, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=0.15)
    ax.scatter(seen["x_index"], seen["y_index"], c=y, cmap="RdBu_r", vmin=-ylim, vmax=ylim,
               s=12, edgecolors="k", linewidths=0.3)
    ax.set_title(f"observations ({name})", fontsize=9)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"{display} at the last step (test trajectory 0)", fontsize=10)
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

    params = [str(p) for p in res["parameter"].values]
    fig, axes = plt.subplots(1, len(params), figsize=(5 * len(params), 3.2),
                             constrained_layout=True, squeeze=False)
    for ax, p in zip(axes[0], params):
        sel = res.sel(parameter=p)
        for i in range(res.sizes["trajectory"]):
            est = sel["parameter_estimate"].isel(trajectory=i)
            spread = sel["parameter_spread"].isel(trajectory=i)
            line, = ax.plot(res["time"], est)
            ax.fill_between(res["time"], est - spread, est + spread, color=line.get_color(),
                            alpha=0.2)
            ax.axhline(float(sel["parameter_true"][i]), color=line.get_color(), ls="--", lw=0.8)
        ax.set(xlabel="time", ylabel=p, title=f"LD-EnSF recovery of {p} (dashed: truth)")
    figs["parameter_recovery"] = fig
    return figs
