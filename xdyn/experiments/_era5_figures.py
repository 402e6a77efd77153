"""Figures of the ERA5 forecast experiments: scores by lead, maps of forecast and error."""

from __future__ import annotations

import numpy as np

__all__ = ["score_curves", "error_maps"]


def score_curves(scores, var, unit="h"):
    """RMSE, ACC and CRPS of ``var`` against lead, one line per method.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> s = xr.Dataset({"T_rmse": (("method", "lead_time"), np.ones((2, 3)), {"units": "K"})},
    ...                coords={"method": ["a", "b"], "lead_time": [1.0, 2.0, 3.0]})
    >>> fig = score_curves(s, "T")
    >>> len(fig.axes)
    1
    >>> import matplotlib.pyplot as plt; plt.close("all")
    """
    import matplotlib.pyplot as plt

    metrics = [m for m in ("rmse", "acc", "crps") if f"{var}_{m}" in scores]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        da = scores[f"{var}_{metric}"]
        for method in da.method.values:
            ax.plot(da.lead_time, da.sel({"method": method}), marker=".", label=str(method))
        ax.set_xlabel(f"lead time [{unit}]")
        ax.set_ylabel(f"{var} {metric.upper()} [{da.attrs.get('units', '')}]")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def error_maps(forecasts, truth, var, lead, init_index=-1, unit="h", scale=None):
    """Forecast (mean) and its error at ``lead`` from one initialisation, per method.

    Parameters
    ----------
    forecasts : dict
        Method name -> forecast Dataset with ``lead_time`` and ``valid_time``.
    truth : xarray.Dataset
        The verifying data, on ``time``.
    var : str
        The variable mapped.
    lead : numpy.timedelta64
        The lead mapped.
    init_index : int, default=-1
        Which initialisation, counted among those whose valid time has a truth
        (default: the last one).
    unit : str, default="h"
        The unit of the lead in the title, e.g. ``"months"``.
    scale : numpy.timedelta64, optional
        The length of one ``unit`` (default one hour; 30 days for the months of
        ``era5-monthly``'s 360-day calendar).

    Returns
    -------
    matplotlib.figure.Figure
        Truth and forecasts in the top row, errors below; the title names the
        variable, the initialisation and the lead in ``unit``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t = np.datetime64("2017-01-01", "ns") + np.arange(3) * np.timedelta64(30, "D")
    >>> truth = xr.Dataset({"z": (("time", "lat", "lon"), np.ones((3, 2, 2)))},
    ...                    coords={"time": t, "lat": [0.0, 1.0], "lon": [0.0, 1.0]})
    >>> lead = np.timedelta64(60, "D")
    >>> fc = truth.isel(time=[0]).expand_dims(lead_time=[lead]).transpose("time", ...)
    >>> fc = fc.assign_coords(valid_time=(("time", "lead_time"), [[t[2]]]))
    >>> fig = error_maps({"a": fc}, truth, "z", lead, unit="months",
    ...                  scale=np.timedelta64(30, "D"))
    >>> fig._suptitle.get_text()
    'z from 2017-01-01T00:00, lead 2 months'
    >>> import matplotlib.pyplot as plt; plt.close("all")
    """
    import matplotlib.pyplot as plt

    first = next(iter(forecasts.values()))[var].sel(lead_time=lead)
    valid = first["valid_time"].values
    ok = np.isin(valid, truth["time"].values)
    init = first["time"].values[np.flatnonzero(ok)[init_index]]
    target = truth[var].sel(time=first["valid_time"].sel(time=init).values)
    fig, axes = plt.subplots(2, len(forecasts) + 1, figsize=(3.0 * (len(forecasts) + 1), 5.2),
                             squeeze=False)
    vmin, vmax = float(target.min()), float(target.max())
    im = axes[0][0].pcolormesh(target.lon, target.lat, target, vmin=vmin, vmax=vmax)
    axes[0][0].set_title("truth", fontsize=9)
    fig.colorbar(im, ax=axes[0][0], shrink=0.8)
    axes[1][0].axis("off")
    errs = []
    for j, (name, fc) in enumerate(forecasts.items(), start=1):
        f = fc[var].sel(time=init, lead_time=lead)
        if "member" in f.dims:
            f = f.mean("member")
        axes[0][j].pcolormesh(f.lon, f.lat, f, vmin=vmin, vmax=vmax)
        axes[0][j].set_title(name, fontsize=9)
        errs.append((axes[1][j], f - target))
    lim = max(float(abs(e).max()) for _, e in errs) or 1.0
    for ax, e in errs:
        im = ax.pcolormesh(e.lon, e.lat, e, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title("error", fontsize=9)
    fig.colorbar(im, ax=[a for a, _ in errs], shrink=0.8)
    n = lead / (np.timedelta64(1, "h") if scale is None else scale)
    fig.suptitle(f"{var} from {str(init)[:16]}, lead {n:g} {unit}")
    return fig
