"""Figures of the ``kolmogorov-closure`` experiment."""

from __future__ import annotations

import numpy as np


def closure_figures(res, fields, forecasts, truth_full, truth_resolved, cutoff):
    """Vorticity snapshots, spectra, vorticity PDFs and error against lead time.

    Parameters
    ----------
    res : xarray.Dataset
        The experiment's results.
    fields : dict
        Name -> Dataset (``u``, ``v``) of the test trajectory: truth, filtered,
        ROM forecast and one closure sample per closure.
    forecasts : dict
        Closure name -> closed ensemble forecast (``member`` dim).
    truth_full, truth_resolved : xarray.Dataset
        Verifying full and filtered fields of the forecasts.
    cutoff : float
        The filter's cutoff wavenumber.

    Returns
    -------
    dict of str to matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from xdyn.datasets.kolmogorov_closure import vorticity_from_velocity

    figures = {}
    # vorticity snapshots at one start, the last lead
    start, lead = 0, -1
    panels = {"truth": truth_full, "filtered truth": truth_resolved,
              "ROM (resolved)": fields["ROM forecast"]}
    for name, fc in forecasts.items():
        panels[f"ROM + {name} (member 0)"] = fc.isel(member=0)
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.2))
    for ax, (name, ds) in zip(axes, panels.items()):
        w = vorticity_from_velocity(ds.isel(trajectory=start, time=lead))
        ax.imshow(w.values, origin="lower", cmap="RdBu_r", vmin=-8, vmax=8)
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"vorticity at lead {float(truth_full.time[lead]):.1f}")
    figures["vorticity_snapshots"] = fig

    fig, ax = plt.subplots(figsize=(5, 4))
    for name in res.field.values:
        s = res.spectrum.sel(field=name)
        ax.loglog(s.wavenumber[1:], s[1:], label=str(name),
                  lw=2.5 if name == "truth" else 1.2, ls="-" if "closure" in str(name)
                  or name == "truth" else "--")
    ax.axvline(cutoff, color="k", lw=0.8, ls=":")
    ax.set_xlabel("|k|")
    ax.set_ylabel("E(k)")
    ax.legend(fontsize=7)
    ax.set_title("energy spectra (test trajectory)")
    figures["spectra"] = fig

    fig, ax = plt.subplots(figsize=(5, 4))
    for name in res.field.values:
        p = res.vorticity_pdf.sel(field=name)
        ax.semilogy(p.vorticity, np.where(p > 0, p, np.nan), label=str(name),
                    lw=2.5 if name == "truth" else 1.2)
    ax.set_xlabel("vorticity")
    ax.set_ylabel("PDF")
    ax.legend(fontsize=7)
    figures["vorticity_pdf"] = fig

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for m in res.model.values:
        axes[0].plot(res.lead, res.lead_error.sel(model=m), label=str(m))
    for c in res.closure.values:
        axes[0].plot(res.lead, res.forecast_scores.sel(closure=c, metric_fc="rel-L2"),
                     label=f"closed {c} (full, ens. mean)", ls="--")
        axes[1].plot(res.lead, res.forecast_scores.sel(closure=c, metric_fc="CRPS"), label=str(c))
    axes[0].set_xlabel("lead time")
    axes[0].set_ylabel("rel-L2")
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("lead time")
    axes[1].set_ylabel("CRPS (full field)")
    axes[1].legend(fontsize=7)
    figures["error_vs_lead"] = fig
    return figures
