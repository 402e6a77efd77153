"""Robustness sweep of the LD-EnSF experiments: sparser, noisier, less frequent observations
and smaller ensembles (Xiao, Si & Chen, ICLR 2026, their robustness studies).

One setting changes one thing of the experiment's observations or ensemble at a
time, everything else as in the main comparison, on the same test trajectories:

* ``noise_level``: the relative noise of the observations (the encoder, trained
  at the main level, is not retrained: robustness to a noise it did not see);
* ``obs_interval``: observations at every 2nd or 4th kept step (the encoder is
  retrained on observations at that interval, since it reads their history);
* ``stride_factor``: every 30th point of the 150-point grid instead of every
  15th, a quarter of the stations (the encoder retrained on them);
* ``n_members``: 5 and 10 members instead of 20.

The quick runs sweep the harder value of each (:data:`QUICK_SWEEP`); the quick
tsunami and shallow-water runs score LD-EnSF alone under them (the full-space
rows are NaN: their full-space filters cost 44 s and 130 s a setting, beyond
the 10-minute budget); the quick Kolmogorov run scores every method.

The LDNet is the main comparison's, the full-space filters are rerun on the same
observations (the driver is :func:`xdyn.experiments.ldensf.robustness_sweep`;
this module holds the settings and the presentation). Scores: the relative
field RMSE averaged over the analysis times after the first, and LD-EnSF's
parameter error at the last time.
"""

from __future__ import annotations


import numpy as np
import xarray as xr

__all__ = ["SWEEP", "QUICK_SWEEP", "RETRAIN", "setting_label", "robustness_dataset",
           "robustness_figure", "robustness_lines", "robustness_rows"]

SWEEP = {"noise_level": (0.05, 0.2), "obs_interval": (2, 4), "stride_factor": (2,),
         "n_members": (5, 10)}
# the quick runs sweep the harder side of each axis only: the whole sweep took the quick
# tsunami run to 598 s (LETKF's 25 s per setting; measured 2026-12-03)
QUICK_SWEEP = {"noise_level": (0.2,), "obs_interval": (4,), "stride_factor": (2,),
               "n_members": (5,)}
RETRAIN = ("obs_interval", "stride_factor")  # the encoder reads these observations


def setting_label(axis, value):
    return {"noise_level": f"noise {value:g}", "obs_interval": f"every {value:g} steps",
            "stride_factor": f"stations / {value**2:g}", "n_members": f"{value:g} members",
            "default": "as the main comparison"}[axis]


def robustness_dataset(labels, axes, values, rmse, p_err, methods, params):
    """The sweep's results: relative field RMSE per (setting, method), LD-EnSF's parameter
    errors per (setting, parameter)."""
    coords = {"setting": ("setting", labels, {"long_name": "robustness setting"}),
              "setting_axis": ("setting", axes, {"long_name": "what the setting changes"}),
              "setting_value": ("setting", values, {"long_name": "its value", "units": "1"})}
    return xr.Dataset(
        {"robust_field_rel_rmse": (("setting", "assimilator"), np.array(rmse, float), {
            "long_name": "relative RMSE of the fields, mean over the analysis times after the "
                         "first", "units": "1"}),
         "robust_parameter_rel_error": (("setting", "parameter"), np.array(p_err, float), {
             "long_name": "LD-EnSF relative parameter error at the last analysis time",
             "units": "1"})},
        coords={**coords, "assimilator": list(methods), "parameter": list(params)})


def robustness_lines(res):
    """Table lines: one per setting, the methods' relative field RMSE and LD-EnSF's parameters."""
    r = res.robust_field_rel_rmse
    methods = [str(m) for m in r["assimilator"].values]
    lines = ["robustness (field rel RMSE, mean over the analysis times; LD-EnSF parameter "
             "error at the last time):",
             f"{'setting':<24}" + "".join(f"{m[:13]:>14}" for m in methods) + "  parameters"]
    for s in r["setting"].values:
        row = r.sel(setting=s)
        pe = res.robust_parameter_rel_error.sel(setting=s)
        lines.append(f"{str(s):<24}" + "".join(f"{float(row.sel(assimilator=m)):>14.3f}"
                                                for m in methods)
                     + "  " + ", ".join(f"{float(v):.3f}" for v in pe.values))
    return lines


def robustness_rows(res):
    """Summary rows: the field relative RMSE of every method under every setting."""
    from xdyn.experiments.catalogue import summary_rows

    rows = []
    for s in res["setting"].values:
        rows += summary_rows(res.robust_field_rel_rmse.sel(setting=s),
                             f"field relative RMSE, robustness: {s}", method_dim="assimilator")
    return rows


def robustness_figure(res):
    """One panel per swept quantity: each method's field error against its value."""
    import matplotlib.pyplot as plt

    r = res.robust_field_rel_rmse
    default = r.sel(setting=r.setting_axis == "default").isel(setting=0)
    swept = [a for a in SWEEP if (r.setting_axis == a).any()]  # SWEEP's order
    fig, axs = plt.subplots(1, len(swept), figsize=(3.6 * len(swept), 3.2), squeeze=False,
                            constrained_layout=True)
    for ax, axis in zip(axs[0], swept):
        pick = r.sel(setting=r.setting_axis == axis)
        x = np.concatenate([[float(_default_value(res, axis))], pick.setting_value.values])
        order = np.argsort(x)
        for m in r["assimilator"].values:
            y = np.concatenate([[float(default.sel(assimilator=m))],
                                pick.sel(assimilator=m).values])
            ax.plot(x[order], y[order], "o-", label=str(m))
        ax.set_xlabel(axis.replace("_", " "))
        ax.set_yscale("log")
        ax.set_title(axis.replace("_", " "))
    axs[0, 0].set_ylabel("field relative RMSE")
    axs[0, -1].legend(fontsize=7)
    return fig


def _default_value(res, axis):
    import json

    return json.loads(res.attrs["config_json"])[axis]
