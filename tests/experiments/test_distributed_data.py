"""Training data as dask tasks and lazy ERA5 statistics, on the shared 2-worker LocalCluster.

Trajectories made as one task each equal the serial ones (each trajectory is
seeded by its index), every task writes its own part file atomically, a
complete part is reused, a worker killed in the middle of a task leaves no
half file and its task is re-run. ERA5 climatology, anomalies and scores over
the shipped WeatherBench sample stay lazy until computed on the client, and
equal the in-memory numbers. The cluster comes from conftest.py (shared with
test_run_all and test_sweep: starting one costs seconds).
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("distributed")

from xdyn.datasets import generated_path, load, load_kolmogorov_closure  # noqa: E402
from xdyn.datasets.kolmogorov_closure import QUICK_CONFIG, kolmogorov_closure_trajectories  # noqa: E402
from xdyn.datasets.trajectories import (generate_trajectories, system_trajectories,  # noqa: E402
                                        system_trajectory_set)

TINY = {"solve_grid": 16, "output_grid": 8, "burn_in": 0.5, "n_train": 2,
        "n_snapshots": 4, "n_snapshots_val": 6}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDYN_DATA_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _task_keys(tasks):
    return [t["key"] for t in tasks.data if "xdyn-trajectories" in str(t["key"])]


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".part")
                  or p.name.endswith(".parts"))


def test_kolmogorov_set_as_tasks_equals_serial_and_is_cached_whole(data_dir, dask_client):
    from distributed import get_task_stream

    serial = kolmogorov_closure_trajectories(**{**QUICK_CONFIG, **TINY})  # here, in memory
    with get_task_stream(dask_client) as tasks:
        data = load_kolmogorov_closure(client=dask_client, **TINY)
    assert len(_task_keys(tasks)) == 4  # one task per trajectory (2 train, 1 val, 1 test)
    path = generated_path("kolmogorov-closure", **{**QUICK_CONFIG, **TINY})
    with xr.open_dataset(path) as cached:
        for name in ("u", "v", "kinetic_energy", "dissipation"):
            np.testing.assert_array_equal(cached[name].values, serial[name].values)
        assert cached.u.encoding["chunksizes"][0] == 1  # chunked netCDF: a trajectory a chunk
        assert list(cached.split.values) == ["train", "train", "val", "test"]
    np.testing.assert_array_equal(data["test"].u.values, serial.u.values[3:, :4])
    # the tasks' part files are gone once the whole file is in place; no temporary file
    assert [p.name for p in (data_dir / "generated").iterdir()] == [path.name]
    # a complete cache file is used as it is: no task, no new write
    stamp = path.stat().st_mtime_ns
    with get_task_stream(dask_client) as tasks:
        load_kolmogorov_closure(client=dask_client, **TINY)
    assert not _task_keys(tasks) and path.stat().st_mtime_ns == stamp
    # made serially in another cache: the same file contents
    os.environ["XDYN_DATA_DIR"] = str(data_dir.parent / "serial-cache")
    again = load_kolmogorov_closure(**TINY)
    xr.testing.assert_equal(again["train"], data["train"])


def test_batches_as_tasks_equal_serial_batches(dask_client):
    from xdyn.systems import Lorenz96

    make = functools.partial(system_trajectories, Lorenz96(n=8), random_state=5, n_steps=200,
                             dt=0.05, burn_in=1.0)
    for size in (1, 2, 5):
        serial = generate_trajectories(make, 5, batch_size=size)
        dist = generate_trajectories(make, 5, batch_size=size, client=dask_client)
        np.testing.assert_array_equal(dist.x.values, serial.x.values)
    # a trajectory's start depends on its index only, not on the batches or their number
    one = generate_trajectories(make, 2, batch_size=1)
    np.testing.assert_array_equal(one.x.isel(time=0).values, serial.x.values[:2, 0])
    # another batch size differs at most by round-off (vectorised kernels), over a short run
    np.testing.assert_allclose(one.x.values, serial.x.values[:2], rtol=0, atol=1e-8)


def test_complete_parts_are_reused_and_stale_ones_removed(tmp_path, dask_client):
    from xdyn.datasets._atomic import _host, write_netcdf_atomic

    parts = tmp_path / "parts"
    kw = dict(system="lorenz63", n_trajectories=3, n_steps=50, burn_in=0.0, batch_size=1)
    first = system_trajectory_set(**kw, client=dask_client, parts_dir=parts)
    assert first.x.chunks is not None  # gathered lazily from the part files
    files = sorted(parts.iterdir())
    assert [p.name for p in files] == [f"part-{i:06d}-{i + 1:06d}.nc" for i in range(3)]
    stamps = {p.name: p.stat().st_mtime_ns for p in files}
    # what a writer killed mid-write leaves (a dead pid in the name), and a part of
    # another configuration under the same name
    orphan = parts / f".part-000001-000002.nc.{_host()}-999999999-0123456789ab.part"
    orphan.write_bytes(b"half a file")
    other = system_trajectory_set(**{**kw, "random_state": 1, "n_trajectories": 1})
    write_netcdf_atomic(other, parts / "part-000002-000003.nc")  # ``first`` reads the old one
    again = system_trajectory_set(**kw, client=dask_client, parts_dir=parts)
    xr.testing.assert_identical(again, first)
    assert not orphan.exists()
    now = {p.name: p.stat().st_mtime_ns for p in parts.iterdir()}
    assert now["part-000000-000001.nc"] == stamps["part-000000-000001.nc"]  # reused
    assert now["part-000001-000002.nc"] == stamps["part-000001-000002.nc"]
    assert now["part-000002-000003.nc"] != stamps["part-000002-000003.nc"]  # remade
    serial = system_trajectory_set(**kw)
    np.testing.assert_array_equal(serial.x.values, first.x.values)


def test_bad_input_is_refused_before_any_trajectory():
    from xdyn.datasets.trajectories import trajectory_seeds
    from xdyn.systems import Lorenz63

    make = functools.partial(system_trajectories, Lorenz63(), n_steps=3)
    with pytest.raises(ValueError, match="n_trajectories must be >= 1"):
        generate_trajectories(make, 0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        generate_trajectories(make, 2, batch_size=0)
    with pytest.raises(ValueError, match=r"make_chunk\(\[0\]\) must return a Dataset"):
        generate_trajectories(lambda indices: xr.Dataset(), 2)
    with pytest.raises(TypeError, match="random_state must be an integer >= 0"):
        trajectory_seeds(-1, 2)
    with pytest.raises(ValueError, match="unknown system 'lorenz99'"):
        system_trajectory_set("lorenz99", n_trajectories=1, n_steps=1)


@pytest.fixture
def dies_once(tmp_path):
    """A make_chunk that, in a worker, starts writing index 1's part and waits to be killed."""
    marker = tmp_path / "killed.pid"

    def make(indices, parts_dir):
        from xdyn.datasets._atomic import _host
        from xdyn.datasets.trajectories import system_trajectories
        from xdyn.systems import Lorenz63

        try:
            from distributed import get_worker

            get_worker()
            in_worker = True
        except ValueError:
            in_worker = False
        if in_worker and 1 in indices and not marker.exists():
            # a half-written temporary file under the name atomic_path gives it
            half = parts_dir / f".part-000001-000002.nc.{_host()}-{os.getpid()}-abcdef012345.part"
            half.write_bytes(b"\x89HDF half")
            marker.write_text(str(os.getpid()))
            time.sleep(600)  # the test kills this worker here
        return system_trajectories(Lorenz63(), indices, random_state=2, n_steps=100)

    return make, marker


def test_killed_worker_task_is_rerun_and_leaves_no_half_file(tmp_path, dask_client, dies_once):
    make, marker = dies_once
    parts = tmp_path / "parts"
    parts.mkdir()
    killed = []

    def kill_when_started():
        deadline = time.monotonic() + 300  # a loaded machine imports torch slowly
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text():
                pid = int(marker.read_text())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    chunk = functools.partial(make, parts_dir=parts)
    dist = generate_trajectories(chunk, 3, record={"test": "killed"}, client=dask_client,
                                 parts_dir=parts, retries=0)
    killer.join()
    assert killed, "the task never started"
    serial = generate_trajectories(chunk, 3)
    np.testing.assert_array_equal(dist.x.values, serial.x.values)
    assert sorted(p.name for p in parts.iterdir()) == [
        f"part-{i:06d}-{i + 1:06d}.nc" for i in range(3)]  # whole parts only, once each


# --- ERA5 statistics: lazy until computed on the client ---------------------------------
def _raise_on_compute(dsk, keys, **kwargs):
    raise AssertionError("dask computed before .compute()")


def _era5_scores(ds):
    """Hour-of-day climatology over the years, anomalies, and scores of a 12 h persistence."""
    from xdyn import metrics

    clim = ds.groupby("time.hour").mean("time")
    anomalies = ds.groupby("time.hour") - clim
    truth, forecast = ds.isel(time=slice(1, None)), ds.shift(time=1).isel(time=slice(1, None))
    clim_t = clim.sel(hour=truth.time.dt.hour).drop_vars("hour")
    return xr.Dataset({
        "anomaly_std": anomalies.z500.std("time"),
        "rmse": metrics.weighted_rmse(forecast.z500, truth.z500),
        "acc": metrics.weighted_acc(forecast.z500, truth.z500, clim_t.z500),
    })


def test_era5_statistics_stay_lazy_and_equal_in_memory(dask_client):
    import dask
    import dask.array as dsa
    from distributed import get_task_stream

    with dask.config.set(scheduler=_raise_on_compute):
        lazy_ds = load("era5-wb5625-sample")  # lazy by default: dask, a chunk per file or more
        assert len({t.year for t in lazy_ds.indexes["time"]}) == 2  # two years
        assert len(lazy_ds.z500.chunks[0]) >= 2
        lazy = _era5_scores(lazy_ds)
    assert all(isinstance(v.data, dsa.Array) for v in lazy.data_vars.values())
    with get_task_stream(dask_client) as tasks:
        computed = dask_client.compute(lazy).result()
    workers = {t["worker"] for t in tasks.data}
    assert workers and all(w.startswith("tcp://") for w in workers)
    expected = _era5_scores(load("era5-wb5625-sample").load())  # numpy, in memory
    assert not any(isinstance(v.data, dsa.Array) for v in expected.data_vars.values())
    xr.testing.assert_allclose(computed, expected, rtol=1e-6)
    assert 0.0 < float(computed.acc) <= 1.0 and float(computed.rmse) > 0.0


def _constant_chunk(value, indices):
    return xr.Dataset({"x": (("trajectory", "time"), np.full((len(indices), 2), value))})


def test_parts_of_a_configuration_differing_deep_in_a_long_array_are_not_reused(tmp_path):
    # str() of an array over 1000 elements abbreviates it ("..."): two configurations that
    # differ only there shared a record, and the second read the first one's parts
    a = np.zeros(2000)
    b = a.copy()
    b[1000] = 1.0
    parts = tmp_path / "parts"
    first = generate_trajectories(functools.partial(_constant_chunk, 1.0), 2,
                                  record={"forcing": a}, parts_dir=parts)
    np.testing.assert_array_equal(first.x.values, 1.0)
    second = generate_trajectories(functools.partial(_constant_chunk, 2.0), 2,
                                   record={"forcing": b}, parts_dir=parts)
    np.testing.assert_array_equal(second.x.values, 2.0)
