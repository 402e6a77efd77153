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
        "code": generated.code_fingerprint(generated.get_generated("toy-ramp").generator),
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


# --- killed writes and cut downloads leave nothing behind ------------------------
def test_a_killed_write_leaves_a_part_that_the_next_open_removes(toy, offline_cache):
    import os
    import subprocess
    import sys

    path = datasets.generated_path("toy-ramp")
    # a real SIGKILL mid-write: no ``finally`` runs, so the .part file stays
    script = (
        "import os, signal, sys\n"
        "from xdyn.datasets.registry import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half a netCDF file')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True)
    assert proc.returncode == -9, proc.stderr
    parts = [p for p in generated_files(offline_cache) if p.endswith(".part")]
    assert len(parts) == 1 and not path.exists()
    # a live writer's file (this process) and an unrelated file are kept
    live = path.with_name(f".{path.name}.{registry._host()}-{os.getpid()}-0123456789ab.part")
    live.write_bytes(b"being written")
    other = path.with_name(".someone-else.nc.part")
    other.write_bytes(b"not ours")
    assert datasets.load("toy-ramp").sizes["time"] == 5
    assert sorted(generated_files(offline_cache)) == sorted(
        [path.name, live.name, other.name]
    )


def test_an_old_part_from_another_host_is_removed_when_stale(tmp_path):
    import os
    import time

    target = tmp_path / "out.nc"
    foreign = tmp_path / ".out.nc.otherhost-12-0123456789ab.part"
    legacy = tmp_path / ".out.nc.abcdef012345.part"  # written before pids were recorded
    for p in (foreign, legacy):
        p.write_bytes(b"x")
    assert registry.remove_stale_parts(target) == []  # recent: maybe still being written
    old = time.time() - registry.STALE_PART_AGE - 60
    for p in (foreign, legacy):
        os.utime(p, (old, old))
    with registry.atomic_path(target) as tmp:  # the next write cleans up
        tmp.write_bytes(b"done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]


def _zip_with(tmp_path, n_files=2):
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    archive = tmp_path / "geopotential_500_5.625deg.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for year in range(2000, 2000 + n_files):
            name = f"geopotential_500hPa_{year}_5.625deg.nc"
            z.writestr(name, np.random.default_rng(year).bytes(20000))
    return archive


@pytest.mark.parametrize("damage", ["truncate", "flip", "inflate"])
def test_a_cut_weatherbench_download_leaves_no_zip_and_no_empty_folder(
    tmp_path, monkeypatch, damage
):
    from xdyn.datasets import weatherbench_download

    good = _zip_with(tmp_path).read_bytes()
    if damage == "truncate":
        bad = good[: len(good) * 2 // 3]
    else:  # same size, a flipped byte inside a member: only the CRC check sees it ("flip"),
        # or the first byte of its deflate stream: zlib.error ("inflate")
        bad = bytearray(good)
        bad[200 if damage == "flip" else 30 + len("geopotential_500hPa_2000_5.625deg.nc")] ^= 0xFF
        bad = bytes(bad)
    root = tmp_path / "wb"

    def fake_retrieve(url, known_hash, fname, path, processor=None):
        # what pooch does when the (caller-given) hash matches: save, then process
        target = path / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(bad)
        return processor(str(target), "download", None)

    monkeypatch.delenv("XDYN_OFFLINE")
    monkeypatch.setattr(weatherbench_download.pooch, "retrieve", fake_retrieve)
    with pytest.raises(DataIntegrityError, match=r"truncated or corrupt.*deleted.*run the fetch again"):
        datasets.fetch_weatherbench("z500", root=root, known_hash="sha256:" + "0" * 64)
    assert not (root / "geopotential_500").exists()
    assert list((root / ".downloads").iterdir()) == []
    # the same fetch with a sound archive extracts every file
    bad = good
    datasets.fetch_weatherbench("z500", root=root, known_hash="sha256:" + "0" * 64)
    folder = root / "geopotential_500"
    assert sorted(p.name for p in folder.iterdir()) == [
        "SHA256SUMS",
        "geopotential_500hPa_2000_5.625deg.nc",
        "geopotential_500hPa_2001_5.625deg.nc",
    ]
    # the extracted files' hashes are recorded for load_weatherbench(verify=True)
    sums = registry.read_sha256sums(folder)
    assert sums == {p.name: registry.file_sha256(p) for p in folder.glob("*.nc")}


def test_a_download_with_the_wrong_hash_says_what_it_means(tmp_path, monkeypatch):
    from xdyn.datasets import weatherbench_download

    def fake_retrieve(url, known_hash, fname, path, processor=None):
        raise ValueError("SHA256 hash of downloaded file (abc) does not match the known hash")

    monkeypatch.delenv("XDYN_OFFLINE")
    monkeypatch.setattr(weatherbench_download.pooch, "retrieve", fake_retrieve)
    with pytest.raises(DataIntegrityError, match="does not match known_hash.*cut short"):
        datasets.fetch_weatherbench("t2m", root=tmp_path, known_hash="sha256:" + "1" * 64)
    assert not (tmp_path / "2m_temperature").exists()


@pytest.mark.parametrize("code, hint", [("ENOSPC", "free disk space"), ("EACCES", "writable")])
def test_a_write_error_while_extracting_keeps_the_verified_archive(
    tmp_path, monkeypatch, code, hint
):
    import builtins
    import errno
    import os

    from xdyn.datasets import weatherbench_download

    good = _zip_with(tmp_path).read_bytes()
    root, downloads = tmp_path / "wb", []

    def fake_retrieve(url, known_hash, fname, path, processor=None):
        target = path / fname  # pooch: download only when not on disk (hash verified)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(good)
            downloads.append(target)
            return processor(str(target), "download", None)
        return processor(str(target), "fetch", None)

    def failing_open(file, mode="r", *args, **kwargs):  # the disk fills, or is read-only
        if "w" in mode and str(file).endswith(".nc"):
            raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), str(file))
        return builtins.open(file, mode, *args, **kwargs)

    monkeypatch.delenv("XDYN_OFFLINE")
    monkeypatch.setattr(weatherbench_download.pooch, "retrieve", fake_retrieve)
    monkeypatch.setattr(weatherbench_download, "open", failing_open, raising=False)
    folder = root / "geopotential_500"
    with pytest.raises(OSError) as info:
        datasets.fetch_weatherbench("z500", root=root, known_hash="sha256:" + "0" * 64)
    assert not isinstance(info.value, DataIntegrityError)
    assert info.value.errno == getattr(errno, code)
    msg = str(info.value)
    assert str(folder) in msg and "was kept" in msg and hint in msg and "corrupt" not in msg
    assert downloads[0].read_bytes() == good  # the verified archive is kept
    assert not folder.exists()  # nothing half-extracted, no empty folder
    # once the cause is gone, the next fetch extracts the kept archive: no new download
    monkeypatch.delattr(weatherbench_download, "open")
    datasets.fetch_weatherbench("z500", root=root, known_hash="sha256:" + "0" * 64)
    assert len(downloads) == 1
    assert sorted(p.name for p in folder.glob("*.nc")) == [
        "geopotential_500hPa_2000_5.625deg.nc", "geopotential_500hPa_2001_5.625deg.nc"]


def test_sha256sums_in_binary_mode_are_read(tmp_path):
    good, other = tmp_path / "a.nc", tmp_path / "b c.nc"
    good.write_bytes(b"abc")
    other.write_bytes(b"xyz")
    listing = (f"{registry.file_sha256(good)} *a.nc\n"  # `sha256sum --binary`
               f"{registry.file_sha256(other).upper()}  b c.nc\n"  # text mode
               "not a checksum line\n")
    (tmp_path / "SHA256SUMS").write_text(listing)
    assert registry.read_sha256sums(tmp_path) == {
        "a.nc": registry.file_sha256(good), "b c.nc": registry.file_sha256(other)}
    good.write_bytes(b"abd")  # damaged: listed in binary mode, so it is caught
    with pytest.raises(DataIntegrityError, match="a.nc is corrupt"):
        registry.check_sha256sums(good)


def test_atomic_path_fsyncs_the_file_before_the_rename_and_the_folder_after(
    tmp_path, monkeypatch
):
    import os

    calls, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "out.txt"
    with registry.atomic_path(target) as tmp:
        tmp.write_text("done")
    file, folder = target.stat().st_ino, tmp_path.stat().st_ino
    assert calls == [("fsync", file), ("replace", file), ("fsync", folder)]
    assert target.read_text() == "done"


def test_atomic_path_works_where_a_folder_cannot_be_opened(tmp_path, monkeypatch):
    import os

    real_open = os.open

    def no_folders(path, flags, *args, **kwargs):  # like Windows
        if os.path.isdir(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_folders)
    with registry.atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("done")
    assert (tmp_path / "out.txt").read_text() == "done"


def test_a_sample_split_between_shipped_folder_and_cache_loses_no_year(
    offline_cache, tmp_path, monkeypatch
):
    from xdyn.datasets import load_weatherbench
    from xdyn.datasets.catalog import CATALOG

    name = "era5_wb5625_sample"
    intact = load_weatherbench(["z500", "t850"], root=REPO_DATASETS / name).load()
    shipped = tmp_path / "shipped"
    shutil.copytree(REPO_DATASETS / name, shipped / name)
    moved = f"{name}/geopotential_500/geopotential_500hPa_2017_5.625deg.nc"
    (offline_cache / moved).parent.mkdir(parents=True)
    shutil.move(shipped / moved, offline_cache / moved)  # verified in the cache only
    monkeypatch.setenv("XDYN_SHIPPED_DIR", str(shipped))
    # the opener reads exactly the verified files, wherever each lies
    z500 = datasets.load("era5-wb5625-sample", variables="z500")
    assert z500.sizes["time"] == 5
    xr.testing.assert_equal(z500.z500, intact.z500)
    # and no file the registry does not list
    (shipped / name / "geopotential_500" / "stray_2018_5.625deg.nc").write_bytes(b"unlisted")
    both = datasets.load("era5-wb5625-sample")
    xr.testing.assert_equal(both.z500, intact.z500)
    xr.testing.assert_equal(both.t850, intact.t850)
    # fetch returns one folder holding every verified file: the cache's, completed
    root = datasets.fetch("era5-wb5625-sample")
    assert root == offline_cache / name
    expected = registry.read_registry()
    for fname in CATALOG["era5-wb5625-sample"].files():
        path = offline_cache / fname
        assert "sha256:" + registry.file_sha256(path) == expected[fname]
    again = load_weatherbench(["z500", "t850"], root=root)
    xr.testing.assert_equal(again.z500, intact.z500)
    assert datasets.fetch("era5-wb5625-sample") == root  # now whole in the cache
