"""Audit C (s61): the CLI and the experiment infrastructure.

A relative ``--out`` reaches the workers absolute (C1); the report marks an experiment
that failed in the last ``run_all`` stale and shows each run's seed, and ``--resume``
keeps the skipped runs' times (C2); ``--seed`` stops at 2**31 - 1 (C3); an error inside
an experiment is a traceback and exit status 1, not a usage error (C4); ``--workers`` is
checked at parse time and not taken with ``--scheduler`` (C5); an unreadable
``summary.csv`` is skipped with a warning (C6); a report that cannot be written names its
folder (C7); a single inflation is refused by name (C8); datetime and timedelta settings
are written as text and seconds (C9); the lorenz96-twin anchor is the setup's DAPPER
number (C10).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xdyn.cli import build_parser, main
from xdyn.experiments import catalogue
from xdyn.experiments import run_all as run_all_module
from xdyn.experiments.catalogue import (ExperimentResult, register, run, summary_rows,
                                        write_summary)
from xdyn.experiments.report import build_report, load_anchors, write_report
from xdyn.experiments.run_all import run_all

MODE = {"fail": False}


def _experiment(quick=False, seed=0, device="cpu", progress=True):
    if MODE["fail"]:
        raise RuntimeError("crashed in this run")
    value = 0.55 + 0.01 * seed
    return ExperimentResult(
        xr.Dataset({"x": ((), value, {"long_name": "x", "units": "1"})}),
        summary=[{"method": "LETKF", "metric": "analysis RMSE", "value": value, "units": "1",
                  "lower_is_better": True}])


@pytest.fixture
def registered(monkeypatch):
    """Test experiments; one under the name whose anchor has a target (restored after)."""
    MODE["fail"] = False
    monkeypatch.setitem(catalogue._REGISTRY, "lorenz96-twin-partial",
                        catalogue.Experiment("lorenz96-twin-partial", "stand-in", "", _experiment))
    register("auditc-ok", "returns a number")(_experiment)

    def raises(quick=False, seed=0, device="cpu", progress=True):
        raise ValueError("internal numerics failed")

    register("auditc-raises", "raises inside the run")(raises)
    yield
    for name in ("auditc-ok", "auditc-raises"):
        catalogue._REGISTRY.pop(name, None)


# ------------------------------------------------------------------ C1
class _Future:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class _Client:
    """Records what each task is handed; runs the folder check here, not the experiment."""

    def __init__(self):
        self.calls = []

    def scheduler_info(self, n_workers=-1):
        return {"workers": {"tcp://fake:1": {"resources": {}}}}

    def submit(self, func, *args, **kwargs):
        self.calls.append((func.__name__, args))
        if func.__name__ == "_run_task":
            return _Future({"wall_time_s": 1.0, "peak_memory_mb": 2.0, "worker": "tcp://fake:1"})
        return _Future(func(*args))


class _AsCompleted(list):
    def add(self, future):
        self.append(future)


def test_a_relative_out_reaches_the_workers_absolute(registered, tmp_path, monkeypatch):
    # a worker resolves a relative path from its own working folder: the results were
    # written there, every outcome said "ok", and the report here was empty
    import distributed

    monkeypatch.setattr(distributed, "as_completed", _AsCompleted)
    monkeypatch.chdir(tmp_path)
    client = _Client()
    outcomes = run_all(["auditc-ok"], out="rel-out", client=client, report=False)
    assert [o.status for o in outcomes] == ["ok"]
    handed = {name: args for name, args in client.calls}
    assert handed["_check_on_worker"][0] == str(tmp_path / "rel-out")
    assert handed["_run_task"][2] == str(tmp_path / "rel-out")
    assert Path(outcomes[0].folder).is_absolute()


def test_data_fetch_on_workers_hands_them_an_absolute_data_folder(tmp_path, monkeypatch,
                                                                  capsys):
    import xdyn.datasets
    from xdyn.datasets.registry import data_dir

    class Client:
        def close(self):
            pass

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDYN_DATA_DIR", "cache")
    monkeypatch.setattr(run_all_module, "connect", lambda *a, **k: (Client(), None))
    monkeypatch.setattr(xdyn.datasets, "fetch", lambda name, **kw: data_dir())
    assert main(["data", "fetch", "lorenz63-sample", "--workers", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cache")


# ------------------------------------------------------------------ C2
def test_an_experiment_that_failed_in_the_last_run_all_is_stale_in_the_report(registered,
                                                                               tmp_path):
    run_all(["lorenz96-twin-partial"], out=tmp_path, n_workers=0, seed=0)
    MODE["fail"] = True
    outcomes = run_all(["lorenz96-twin-partial"], out=tmp_path, n_workers=0, seed=5,
                       errors="return")
    assert [o.status for o in outcomes] == ["failed"]
    report = pd.read_csv(tmp_path / "report.csv", keep_default_na=False)
    row = report[(report.experiment == "lorenz96-twin-partial") & (report.value != "")].iloc[0]
    # the seed-0 numbers are shown as such, not as a result of this seed-5 run
    assert float(row.value) == 0.55 and int(float(row.seed)) == 0
    assert row.stale.startswith("failed in the last run_all") and "earlier run" in row.stale
    html = (tmp_path / "report.html").read_text()
    assert "0 of 0 targets met by full-size runs" in html  # was "1 of 1"
    assert "Stale, not counted: lorenz96-twin-partial" in html and "seed 0; stale:" in html
    # copied without its file times (cp -r, scp -r), the folder stays stale (review W3:
    # the mark compared summary.csv's time with run_all.csv's)
    copy = tmp_path.parent / "copied"
    shutil.copytree(tmp_path, copy, copy_function=shutil.copyfile)
    later = (copy / "run_all.csv").stat().st_mtime + 10  # copied after run_all.csv
    for summary in copy.glob("*/summary.csv"):
        os.utime(summary, (later, later))
    copied = build_report(copy)
    assert copied[copied.experiment == "lorenz96-twin-partial"].stale.str.startswith(
        "failed in the last run_all").all()
    # resume retries it (review Z4: it skipped the folder as complete, stale note and all)
    MODE["fail"] = False
    retried = run_all(["lorenz96-twin-partial"], out=tmp_path, n_workers=0, seed=0,
                      resume=True)
    assert [o.status for o in retried] == ["ok"]
    assert not (tmp_path / "lorenz96-twin-partial" / "STALE.txt").exists()
    # a later run of that experiment alone makes its folder current again
    run("lorenz96-twin-partial", out=tmp_path, seed=1, progress=False)
    fresh = build_report(tmp_path)
    fresh = fresh[fresh.experiment == "lorenz96-twin-partial"].iloc[0]
    assert fresh.stale == "" and fresh.seed == "1" and bool(fresh.met)


def test_resume_keeps_the_wall_time_and_peak_memory_of_the_skipped_run(registered, tmp_path):
    first = run_all(["auditc-ok"], out=tmp_path, n_workers=0, report=False)
    with xr.open_dataset(tmp_path / "auditc-ok" / "results.nc") as ds:
        wall, peak = ds.attrs["wall_time_s"], ds.attrs["peak_memory_mb"]
    again = run_all(["auditc-ok"], out=tmp_path, n_workers=0, resume=True, report=False)
    assert [o.status for o in first + again] == ["ok", "skipped"]
    runs = pd.read_csv(tmp_path / "run_all.csv")
    assert runs.wall_time_s.tolist() == [wall] and runs.peak_memory_mb.tolist() == [peak]


# ------------------------------------------------------------------ C3
def test_seed_stops_where_every_seed_plus_offset_still_seeds_numpy(capsys):
    # 2**32 - 1 passed the CLI, then twin_experiment failed on seed + 1 after the truth
    assert build_parser().parse_args(["run", f"--seed={2**31 - 1}"]).seed == 2**31 - 1
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["run", f"--seed={2**31}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--seed" in err and "outside 0 .. 2**31 - 1" in err
    np.random.RandomState(2**31 - 1 + 30_000)  # the largest offset an experiment adds


# ------------------------------------------------------------------ C4
def test_an_error_inside_an_experiment_is_a_traceback_and_status_1(registered, tmp_path,
                                                                    capsys):
    # it was "xdyn: error: internal numerics failed" and status 2, as for bad input
    assert main(["run", "auditc-raises", "--out", str(tmp_path), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" in captured.err and "ValueError: internal numerics failed" in captured.err
    assert "in raises" in captured.err  # where it was raised
    assert "xdyn run auditc-raises" in captured.out  # the work had started
    # bad input is still one line and status 2
    assert main(["run", "auditc-raisez"]) == 2
    assert capsys.readouterr().err.startswith("xdyn: error: unknown experiment")


# ------------------------------------------------------------------ C5
def test_workers_is_checked_before_the_header(tmp_path, capsys):
    # the header said "on a local cluster of -1", then the error named n_workers=-1
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--all", "--workers", "-1", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert exit_.value.code == 2 and captured.out == ""
    assert "--workers" in captured.err and "0 or more" in captured.err


def test_workers_with_a_scheduler_is_refused(tmp_path, capsys, monkeypatch):
    # "--workers 0 --scheduler" said "on this process" and then used the scheduler
    monkeypatch.setattr(run_all_module, "connect",
                        lambda *a, **k: pytest.fail("went on to the scheduler"))
    assert main(["run", "--all", "--workers", "0", "--scheduler", "tcp://127.0.0.1:1",
                 "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("xdyn: error: --workers") and "--scheduler" in captured.err


# ------------------------------------------------------------------ C6
def test_an_unreadable_summary_is_skipped_and_run_all_still_reports(registered, tmp_path):
    broken = tmp_path / "old-copy" / "summary.csv"
    broken.parent.mkdir()
    broken.write_text("experiment,method,metric,value,units,lower_is_better\nx,m,x,0.5")
    with pytest.warns(UserWarning, match=r"skipped .*old-copy/summary.csv"):
        outcomes = run_all(["auditc-ok"], out=tmp_path, n_workers=0)
    assert [o.status for o in outcomes] == ["ok"]
    report = pd.read_csv(tmp_path / "report.csv")
    assert "auditc-ok" in set(report.experiment) and "x" not in set(report.experiment)
    assert (tmp_path / "report.html").is_file()


# ------------------------------------------------------------------ C7
def test_a_report_that_cannot_be_written_names_the_folder(tmp_path, monkeypatch, capsys):
    from xdyn.experiments import report as report_module

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(Path(path).parent / ".x.part"))

    monkeypatch.setattr(report_module, "atomic_path", refuse)
    with pytest.raises(ValueError, match="cannot write report.csv and report.html in") as err:
        write_report(tmp_path)
    assert str(tmp_path) in str(err.value) and "Permission denied" in str(err.value)
    assert ".part" not in str(err.value)
    assert main(["report", str(tmp_path)]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("xdyn: error: report: cannot write") and str(tmp_path) in line


# ------------------------------------------------------------------ C8
def test_a_sweep_axis_that_is_one_number_is_refused_by_name():
    from xdyn.assimilation import EnKF
    from xdyn.experiments import sweep
    from xdyn.observe import observe
    from xdyn.systems import Lorenz63

    truth = Lorenz63().simulate(n_steps=5, random_state=0)
    obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    with pytest.raises(ValueError, match=r"inflation=1\.05: give a non-empty 1-D sequence"):
        sweep(EnKF(), obs, truth, inflation=1.05)  # was a bare IndexError
    with pytest.raises(ValueError, match="inflation=\\[\\]"):
        sweep(EnKF(), obs, truth, inflation=[])
    with pytest.raises(ValueError, match="param_grid\\['n_members'\\]=20"):
        sweep(EnKF(), obs, truth, param_grid={"n_members": 20})  # was a TypeError


# ------------------------------------------------------------------ C9
def test_summary_rows_writes_times_as_text_and_seconds(tmp_path):
    # a lead time of 6 h was written as 21600000000000 (integer nanoseconds)
    lead = np.array([6, 24], "timedelta64[h]").astype("timedelta64[ns]")
    da = xr.DataArray([[1.0, 2.0]], dims=("method", "lead_time"),
                      coords={"method": ["persistence"], "lead_time": lead}, attrs={"units": "K"})
    rows = summary_rows(da, "RMSE", method_dim="method")
    assert [r["lead_time"] for r in rows] == [21600.0, 86400.0]
    when = xr.DataArray([0.5], dims="time",
                        coords={"time": np.array(["2017-01-01T06"], "datetime64[ns]")})
    assert summary_rows(when, "RMSE", method="m")[0]["time"] == "2017-01-01T06:00:00"
    spent = xr.DataArray(np.array([90], "timedelta64[s]"), dims="method",
                         coords={"method": ["a"]})
    row = summary_rows(spent, "time to lose track", method_dim="method")[0]
    assert row["value"] == 90.0 and row["units"] == "s"
    text = write_summary(rows, tmp_path / "summary.csv", "demo").read_text()
    assert "persistence,RMSE,1.0,K,True,21600.0" in text


# ------------------------------------------------------------------ C10
def test_lorenz96_twin_anchors_are_the_setups_dapper_numbers():
    """One DAPPER number per row (the setup's, for this experiment's truth-centred start),
    and a target derived from it: 1.05x, rounded to the third decimal."""
    from xdyn.experiments.setups import SAKOV2008

    reference = SAKOV2008.reference()
    anchors = load_anchors()
    mine = anchors[(anchors.experiment == "lorenz96-twin") & (anchors.kind == "DAPPER")]
    assert len(mine) == 2
    for _, a in mine.iterrows():
        assert float(a.anchor) == reference[a.method], a.method  # was 0.182 vs 0.179
        if a.target:
            assert a.target == f"<={round(1.05 * float(a.anchor), 3):g}", a.target
