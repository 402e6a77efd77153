"""Figures of ``lorenz96-amortized`` (and ``ks-amortized``): Hovmöller panels, RMSE through time, rank histograms,
learning curves; and the printed table."""

from __future__ import annotations

import numpy as np

from xdyn.metrics import state_rmse

__all__ = ["amortized_figures", "rank_histogram", "format_table"]


def rank_histogram(ensemble, truth, member_dim="member", random_state=0):
    """Relative frequency of the truth's rank among the members (``n_members + 1`` bins).

    The rank is the number of members below the truth. Ties (members equal to the
    truth, a collapsed ensemble) are broken at random: the truth takes each rank
    among the tied members with equal chance (Hamill 2001), so a collapsed ensemble
    equal to the truth is flat, not all in the lowest bin. Points without a truth
    (NaN) are left out. A NaN member at a point with a truth (a failed member)
    makes every bin NaN: the other members' ranks would be shown as the ensemble's.

    Parameters
    ----------
    ensemble : xarray.DataArray
        With a ``member_dim`` dimension.
    truth : xarray.DataArray
        On the ensemble's other dims (in any order), without ``member_dim``.
    member_dim : str, default="member"
    random_state : int, numpy.random.Generator or None, default=0
        Seeds the draws that break ties (the same figure on every call by default).

    Returns
    -------
    numpy.ndarray
        ``n_members + 1`` frequencies summing to 1 (all NaN with a failed member;
        all 0 without any truth).

    References
    ----------
    Hamill, T. M. (2001). Interpretation of rank histograms for verifying ensemble
    forecasts. Monthly Weather Review, 129(3), 550-560.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.RandomState(0)
    >>> ens = xr.DataArray(rng.normal(size=(2000, 4)), dims=("time", "member"))
    >>> truth = xr.DataArray(rng.normal(size=2000), dims="time")
    >>> freq = rank_histogram(ens, truth)  # a calibrated ensemble: flat
    >>> len(freq), bool(np.all(np.abs(freq - 0.2) < 0.03))
    (5, True)
    >>> collapsed = xr.zeros_like(ens)  # every member equals the truth: ties spread evenly
    >>> bool(np.all(np.abs(rank_histogram(collapsed, 0 * truth) - 0.2) < 0.03))
    True
    """
    extra = [d for d in truth.dims if d not in ensemble.dims or d == member_dim]
    if extra:  # broadcasting would fail deep in xarray, or rank against the wrong points
        raise ValueError(f"the truth has dims {extra} that the ensemble's points lack "
                         f"(ensemble dims {ensemble.dims}, members along {member_dim!r})")
    ens = ensemble.transpose(..., member_dim)
    truth = truth.broadcast_like(ens.isel({member_dim: 0})).transpose(*ens.dims[:-1])
    n_bins = ens.sizes[member_dim] + 1
    members = ens.values.reshape(-1, n_bins - 1)
    obs = truth.values.ravel()
    known = ~np.isnan(obs)
    members, obs = members[known], obs[known]
    if np.isnan(members).any():
        return np.full(n_bins, np.nan)
    below = (members < obs[:, None]).sum(-1)
    ties = (members == obs[:, None]).sum(-1)
    # rank uniform on below .. below + ties: the truth placed at random among its equals
    rng = np.random.default_rng(random_state)
    ranks = below + rng.integers(0, ties + 1)
    counts = np.bincount(ranks, minlength=n_bins)
    return counts / max(counts.sum(), 1)


def amortized_figures(res, examples, truth, obs, burn_in, n_show=300):
    """Name -> Figure for every case."""
    import matplotlib.pyplot as plt

    figs = {}
    name = next(iter(truth.data_vars))  # x of Lorenz-96, u of Kuramoto-Sivashinsky
    t0 = float(truth["time"][0]) + burn_in
    window = truth.sel(time=slice(t0, None)).isel(time=slice(0, n_show))
    for case, analyses in examples.items():
        letkf = next((k for k in analyses if k.startswith("LETKF")), None)
        panels = [("truth", window[name]),
                  ("observations", obs[case]["test"]["observation"].sel(time=window["time"])),
                  ("amortized analysis", analyses["amortized"][name].sel(time=window["time"]))]
        if "member" in panels[-1][1].dims:
            panels[-1] = (panels[-1][0], panels[-1][1].mean("member"))
        for label in ("amortized", letkf):
            if label is not None:
                an = analyses[label][name].sel(time=window["time"])
                an = an.mean("member") if "member" in an.dims else an
                panels.append((f"{label} error", an - window[name]))
        fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.0 * len(panels)), sharex=True,
                                 constrained_layout=True)
        for ax, (title, da) in zip(axes, panels):
            err = "error" in title
            da = da.transpose("time", ...)
            im = ax.pcolormesh(da["time"].values, np.arange(da.shape[1]), da.values.T,
                               shading="auto", cmap="RdBu_r" if err else "viridis",
                               vmin=-3 if err else None, vmax=3 if err else None)
            ax.set_ylabel("site")
            ax.set_title(title, fontsize=9)
            fig.colorbar(im, ax=ax)
        axes[-1].set_xlabel("time")
        figs[f"hovmoller_{case}"] = fig

        fig, ax = plt.subplots(figsize=(9, 3.5), constrained_layout=True)
        for label, an in analyses.items():
            mean = an.mean("member") if "member" in an.dims else an
            err = state_rmse(mean, truth)
            score = float(res.analysis_rmse.sel({"case": case, "method": label}))
            ax.plot(err["time"], err, lw=0.8, label=f"{label} ({score:.3f})")
        ax.axvline(t0, color="k", ls=":", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("time")
        ax.set_ylabel("analysis RMSE")
        ax.set_title(f"{case}: RMSE through time (dotted: end of the unscored burn-in)")
        ax.legend(fontsize=7, ncol=3)
        figs[f"rmse_time_{case}"] = fig

        fig, axes = plt.subplots(1, 2, figsize=(8, 3), constrained_layout=True)
        for ax, label in zip(axes, ("amortized", letkf)):
            an = analyses.get(label)
            if an is None or "member" not in an[name].dims:
                ax.set_visible(False)
                continue
            after = an[name].sel(time=slice(t0, None))
            freq = rank_histogram(after, truth[name].sel(time=after["time"]))
            ax.bar(np.arange(len(freq)), np.nan_to_num(freq))
            ax.axhline(1 / len(freq), color="k", lw=0.8)
            failed = "" if np.isfinite(freq).all() else " (a member failed: not scored)"
            ax.set_title(f"{case}: rank histogram, {label}{failed}", fontsize=9)
            ax.set_xlabel("rank of the truth")
        figs[f"rank_histogram_{case}"] = fig

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
    for case in res["case"].values:
        c = res.sel(case=case)
        axes[0].plot(c["epoch"], c.curve_train_loss, marker="o", label=str(case))
        axes[1].plot(c["epoch"], c.curve_valid_rmse, marker="o", label=str(case))
        axes[1].axhline(float(c.reference_letkf10_rmse), ls=":", lw=0.8)
    axes[0].set_ylabel("training loss")
    axes[1].set_ylabel("validation analysis RMSE")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    refs = ", ".join(f"{float(r):.3f} {c}" for c, r in
                     zip(res["case"].values, res.reference_letkf10_rmse.values))
    axes[1].set_title(f"dotted: LETKF-10 reference ({refs})", fontsize=8)
    figs["learning_curve"] = fig
    return figs


def format_table(res) -> str:
    """The printed table: one block per case, one row per method."""
    lines = []
    for case in res["case"].values:
        c = res.sel(case=case)
        lines.append(f"case {case}: reference LETKF-10 {float(c.reference_letkf10_rmse):.3f}; "
                     f"amortized/LETKF-10 cost ratio {float(c.cost_ratio_vs_letkf):.2f}")
        lines.append(f"  {'method':<11}{'RMSE':>8}{'spread':>8}{'lost':>7}{'ms/cycle':>10}"
                     f"{'train/tune s':>14}")
        for m in res["method"].values:
            r = c.sel({"method": m})
            lines.append(f"  {str(m):<11}{float(r.analysis_rmse):>8.3f}{float(r.spread):>8.3f}"
                         f"{float(r.lost_share):>7.2f}{float(r.cost_per_cycle):>10.2f}"
                         f"{float(r.train_time):>14.1f}")
        curve = c.curve_valid_rmse.values
        lines.append("  learning curve (validation RMSE per epoch): "
                     + " ".join(f"{v:.3f}" for v in curve if np.isfinite(v)))
        if "n_epochs_kept" in c:
            trained = int(np.isfinite(c.curve_train_loss.values).sum())
            lines.append(f"  test with the weights of epoch {int(c.n_epochs_kept)} of {trained}")
    rule = res["lost_share"].attrs.get("lost_rule")
    lines.append("spread: ensemble spread (3D-Var: its static analysis-error std from (I - KH)B, "
                 "no ensemble)" + (f"; lost: {rule}, or a non-finite analysis" if rule else ""))
    return "\n".join(lines)
