"""Diagnostic panels: state overviews, twin-experiment panels, error curves, spectra.

Every function draws with matplotlib on given axes (or a new figure) and
returns the figure; saving is the caller's choice. Nothing here changes
global matplotlib state. Axes are labelled "long_name [units]" from the
coordinates' attrs; legends sit outside the data; an ensemble is drawn as its
mean with a +-1 standard-deviation band (or its mean map), never as one
unlabelled member.
"""

from __future__ import annotations

# No ``matplotlib.use`` here: choosing the backend is the user's business (matplotlib
# falls back to Agg by itself when there is no display).
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

__all__ = ["plot_state", "plot_twin", "plot_scores", "plot_spectrum"]

_SAMPLE = ("time", "member", "trajectory")
_MAP_DIMS = {"x", "y", "lat", "lon"}


def _spatial_dims(da):
    return [d for d in da.dims if d not in _SAMPLE]


def _axis_label(coord, default="time"):
    """``long_name [units]`` of a coordinate, as xarray labels its own plots."""
    attrs = getattr(coord, "attrs", {})
    name = attrs.get("long_name") or getattr(coord, "name", None) or default
    units = attrs.get("units")
    return f"{name} [{units}]" if units else str(name)


def _legend_outside(ax, **kwargs):
    """A legend to the right of the axes, so it never covers a curve."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0, fontsize=kwargs.pop("fontsize", 8), **kwargs)


def plot_state(ds, variables=None, time=None, fig=None):
    """Overview of a state Dataset: time series for scalars, Hovmöller for 1-D
    fields, a map at one time for 2-D fields (at equal aspect).

    An ensemble (``member`` dim) is drawn as its mean, with a +-1 standard
    deviation band for scalars; of several ``trajectory`` runs the first is
    drawn; titles say which. An observation Dataset shows its observations.

    Parameters
    ----------
    ds : Dataset or DataArray
    variables : str or list of str, optional
        Default: every data variable (``observation`` only for observations).
    time : float, optional
        Time of the 2-D maps (nearest); default the last.
    fig : matplotlib Figure, optional

    Returns
    -------
    matplotlib.figure.Figure

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
    if variables is None and "observation" in ds.data_vars:
        variables = ["observation"]  # the clean values and the noise level are bookkeeping
    # by default the states: per-trajectory parameters (omega0) have no time dim
    names = list(variables or [v for v in ds.data_vars if "time" in ds[v].dims])
    if not names:
        raise ValueError(f"none of the variables {list(ds.data_vars)} has a 'time' dim")
    notes = []
    if "trajectory" in ds.dims:
        notes.append(f"trajectory 0 of {ds.sizes['trajectory']}")
        ds = ds.isel(trajectory=0)
    # a profile without time (noise_std along obs) is a line; a single number is nothing
    scalar = [n for n in names if "time" not in ds[n].dims and not _spatial_dims(ds[n])]
    if scalar:
        raise ValueError(f"variable(s) {scalar} hold one number per trajectory (no 'time' or "
                         "spatial dim): nothing to draw")
    n_members = ds.sizes.get("member", 0)
    if n_members:
        notes.append(f"ensemble mean of {n_members} members"
                     + (" (band: +-1 std)" if n_members > 1 else ""))
    note = "; ".join(notes)
    scalars = [n for n in names if not _spatial_dims(ds[n])]
    fields = [n for n in names if _spatial_dims(ds[n])]
    n_panels = (1 if scalars else 0) + len(fields)
    maps = [n for n in fields if set(_spatial_dims(ds[n])) <= _MAP_DIMS
            and len(_spatial_dims(ds[n])) == 2]
    if fig is None:
        # square maps want a narrower, taller panel than time series
        width = 8.0 if len(maps) < n_panels else 5.5
        height = sum(4.2 if n in maps else 2.8 for n in fields) + (2.8 if scalars else 0.0)
        fig = plt.figure(figsize=(width, max(height, 2.8)), constrained_layout=True)
    axes = fig.subplots(max(n_panels, 1), 1, squeeze=False)[:, 0]
    i = 0
    if scalars:
        ax = axes[0]
        for j, n in enumerate(scalars):
            _ensemble_line(ax, ds[n], ds["time"].values, band_alpha=0.25,
                           color=f"C{j}", lw=1, label=n)
        ax.set_xlabel(_axis_label(ds["time"]))
        ax.set_ylabel("state")
        if note:
            ax.set_title(note, fontsize=9)
        _legend_outside(ax)
        i = 1
    for n in fields:
        da = ds[n].mean("member", keep_attrs=True) if "member" in ds[n].dims else ds[n]
        ax = axes[i]
        dims = _spatial_dims(da)
        if len(dims) == 1 and "time" in da.dims:
            da.plot(x="time", y=dims[0], ax=ax, cmap="RdBu_r")
        elif len(dims) == 1:
            da.plot.line(ax=ax)  # a profile (e.g. the noise level of each observation)
        else:
            if "time" in da.dims:
                da = da.sel(time=time, method="nearest") if time is not None else da.isel(time=-1)
            da.plot(ax=ax, cmap="RdBu_r")
            if set(dims) <= _MAP_DIMS:
                ax.set_aspect("equal")  # a square domain looks square
        if note:
            ax.set_title(f"{ax.get_title()}\n{note}".strip(), fontsize=9)
        i += 1
    return fig


def _ensemble_line(ax, da, time, band_alpha=0.2, **kwargs):
    """Plot ``da`` against time; an ensemble as its mean with a +-1 std band."""
    if "member" in da.dims:
        if da.sizes["member"] > 1:
            mean, std = da.mean("member"), da.std("member", ddof=1)
            line = ax.plot(time, mean.values, **kwargs)[0]
            ax.fill_between(time, (mean - std).values, (mean + std).values,
                            color=line.get_color(), alpha=band_alpha, lw=0)
            return line
        da = da.mean("member")
    return ax.plot(time, da.values, **kwargs)[0]


def plot_twin(truth, obs, analyses: dict, variable=None, site=0, background=None, fig=None):
    """Truth, observations, background and analyses of one variable/site through time.

    ``analyses`` maps a method name to its analysis Dataset; one with a
    ``member`` dim is drawn as its ensemble mean with a +-1 std band.

    Parameters
    ----------
    truth : Dataset
        The true state over ``time``, drawn in black.
    obs : Dataset
        Observations as :func:`xdyn.observe.observe` makes them: ``observation`` over
        ``(time, obs)`` with a ``variable`` coordinate along ``obs`` (and the site's
        coordinate where it has one). The first observation of ``variable`` at ``site``
        is drawn as dots; none is drawn when nothing observes it.
    analyses : dict of str to Dataset
        Method name (the legend label) to its analysis, holding ``variable``.
    variable : str, optional
        The variable drawn; default the first data variable of ``truth``.
    site : int, default=0
        Position along the variable's first spatial dim (ignored for a variable
        without one); observations are matched by that position's coordinate label.
    background : DataArray, optional
        The background (forecast) of ``variable``, drawn dashed; one with a ``member``
        dim as its ensemble mean with a band.
    fig : matplotlib Figure, optional
        Figure to draw in (one axes is added); default a new 10 x 3.5 inch figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> from xdyn.observe import observe
    >>> truth = Lorenz63().simulate(n_steps=40, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=1.0, every=5, random_state=0)
    >>> fig = plot_twin(truth, obs, {"shifted": truth + 0.5})
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['truth', 'observations', 'shifted']
    """
    variable = variable or list(truth.data_vars)[0]
    fig = fig or plt.figure(figsize=(10, 3.5), constrained_layout=True)
    ax = fig.subplots()

    def pick(da):
        sp = _spatial_dims(da)
        return da.isel({sp[0]: site}) if sp else da

    tr = pick(truth[variable])
    ax.plot(tr["time"].values, tr.values, color="k", lw=1.5, label="truth")
    sel = obs["variable"] == variable
    sp = _spatial_dims(truth[variable])
    if sp and sp[0] in obs.coords:
        # ``site`` is a position in the truth; the observations name their sites by its label
        coord = truth[variable][sp[0]]
        sel = sel & (obs[sp[0]] == (coord.values[site] if sp[0] in truth.coords else site))
    if bool(sel.any()):
        ax.plot(obs["time"], obs["observation"].isel(obs=np.flatnonzero(sel.values)[0]),
                "o", ms=2.5, color="0.5", label="observations")
    if background is not None:
        bg = pick(background)
        _ensemble_line(ax, bg, bg["time"].values, lw=0.8, ls="--", label="background")
    for name, an in analyses.items():
        da = pick(an[variable])
        _ensemble_line(ax, da, da["time"].values, lw=1, label=name)
    ax.set_title(f"{variable} (site {site})" if _spatial_dims(truth[variable]) else variable)
    ax.set_xlabel(_axis_label(truth["time"]))
    units = truth[variable].attrs.get("units")
    ax.set_ylabel(f"{variable} [{units}]" if units else variable)
    _legend_outside(ax)
    return fig


def _method_label(results, label_dim, i, name):
    """The legend label: the method, and where it diverged or why it has no line."""
    status = str(results["status"].values[i]) if "status" in results else "ok"
    t_div = float(results["divergence_time"].values[i]) if "divergence_time" in results else np.nan
    if np.isfinite(t_div):
        return f"{name} (diverged at t={t_div:g})"
    if status.startswith("diverged"):
        return f"{name} (diverged)"
    if status != "ok":
        return f"{name} ({status.split(':')[0]})"
    return name


def plot_scores(results: xr.Dataset, fig=None):
    """Analysis RMSE (solid) and spread (dashed) through time, one colour per method.

    ``results`` has variables ``rmse`` (and optionally ``spread``) with dims
    ``(<methods dim>, time)``, e.g. the output of a twin experiment. Long
    records are drawn as a running mean (the window is in the title). A method
    that diverged ends in an ``x`` at its divergence time and says so in the
    legend. With ``rmse_mean`` (time averages) a second panel compares the
    methods' averages as bars.

    Parameters
    ----------
    results : Dataset
        ``rmse`` over ``(<methods dim>, time)``; optionally ``spread`` (same dims),
        ``rmse_mean`` (over the methods dim: the bars), ``divergence_time`` and
        ``status`` (over the methods dim: the legend notes).
    fig : matplotlib Figure, optional
        Figure to draw in; default a new 11 x 3.8 inch figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> res = xr.Dataset({"rmse": (("assimilator", "time"), np.ones((2, 5)))},
    ...                  coords={"assimilator": ["a", "b"], "time": np.arange(5.0)})
    >>> [line.get_label() for line in plot_scores(res).axes[0].get_lines()]
    ['a', 'b']
    """
    label_dim = [d for d in results["rmse"].dims if d != "time"][0]
    has_bars = "rmse_mean" in results
    fig = fig or plt.figure(figsize=(11, 3.8), constrained_layout=True)
    if has_bars:
        ax, bar_ax = fig.subplots(1, 2, width_ratios=[3, 1.3])
    else:
        ax, bar_ax = fig.subplots(), None
    n_time = results.sizes["time"]
    # hundreds of cycles draw as noise: a running mean over ~2.5% of the record
    window = max(1, n_time // 40) if n_time > 200 else 1
    time = results["time"].values

    def smooth(da):
        if window == 1:
            return da
        # NaN stays NaN: a diverged series must not be smeared past its divergence
        return da.rolling(time=window, center=True, min_periods=1).mean().where(da.notnull())

    names = [str(m) for m in results[label_dim].values]
    for i, name in enumerate(names):
        color = f"C{i % 10}"
        label = _method_label(results, label_dim, i, name)
        # isel: ``.sel(method=...)`` would hit sel's own ``method`` keyword
        rmse = smooth(results["rmse"].isel({label_dim: i}))
        line = ax.plot(time, rmse.values, color=color, lw=1.2, label=label)[0]
        finite = np.flatnonzero(np.isfinite(rmse.values))
        t_div = (float(results["divergence_time"].values[i]) if "divergence_time" in results
                 else np.nan)
        if np.isfinite(t_div) and finite.size:
            ax.plot(time[finite[-1]], rmse.values[finite[-1]], "x", color=color, ms=9, mew=2)
        elif np.isfinite(t_div):
            ax.axvline(t_div, color=color, ls=":", lw=1)
        if not finite.size:  # nothing to draw: keep the method in the legend with a marker
            line.set_marker("x")
        if "spread" in results and np.isfinite(results["spread"].isel({label_dim: i})).any():
            ax.plot(time, smooth(results["spread"].isel({label_dim: i})).values, color=color,
                    lw=0.8, ls="--", alpha=0.7)
    if window > 1:
        ax.set_title(f"running mean over {window} analysis times", fontsize=9)
    ax.set_yscale("log")
    ax.set_xlabel(_axis_label(results["time"]))
    units = results["rmse"].attrs.get("units")
    ax.set_ylabel("RMSE (solid), spread (dashed)" + (f" [{units}]" if units else ""))
    if bar_ax is None:
        _legend_outside(ax)
    else:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=min(3, len(names)),
                  fontsize=7, frameon=False)
        means = results["rmse_mean"].values
        y = np.arange(len(names))
        bar_ax.barh(y, np.where(np.isfinite(means), means, 0.0),
                    color=[f"C{i % 10}" for i in range(len(names))])
        for i, value in enumerate(means):
            if np.isfinite(value):
                text = f" {value:.3f}"
            else:  # why there is no bar: the legend label's note
                label = _method_label(results, label_dim, i, "")
                text = f" none {label.strip()}" if label else " none"
            bar_ax.text(value if np.isfinite(value) else 0.0, i, text, va="center", fontsize=7)
        bar_ax.set_yticks(y, names, fontsize=7)
        bar_ax.invert_yaxis()
        bar_ax.set_xlabel("time-averaged RMSE" + (f" [{units}]" if units else ""))
        bar_ax.set_xlim(0, 1.35 * np.nanmax(np.append(means, 1e-12)))
    return fig


def plot_spectrum(spectrum: xr.DataArray, ax=None, label=None):
    """Log-log energy spectrum (a DataArray whose only dim is ``wavenumber``).

    Parameters
    ----------
    spectrum : DataArray
        Energy over the ``wavenumber`` dim only (as :func:`xdyn.metrics.energy_spectrum`
        gives it after averaging); the first wavenumber (0, the mean) is left out.
    ax : matplotlib Axes, optional
        Axes to draw on, so several spectra can share one; default new axes in a new
        5 x 4 inch figure.
    label : str, optional
        Legend label of the line; a legend is drawn when given.

    Returns
    -------
    matplotlib.figure.Figure
        The figure of ``ax``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> spec = xr.DataArray(1.0 / (1 + np.arange(8.0)) ** 2, dims="wavenumber",
    ...                     coords={"wavenumber": np.arange(8.0)})
    >>> plot_spectrum(spec).axes[0].get_xscale()
    'log'
    """
    if spectrum.dims != ("wavenumber",):
        # matplotlib would draw each column of a 2-D array as its own line, or the other
        # dim's columns against wavenumber when the sizes happen to fit
        raise ValueError(f"plot_spectrum draws one spectrum, dims ('wavenumber',); got "
                         f"{spectrum.dims}: average the others (e.g. energy_spectrum(..., "
                         "mean_dims='time')) or select one")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
    sp = spectrum.isel(wavenumber=slice(1, None))
    ax.loglog(sp["wavenumber"], sp, label=label)
    ax.set_xlabel(_axis_label(spectrum["wavenumber"], "wavenumber"))
    ax.set_ylabel(f"energy [{spectrum.attrs.get('units', '')}]")
    if label:
        ax.legend()
    return ax.figure
