"""Diagnostic panels: state overviews, twin-experiment panels, error curves, spectra.

Every function draws with matplotlib on given axes (or a new figure) and
returns the figure; saving is the caller's choice. Nothing here changes
global matplotlib state.
"""

from __future__ import annotations

# No ``matplotlib.use`` here: choosing the backend is the user's business (matplotlib
# falls back to Agg by itself when there is no display).
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

__all__ = ["plot_state", "plot_twin", "plot_scores", "plot_spectrum"]

_SAMPLE = ("time", "member", "trajectory")


def _spatial_dims(da):
    return [d for d in da.dims if d not in _SAMPLE]


def plot_state(ds, variables=None, time=None, fig=None):
    """Overview of a state Dataset: time series for scalars, Hovmöller for 1-D
    fields, a map at one time for 2-D fields.

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> fig = plot_state(Lorenz96().simulate(n_steps=50, random_state=0))
    >>> len(fig.axes) >= 1
    True
    """
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "value")
    if isinstance(variables, str):
        variables = [variables]
    names = list(variables or ds.data_vars)
    for d in ("member", "trajectory"):
        if d in ds.dims:
            ds = ds.isel({d: 0})
    scalars = [n for n in names if not _spatial_dims(ds[n])]
    fields = [n for n in names if _spatial_dims(ds[n])]
    n_panels = (1 if scalars else 0) + len(fields)
    fig = fig or plt.figure(figsize=(8, 2.6 * max(n_panels, 1)), constrained_layout=True)
    axes = fig.subplots(max(n_panels, 1), 1, squeeze=False)[:, 0]
    i = 0
    if scalars:
        for n in scalars:
            ds[n].plot.line(x="time", ax=axes[0], label=n)
        axes[0].legend(loc="upper right")
        axes[0].set_ylabel("state")
        i = 1
    for n in fields:
        da = ds[n]
        dims = _spatial_dims(da)
        if len(dims) == 1 and "time" in da.dims:
            da.plot(x="time", y=dims[0], ax=axes[i], cmap="RdBu_r")
        else:
            if "time" in da.dims:
                da = da.sel(time=time, method="nearest") if time is not None else da.isel(time=-1)
            da.plot(ax=axes[i], cmap="RdBu_r")
        i += 1
    return fig


def plot_twin(truth, obs, analyses: dict, variable=None, site=0, background=None, fig=None):
    """Truth, observations, background and analyses of one variable/site through time.

    ``analyses`` maps a method name to its analysis Dataset (ensemble mean is
    taken when there is a ``member`` dim).
    """
    variable = variable or list(truth.data_vars)[0]
    fig = fig or plt.figure(figsize=(10, 3.5), constrained_layout=True)
    ax = fig.subplots()

    def pick(da):
        sp = _spatial_dims(da)
        return da.isel({sp[0]: site}) if sp else da

    pick(truth[variable]).plot.line(x="time", ax=ax, color="k", lw=1.5, label="truth")
    sel = obs["variable"] == variable
    if "k" in obs.coords:
        sel = sel & (obs["k"] == site)
    if bool(sel.any()):
        ax.plot(obs["time"], obs["observation"].isel(obs=np.flatnonzero(sel.values)[0]),
                "o", ms=2.5, color="0.5", label="observations")
    if background is not None:
        bg = background
        pick(bg.mean("member") if "member" in bg.dims else bg).plot.line(
            x="time", ax=ax, lw=0.8, ls="--", label="background")
    for name, an in analyses.items():
        da = an[variable].mean("member") if "member" in an.dims else an[variable]
        pick(da).plot.line(x="time", ax=ax, lw=1, label=name)
    ax.set_title(f"{variable} (site {site})" if _spatial_dims(truth[variable]) else variable)
    ax.legend(loc="upper right", fontsize=7, ncol=2)
    return fig


def plot_scores(results: xr.Dataset, fig=None):
    """Analysis RMSE (solid) and spread (dashed) through time, one line per method.

    ``results`` has variables ``rmse`` (and optionally ``spread``) with dims
    ``(<methods dim>, time)``, e.g. the output of a twin experiment.
    """
    fig = fig or plt.figure(figsize=(10, 3.5), constrained_layout=True)
    ax = fig.subplots()
    label_dim = [d for d in results["rmse"].dims if d != "time"][0]
    n_time = results.sizes["time"]
    # thousands of cycles draw as noise: show a running mean over ~1% of the record
    window = max(1, n_time // 100) if n_time > 500 else 1

    def smooth(da):
        return da.rolling(time=window, center=True, min_periods=1).mean() if window > 1 else da

    for i, m in enumerate(results[label_dim].values):
        color = f"C{i % 10}"
        # isel: ``.sel(method=...)`` would hit sel's own ``method`` keyword
        ax.plot(results["time"], smooth(results["rmse"].isel({label_dim: i})), color=color, lw=1,
                label=str(m))
        if "spread" in results and np.isfinite(results["spread"].isel({label_dim: i})).any():
            ax.plot(results["time"], smooth(results["spread"].isel({label_dim: i})), color=color,
                    lw=0.8, ls="--")
    if window > 1:
        ax.set_title(f"running mean over {window} analysis times", fontsize=9)
    ax.set_yscale("log")
    ax.set_xlabel("time")
    ax.set_ylabel("analysis RMSE (solid), spread (dashed)")
    ax.legend(fontsize=7, ncol=3, loc="upper right")
    return fig


def plot_spectrum(spectrum: xr.DataArray, ax=None, label=None):
    """Log-log energy spectrum (a DataArray with a ``wavenumber`` dim)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
    sp = spectrum.isel(wavenumber=slice(1, None))
    ax.loglog(sp["wavenumber"], sp, label=label)
    ax.set_xlabel("wavenumber")
    ax.set_ylabel(f"energy [{spectrum.attrs.get('units', '')}]")
    if label:
        ax.legend()
    return ax.figure
