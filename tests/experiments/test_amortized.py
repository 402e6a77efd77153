"""The lorenz96-amortized experiment: protocol, results, summary rows, figures."""

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from xdyn.experiments import get_experiment  # noqa: E402
from xdyn.experiments._amortized_figures import rank_histogram  # noqa: E402
from xdyn.experiments.amortized import (AmortizedSetup, amortized_experiment,  # noqa: E402
                                        every_kth_random, make_twins)

TINY = AmortizedSetup(n_sites=20, n_train_trajectories=2, n_train_times=40, n_valid_times=30,
                      n_test_times=30, test_burn_in_times=10, hidden_size=4, seq_len=6,
                      n_sequences=8, batch_size=8, max_epochs=2, curve_times=24,
                      inflations=(1.05,), radii=(4.0,), b_scales=(0.1,), var4d=False)


def test_twins_identical_for_all_methods_and_every_fourth_cycles():
    twins = make_twins(TINY, seed=0)
    truth, obs = twins["truth"], twins["obs"]
    assert truth["train"].sizes == {"trajectory": 2, "time": 40, "k": 20}
    assert truth["test"].sizes["time"] == 40  # scored part + burn-in
    np.testing.assert_allclose(np.diff(truth["test"]["time"]), 0.1)
    full, sparse = obs["full"]["test"], obs["every4th"]["test"]
    # the same noisy values where both observe: one observation draw for every method
    kept = sparse["observation"].notnull()
    np.testing.assert_array_equal(full["observation"].where(kept), sparse["observation"])
    assert (kept.sum("obs") == 5).all()
    offsets = [int(np.flatnonzero(row)[0]) for row in kept.values]
    assert set(offsets) == {0, 1, 2, 3}  # the observed set changes with time
    again = make_twins(TINY, seed=0)
    xr.testing.assert_identical(again["obs"]["every4th"]["train"], obs["every4th"]["train"])


def test_misspecified_truth_is_the_two_scale_slow_state_seen_by_the_single_scale_model():
    import dataclasses

    from xdyn.experiments.amortized import _two_scale_truth
    from xdyn.observe import observe
    from xdyn.systems import Lorenz96, TwoScaleLorenz96

    setup = dataclasses.replace(TINY, truth_model="two_scale", noise_std=2.5, forcing=10.0)
    model = Lorenz96(n=20, F=10.0)
    truth = _two_scale_truth(setup, model, n_times=12, burn=0.5, rs=1)
    assert truth.attrs["system"] == "Lorenz96" and "TwoScale" in truth.attrs["truth_system"]
    assert observe(truth, "identity", noise_std=2.5, random_state=0).attrs["system"] == "Lorenz96"
    direct = TwoScaleLorenz96(K=20, J=10, F=10.0).simulate(n_steps=20 * 11, dt=0.005,
                                                           save_every=20, burn_in=0.5,
                                                           random_state=1)
    np.testing.assert_allclose(truth["x"].values, direct["x"].values)
    np.testing.assert_allclose(truth["time"], np.arange(12) * 0.1, atol=1e-9)


def test_every_kth_random_keeps_one_set_per_time():
    ds = xr.Dataset({"observation": (("time", "obs"), np.ones((50, 8)))})
    out = every_kth_random(ds, 4, random_state=0)
    assert (out["observation"].notnull().sum("obs") == 2).all()


def test_rank_histogram_of_an_underdispersed_ensemble_is_u_shaped():
    rng = np.random.RandomState(0)
    ens = xr.DataArray(0.3 * rng.normal(size=(3000, 5)), dims=("time", "member"))
    truth = xr.DataArray(rng.normal(size=3000), dims="time")
    freq = rank_histogram(ens, truth)
    assert freq[0] > 2 / 6 and freq[-1] > 2 / 6 and freq[2] < 1 / 6


def test_tiny_run_results_summary_and_figures():
    result = amortized_experiment(TINY, seed=0, progress=False)
    res = result.results
    assert list(res["method"].values) == ["amortized", "EnKF-10", "LETKF-10", "LETKF-30",
                                          "3D-Var"]
    for name in ("analysis_rmse", "spread", "lost_share", "cost_per_cycle", "train_time"):
        assert res[name].dims == ("case", "method")
        assert {"units", "long_name"} <= set(res[name].attrs)
    assert np.isfinite(res.analysis_rmse.values).all()
    assert np.isfinite(res.spread.sel({"method": "LETKF-10"})).all()
    assert res.curve_train_loss.dims == ("case", "epoch") and res.sizes["epoch"] == 2
    assert np.isfinite(res.curve_valid_rmse.values).all()
    assert float(res.reference_letkf10_rmse.sel(case="full")) == 0.285
    assert "config_json" in res.attrs
    assert set(json.loads(res.attrs["amortized_clamped_cycles"])) == {"full", "every4th"}
    metrics = {r["metric"] for r in result.summary}
    assert {"analysis rmse", "cost per cycle", "test cost ratio vs LETKF-10"} <= metrics
    assert "learning curve" in result.table
    assert {"hovmoller_full", "rmse_time_every4th", "rank_histogram_full",
            "learning_curve"} <= set(result.figures)
    plt.close("all")


def test_parts_in_two_processes_equal_the_serial_run():
    # each case's training and its baselines' tuning run as parallel jobs (run alone on a
    # multi-core machine); every job seeds its own streams, so the scores are the serial
    # run's (up to the rounding of a different thread count in the training)
    import dataclasses

    setup = dataclasses.replace(TINY, max_epochs=1)
    serial, parallel = (amortized_experiment(dataclasses.replace(setup, n_jobs=n), seed=0,
                                             progress=False).results for n in (1, 2))
    np.testing.assert_allclose(parallel.analysis_rmse, serial.analysis_rmse, rtol=1e-4)
    np.testing.assert_allclose(parallel.curve_valid_rmse, serial.curve_valid_rmse, rtol=1e-4)
    assert parallel.attrs["tuned_params"] == serial.attrs["tuned_params"]
    plt.close("all")


def test_registered():
    for name in ("lorenz96-amortized", "lorenz96-misspecified"):
        assert "McCabe" in get_experiment(name).reference


@pytest.mark.slow
def test_quick_run():
    result = get_experiment("lorenz96-amortized").func(quick=True, progress=False)
    res = result.results
    # the learned filter must at least track the truth (well under climatology, ~3.6);
    # measured 2026-12-04 (sequences redrawn every epoch, early stopping): full 0.418,
    # every-4th 1.247 against 3D-Var's 0.559 and 2.029 (LETKF-10 0.302 and 0.792: the
    # issue's targets stay missed); 2026-12-06, 70 epochs for the budget: 0.424, 1.252;
    # with ensemble_dropout 0.428, 1.319 and spreads 0.318, 0.983 (0.74-0.75 of the
    # error; 3e-7 and 2e-4 without: the ensemble had collapsed)
    rmse = res.analysis_rmse.sel({"method": "amortized"})
    assert float(rmse.sel(case="full")) < 1.5
    assert (rmse < res.analysis_rmse.sel({"method": "3D-Var"})).all()
    assert (res.spread.sel({"method": "amortized"}) > 0.3 * rmse).all()
    assert (res.n_epochs_kept <= res.sizes["epoch"]).all()
    plt.close("all")


@pytest.mark.slow
def test_quick_misspecified_run_beats_the_tuned_letkf10():
    # the target: lower RMSE than the tuned LETKF-10 with the same wrong model.
    # Measured 2026-12-04 (~3.5 min each), seeds 0 / 1 / 2: amortized 0.837 / 0.832 / 0.881
    # against LETKF-10 1.014 / 1.027 / 1.031 and LETKF-30 0.933 / 0.950 / 0.936
    result = get_experiment("lorenz96-misspecified").func(quick=True, progress=False)
    rmse = result.results.analysis_rmse.sel(case="full")
    # a dict: DataArray.sel's own `method` keyword would take the name
    amortized, letkf = (float(rmse.sel({"method": m})) for m in ("amortized", "LETKF-10"))
    assert amortized < letkf
    assert letkf < 1.2  # the baseline itself tracks the truth
    # 2026-12-06, 70 epochs, ensemble_dropout: 0.847, spread 0.600 (4e-7 without)
    assert float(result.results.spread.sel(case="full").sel({"method": "amortized"})) \
        > 0.3 * amortized
    plt.close("all")
