"""Audit X (s61): how the amortized and LD-EnSF experiments compute what they report.

X1 a diverged (NaN) cycle counts as lost under both lost rules, and the spread is NaN with
the RMSE; X2 a wall-time part not measured stays NaN in the summary; X3 LD-EnSF's whole
pipeline (encoder + latent step + decoding) is timed beside its latent step; X4 the Re
spread is relative per trajectory, as its error; X5 3D-Var's "spread" and the lost rules
are named in the summary."""

import warnings

import numpy as np
import pytest
import xarray as xr

from xdyn.experiments import _ldensf_report as report
from xdyn.experiments.amortized import _METRICS, _scores, _summary

# ------------------------------------------------------------------ X1: amortized _scores


@pytest.fixture(scope="module")
def diverged():
    """The audit's p2_lost_nan.py: a LETKF run on Lorenz-96, NaN from time 120 on as the
    divergence monitor leaves it (200 times 0.1 apart; 150 scored after a burn-in of 5)."""
    from xdyn.assimilation import LETKF
    from xdyn.observe import observe
    from xdyn.systems import Lorenz96

    truth = Lorenz96(n=40).simulate(n_steps=2 * 199, dt=0.05, save_every=2, burn_in=10,
                                    random_state=2)
    truth = truth.assign_coords(time=truth.time - truth.time[0])
    obs = observe(truth, "identity", noise_std=1.0, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        an = LETKF(n_members=10, inflation=1.0, localization_radius=4.0,
                   raise_on_divergence=False, random_state=0,
                   return_ensemble=True).fit(obs).predict(obs)
    an["x"][dict(time=slice(120, None))] = np.nan
    an["lost"][dict(time=slice(120, None))] = True
    return an, truth


@pytest.mark.parametrize("lost_from_truth", [False, True])
def test_a_diverged_cycle_is_lost_under_both_rules(diverged, lost_from_truth):
    an, truth = diverged
    scores = _scores(an, truth, 5.0, lost_from_truth)
    # was 0.0 with lost_from_truth (NaN > std is False) while the RMSE was inf
    assert scores["lost"] == pytest.approx(80 / 150)     # the LETKF kept track before
    assert scores["rmse"] == np.inf
    # was 0.249, the spread of the finite part
    assert np.isnan(scores["spread"])


def test_a_finite_run_keeps_its_spread_and_lost_share(diverged):
    an, truth = diverged
    finite = an.isel(time=slice(0, 120))
    scores = _scores(finite, truth.isel(time=slice(0, 120)), 5.0, True)
    assert np.isfinite(scores["rmse"]) and np.isfinite(scores["spread"])
    assert scores["spread"] > 0
    assert 0.0 <= scores["lost"] < 1.0


# ------------------------------------------------------------------ X5: amortized summary


def test_3dvar_spread_and_the_lost_rule_are_named_in_the_summary():
    one = xr.DataArray([[0.3, 0.7]], dims=("case", "method"),
                       coords={"case": ["full"], "method": ["LETKF-10", "3D-Var"]})
    res = xr.Dataset({name: one for name in _METRICS})
    res["cost_ratio_vs_letkf"] = one.isel({"method": 0}, drop=True)
    for rule in ("lost-track monitor", "RMSE > climatological std"):
        res["lost_share"].attrs["lost_rule"] = rule
        metrics = {(r["method"], r["metric"]) for r in _summary(res)}
        assert ("LETKF-10", "spread") in metrics
        assert ("3D-Var", "spread") not in metrics
        assert ("3D-Var", "3D-Var analysis-error std from (I - KH)B (not an ensemble "
                          "spread)") in metrics
        assert ("LETKF-10", f"lost share ({rule})") in metrics
        assert not any(m == "lost share" for _, m in metrics)


# ------------------------------------------------------------ X2, X3: LD-EnSF wall times

# a part that was not measured: the free forecast's (all), a failed EnSF's analysis
WALLS = np.array([[1e-3, 2e-3, 5e-3],        # LD-EnSF: dynamics, latent analysis, enc+dec
                  [1e-3, 6e-3, 5e-3],        # LD-EnSF joint
                  [0.5, np.nan, 0.0],        # EnSF, failed: its forecasts' rate only
                  [0.5, 0.2, 0.0],           # LETKF
                  [np.nan, np.nan, np.nan]])  # free latent forecast: not timed


def _tiny_results(walls=WALLS):
    """A results Dataset of 2 trajectories, 4 times (the audit's p6_wall_summary.py)."""
    # the layout before audit X3 had two parts: lets this file run on the old code
    walls = walls[:, :len(getattr(report, "PARTS", "da"))]
    T = 4
    test = xr.Dataset({"Re": ("trajectory", [600.0, 1200.0])},
                      coords={"time": np.arange(T) * 0.2})
    n_m = len(report.METHODS)
    rel = xr.DataArray(np.full((n_m, T), 0.1), dims=("assimilator", "time"))
    res = report.results_dataset(
        test, rel, rel.expand_dims(variable=["w"], axis=1), np.full((n_m, T), 0.2),
        np.full((n_m, 1, T), 0.05), np.zeros((1, T)), np.array([[600.0, 1200.0]]),
        np.ones((1, 2, T)), np.ones((1, 2, T)), walls, ["Re"], ["w"])
    res["ldnet_test_rel_rmse"] = ((), 0.1)
    res["ldnet_train_rel_rmse"] = ((), 0.1)
    res.attrs.update(observed_points=100, observed_fraction=0.01)
    return res


def _wall_rows(res):
    return {(r["method"], r["metric"]): r["value"] for r in report.summary(res)
            if "wall time" in r["metric"]}


def test_a_wall_time_not_measured_leaves_no_summary_row():
    rows = _wall_rows(_tiny_results())
    methods = {m for m, _ in rows}
    # was 0.0 s for the free forecast, and 0.5 s (its dynamics alone) for the failed EnSF
    assert "free latent forecast" not in methods
    assert "EnSF" not in methods
    assert all(np.isfinite(v) and v > 0 for v in rows.values())


def test_whole_pipeline_and_latent_step_are_both_in_the_summary():
    rows = _wall_rows(_tiny_results())
    whole = "wall time per assimilation step (whole pipeline)"
    latent = ("latent step wall time (dynamics + latent analysis; encoder and decoding "
              "excluded)")
    for m in ("LD-EnSF", "LD-EnSF joint"):
        assert rows[(m, whole)] >= rows[(m, latent)]
    assert rows[("LD-EnSF", whole)] == pytest.approx(8e-3)
    assert rows[("LD-EnSF", latent)] == pytest.approx(3e-3)
    assert rows[("LETKF", whole)] == pytest.approx(0.7)
    # the latent step is LD-EnSF's alone
    assert not any(m in ("LETKF", "EnSF") for m, metric in rows if metric == latent)


def test_speed_ups_over_ensf_say_which_step_they_compare():
    walls = WALLS.copy()
    walls[2] = (0.5, 0.1, 0.0)                    # EnSF ran: 0.6 s a step
    rows = {(r["method"], r["metric"]): r["value"] for r in report.summary(_tiny_results(walls))
            if "speed-up" in r["metric"]}
    assert rows[("LD-EnSF", "speed-up per assimilation step over EnSF (whole pipeline)")] \
        == pytest.approx(0.6 / 8e-3)
    assert rows[("LD-EnSF", "latent-step speed-up over EnSF's whole step (encoder and "
                            "decoding excluded)")] == pytest.approx(0.6 / 3e-3)
    table = report.table(_tiny_results(walls))
    assert "enc+dec [s/step]" in table
    assert "whole pipeline (encoder, latent step, decoding) 75x, latent step only 200x" in table


def test_timed_predict_times_the_whole_ldensf_pipeline():
    import sys
    from pathlib import Path

    from xdyn.assimilation import LDEnSF, ObservationEncoder
    from xdyn.experiments import ldensf
    from xdyn.observe import EveryKth, observe
    from xdyn.rom import LDNet

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rom"))
    from test_ldnet import SMALL, growing_mode

    rng = np.random.RandomState(2)
    train, test = growing_mode(rng.uniform(-2, 2, 8)), growing_mode(rng.uniform(-2, 2, 3))

    def obs(truth):
        return observe(truth[["u"]], EveryKth(4, dim="x"), noise_std=0.1, random_state=0)

    enc = ObservationEncoder(hidden_size=8, n_layers=1, max_epochs=2, batch_size=8,
                             device="cpu", random_state=0)
    filt = LDEnSF(LDNet(max_epochs=2, **SMALL), enc, n_members=4, n_pseudo_steps=5,
                  random_state=0).fit(obs(train), train)
    # the old code had no whole-pipeline time: its walls were filt.timing_ alone
    out, (dyn, ana, rest) = ldensf._timed_predict(filt, obs(test))
    assert "u" in out
    assert (dyn, ana) == (filt.timing_["dynamics"], filt.timing_["analysis"])
    assert rest > 0                                # the encoder and the decoding take time


# ------------------------------------------------------------------ X4: LD-EnSF Re spread


def test_parameter_spread_is_relative_per_trajectory():
    from xdyn.experiments import ldensf

    # the audit's p11_param_spread.py: Re ~ U(500, 1500), 40 flows, the same spread on each
    rng = np.random.RandomState(0)
    true = rng.uniform(500, 1500, 40)
    spread = np.full((40, 5), 100.0)
    # the old code computed spread.mean(0) / mean|true| = 0.093 inline in both cases
    per_trajectory = ldensf._relative_to_true(spread, true, per_trajectory=True)
    np.testing.assert_allclose(per_trajectory, (100.0 / true).mean())
    assert per_trajectory[0] == pytest.approx(0.101, abs=5e-4)
    np.testing.assert_allclose(ldensf._relative_to_true(spread, true, per_trajectory=False),
                               100.0 / true.mean())
    # the error beside it is measured the same way
    est = true[:, None] + spread
    np.testing.assert_allclose(ldensf._param_rel_error(est, true, True), per_trajectory)
