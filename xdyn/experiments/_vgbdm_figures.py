"""Figures of the grey-box forecasting experiments (:mod:`xdyn.experiments.vgbdm`)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["greybox_figures"]


def greybox_figures(results, truth, examples):
    """RMSE and CRPS per lead for every method, and one test trajectory with the forecasts.

    ``truth`` is one test trajectory (dims ``lead_time``, ...); ``examples``
    maps method -> its forecast of it (dims ``member``, ``lead_time``, ...).
    """
    figs = {}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    lead = results.lead_time.values
    for m in results.method.values:
        axes[0].plot(lead, results.rmse.sel({"method": m}), label=str(m))
        axes[1].plot(lead, results.crps.sel({"method": m}), label=str(m))
    for ax, title in zip(axes, ("RMSE", "CRPS")):
        ax.set_xlabel(f"lead time ({results.lead_time.attrs.get('units', '')})")
        ax.set_title(title)
        ax.set_yscale("log")
    axes[0].legend()
    figs["scores_by_lead"] = fig

    var = next(iter(truth.data_vars))
    spatial = [d for d in truth[var].dims if d != "lead_time"]
    pick = {d: truth.sizes[d] // 2 for d in spatial}
    fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    ax.plot(lead, truth[var].isel(pick), "k", lw=2, label="truth")
    for m, fc in examples.items():
        series = fc[var].isel(pick)
        line, = ax.plot(lead, series.mean("member"), label=str(m))
        if series.sizes["member"] > 1:
            lo, hi = np.percentile(series.values, [5, 95], axis=series.dims.index("member"))
            ax.fill_between(lead, lo, hi, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("lead time")
    ax.set_ylabel(f"{var} ({truth[var].attrs.get('units', '')})")
    ax.legend(fontsize=8)
    ax.set_title("one test trajectory (90% ensemble band)")
    figs["example_trajectory"] = fig
    return figs
