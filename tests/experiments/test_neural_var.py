"""The lorenz63-neural-var experiment: protocol, results, summary rows, figures."""

import dataclasses

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.animation import Animation  # noqa: E402

from xdyn.experiments import get_experiment  # noqa: E402
from xdyn.experiments._neural_var_figures import attractor_animation  # noqa: E402
from xdyn.experiments.neural_var import (NeuralVarSetup, make_trajectories,  # noqa: E402
                                         neural_var_experiment)

TINY = NeuralVarSetup(n_train=6, n_valid=3, n_test=3, n_steps=70, encoders=("mlp",),
                      modes=("x2",), noise_levels=(0.5,), seeds=(0,), max_epochs=1,
                      hidden_size=8)


def test_trajectories_split_by_trajectory_and_test_seeded_apart():
    setup = NeuralVarSetup(n_train=4, n_valid=2, n_test=3, n_steps=20)
    prior, train, valid, test = make_trajectories(setup, seed=0)
    assert train.sizes == {"trajectory": 4, "time": 20}
    assert valid.sizes["trajectory"] == 2 and test.sizes["trajectory"] == 3
    starts = np.concatenate([d.isel(time=0).to_array().values.T for d in (train, valid, test)])
    assert len(np.unique(starts.round(12), axis=0)) == 9  # no trajectory shared
    # the initial spread around the spun-up prior mean is the protocol's N(0, 2^2)
    assert np.allclose(train.attrs["dt"], 0.01)
    assert 0.5 < np.std(starts - prior) < 4.0
    # the test set does not move when the pool grows (its own seed)
    bigger = NeuralVarSetup(n_train=8, n_valid=2, n_test=3, n_steps=20)
    np.testing.assert_array_equal(make_trajectories(bigger, 0)[3].x.values, test.x.values)


def test_tiny_grid_results_summary_and_figures():
    result = neural_var_experiment(TINY, seed=0, progress=False)
    res = result.results
    for name in ("analysis_rmse", "background_rmse", "wrong_wing_share", "wall_time",
                 "single_analysis_rmse", "single_background_rmse"):
        assert res[name].dims == ("encoder", "mode", "noise_std", "training_seed")
        assert "units" in res[name].attrs and "long_name" in res[name].attrs
        assert np.isfinite(res[name].values).all(), name
    assert res.baseline_rmse.dims == ("baseline", "mode", "noise_std")
    assert any(str(b).startswith("Var3D") for b in res.baseline.values)
    # the training: the candidate with the lowest cycled validation RMSE among those whose
    # analyses beat their backgrounds there, cycled and single; then cycled; then single
    assert list(res.candidate.values) == ["seq 1", "seq 10 single 0.05", "seq 10 relative",
                                          "seq 10 relative, B of Var3D"]
    for cell in (res.sel(encoder=e, mode=m, noise_std=n)
                 for e in TINY.encoders for m in TINY.modes for n in TINY.noise_levels):
        scores, ratio = cell.candidate_validation_rmse, cell.candidate_validation_single_ratio
        cycled_ratio = cell.candidate_validation_cycled_ratio
        assert np.isfinite(scores.values).all() and np.isfinite(ratio.values).all()
        assert np.isfinite(cycled_ratio.values).all()
        pool = scores
        for keep in ((ratio < 1) & (cycled_ratio < 1), cycled_ratio < 1, ratio < 1):
            if bool(keep.any()):
                pool = scores.where(keep)
                break
        best = int(np.argmin(pool.fillna(np.inf).values))
        assert int(cell.seq_len) == int(scores.candidate_seq_len[best])
        assert float(cell.single_analysis_weight) == float(
            scores.candidate_single_analysis_weight[best])
        assert str(cell.cycle_loss.values) == str(scores.candidate_cycle_loss[best].values)
        assert str(cell.B_scale_source.values) == str(scores.candidate_B_scale[best].values)
    assert not bool(res.validation_diverged.any())  # some candidate's validation cycle ran
    # the Var3D baseline's B_scale is tuned on the validation split, from 1e-5 up
    assert set(res.var3d_B_scale.values.ravel()) <= {1e-5, 1e-4, 1e-3, 0.003, 0.01, 0.03, 0.1}
    share = res.wrong_wing_share.values
    assert ((share >= 0) & (share <= 1)).all()
    rows = result.summary
    assert {r["metric"] for r in rows} >= {"analysis RMSE", "background RMSE", "wrong-wing share"}
    assert {"method", "value", "units", "lower_is_better"} <= set(rows[0])
    assert any(r["method"].startswith("ExtKF") for r in rows)
    assert "NeuralVar3D mlp" in result.table and "free run" in result.table
    assert {"attractor_and_components", "error_in_time", "worst_cases", "scores"} <= set(
        result.figures)
    assert isinstance(result.figures["attractor_animation"], Animation)
    plt.close("all")
    # the original pipeline's protocol, next to the cycled and single-analysis scores
    assert list(res.training_background.values) == ["forecast", "climatology"]
    for name in ("original_draw_analysis_rmse", "original_cycle_analysis_rmse",
                 "original_cycle_background_rmse"):
        assert res[name].dims[-1] == "training_background"
        assert np.isfinite(res[name].values).all(), name
    # a climatological draw is far from the truth: the original's background RMSE 6.4-14
    assert 5.0 < float(res.original_draw_background_rmse.max()) < 15.0
    assert np.isfinite(res.climatology_trained_analysis_rmse.values).all()
    assert np.isfinite(res.baseline_original_cycle_analysis_rmse.values).all()
    # Var3D's single analyses of the same draws (B = 2 cov) are next to the networks'
    var3d_draw = res.var3d_original_draw_analysis_rmse
    assert (var3d_draw < res.original_draw_background_rmse).all()
    assert "Var3D (B = 2 x clim. cov)" in result.table
    metrics = {r["metric"] for r in rows}
    assert {"original-protocol single-analysis RMSE", "original-protocol cycled analysis RMSE",
            "original-protocol cycled background RMSE",
            "original-protocol single-analysis background RMSE"} <= metrics
    assert "original pipeline's protocol" in result.table


TWO_SEEDS = dataclasses.replace(TINY, encoders=("mlp", "gru"), seeds=(0, 1), baselines=False,
                                original_training=False)


@pytest.fixture(scope="module")
def two_seeds():
    """A serial run of two encoders x two training seeds (shared: it costs a minute)."""
    result = neural_var_experiment(TWO_SEEDS, seed=0, progress=False)
    plt.close("all")
    return result


def test_fits_in_two_processes_equal_the_serial_ones(two_seeds):
    """The networks' fits are independent jobs: two processes fit the same networks (seeded
    streams), so every score but the wall time is the serial run's, bit for bit."""
    serial = two_seeds.results
    parallel = neural_var_experiment(dataclasses.replace(TWO_SEEDS, n_jobs=2), seed=0,
                                     progress=False).results
    plt.close("all")
    compared = [v for v in serial.data_vars if "wall" not in v]
    assert {"analysis_rmse", "candidate_validation_rmse", "single_analysis_rmse"} <= set(compared)
    xr.testing.assert_equal(serial[compared], parallel[compared])  # exact; attrs hold n_jobs
    assert serial.sizes["training_seed"] == 2
    assert np.isfinite(serial.analysis_rmse.values).all()


def test_training_seeds_stay_distinct_rows_in_the_report(two_seeds, tmp_path):
    """The networks' training seeds are a setting (``training_seed``), not the run's
    ``seed`` that ``write_summary`` adds and the report drops as bookkeeping: named
    ``seed``, the two seeds' rows of a cell had the same settings in the report."""
    from xdyn.experiments.catalogue import write_summary
    from xdyn.experiments.report import build_report, collect_summaries

    rows = two_seeds.summary
    write_summary(rows, tmp_path / "lorenz63-neural-var" / "summary.csv",
                  "lorenz63-neural-var", quick=0, seed=5)
    table = collect_summaries(tmp_path)
    assert not table.duplicated(["method", "metric", "settings"]).any()
    assert (table.settings.str.contains("training_seed=0")).any()
    report = build_report(tmp_path)
    ours = report[(report.experiment == "lorenz63-neural-var") & report.value.notna()]
    assert not ours.duplicated(["method", "metric", "settings", "anchor", "source"]).any()
    # the results name the dim as the rows do
    assert "seed" not in two_seeds.results.dims
    assert {r["training_seed"] for r in rows if r["method"] == "NeuralVar3D"
            and r["metric"] == "analysis RMSE" and "training_background" not in r} == {0, 1}


def test_animation_writes_a_gif(tmp_path):
    from matplotlib.animation import PillowWriter

    _, train, _, _ = make_trajectories(NeuralVarSetup(n_train=1, n_valid=1, n_test=1,
                                                      n_steps=20), 0)
    anim = attractor_animation(train.isel(trajectory=0), train.isel(trajectory=0), n_frames=3)
    path = tmp_path / "a.gif"
    anim.save(path, writer=PillowWriter(fps=5))
    plt.close("all")
    assert path.read_bytes()[:6] in (b"GIF89a", b"GIF87a")


def test_registered():
    assert "Neural fixed-point 3D-Var" in get_experiment("lorenz63-neural-var").description


def test_original_statistics_and_draws_from_the_training_split():
    from xdyn.experiments._neural_var_original import (original_draws, original_statistics,
                                                       score_original)

    setup = NeuralVarSetup(n_train=5, n_valid=2, n_test=3, n_steps=40)
    _, train, valid, test = make_trajectories(setup, seed=0)
    mean, cov = original_statistics(train)
    states = np.stack([train[v].values.ravel() for v in "xyz"], -1)
    np.testing.assert_allclose(mean, states.mean(0))
    np.testing.assert_allclose(cov, np.cov(states.T) + 1e-3 * np.eye(3))
    draws = original_draws(mean, cov, test, seed=0)
    d = np.stack([draws[v].values.ravel() for v in "xyz"], -1)
    assert d.shape == (40 * 3, 3)
    # independent of the truth: their error is about the attractor's size
    err = np.sqrt(((d - np.stack([test[v].values.ravel() for v in "xyz"], -1)) ** 2).mean())
    assert err > 0.5 * np.sqrt(np.trace(cov) / 3)
    # scoring the cycle from the mean leaves the estimator's parameters as they were
    from xdyn.assimilation import NeuralVar3D
    from xdyn.observe import observe

    obs = observe(train, ["x", "y"], noise_std=0.5, random_state=0)
    obs_t = observe(test, ["x", "y"], noise_std=0.5, random_state=1)
    est = NeuralVar3D(encoder="mlp", window=4, max_epochs=1, device="cpu", random_state=0,
                      initial_state=[1.0, 2.0, 3.0], module__hidden_size=8).fit(obs, train)
    before = est.get_params()
    sc = score_original(est, obs_t, test, draws, mean, cov)
    assert set(sc) == {"draw_analysis", "cycle_analysis", "cycle_background"}
    assert all(np.isfinite(v) for v in sc.values())
    assert est.get_params()["initial_state"] == before["initial_state"]
    assert est.get_params()["return_background"] is False


@pytest.mark.slow
def test_quick_run_writes_everything(tmp_path):
    """``xdyn run lorenz63-neural-var --quick``: all nine cells at four noise levels, the
    original protocol, the climatology-trained networks at noise 0.5, the training chosen
    per encoder and cell among four candidates (measured 527 s with the fits in two
    processes, 397 s of them the fits; peak 0.70 GiB; 593 s under pytest)."""
    from xdyn.experiments import run

    result = run("lorenz63-neural-var", quick=True, out=tmp_path, progress=False)
    folder = result.paths["results"].parent
    for name in ("results.nc", "summary.csv", "attractor_and_components.png",
                 "attractor_animation.gif"):
        assert (folder / name).exists(), name
    res = result.results
    assert res.sizes["encoder"] == 3 and res.sizes["mode"] == 3
    # the learned analysis is far better than no assimilation in every cell (measured at
    # most 0.34, x at noise 1, against a free run of 8.47; 2.41 before the candidates with
    # Var3D's B_scale, x**2 at noise 0.5)
    assert float(res.analysis_rmse.max()) < 0.1 * float(res.free_run_rmse)
    # every encoder's single analyses beat their backgrounds in every cell (measured
    # at most 0.955 of the background's RMSE)
    assert (res.single_analysis_rmse < res.single_background_rmse).all()
    # observed as x with noise 1, training cycles find the wing from the prior mean
    # (measured 0.33-0.34 against Var3D's 0.354; 3.8-4.0 when trained on single analyses)
    x1 = res.sel(mode="x", noise_std=1.0)
    var3d = [b for b in res.baseline.values if str(b).startswith("Var3D")][0]
    assert (x1.seq_len == 10).all()
    assert float(x1.analysis_rmse.max()) < 1.5 * float(x1.baseline_rmse.sel(baseline=var3d))
    # cycled, the analysis beats its own background (the one-step forecast of the previous
    # analysis) in every encoder cell: measured 36 of 36, at most 0.994 of its RMSE (and
    # 108 of 108 over training seeds 0, 1, 2). With a constant learning rate 35 of 36 (the
    # GRU at x**2 0.05: 1.03); before the window's innovations followed the background's
    # trajectory and the candidates had the relative cycle loss and Var3D's B_scale, 18
    assert (res.analysis_rmse < res.background_rmse).all()
    # the best encoder beats the tuned Var3D in 11 of the 12 cells (measured 0.37-0.96 of
    # its RMSE; x 0.5 1.03), among them xy 0.5 (0.80: 0.119 against 0.148) and x**2 at
    # noise 0.05 (0.37: 0.0076 against 0.0206, 0.05% of analyses on the wrong wing)
    best = res.analysis_rmse.min(("encoder", "training_seed"))
    to_var3d = best / res.baseline_rmse.sel(baseline=var3d)
    assert int((to_var3d < 1.0).sum()) >= 8
    assert float(to_var3d.sel(mode="xy", noise_std=0.5)) < 0.85
    assert float(to_var3d.sel(mode="x2", noise_std=0.05)) < 0.8
    wing = res.wrong_wing_share.min(("encoder", "training_seed"))
    assert float(wing.sel(mode="x2").max()) < 0.05
    trained = res.original_draw_analysis_rmse.sel(noise_std=0.5)
    assert np.isfinite(trained.values).all()
    # trained like the original, the network corrects the original's background (xy,
    # noise 0.5: measured 11.36 -> 2.30-2.55, 78-80% below it; the issue asks for 30%),
    # and far better than Var3D's single analyses of the same draws (B = 2 cov: 5.90)
    xy = trained.sel(mode="xy", training_background="climatology")
    assert float(xy.max()) < 0.5 * float(res.original_draw_background_rmse.sel(mode="xy",
                                                                               noise_std=0.5))
    assert float(xy.max()) < 0.7 * float(res.var3d_original_draw_analysis_rmse.sel(
        mode="xy", noise_std=0.5))


def test_variational_loss_trains_single_analyses_only():
    # NeuralVar3D refuses loss="var" through cycles (seq_len > 1): its candidates were the
    # default seq_lens (1, 10), so loss="var" could never run
    from xdyn.experiments.neural_var import training_candidates

    var = dataclasses.replace(NeuralVarSetup(), loss="var")
    assert [c[0] for c in training_candidates(var)] == [1]
    assert {c[0] for c in training_candidates(NeuralVarSetup())} == {1, 10}


def test_single_backgrounds_are_labelled_with_the_observations_coordinates():
    """The backgrounds follow the observations' trajectory order and times: labelled with
    the truth's coordinates, a truth in another order paired them with the wrong
    trajectories, and observations every 2 steps crashed."""
    from xdyn.assimilation import Var3D
    from xdyn.experiments.neural_var import _single_backgrounds
    from xdyn.metrics import state_rmse
    from xdyn.observe import observe

    setup = NeuralVarSetup(n_train=3, n_valid=1, n_test=1, n_steps=41)
    _, truth, _, _ = make_trajectories(setup, seed=0)
    obs = observe(truth, "x", noise_std=0.5, random_state=1)
    est = Var3D(B_scale=0.01).fit(obs, truth)
    ordered = _single_backgrounds(est, obs, truth, 0)
    shuffled = _single_backgrounds(est, obs, truth.isel(trajectory=[2, 0, 1]), 0)
    xr.testing.assert_identical(shuffled, ordered)
    every2 = observe(truth, "x", noise_std=0.5, every=2, random_state=1)
    backgrounds = _single_backgrounds(est, every2, truth, 0)
    assert backgrounds.sizes == {"time": 21, "trajectory": 3}
    # forecasts over at most 10 *model* steps of the truth perturbed by at most 1.5
    error = state_rmse(backgrounds, truth.sel(time=backgrounds.time))
    assert float(error.max()) < 5.0 and float(error.mean()) < 1.5


def test_a_cell_whose_candidates_all_diverged_is_recorded_not_fatal(monkeypatch):
    """Every candidate with a NaN cycled validation RMSE (diverged, which
    raise_on_divergence=False allows) crashed the whole run (All-NaN slice); now the cell
    keeps the first candidate, warns, and says so in ``validation_diverged``."""
    from xdyn.experiments import neural_var

    fits = [(None, 1.0, np.nan, 0.9, np.nan), (None, 1.0, np.nan, 1.1, np.nan)]
    with pytest.warns(RuntimeWarning, match="every training candidate of this cell diverged"):
        index, cycled, _, _ = neural_var._choose_candidate(fits)
    assert index == 0 and np.isnan(cycled).all()
    # one finite candidate is chosen, whatever the pools (its ratios are not below 1)
    assert neural_var._choose_candidate(fits + [(None, 1.0, 3.0, 1.2, 1.5)])[0] == 2

    fit_candidate = neural_var._fit_candidate

    def diverged(*args):
        return fit_candidate(*args)[:2] + (np.nan, np.nan, np.nan)

    monkeypatch.setattr(neural_var, "_fit_candidate", diverged)
    setup = dataclasses.replace(TINY, baselines=False, original_training=False, seq_lens=(1,),
                                n_jobs=1)
    with pytest.warns(RuntimeWarning, match="diverged on the validation split"):
        res = neural_var_experiment(setup, seed=0, progress=False).results
    plt.close("all")
    assert bool(res.validation_diverged.all()) and int(res.seq_len.max()) == 1
    assert np.isnan(res.candidate_validation_rmse.values).all()
