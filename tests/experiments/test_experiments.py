import json

import numpy as np
import pytest
import xarray as xr

from xdyn.assimilation import EnKF, analysis_rmse
from xdyn.experiments import list_experiments, register, run, sweep
from xdyn.experiments.catalogue import ExperimentResult, write_netcdf_atomic
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
               MethodConfig("EnKF N=20 no infl", "enkf", {"n_members": 20, "inflation": 1.0}),
               MethodConfig("nonexistent", "no-such-method", {})]
    res, analyses, truth, obs = twin_experiment(system, "identity", 1.0, 1, 150, methods, seed=0,
                                                burn_in_cycles=50, initial_spread=0.1, progress=False)
    assert res.rmse.dims == ("assimilator", "time") and res.sizes["time"] == 151
    assert res.rmse_mean.sel(assimilator="EnKF N=20") < 0.35
    assert str(res.status.sel(assimilator="nonexistent").values).startswith("unavailable")
    # the stored per-time RMSE agrees with the scoring function
    an = analyses["EnKF N=20"]
    t_burn = float(obs.time[50] - obs.time[0])
    assert float(res.rmse_mean.sel(assimilator="EnKF N=20")) == pytest.approx(
        analysis_rmse(an, truth, burn_in=t_burn), rel=1e-10)
    config = json.loads(res.attrs["configuration"])
    assert config["n_cycles"] == 150 and config["seed"] == 0
    table = format_table(res, {"EnKF N=20": 0.2})
    assert "EnKF N=20" in table and "0.200" in table


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
