"""Registry, shipped files, integrity errors and generated datasets (xdyn.datasets)."""

from __future__ import annotations

import json
import re
import shutil
import warnings

import numpy as np
import pytest
import xarray as xr

from xdyn import datasets
from xdyn.datasets import generated, registry
from xdyn.datasets.registry import DataIntegrityError, DataUnavailableError

REPO_DATASETS = registry._REPO_SHIPPED_DIR


@pytest.fixture(autouse=True)
def offline_cache(tmp_path, monkeypatch):
    """Every test: an empty cache in tmp, downloads forbidden, the repo's shipped folder."""
    monkeypatch.setenv("XDYN_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDYN_OFFLINE", "1")
    monkeypatch.delenv("XDYN_SHIPPED_DIR", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """A private copy of the shipped Lorenz-63 file, used as the shipped folder."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    shutil.copy(REPO_DATASETS / "lorenz63_sample.nc", folder / "lorenz63_sample.nc")
    monkeypatch.setenv("XDYN_SHIPPED_DIR", str(folder))
    return folder / "lorenz63_sample.nc"


def corrupt(path, how):
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # flip bytes in the middle, same size
        mid = len(data) // 2
        data[mid : mid + 8] = bytes(b ^ 0xFF for b in data[mid : mid + 8])
        path.write_bytes(bytes(data))


# --- registry ------------------------------------------------------------------
def test_registry_pins_sha256_for_every_file():
    reg = registry.read_registry()
    assert {"lorenz63_sample.nc", "lorenz96_sample.nc"} <= set(reg)
    for name, digest in reg.items():
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), name
    assert registry.make_pooch().registry.keys() == reg.keys()


def test_shipped_files_match_registry_and_stay_small():
    reg = registry.read_registry()
    total = 0
    for name, digest in reg.items():
        path = REPO_DATASETS / name
        assert path.is_file(), f"registered file {name} is not shipped"
        assert registry.file_sha256(path) == digest.split(":")[1], name
        total += path.stat().st_size
    assert total < 1_000_000


def test_cache_dir_follows_env(offline_cache):
    assert registry.data_dir() == offline_cache
    assert str(registry.make_pooch().abspath) == str(offline_cache)


# --- shipped, offline ------------------------------------------------------------
def test_load_shipped_lorenz_offline(offline_cache):
    l63 = datasets.load("lorenz63-sample")
    assert sorted(l63.data_vars) == ["x", "y", "z"]
    assert l63.sizes["time"] == 1001 and l63.attrs["system"] == "Lorenz63"
    assert l63.attrs["random_state"] == 0 and np.isfinite(l63.x).all()
    l96 = datasets.load("lorenz96-sample")
    assert l96.x.dims == ("time", "k") and l96.sizes["k"] == 40
    assert json.loads(l96.attrs["system_params"])["F"] == 8.0
    assert not offline_cache.exists()  # nothing downloaded, nothing written


def test_load_lazy_with_chunks():
    ds = datasets.load("lorenz96-sample", chunks={"time": 100})
    assert ds.x.chunks is not None
    ds.close()


def test_fetch_returns_shipped_paths():
    assert datasets.fetch("lorenz63-sample") == REPO_DATASETS / "lorenz63_sample.nc"
    root = datasets.fetch("era5-wb5625-sample")
    assert root == REPO_DATASETS / "era5_wb5625_sample"
    assert (root / "geopotential_500" / "geopotential_500hPa_2017_5.625deg.nc").is_file()


def test_list_datasets():
    rows = {row["name"]: row for row in datasets.list_datasets()}
    keys = {"name", "kind", "description", "source", "size", "path", "cached", "offline"}
    assert all(set(row) == keys for row in rows.values())
    for name in ("lorenz63-sample", "lorenz96-sample", "era5-wb5625-sample"):
        assert rows[name]["kind"] == "published"
        assert rows[name]["offline"] and rows[name]["size"] > 0
    assert rows["lorenz96-climatology"]["kind"] == "generated"
    assert rows["lorenz96-climatology"]["cached"] is False
    assert rows["weatherbench-z500"]["source"].startswith("https://dataserv.ub.tum.de/s/m1524895")
    assert rows["weatherbench-z500"]["offline"] is False


def test_unknown_dataset_lists_known_names():
    with pytest.raises(ValueError, match="lorenz63-sample"):
        datasets.load("no-such-set")


# --- integrity -------------------------------------------------------------------
@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_corrupt_shipped_file_names_file_and_fix(shipped_copy, how):
    corrupt(shipped_copy, how)
    with pytest.raises(DataIntegrityError) as info:
        datasets.load("lorenz63-sample")
    msg = str(info.value)
    assert str(shipped_copy) in msg and "sha256" in msg
    assert "make_lorenz_samples.py" in msg and "git checkout" in msg


def test_intact_copy_of_shipped_folder_loads(shipped_copy):
    assert datasets.load("lorenz63-sample").sizes["time"] == 1001


def test_missing_offline_says_how_to_fetch(monkeypatch):
    monkeypatch.setenv("XDYN_SHIPPED_DIR", "")
    with pytest.raises(DataUnavailableError, match="xdyn data fetch lorenz63-sample"):
        datasets.load("lorenz63-sample")


def test_cached_copy_is_used_when_not_shipped(offline_cache, monkeypatch):
    monkeypatch.setenv("XDYN_SHIPPED_DIR", "")
    offline_cache.mkdir()
    shutil.copy(REPO_DATASETS / "lorenz63_sample.nc", offline_cache / "lorenz63_sample.nc")
    assert datasets.fetch("lorenz63-sample") == offline_cache / "lorenz63_sample.nc"
    assert datasets.load("lorenz63-sample").sizes["time"] == 1001


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_corrupt_cached_copy_offline(offline_cache, monkeypatch, how):
    monkeypatch.setenv("XDYN_SHIPPED_DIR", "")
    offline_cache.mkdir()
    target = offline_cache / "lorenz63_sample.nc"
    shutil.copy(REPO_DATASETS / "lorenz63_sample.nc", target)
    corrupt(target, how)
    with pytest.raises(DataIntegrityError) as info:
        datasets.load("lorenz63-sample")
    assert str(target) in str(info.value) and "xdyn data fetch lorenz63-sample" in str(info.value)


def test_atomic_path_leaves_nothing_on_interrupt(tmp_path):
    target = tmp_path / "out.nc"
    with pytest.raises(KeyboardInterrupt):
        with registry.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


# --- generated -------------------------------------------------------------------
@pytest.fixture
def toy(monkeypatch):
    """A fast generated dataset registered for one test only (no shared state)."""
    monkeypatch.setattr(generated, "_GENERATED", dict(generated._GENERATED))
    calls = []

    def make_ramp(n=5, step=0.5, seed=0):
        calls.append((n, step, seed))
        rng = np.random.default_rng(seed)
        return xr.Dataset({"a": ("time", step * np.arange(n) + rng.normal(size=n))})

    datasets.register_generated("toy-ramp", make_ramp, {"n": 5, "step": 0.5, "seed": 0})
    return calls


def generated_files(cache):
    folder = cache / "generated"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_generated_is_made_once_then_cached(toy, offline_cache):
    ds = datasets.load("toy-ramp")
    assert ds.sizes["time"] == 5 and len(toy) == 1
    record = json.loads(ds.attrs["xdyn_config"])
    assert record == {
        "dataset": "toy-ramp",
        "version": 1,
        "config": {"n": 5, "seed": 0, "step": 0.5},
    }
    again = datasets.load("toy-ramp")
    assert len(toy) == 1  # read from the cache, not regenerated
    xr.testing.assert_identical(ds, again)
    assert datasets.fetch("toy-ramp") == datasets.generated_path("toy-ramp")
    row = {r["name"]: r for r in datasets.list_datasets()}["toy-ramp"]
    assert row["cached"] and row["size"] > 0


def test_generated_overrides_get_their_own_file(toy, offline_cache):
    datasets.load("toy-ramp")
    ds = datasets.load("toy-ramp", n=7)
    assert ds.sizes["time"] == 7 and len(toy) == 2
    assert len(generated_files(offline_cache)) == 2
    with pytest.raises(TypeError, match="unknown configuration key"):
        datasets.load("toy-ramp", nn=3)


def test_generated_config_mismatch_regenerates_or_raises(toy, offline_cache):
    path = datasets.generated_path("toy-ramp")
    path.parent.mkdir(parents=True)
    forged = xr.Dataset({"a": ("time", np.zeros(2))})
    forged.attrs["xdyn_config"] = json.dumps(
        {"dataset": "toy-ramp", "version": 1, "config": {"n": 2, "seed": 0, "step": 0.5}}
    )
    forged.to_netcdf(path)
    with pytest.raises(DataIntegrityError, match="was made with"):
        datasets.load("toy-ramp", on_mismatch="raise")
    assert len(toy) == 0
    with pytest.warns(UserWarning, match="regenerating"):
        ds = datasets.load("toy-ramp")
    assert ds.sizes["time"] == 5 and len(toy) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        datasets.load("toy-ramp")  # now valid: no warning, no regeneration
    assert len(toy) == 1


def test_generator_failure_leaves_no_file(toy, offline_cache, monkeypatch):
    def broken(**config):
        raise RuntimeError("generator blew up")

    monkeypatch.setattr(generated, "_GENERATED", dict(generated._GENERATED))
    datasets.register_generated("toy-broken", broken, {"n": 1})
    with pytest.raises(RuntimeError, match="blew up"):
        datasets.load("toy-broken")
    assert generated_files(offline_cache) == []


def test_interrupted_write_leaves_no_file(toy, offline_cache, monkeypatch):
    real = xr.Dataset.to_netcdf

    def half_write(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)
        with open(path, "r+b") as f:
            f.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_netcdf", half_write)
    with pytest.raises(KeyboardInterrupt):
        datasets.load("toy-ramp")
    assert generated_files(offline_cache) == []
    monkeypatch.setattr(xr.Dataset, "to_netcdf", real)
    assert datasets.load("toy-ramp").sizes["time"] == 5


def test_corrupt_generated_file_names_fix(toy, offline_cache):
    path = datasets.fetch("toy-ramp")
    corrupt(path, "truncate")
    with pytest.raises(DataIntegrityError) as info:
        datasets.load("toy-ramp")
    assert str(path) in str(info.value) and "force=True" in str(info.value)
    assert datasets.load("toy-ramp", force=True).sizes["time"] == 5


def test_register_generated_refuses_clashes(toy):
    with pytest.raises(ValueError, match="already registered"):
        datasets.register_generated("toy-ramp", lambda: xr.Dataset(), {})
    with pytest.raises(ValueError, match="published"):
        datasets.register_generated("lorenz63-sample", lambda: xr.Dataset(), {})
    with pytest.raises(TypeError, match="JSON"):
        datasets.register_generated("toy-bad", lambda x: xr.Dataset(), {"x": object()})


def test_lorenz96_climatology_generates_from_config(offline_cache):
    ds = datasets.load("lorenz96-climatology", t_span=1.0, burn_in=0.0)
    assert ds.x.dims == ("time", "k") and ds.sizes == {"time": 11, "k": 40}
    assert json.loads(ds.attrs["xdyn_config"])["config"]["t_span"] == 1.0
    assert ds.attrs["system"] == "Lorenz96" and ds.attrs["dt"] == 0.05
