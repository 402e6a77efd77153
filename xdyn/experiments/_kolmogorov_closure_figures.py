"""Figures and the printed table of the ``kolmogorov-closure`` experiment."""

from __future__ import annotations

import numpy as np


def closure_figures(res, fields, forecasts, truth_full, truth_resolved, cutoff):
    """Vorticity snapshots, spectra, vorticity PDFs and error against lead time.

    Parameters
    ----------
    res : xarray.Dataset
        The experiment's results.
    fields : dict
        Name -> Dataset (``u``, ``v``): truth and filtered test trajectory,
        the two resolved models' forecasts (``"ROM forecast"``, POD+linear,
        and ``"LatentTransformerROM forecast"``), one closure sample per closure.
    forecasts : dict
        Closure name -> closed ensemble forecast of the LatentTransformerROM +
        closure (``member`` dim).
    truth_full, truth_resolved : xarray.Dataset
        Verifying full and filtered fields of the forecasts.
        (``res.horizon_error`` gives the figure of the mean forecasts against
        persistence out to the horizon, leads in Lyapunov times.)
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
              "POD+linear (resolved)": fields["ROM forecast"],
              "latent ROM (resolved)": fields["LatentTransformerROM forecast"]}
    for name, fc in forecasts.items():
        panels[f"latent ROM + {name} (member 0)"] = fc.isel(member=0)
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
    for i, c in enumerate(res.closure.values):
        axes[0].plot(res.lead, res.forecast_scores.sel(closure=c, metric_fc="rel-L2"),
                     label=f"closed {c} (full, ens. mean)", ls="--")
        # one colour per closure: solid with POD+linear, dotted with the latent ROM
        axes[1].plot(res.lead, res.forecast_scores.sel(closure=c, metric_fc="CRPS"),
                     label=f"POD+linear + {c}", color=f"C{i}")
        axes[1].plot(res.lead, res.latent_forecast_scores.sel(closure=c, metric_fc="CRPS"),
                     label=f"latent ROM + {c}", ls=":", color=f"C{i}")
    axes[0].set_xlabel("lead time")
    axes[0].set_ylabel("rel-L2")
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("lead time")
    axes[1].set_ylabel("CRPS (full field)")
    axes[1].legend(fontsize=7)
    figures["error_vs_lead"] = fig

    # the mean forecasts out to the horizon, leads in Lyapunov times
    he = res.horizon_error
    lyap = "horizon_lead_lyapunov" in he.coords
    x = he.horizon_lead_lyapunov if lyap else he.horizon_lead
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in he.horizon_model.values:
        ax.plot(x, he.sel(horizon_model=m), label=str(m))
    ahead = float(res.latent_ahead_lead)
    scale = float(res.attrs["lyapunov_time"]) if lyap else 1.0
    ax.axvline(ahead / scale, color="k", lw=0.8, ls="--",
               label=f"latent ROM ahead of persistence up to {ahead:g}")
    if lyap:
        ax.axvline(1.0, color="k", lw=0.8, ls=":", label="one Lyapunov time")
    ax.set_xlabel("lead (Lyapunov times)" if lyap else "lead time")
    ax.set_ylabel("rel-L2 (resolved)")
    ax.set_yscale("log")  # the first leads (a percent) and saturation (tens of percent)
    ax.legend(fontsize=7)
    ax.set_title("mean forecasts against persistence")
    figures["error_vs_lyapunov_time"] = fig
    return figures


def closure_table(res, setup):
    """The printed table of the results ``res`` of a run of sizes ``setup``."""
    cs = res.closure_scores
    lines = [f"kolmogorov-closure ({'quick' if setup.quick else 'full'}; cutoff |k| <= "
             f"{res.attrs['cutoff']:g}; resolved model: {res.attrs['resolved_model']})",
             "closure given the true resolved state, test trajectory, "
             f"{setup.n_members} members:",
             f"{'closure':<10}" + "".join(f"{m:>19}" for m in cs.metric.values)
             + f"{'s/sample':>12}{'spread scale':>14}{'fit s':>8}"]
    for c in cs.closure.values:
        scale = float(res.closure_spread_scale.sel(closure=c)) \
            if "closure_spread_scale" in res else 1.0
        lines.append(f"{c:<10}" + "".join(f"{float(v):>19.4f}" for v in cs.sel(closure=c))
                     + f"{float(res.sampling_cost.sel(closure=c)):>12.2e}{scale:>14.3f}"
                     + f"{float(res.closure_fit_time.sel(closure=c)):>8.0f}")
    if "mean_model_unresolved_rel_l2" in res:
        lines.append("the closures' mean model (ConvFieldRegressor) alone: unresolved rel-L2 "
                     f"{float(res.mean_model_unresolved_rel_l2):.4f} (issue targets <= 0.11 GP, "
                     f"<= 0.15 VAE / diffusion), fit {float(res.mean_model_fit_time):.0f} s")
    le = res.lead_error
    truths = "vs the resolved truth; persistence (full) vs the full field"
    every = max(1, le.sizes["lead"] // 5)
    lines.append(f"rel-L2 vs lead ({truths}): " + "; ".join(
        f"{m}: " + " ".join(f"{v:.3f}" for v in le.sel(model=m).values[::every])
        for m in le.model.values))
    # skipna=False: a forecast that diverged part-way shows NaN, not its early leads' mean
    lines.append(f"rel-L2 first lead / mean over leads ({truths}): "
                 + "; ".join(f"{m}: {float(le.sel(model=m)[0]):.3f} / "
                             f"{float(le.sel(model=m).mean(skipna=False)):.3f}"
                             for m in le.model.values))
    if "horizon_error" in res:
        ahead, t_lyap = float(res.latent_ahead_lead), res.attrs.get("lyapunov_time")
        lam = res.get("lyapunov_exponent")
        horizon = float(res.horizon_lead[-1])
        lines.append(
            f"LatentTransformerROM beats persistence up to lead {ahead:g}"
            + (f" ({ahead / t_lyap:.2f} Lyapunov times; issue target >= 1; horizon "
               f"{horizon:g} = {horizon / t_lyap:.2f}; Lyapunov time {t_lyap:.1f}, lambda_1 "
               f"{float(lam):.3f} +- {lam.attrs['standard_error']:.3f})"
               if t_lyap else f" (horizon {horizon:g})"))
    ls = res.latent_rom_scores
    # the issue's target is checked against this rel-L2 (its ensemble mean's error pooled
    # over every lead, as anchors.csv and the summary), not the mean over leads above
    lines.append(f"LatentTransformerROM ({setup.n_members} members, vs resolved truth, all leads; "
                 f"fit {float(res.latent_rom_fit_time):.0f} s): " + ", ".join(
                     f"{m} {float(v):.4f}" + (" (issue target <= 0.09)" if m == "rel-L2" else "")
                     for m, v in zip(ls.metric_rom.values, ls.values)))
    for var, resolved in (("forecast_scores", "POD+linear"),
                          ("latent_forecast_scores", "LatentTransformerROM")):
        fs = res[var]
        for c in fs.closure.values:
            crps = fs.sel(closure=c, metric_fc="CRPS")
            cover = fs.sel(closure=c).mean("lead", skipna=False)
            lines.append(f"closed {c} ({resolved}): CRPS first/last lead {float(crps[0]):.4f}"
                         f"/{float(crps[-1]):.4f}, PICP(1 std) "
                         f"{float(cover.sel(metric_fc='PICP(1 std)')):.3f}, 90% cov "
                         f"{float(cover.sel(metric_fc='90% coverage')):.3f}")
    lines.append("energy above the cutoff (unresolved part) / truth's: " + ", ".join(
        f"{f}: {float(v):.3g}" for f, v in zip(res.field.values, res.spectrum_ratio.values)))
    return "\n".join(lines)
