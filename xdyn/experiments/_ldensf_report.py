"""Results, summary rows and table of the LD-EnSF experiments (:mod:`xdyn.experiments.ldensf`)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from xdyn.experiments.catalogue import summary_rows

__all__ = ["METHODS", "results_dataset", "summary", "table"]

# "LD-EnSF joint": the same fitted LD-EnSF with likelihood="joint" (the sparse observations
# through the decoder as well as the encoder's output) and refine_parameters=True (the
# parameters from the whole observation history through the LDNet); not in the original
METHODS = ("LD-EnSF", "LD-EnSF joint", "EnSF", "LETKF", "free latent forecast")
# the parts of a step: summed, the whole pipeline that yields the scored fields; LD-EnSF's
# "dynamics" and "analysis" are its latent step alone, the encoder and the decoding apart
PARTS = ("dynamics", "analysis", "encoding and decoding")
LATENT = ("dynamics", "analysis")


def results_dataset(test, rel, by_var, lat_err, p_err, p_spread, true, est, spread, wall,
                    params, fields):
    """The results Dataset (errors, timings, parameter estimates) with CF attributes.

    ``wall`` (method, part) holds seconds per step of each of :data:`PARTS`.
    """
    t_units = test["time"].attrs.get("units", "1")
    coords = {"assimilator": ("assimilator", list(METHODS), {"long_name": "assimilation method"}),
              "time": ("time", test["time"].values, {"long_name": "model time", "units": t_units}),
              "part": ("part", list(PARTS), {
                  "long_name": "part of the step",
                  "comment": "dynamics: the forecast (LD-EnSF: latent); analysis: LD-EnSF's latent "
                             "analysis, the full-space filters' rest of the run; encoding and "
                             "decoding: the rest of LD-EnSF's predict (observation encoder, "
                             "members decoded onto the grid), 0 for the full-space filters"}),
              "trajectory": ("trajectory", np.arange(true.shape[1]),
                             {"long_name": "test trajectory"}),
              "parameter": ("parameter", params, {"long_name": "unknown system parameter"}),
              "variable": ("variable", fields, {"long_name": "field"})}
    units = [test[p].attrs.get("units", "1") for p in params]
    one = "1" if len(set(units)) > 1 else units[0]
    return xr.Dataset(
        {"field_rel_rmse": (("assimilator", "time"), rel.values,
                            {"long_name": "relative RMSE of the fields (mean over the fields)",
                             "units": "1"}),
         "field_rel_rmse_by_variable": (("assimilator", "variable", "time"), by_var.values,
                                        {"long_name": "relative RMSE of each field",
                                         "units": "1"}),
         "latent_rel_error": (("assimilator", "time"), lat_err,
                              {"long_name": "relative error of the latent state (vs the LDNet "
                               "rollout under the true parameters)", "units": "1"}),
         "parameter_rel_error": (("assimilator", "parameter", "time"), p_err,
                                 {"long_name": "relative error of the estimated parameters",
                                  "units": "1"}),
         "parameter_rel_spread": (("parameter", "time"), p_spread,
                                  {"long_name": "LD-EnSF parameter spread relative to the true "
                                   "values", "units": "1"}),
         "wall_per_step": (("assimilator", "part"), wall,
                           {"long_name": "wall time per assimilation step by part (summed: "
                            "the whole pipeline)", "units": "s"}),
         "parameter_true": (("parameter", "trajectory"), true,
                            {"long_name": "true parameter value", "units": one}),
         "parameter_estimate": (("parameter", "trajectory", "time"), est,
                                {"long_name": "LD-EnSF parameter estimate (ensemble mean)",
                                 "units": one}),
         "parameter_spread": (("parameter", "trajectory", "time"), spread,
                              {"long_name": "LD-EnSF ensemble spread of the parameter",
                               "units": one})},
        coords=coords)


def summary(res):
    """Summary rows: one per (method, metric)."""
    mean_t = res.isel(time=slice(1, None)).mean("time", skipna=False)
    rows = (summary_rows(mean_t.field_rel_rmse, "field relative RMSE", method_dim="assimilator")
            + summary_rows(mean_t.latent_rel_error.dropna("assimilator"), "latent relative error",
                           method_dim="assimilator"))
    last = res.isel(time=-1)
    for p in res["parameter"].values:
        rows += summary_rows(last.parameter_rel_error.sel(parameter=p).dropna("assimilator"),
                             f"{p} relative error (last step)", method_dim="assimilator")
        rows += summary_rows(last.parameter_rel_spread.sel(parameter=p),
                             f"{p} relative spread (last step)", method="LD-EnSF",
                             lower_is_better=None)  # a spread describes, it is not a score
    if "spread_skill" in res:
        for q in res["quantity"].values:
            rows += summary_rows(res.spread_skill.sel(quantity=q).dropna("assimilator"),
                                 f"{q} spread-skill ratio (1: calibrated)",
                                 method_dim="assimilator", lower_is_better=None)
    if "spread_scale" in res:
        for q in res["quantity"].values:
            rows += summary_rows(res.spread_scale.sel(quantity=q).dropna("assimilator"),
                                 f"{q} spread calibration factor", method_dim="assimilator",
                                 lower_is_better=None)
    # a part not measured (the free forecast's, a failed filter's analysis) leaves no row
    w = res.wall_per_step
    whole = w.sum("part", skipna=False)
    latent = w.sel(part=list(LATENT)).sum("part", skipna=False)
    ld = ["LD-EnSF", "LD-EnSF joint"]
    rows += (summary_rows(whole.dropna("assimilator"),
                          "wall time per assimilation step (whole pipeline)",
                          method_dim="assimilator", units="s")
             + summary_rows(latent.sel(assimilator=ld).dropna("assimilator"),
                            "latent step wall time (dynamics + latent analysis; encoder and "
                            "decoding excluded)", method_dim="assimilator", units="s")
             + summary_rows(res.ldnet_test_rel_rmse, "LDNet surrogate relative RMSE",
                            method="LDNet"))
    ensf = whole.sel(assimilator="EnSF")
    for m in ld:
        rows += summary_rows(ensf / whole.sel(assimilator=m),
                             "speed-up per assimilation step over EnSF (whole pipeline)",
                             method=m, units="1", lower_is_better=False)
        rows += summary_rows(ensf / latent.sel(assimilator=m),
                             "latent-step speed-up over EnSF's whole step (encoder and decoding "
                             "excluded)", method=m, units="1", lower_is_better=False)
    # the original's measure: the full model's ensemble forecast against the latent step
    rows += summary_rows(w.sel(assimilator="EnSF", part="dynamics")
                         / w.sel(assimilator="LD-EnSF", part="dynamics"),
                         "dynamics speed-up per step over the full model (latent forecast only)",
                         method="LD-EnSF", units="1", lower_is_better=False)
    if "robust_field_rel_rmse" in res:
        from xdyn.experiments._ldensf_robustness import robustness_rows

        rows += robustness_rows(res)
    return rows


def _speed_up(x):
    """A speed-up as printed: whole from 10, two digits below (a slow-down shows as < 1)."""
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def table(res):
    """The printed table."""
    mean_t = res.isel(time=slice(1, None)).mean("time", skipna=False)
    params = [str(p) for p in res["parameter"].values]
    head = "".join(f"{p[:12] + ' err':>17}" for p in params)
    lines = [f"{'method':<22}{'field rel RMSE':>15}{'latent rel err':>15}{head}"
             f"{'dyn [s/step]':>14}{'analysis [s/step]':>19}{'enc+dec [s/step]':>18}",
             "-" * (103 + 17 * len(params))]
    last = res.parameter_rel_error.isel(time=-1)
    for m in res["assimilator"].values:
        c, w = mean_t.sel(assimilator=m), res.wall_per_step.sel(assimilator=m)
        errs = "".join(f"{float(last.sel(assimilator=m, parameter=p)):>17.3f}" for p in params)
        lines.append(f"{m:<22}{float(c.field_rel_rmse):>15.3f}{float(c.latent_rel_error):>15.3f}"
                     f"{errs}{float(w.sel(part='dynamics')):>14.2e}"
                     f"{float(w.sel(part='analysis')):>19.2e}"
                     f"{float(w.sel(part='encoding and decoding')):>18.2e}")
    if "letkf_inflation" in res.attrs:
        tuned = "tuned on held-out flows" if res.attrs.get("letkf_tuning", "{}") != "{}" \
            else "not tuned"
        lines.append(f"LETKF inflation {res.attrs['letkf_inflation']:g}, localization radius "
                     f"{res.attrs['letkf_localization_radius']:g} ({tuned})")
    spread = res.parameter_rel_spread.isel(time=-1)
    lines.append("LD-EnSF relative parameter spread (last step): " + ", ".join(
        f"{p} {float(spread.sel(parameter=p)):.3f}" for p in params))
    if "spread_skill" in res:
        ratio = res.spread_skill.dropna("assimilator", how="all")
        lines.append("spread-skill ratio (1: calibrated): " + "; ".join(
            f"{m} " + ", ".join(f"{q} {float(ratio.sel(assimilator=m, quantity=q)):.3g}"
                                for q in ratio["quantity"].values)
            for m in ratio["assimilator"].values))
    if "spread_scale" in res and not np.allclose(res.spread_scale.fillna(1.0), 1.0):
        scale = res.spread_scale.dropna("assimilator", how="all")
        factors = "; ".join(f"{m} " + ", ".join(
            f"{q} {float(scale.sel(assimilator=m, quantity=q)):.3g}"
            for q in scale["quantity"].values) for m in scale["assimilator"].values)
        lines.append(f"  (the spreads times factors that calibrate them on "
                     f"{res.attrs.get('n_calibration', '?')} held-out trajectories: {factors})")
    w = res.wall_per_step
    ensf = float(w.sel(assimilator="EnSF").sum("part", skipna=False))
    dyn = w.sel(part="dynamics")
    dyn_speed = float(dyn.sel(assimilator="EnSF") / dyn.sel(assimilator="LD-EnSF"))

    def speed(m, parts):
        return _speed_up(ensf / float(w.sel(assimilator=m, part=list(parts)).sum(skipna=False)))

    lines.append(f"LDNet surrogate relative RMSE: test {float(res.ldnet_test_rel_rmse):.3f}, "
                 f"train {float(res.ldnet_train_rel_rmse):.3f}; "
                 f"{res.attrs['observed_points']} observed points "
                 f"({100 * res.attrs['observed_fraction']:.2f} % of the observed fields)")
    lines.append(f"speed-up per step over EnSF's whole step: LD-EnSF whole pipeline (encoder, "
                 f"latent step, decoding) {speed('LD-EnSF', PARTS)}x, latent step only "
                 f"{speed('LD-EnSF', LATENT)}x (dynamics {_speed_up(dyn_speed)}x); LD-EnSF "
                 f"joint {speed('LD-EnSF joint', PARTS)}x, latent step only "
                 f"{speed('LD-EnSF joint', LATENT)}x")
    if "robust_field_rel_rmse" in res:
        from xdyn.experiments._ldensf_robustness import robustness_lines

        lines += robustness_lines(res)
    return "\n".join(lines)
