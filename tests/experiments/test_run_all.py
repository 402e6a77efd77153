"""``xdyn run --all`` on a LocalCluster: results equal to a serial run, a killed worker,
a worker that keeps dying, resume, and bad input caught before any experiment starts.

One 2-worker LocalCluster is shared with test_sweep (conftest.py: starting one costs seconds).
The test experiments are defined inside a fixture, so they travel to the
workers by value (cloudpickle) with their task, as a user's experiment would.
"""

from __future__ import annotations

import importlib
import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr

pytest.importorskip("distributed")

from xdyn.cli import main  # noqa: E402
from xdyn.experiments.catalogue import _REGISTRY, ExperimentResult, register, summary_rows  # noqa: E402
from xdyn.experiments.run_all import ExperimentsFailedError, is_complete, run_all  # noqa: E402

TINY = ("ra-tiny-a", "ra-tiny-b")
SHORT = ("ra-short-1", "ra-short-2", "ra-short-3")


@pytest.fixture(scope="module")
def experiments(tmp_path_factory):
    """Registers the test experiments; ``marker`` tells the killed one it was started before."""
    marker = tmp_path_factory.mktemp("markers")

    def tiny(name):
        def func(quick=False, seed=0, device="cpu", progress=True):
            import matplotlib.pyplot as plt
            import torch

            rng = np.random.default_rng([seed, len(name)])
            x = rng.standard_normal(4).cumsum()
            da = xr.DataArray(x, dims="method", coords={"method": list("abcd")},
                              attrs={"long_name": "a score", "units": "1"})
            fig = plt.figure()
            fig.subplots().plot(x)
            ds = xr.Dataset({"score": da}, attrs={"torch_threads": torch.get_num_threads()})
            return ExperimentResult(ds, {"panel": fig}, name,
                                    summary_rows(da, "score", method_dim="method"))
        return func

    def killed_once(quick=False, seed=0, device="cpu", progress=True):
        try:
            from distributed import get_worker

            get_worker()
            in_worker = True
        except ValueError:
            in_worker = False
        pid_file = marker / "killed-once.pid"
        if in_worker and not pid_file.exists():
            pid_file.write_text(str(os.getpid()))
            time.sleep(600)  # the test kills this process here, in the middle of the run
        return tiny("ra-killed-once")(quick, seed, device, progress)

    def always_dies(quick=False, seed=0, device="cpu", progress=True):
        os.kill(os.getpid(), signal.SIGKILL)

    def raises(quick=False, seed=0, device="cpu", progress=True):
        raise ValueError("a bug in the experiment")

    def sleeper(name, seconds):
        def func(quick=False, seed=0, device="cpu", progress=True):
            time.sleep(seconds)
            return tiny(name)(quick, seed, device, progress)
        return func

    for name in TINY:
        register(name, "tiny test experiment")(tiny(name))
    # a short one's task time includes writing its outputs: up to 4.0 s on the loaded 2-core
    # machine of a CI rehearsal (2026-12-05), past the 3.6 s of a 3 s sleeper
    register("ra-long", "sleeps 8 s")(sleeper("ra-long", 8.0))
    for name in SHORT:
        register(name, "sleeps 0.2 s")(sleeper(name, 0.2))
    register("ra-raises", "raises every time")(raises)
    register("ra-killed-once", "killed in the middle of its first run")(killed_once)
    register("ra-always-dies", "kills its worker every time")(always_dies)
    yield marker
    for name in (*TINY, *SHORT, "ra-long", "ra-killed-once", "ra-always-dies", "ra-raises"):
        _REGISTRY.pop(name, None)


@pytest.fixture
def client(experiments, dask_client):
    return dask_client  # the shared 2-worker cluster of conftest.py


def _kill_when_started(pid_file, killed):
    deadline = time.monotonic() + 300  # a loaded machine imports torch slowly
    while time.monotonic() < deadline:
        if pid_file.exists() and pid_file.read_text():
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


def test_killed_worker_is_retried_and_results_equal_serial(client, experiments, tmp_path):
    names = [*TINY, "ra-killed-once"]
    killed = []
    killer = threading.Thread(target=_kill_when_started,
                              args=(experiments / "killed-once.pid", killed))
    killer.start()
    outcomes = run_all(names, out=tmp_path / "dist", client=client, seed=3, retries=1)
    killer.join()
    assert killed, "the killed-once experiment never started"
    assert [o.status for o in outcomes] == ["ok", "ok", "ok"]
    assert all(o.worker.startswith("tcp://") for o in outcomes)
    runs = pd.read_csv(tmp_path / "dist" / "run_all.csv")
    assert list(runs.name) == names and (runs.peak_memory_mb > 0).all()
    # the numbers equal those of a serial run with the same seed
    serial = run_all(names, out=tmp_path / "serial", n_workers=0, seed=3, report=False)
    assert [o.status for o in serial] == ["ok"] * 3
    for name in names:
        a = pd.read_csv(tmp_path / "dist" / name / "summary.csv")
        b = pd.read_csv(tmp_path / "serial" / name / "summary.csv")
        pd.testing.assert_frame_equal(a, b)
        with xr.open_dataset(tmp_path / "dist" / name / "results.nc") as d, \
                xr.open_dataset(tmp_path / "serial" / name / "results.nc") as s:
            xr.testing.assert_equal(d, s)  # the numbers; attrs (wall time) differ
            assert d.attrs["torch_threads"] == 1 and d.attrs["seed"] == 3
    # one folder per experiment, nothing of the killed try: no duplicate, no staging
    # folder, no half-written file
    left = sorted(p.name for p in (tmp_path / "dist").iterdir())
    assert left == sorted([*names, "report.csv", "report.html", "run_all.csv"])
    assert sorted(p.name for p in (tmp_path / "dist" / "ra-killed-once").iterdir()) == [
        "panel.png", "results.nc", "summary.csv"]


def test_a_long_experiment_does_not_hold_up_the_others(client, tmp_path):
    """List scheduling: while one worker runs the long experiment, the other runs every
    short one. (All submitted at once, the scheduler queued some behind the long one on
    its worker and never moved them: tasks with resource restrictions are not stolen.)

    Both workers are warmed first: a worker the kill test replaced imports xdyn on its
    first task, seconds that would make the first short experiment outlast the long one."""
    client.wait_for_workers(2)
    client.run(importlib.import_module, "xdyn.experiments")
    outcomes = run_all(["ra-long", *SHORT], out=tmp_path, client=client, report=False)
    long, *short = outcomes
    assert [o.status for o in outcomes] == ["ok"] * 4
    assert {o.worker for o in short} == {short[0].worker} != {long.worker}
    assert max(o.task_time_s for o in short) < long.task_time_s


def test_task_time_runs_from_each_tasks_own_submission(client, tmp_path):
    """``task_time_s`` is submission to result of that task. A third task on two workers
    is submitted when a 3 s one ends, and takes well under 3 s itself; timed from the
    start of the run (once), it counted the 3 s it waited before its submission too."""
    def sleeper(seconds):
        def func(quick=False, seed=0, device="cpu", progress=True):
            time.sleep(seconds)
            score = xr.DataArray([seconds], dims="method", coords={"method": ["sleep"]},
                                 attrs={"long_name": "slept", "units": "s"})
            return ExperimentResult(xr.Dataset({"score": score}), {}, "",
                                    summary_rows(score, "slept", method_dim="method"))
        return func

    names = {"ra-queued-a": 3.0, "ra-queued-b": 3.0, "ra-queued-c": 0.2}
    for name, seconds in names.items():  # hints: the two long ones first
        register(name, f"sleeps {seconds} s", quick_wall_s=seconds)(sleeper(seconds))
    try:
        client.wait_for_workers(2)
        client.run(importlib.import_module, "xdyn.experiments")
        outcomes = run_all(list(names), out=tmp_path, client=client, report=False)
    finally:
        for name in names:
            _REGISTRY.pop(name, None)
    assert [o.status for o in outcomes] == ["ok"] * 3
    a, b, c = outcomes
    assert 3.0 <= min(a.task_time_s, b.task_time_s)
    assert c.wall_time_s < c.task_time_s < 3.0


def test_longest_expected_first_earlier_runs_before_the_catalogue_hint(experiments, tmp_path):
    """The order of a run: an earlier run's wall time in ``out``, else ``quick_wall_s``."""
    hinted = register("ra-hinted", "tiny, registered as long", quick_wall_s=60.0)
    hinted(_REGISTRY["ra-tiny-a"].func)
    try:
        order = []
        names = ["ra-tiny-b", "ra-hinted"]
        run_all(names, out=tmp_path, n_workers=0, report=False,
                on_outcome=lambda o: order.append(o.name))
        assert order == ["ra-hinted", "ra-tiny-b"]  # fresh folder: the hint decides
        with xr.open_dataset(tmp_path / "ra-tiny-b" / "results.nc") as ds:
            assert 0 < ds.attrs["wall_time_s"] < 60  # so the earlier runs reverse the order
        for name, seconds in (("ra-tiny-b", 90.0), ("ra-hinted", 1.0)):
            path = tmp_path / name / "results.nc"
            with xr.open_dataset(path) as ds:
                ds = ds.load()
            ds.attrs["wall_time_s"] = seconds
            ds.to_netcdf(path)
        order.clear()
        run_all(names, out=tmp_path, n_workers=0, report=False,
                on_outcome=lambda o: order.append(o.name))
        assert order == ["ra-tiny-b", "ra-hinted"]
    finally:
        _REGISTRY.pop("ra-hinted", None)


# before the dying worker: the workers have imported xdyn already
def test_failing_experiment_is_retried_then_named(client, tmp_path):
    outcomes = run_all(["ra-raises", "ra-tiny-b"], out=tmp_path, client=client, retries=1,
                       errors="return", report=False)
    assert [o.status for o in outcomes] == ["failed", "ok"]
    assert outcomes[0].error == ("experiment 'ra-raises' failed after 1 retries: "
                                 "ValueError: a bug in the experiment")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ra-tiny-b", "run_all.csv"]


def test_worker_dying_repeatedly_fails_that_experiment_and_keeps_the_others(client, tmp_path):
    with pytest.raises(ExperimentsFailedError, match="'ra-always-dies'.*worker died") as info:
        run_all(["ra-tiny-a", "ra-always-dies"], out=tmp_path, client=client, retries=1)
    assert "Results kept" in str(info.value) and "ra-tiny-a" in str(info.value)
    assert [o.status for o in info.value.outcomes] == ["ok", "failed"]
    assert is_complete(tmp_path, "ra-tiny-a")
    runs = pd.read_csv(tmp_path / "run_all.csv")
    assert list(runs.status) == ["ok", "failed"]
    assert (tmp_path / "report.html").exists()  # written from what finished
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ra-tiny-a", "report.csv", "report.html", "run_all.csv"]


def test_resume_skips_complete_runs_only(experiments, tmp_path):
    run_all(["ra-tiny-a"], out=tmp_path, n_workers=0, report=False)
    before = (tmp_path / "ra-tiny-a" / "results.nc").stat().st_mtime_ns
    again = run_all(list(TINY), out=tmp_path, n_workers=0, resume=True, report=False)
    assert [o.status for o in again] == ["skipped", "ok"]
    assert (tmp_path / "ra-tiny-a" / "results.nc").stat().st_mtime_ns == before
    summary = tmp_path / "ra-tiny-a" / "summary.csv"
    text = summary.read_text()
    summary.write_text(text[:-3])  # a copy cut short is no complete run
    assert not is_complete(tmp_path, "ra-tiny-a")
    summary.write_text(text)
    # another seed is not the same run: it runs again
    assert not is_complete(tmp_path, "ra-tiny-a", seed=1)
    assert [o.status for o in run_all(["ra-tiny-a"], out=tmp_path, n_workers=0, seed=1,
                                      resume=True, report=False)] == ["ok"]


def test_bad_input_fails_before_any_experiment(experiments, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="cannot reach the dask scheduler at 'tcp://127.0.0.1:1'"):
        run_all(["ra-tiny-a"], out=out, scheduler="tcp://127.0.0.1:1", timeout=0.2)
    assert list(out.iterdir()) == []
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(ValueError, match="is an existing file"):
        run_all(["ra-tiny-a"], out=a_file, n_workers=0)
    with pytest.raises(ValueError, match="unknown experiment"):
        run_all(["ra-tiny-z"], out=out, n_workers=0)
    assert main(["run", "--all", "--out", str(a_file)]) == 2
    assert main(["run", "ra-tiny-a", "--workers", "2"]) == 2
    assert "--out" in capsys.readouterr().err


def test_cli_run_all_serially_and_report(experiments, tmp_path, monkeypatch, capsys):
    # the whole catalogue would take minutes: run the test experiments only
    from xdyn.experiments import run_all as module

    monkeypatch.setattr(module, "list_experiments",
                        lambda: [_REGISTRY[n] for n in TINY])
    assert main(["run", "--all", "--workers", "0", "--out", str(tmp_path), "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    assert "ra-tiny-a" in printed and "report.html" in printed
    assert is_complete(tmp_path, "ra-tiny-b", seed=2)
    (tmp_path / "report.html").unlink()
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").exists()


def test_an_experiment_in_a_worker_fits_in_that_worker_alone(client):
    """Run alone, an experiment's independent fits take a process per core; in a dask
    worker (``xdyn run --all``), which owns one core, they run in the worker in turn."""
    from xdyn.experiments._parallel import n_processes

    assert n_processes() == (os.cpu_count() or 1)
    assert client.submit(n_processes, pure=False).result() == 1
    assert client.submit(n_processes, 2, pure=False).result() == 2  # asked for: given
    with pytest.raises(ValueError, match="n_jobs=0"):
        n_processes(0)
