import json

import numpy as np
import pytest
import xarray as xr

from xdyn.assimilation import EnKF, analysis_rmse
from xdyn.experiments import list_experiments, register, run, sweep
from xdyn.experiments.catalogue import (_REGISTRY, ExperimentResult, reset_peak_memory,
                                        write_netcdf_atomic)
from xdyn.experiments.twin import MethodConfig, format_table, twin_experiment
from xdyn.observe import observe
from xdyn.systems import Lorenz96


def test_catalogue_lists_the_twin_experiments():
    names = {e.name for e in list_experiments()}
    assert {"lorenz63-twin", "lorenz96-twin", "lorenz96-twin-partial", "lorenz96-spectrum"} <= names
    assert all(e.description for e in list_experiments())


def test_twin_experiment_compares_methods_on_same_data():
    system = Lorenz96()
    methods = [MethodConfig("EnKF N=20", "enkf", {"n_members": 20, "inflation": 1.03}),
               MethodConfig("EnKF N=20 no infl", "enkf", {"n_members": 20, "inflation": 1.0})]
    res, analyses, truth, obs = twin_experiment(system, "identity", 1.0, 1, 150, methods, seed=0,
                                                burn_in_cycles=50, initial_spread=0.1, progress=False)
    assert res.rmse.dims == ("assimilator", "time") and res.sizes["time"] == 151
    assert res.rmse_mean.sel(assimilator="EnKF N=20") < 0.35
    # the stored per-time RMSE agrees with the scoring function
    an = analyses["EnKF N=20"]
    t_burn = float(obs.time[50] - obs.time[0])
    assert float(res.rmse_mean.sel(assimilator="EnKF N=20")) == pytest.approx(
        analysis_rmse(an, truth, burn_in=t_burn), rel=1e-10)
    config = json.loads(res.attrs["config_json"])
    assert config["n_cycles"] == 150 and config["seed"] == 0
    table = format_table(res, {"EnKF N=20": 0.2})
    assert "EnKF N=20" in table and "0.200" in table


@pytest.mark.skipif(not reset_peak_memory(), reason="the peak memory resets on Linux only")
def test_each_run_reports_its_own_peak_memory(tmp_path):
    """In one process (a dask worker, a serial ``run --all``) a run after a memory-hungry
    one reports its own peak, not the process's (which had every run inherit the largest)."""
    def allocating(mb):
        def func(quick=False, seed=0, device="cpu", progress=True):
            block = np.ones(mb * 2**20 // 8)  # written, so resident
            return ExperimentResult(xr.Dataset({"s": ((), float(block.sum()))}))
        return func

    register("mem-big", "holds 600 MiB")(allocating(600))
    register("mem-small", "holds 8 MiB")(allocating(8))
    try:
        big = run("mem-big", out=tmp_path, progress=False).results.attrs
        small = run("mem-small", out=tmp_path, progress=False).results.attrs
    finally:
        _REGISTRY.pop("mem-big"), _REGISTRY.pop("mem-small")
    assert big["peak_memory_mb"] > small["peak_memory_mb"] + 500
    assert small["peak_memory_scope"].startswith("this run")


def test_run_writes_results_and_figures(tmp_path):
    @register("tiny-test", "a tiny experiment for the test suite")
    def tiny(quick=False, seed=0, device="cpu", progress=True):
        ds = xr.Dataset({"rmse": ("method", [0.1 + seed])}, coords={"method": ["a"]})
        import matplotlib.pyplot as plt

        fig = plt.figure()
        fig.subplots().plot([0, 1])
        return ExperimentResult(ds, {"panel": fig}, "table")

    result = run("tiny-test", out=tmp_path, seed=2, progress=False)
    back = xr.open_dataset(result.paths["results"])
    assert float(back.rmse[0]) == pytest.approx(2.1)
    assert back.attrs["seed"] == 2 and back.attrs["experiment"] == "tiny-test"
    assert back.attrs["peak_memory_mb"] > 0 and back.attrs["wall_time_s"] >= 0
    back.close()
    assert (tmp_path / "tiny-test" / "panel.png").stat().st_size > 1000
    assert not list((tmp_path / "tiny-test").glob("*.part*"))
    with pytest.raises(ValueError, match="unknown experiment"):
        run("no-such-experiment", out=tmp_path)
    _REGISTRY.pop("tiny-test")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    bad = xr.Dataset({"a": ("x", [object()])})  # netCDF cannot store Python objects
    with pytest.raises(Exception):
        write_netcdf_atomic(bad, tmp_path / "out.nc")
    assert list(tmp_path.iterdir()) == []


def test_sweep_runs_inflation_grid_and_seeds_in_one_call():
    system = Lorenz96()
    truth = system.simulate(n_trajectories=2, n_steps=120, burn_in=10.0, random_state=0)
    obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    x0 = system.to_state(truth.isel(time=0)).numpy()
    est = EnKF(system=system, n_members=20, initial_state=x0, initial_spread=0.1,
               random_state=0, burn_in=2.0)
    scores = sweep(est, obs, truth, inflation=[1.0, 1.04, 3.0])
    assert scores.dims == ("inflation", "trajectory") and scores.shape == (3, 2)
    # the first grid point uses exactly the random numbers a separate run uses
    alone = est.set_params(inflation=1.0, return_ensemble=False).fit(obs).predict(obs)
    for i in range(2):
        ref = analysis_rmse(alone.isel(trajectory=i), truth.isel(trajectory=i), burn_in=2.0)
        assert float(scores[0, i]) == pytest.approx(ref, rel=1e-10)
    # a mild inflation beats both none and a huge one, for both truths
    assert np.all(scores[1] < scores[2])
    assert np.all(scores[1] < 0.4)


def test_default_experiment_quick_end_to_end(tmp_path):
    """The main job (`xdyn run`) in its quick form: every method, table, files."""
    result = run("lorenz96-twin", quick=True, out=tmp_path, progress=False)
    res = result.results
    assert set(res.status.values) == {"ok"}, res.status.values
    assert float(res.rmse_mean.sel(assimilator="EnKF sqrt N=28 infl 1.02 rot")) < 0.25
    # the ensemble filters beat 3D-Var, which beats OI (the literature ordering)
    assert float(res.rmse_mean.sel(assimilator="LETKF N=40 infl 1.01 r=4")) < float(
        res.rmse_mean.sel(assimilator="3D-Var (B x 0.02)")) < float(res.rmse_mean.sel(assimilator="OI"))
    for name in ("results", "rmse_spread", "twin_panel"):
        assert result.paths[name].exists()
    assert "LETKF" in result.table and "peak memory" in result.table


def test_sweep_without_grid_scores_each_truth():
    system = Lorenz96(n=12)
    truth = system.simulate(n_trajectories=3, n_steps=60, burn_in=10.0, random_state=0)
    obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    scores = sweep(EnKF(system=system, n_members=16, inflation=1.03, random_state=0), obs, truth)
    assert scores.dims == ("trajectory",) and scores.shape == (3,)
    assert np.all(np.isfinite(scores)) and np.all(scores < 1.0)


# ------------------------------------------------------------------ run folders, summary.csv
def _figure():
    import matplotlib.pyplot as plt

    fig = plt.figure()
    fig.subplots().plot([0, 1])
    return fig


@pytest.fixture
def recorded():
    """A registered experiment whose behaviour each test sets (value, failure, figures)."""
    state = {"value": 1.0, "fail": None, "figures": _figure}

    @register("tiny-folder", "writes one number")
    def tiny(quick=False, seed=0, device="cpu", progress=True):
        if state["fail"] is not None:
            raise state["fail"]
        ds = xr.Dataset({"score": ("method", [state["value"]], {"units": "1", "long_name": "score"})},
                        coords={"method": ("method", ["m"], {"long_name": "method"})})
        return ExperimentResult(ds, {"panel": state["figures"]()}, "table",
                                summary=[{"method": "m", "metric": "score", "value": state["value"],
                                          "units": "1", "lower_is_better": True}])

    yield state
    _REGISTRY.pop("tiny-folder")


def test_run_replaces_the_folder_whole_and_a_killed_run_keeps_the_last(tmp_path, recorded):
    import os

    first = run("tiny-folder", out=tmp_path, seed=1, progress=False)
    folder = first.paths["results"].parent
    (folder / "tmp1234.nc.part").write_text("orphan of a killed run")
    recorded["value"] = 2.0
    run("tiny-folder", out=tmp_path, seed=2, progress=False)
    with xr.open_dataset(folder / "results.nc") as back:
        assert back.attrs["seed"] == 2 and float(back.score[0]) == 2.0
    assert sorted(p.name for p in folder.iterdir()) == ["panel.png", "results.nc", "summary.csv"]
    # a run killed mid-way leaves the previous run's files, all of them, and no staging folder
    recorded["value"], recorded["fail"] = 3.0, KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        run("tiny-folder", out=tmp_path, seed=3, progress=False)
    with xr.open_dataset(folder / "results.nc") as back:
        assert back.attrs["seed"] == 2
    assert "value\n" not in (folder / "summary.csv").read_text() and ",2.0," in (folder / "summary.csv").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-folder"]
    # staging folders of dead processes (a SIGKILL leaves no chance to clean) go on the next run
    stale = tmp_path / ".tiny-folder.999999999.staging-abc"
    stale.mkdir()
    recorded["fail"] = None
    run("tiny-folder", out=tmp_path, progress=False)
    assert not stale.exists()
    # killed between its two renames, a run left the last results only as its staging-old:
    # put back, not removed with the other staging folders
    from xdyn.experiments.catalogue import _clean_stale

    old = tmp_path / ".tiny-folder.999999999.staging-old"
    os.replace(folder, old)
    _clean_stale(tmp_path, "tiny-folder")
    assert not old.exists() and (folder / "results.nc").is_file()
    # files get the permissions of the umask, as any other file the user writes
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask


def test_summary_csv_is_tidy_with_settings(tmp_path):
    import pandas as pd

    from xdyn.experiments.catalogue import summary_rows, write_summary

    rmse = xr.DataArray(np.arange(8.0).reshape(2, 2, 2), dims=("encoder", "noise_std", "seed"),
                        coords={"encoder": ["mlp", "cnn"], "noise_std": [0.5, 1.0]},
                        attrs={"units": "1"})

    @register("tiny-summary", "a grid of scores")
    def grid(quick=False, seed=0, device="cpu", progress=True):
        rows = (summary_rows(rmse, "analysis RMSE", method="neural 3D-Var")
                + summary_rows(rmse.mean("seed"), "mean analysis RMSE", method="neural 3D-Var"))
        return ExperimentResult(xr.Dataset({"rmse": rmse}), summary=rows)

    try:
        result = run("tiny-summary", out=tmp_path, seed=4, progress=False)
    finally:
        _REGISTRY.pop("tiny-summary")
    table = pd.read_csv(result.paths["summary"])
    assert list(table.columns) == ["experiment", "method", "metric", "value", "units",
                                   "lower_is_better", "encoder", "noise_std", "seed", "quick"]
    assert len(table) == 8 + 4 and set(table.experiment) == {"tiny-summary"}
    row = table[(table.encoder == "cnn") & (table.noise_std == 0.5) & (table.seed == 1)
                & (table.metric == "analysis RMSE")]
    assert row.value.tolist() == [5.0]
    # the seed-mean rows have no per-row seed: the run's seed fills it
    assert table[table.metric == "mean analysis RMSE"].seed.tolist() == [4] * 4
    # a DataFrame is as good as a list of dicts
    write_summary(pd.DataFrame(summary_rows(rmse, "analysis RMSE", method="m")), tmp_path / "df.csv", "x")
    assert len(pd.read_csv(tmp_path / "df.csv")) == 8
    with pytest.raises(ValueError, match="lacks \\['units'"):
        write_summary([{"method": "a", "metric": "b", "value": 1.0}], tmp_path / "s.csv", "x")


def test_animation_is_saved_as_gif(tmp_path, recorded):
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation
    from PIL import Image

    def animation():
        fig, ax = plt.subplots()
        (line,) = ax.plot([0, 1], [0, 0])
        return FuncAnimation(fig, lambda i: line.set_ydata([0, i]) or (line,), frames=4)

    recorded["figures"] = animation
    result = run("tiny-folder", out=tmp_path, progress=False)
    gif = result.paths["panel"]
    assert gif.name == "panel.gif"
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames == 4
    assert sorted(p.name for p in gif.parent.iterdir()) == ["panel.gif", "results.nc", "summary.csv"]


class _Diverging(EnKF):
    """Tracks the truth to within 0.1, then blows up at time 2 (a stand-in for a lost filter)."""

    def fit(self, obs, truth=None):
        self.truth_ = truth
        return self

    def predict(self, obs):
        from xdyn.exceptions import DivergenceError

        an = self.truth_.sel(time=obs.time) + 0.1
        if self.raise_on_divergence:
            raise DivergenceError("analysis became non-finite " + "x" * 300, time=2.0)
        return an.where(an.time < 2.0)


def test_twin_keeps_a_diverged_series_up_to_the_divergence(monkeypatch):
    from xdyn.assimilation.base import ASSIMILATORS

    # reachable by name for this test only (make_assimilator looks names up in the registry)
    monkeypatch.setattr(ASSIMILATORS, "_classes", {**ASSIMILATORS._classes, "diverging": _Diverging})
    res, analyses, truth, obs = twin_experiment(
        Lorenz96(n=8), "identity", 1.0, 1, 80, [MethodConfig("lost", "diverging", {})],
        seed=0, progress=False)
    rmse = res.rmse.sel(assimilator="lost")
    before = rmse.time < 2.0
    np.testing.assert_allclose(rmse.where(before, drop=True), 0.1, rtol=1e-9)
    assert bool(rmse.where(~before, drop=True).isnull().all())
    assert float(res.divergence_time.sel(assimilator="lost")) == 2.0
    status = str(res.status.sel(assimilator="lost").values)
    assert status.startswith("diverged") and status.endswith("x" * 300 + " (at time 2.0)")
    assert np.isnan(float(res.rmse_mean.sel(assimilator="lost"))) and "lost" not in analyses
    table = format_table(res)
    assert "diverged [1]" in table and "[1] diverged: analysis became non-finite" in table
    assert "ref: DAPPER 1.7.1 analysis RMSE, measured by xdyn on DAPPER's own truth" in table


def test_twin_results_have_cf_attrs_summary_and_a_bar_per_method(capsys):
    from xdyn.experiments.twin import summary

    methods = [MethodConfig("LETKF N=10", "letkf", {"n_members": 10, "inflation": 1.05,
                                                     "localization_radius": 2.0})]
    res, *_ = twin_experiment(Lorenz96(n=12), "identity", 1.0, 1, 30, methods, seed=0,
                              progress=True)
    assert "LETKF" in capsys.readouterr().err  # the method's own progress bar
    for name, var in {**res.data_vars, **res.coords}.items():
        assert var.attrs.get("long_name"), name
        if var.dtype.kind in "fiu":
            assert var.attrs.get("units"), name
    rows = summary(res)
    letkf = [r for r in rows if r["method"] == "LETKF N=10" and r["metric"] == "analysis RMSE"]
    assert letkf[0]["value"] == pytest.approx(float(res.rmse_mean.sel(assimilator="LETKF N=10")))
    assert letkf[0]["lower_is_better"] is True and letkf[0]["status"] == "ok"
    assert {r["metric"] for r in rows} == {"analysis RMSE", "wall time"}


@pytest.mark.parametrize("burn_in_cycles", [-1, 31])
def test_twin_burn_in_outside_the_record_is_refused(burn_in_cycles):
    # -1 indexed from the end and 31 was clamped: the "time mean" was the last time alone
    methods = [MethodConfig("LETKF N=10", "letkf", {"n_members": 10})]
    with pytest.raises(ValueError, match="burn_in_cycles must be"):
        twin_experiment(Lorenz96(n=12), "identity", 1.0, 1, 30, methods, seed=0,
                        burn_in_cycles=burn_in_cycles, progress=False)
