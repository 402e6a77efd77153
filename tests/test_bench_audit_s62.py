"""What the benches count, score and label (audit B of session 62): the training windows of
the transport VGB-DM row, DAPPER's set of scored times on both sides, LD-EnSF's per-step
medians, KolSol timed as the Lorenz-96 peers, the threads a training step ran on, the peak
memory lines, and a setup the LD-EnSF step timer cannot time. No timing is asserted."""

import dataclasses
import importlib
import time

import numpy as np
import pytest
import torch

import xdyn.bench
import xdyn.metrics


def test_transport_vgbdm_row_counts_the_windows_the_fit_trains_on(tmp_path):
    from xdyn.datasets import load_weatherbench
    from xdyn.experiments._era5_data import write_weatherbench_test_set

    variables = ["z500", "t850", "t2m", "u10", "v10"]
    write_weatherbench_test_set(tmp_path, years=(2016,), days=3, variables=variables)
    grid = load_weatherbench(variables, root=tmp_path).load()
    n = grid.sizes["time"]
    make, count = xdyn.bench._weather_models()["VGB-DM transport (flow match.)"]
    model = make(1).fit(grid)
    # a window of the cubic interpolant is len_episode + 2 = 6 samples: n - 5 windows (the
    # bench counted n - 4, the linear interpolant's)
    assert (n, count(model)) == (12, 7)


def _kept_times(monkeypatch, module):
    """Patch ``module.mean_after_burn_in`` to record the times it averages."""
    kept, mean = [], module.mean_after_burn_in

    def spy(per_time, burn_in=0.0):
        t = per_time["time"].values
        kept.append(t[t >= t[0] + burn_in])
        return mean(per_time, burn_in)

    monkeypatch.setattr(module, "mean_after_burn_in", spy)
    return kept


def test_bench_da_scores_dapper_s_times(monkeypatch):
    pytest.importorskip("dapper")
    setup = xdyn.bench._dapper_setup
    monkeypatch.setattr(xdyn.bench, "_dapper_setup", lambda name, n: setup(name, 80))
    monkeypatch.setitem(xdyn.bench._BENCH_ROWS, "lorenz63", [("OI", "truth")])
    kept = _kept_times(monkeypatch, xdyn.metrics)
    table = xdyn.bench.bench_da(quick=True, setups=("lorenz63",), n_repeats=1)
    tseq = setup("lorenz63", 80).tseq
    # DAPPER averages tto > BurnIn = 16; an observation sits at exactly 16.0
    assert np.any(np.isclose(tseq.tto, tseq.BurnIn))
    assert len(kept) == 1 and np.array_equal(kept[0], tseq.tto[tseq.masko])
    assert "peak memory" in table


def test_bench_sweep_scores_dapper_s_times_and_its_peak(monkeypatch):
    pytest.importorskip("dapper")
    from xdyn.bench_sweep import bench_sweep

    setup = xdyn.bench._dapper_setup

    def short(name, n):
        HMM = setup(name, 40)
        HMM.tseq.BurnIn = float(HMM.tseq.tto[19])  # on an observation time, as sakov2008's
        return HMM

    monkeypatch.setattr(xdyn.bench, "_dapper_setup", short)
    kept = _kept_times(monkeypatch, importlib.import_module("xdyn.experiments.sweep"))
    rows = bench_sweep(quick=True, n_seeds=1, inflations=(1.0, 1.02))
    tseq = short("lorenz96", 40).tseq
    timed = kept[1:]  # after the untimed warm-up on the first 10 times
    assert len(kept[0]) == 0 and timed
    assert all(np.array_equal(k, tseq.tto[tseq.masko]) for k in timed)
    assert "peak memory" in rows[-1]


def test_kolmogorov_rows_alternate_medians_of_both_sides(monkeypatch):
    pytest.importorskip("kolsol")
    calls = []

    def rate(fn, n_steps, repeats=3):
        calls.append("kolsol" if "kolsol" in fn.__qualname__ else "xdyn")
        return 1.0

    monkeypatch.setattr(xdyn.bench, "_rate", rate)
    rows = xdyn.bench._bench_kolmogorov(quick=True)
    # per grid three rounds of (xdyn, KolSol), as the Lorenz-96 rows: before, KolSol ran one
    # timed block, against xdyn's median of three
    assert len(rows) == 2 and calls == ["xdyn", "kolsol"] * 3 * 2


def test_kolsol_stepper_restarts_from_the_same_state_and_refuses_divergence():
    pytest.importorskip("kolsol")
    from xdyn.bench_kolsol import kolsol_stepper

    advance = kolsol_stepper(16, dt=0.005)
    advance(2)
    advance(2)
    with pytest.raises(RuntimeError, match="diverged"):
        kolsol_stepper(16, dt=50.0)(50)


def _tiny_ldensf_setup(**changes):
    from xdyn.experiments.ldensf import LDEnSFSetup

    setup = LDEnSFSetup.for_case("tsunami", quick=True)
    return dataclasses.replace(setup, N=16, n_latent=4, hidden=16, n_points=32, **changes)


def test_ldensf_step_times_refuses_an_obs_interval(monkeypatch):
    from xdyn.bench_ldensf import ldensf_step_times

    # before: IndexError deep in the full-space loop (index 2 out of bounds)
    with pytest.raises(ValueError, match="obs_interval must be 1, got 2"):
        ldensf_step_times(_tiny_ldensf_setup(obs_interval=2), n_steps=1)


def test_ldensf_latent_side_is_a_median_after_the_untimed_steps(monkeypatch):
    """On a fake clock that only latent steps move: each predict's first latent step takes
    100 units, the others 1. The latent dynamics are the median of the timed steps (1), as
    the full side's, not the mean over every step of the predict (104 / 5 before)."""
    from xdyn.assimilation import LDEnSF
    from xdyn.bench_ldensf import ldensf_step_times
    from xdyn.nn.ldnet_modules import LDNetModule

    clock, count = [0.0], [0]
    predict, step = LDEnSF.predict, LDNetModule.step

    def counted_predict(self, *args, **kwargs):
        count[0] = 0
        return predict(self, *args, **kwargs)

    def slow_first_step(self, *args, **kwargs):
        clock[0] += 100.0 if count[0] == 0 else 1.0
        count[0] += 1
        return step(self, *args, **kwargs)

    monkeypatch.setattr(LDEnSF, "predict", counted_predict)
    monkeypatch.setattr(LDNetModule, "step", slow_first_step)
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    t = ldensf_step_times(_tiny_ldensf_setup(), n_steps=3)
    assert t["latent_dynamics"] == 1.0 and t["latent_analysis"] == 0.0


def test_bench_train_labels_the_threads_its_steps_ran_on():
    from xdyn.bench_train import bench_train, training_step_times

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        # the quick neural 3D-Var net is small: XdynNet trains it on one thread
        t = training_step_times("neural-3dvar", quick=True, device="cpu", n_batches=2)
        out = bench_train(quick=True, device="cpu", families=("neural-3dvar",))
    finally:
        torch.set_num_threads(before)
    assert t["threads"] == "1"
    header, row = out.splitlines()[1:3]
    assert header.split()[:3] == ["family", "s/step", "threads"] and row.split()[2] == "1"
    assert "the process has 2" in out and "peak memory" in out


def test_bench_forecast_reports_its_peak_memory(monkeypatch):
    import xdyn.datasets
    import xdyn.experiments._era5_data as era5
    from xdyn.systems import DampedPendulum

    # everything but the table's frame stubbed out: the report's lines are what is tested
    monkeypatch.setattr(DampedPendulum, "simulate", lambda self, **kw: None)
    monkeypatch.setattr(era5, "write_weatherbench_test_set", lambda *a, **kw: None)

    class Grid:
        sizes = {"time": 12}

        def load(self):
            return self

    monkeypatch.setattr(xdyn.datasets, "load_weatherbench", lambda *a, **kw: Grid())
    monkeypatch.setattr(xdyn.bench, "_throughput_lines", lambda models, data, epochs: [])
    out = xdyn.bench.bench_forecast(quick=True)
    assert "peak memory" in out and "MiB (process" in out


def test_a_run_dapper_scores_no_time_of_is_refused_by_name():
    # review W8: the first scored time of an empty set was an IndexError
    from types import SimpleNamespace

    from xdyn.bench import _dapper_burn_in

    tto = np.arange(1, 5) * 0.5
    tseq = SimpleNamespace(tt=np.arange(5) * 0.5, tto=tto, dto=0.5, masko=tto > 9.0, BurnIn=9.0)
    with pytest.raises(ValueError, match="DAPPER scores no analysis time after BurnIn=9.0"):
        _dapper_burn_in(tseq)
