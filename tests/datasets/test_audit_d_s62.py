"""Generated-data cache: code in the key, checksums, closed handles, seeds, fix advice (audit D)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr

from xdyn import datasets
from xdyn.datasets import generated
from xdyn.datasets.registry import DataIntegrityError

TINY = {"n": 8, "t_span": 1.0, "burn_in": 0.0, "n_trajectories": 2}  # 11 states of 8 sites


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDYN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XDYN_OFFLINE", "1")
    return tmp_path


@pytest.fixture
def toy(monkeypatch):
    """A fast generated set registered for one test only; counts its generator's calls."""
    monkeypatch.setattr(generated, "_GENERATED", dict(generated._GENERATED))
    calls = []

    def make_ramp(n=4, step=0.5, random_state=0):
        calls.append(n)
        return xr.Dataset({"a": ("time", step * np.arange(n))})

    datasets.register_generated("toy-audit-d", make_ramp, {"n": 4, "step": 0.5,
                                                           "random_state": 0})
    return calls


def _fds_on(path) -> int:
    """This process's open handles on ``path``."""
    try:
        import psutil

        return sum(f.path == str(path) for f in psutil.Process().open_files())
    except ImportError:
        folder = "/proc/self/fd"
        return sum(os.path.realpath(os.path.join(folder, fd)) == str(path)
                   for fd in os.listdir(folder))


# --- D1: the code that makes a set is in its key -----------------------------------
def test_a_change_of_the_generating_code_names_a_new_file(toy, cache, monkeypatch):
    first = datasets.fetch("toy-audit-d")
    assert datasets.fetch("toy-audit-d") == first and toy == [4]  # cached
    monkeypatch.setattr(generated, "code_fingerprint", lambda generator: "edited-code")
    second = datasets.fetch("toy-audit-d")
    assert second != first and toy == [4, 4]  # made again, not served from the old file
    with xr.open_dataset(second) as ds:
        assert '"code": "edited-code"' in ds.attrs["xdyn_config"]


def test_the_fingerprint_covers_the_system_modules_a_generator_uses(monkeypatch):
    modules = generated._code_modules("xdyn.datasets.generated")
    # Lorenz-96's equations, random_initial_state and simulate
    assert {"xdyn.datasets.generated", "xdyn.systems.lorenz96", "xdyn.systems.base",
            "xdyn.systems.integrators"} <= set(modules)
    assert {"xdyn.systems.shallow_water", "xdyn.datasets.trajectories"} <= set(
        generated._code_modules("xdyn.datasets.ldensf_data"))
    before = datasets.generated_path("lorenz96-climatology", **TINY)
    real = generated._module_source
    monkeypatch.setattr(generated, "_module_source", lambda name: real(name) + (
        "\n_CHANGED = 1  # random_initial_state changed" if name == "xdyn.systems.lorenz96"
        else ""))
    assert datasets.generated_path("lorenz96-climatology", **TINY) != before


def test_a_comment_does_not_remake_a_set(monkeypatch):
    # review W6: a comment in any system module renamed every set's file (a long remake of
    # the large ones, and a full-size leftover each time)
    before = datasets.generated_path("lorenz96-climatology", **TINY)
    real = generated._module_source
    monkeypatch.setattr(generated, "_module_source", lambda name: real(name) + (
        "\n# a comment\n\n" if name == "xdyn.systems.pendulum" else ""))
    assert datasets.generated_path("lorenz96-climatology", **TINY) == before


def test_system_defaults_left_out_or_spelled_out_name_one_file(cache):
    left_out = datasets.generated_path("system-trajectories", n_trajectories=2, n_steps=3)
    spelled_out = datasets.generated_path(
        "system-trajectories", n_trajectories=2, n_steps=3, system="Lorenz96", dt=0.05,
        system_params={"n": 40, "F": 8})
    assert left_out == spelled_out
    other = datasets.generated_path("system-trajectories", n_trajectories=2, n_steps=3,
                                    system_params={"F": 10.0})
    assert other != left_out


# --- D2: a rotted byte in a generated file is refused ------------------------------
@pytest.mark.parametrize("chunks", [None, {}])
def test_a_flipped_byte_in_a_generated_file_is_refused(cache, chunks):
    path = datasets.fetch("lorenz96-climatology", **TINY)
    good = datasets.load("lorenz96-climatology", **TINY)
    raw = bytearray(path.read_bytes())
    offset = raw.find(good.x.values[1, 5, 3].tobytes())  # stored as is: no compression
    assert offset > 0
    raw[offset + 6] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(DataIntegrityError, match=str(path)):
        datasets.load("lorenz96-climatology", chunks=chunks, **TINY).x.values


def test_every_numeric_variable_is_checksummed(cache):
    path = datasets.fetch("lorenz96-climatology", n=8, t_span=1.0, burn_in=0.0)  # one run
    with xr.open_dataset(path) as ds:
        assert all(var.encoding.get("fletcher32") for var in ds.variables.values())


# --- D3: close() of a lazy set releases the file -----------------------------------
def test_closing_a_lazy_set_releases_its_file(cache):
    path = datasets.fetch("lorenz96-climatology", **TINY)
    raw = path.read_bytes()
    lazy = datasets.load("lorenz96-climatology", chunks={}, **TINY)
    total = float(lazy.x.sum())
    assert _fds_on(path) >= 1
    lazy.close()
    assert _fds_on(path) == 0
    with open(path, "r+b") as f:  # cut short in place (same inode) while ``lazy`` is alive
        f.truncate(len(raw) // 2)
    with pytest.raises(DataIntegrityError, match="corrupt or truncated"):
        datasets.load("lorenz96-climatology", **TINY)
    path.write_bytes(raw)
    again = datasets.load("lorenz96-climatology", chunks={}, **TINY)
    assert float(again.x.sum()) == pytest.approx(total, rel=1e-12)
    again.close()


# --- D4: the key fixes the random draws --------------------------------------------
def test_an_unseeded_generated_set_is_refused(cache):
    with pytest.raises(TypeError, match="integer random_state"):
        datasets.load("lorenz96-climatology", random_state=None, **TINY)
    with pytest.raises(ValueError, match="random_state >= 0"):
        datasets.generated_path("lorenz63-climatology", random_state=-1)
    assert list(cache.iterdir()) == []  # nothing was generated


# --- D5: the advice for a damaged file works ----------------------------------------
def test_the_fix_for_a_corrupt_default_file_is_one_that_works(toy, cache):
    from xdyn.cli import main

    path = datasets.fetch("toy-audit-d")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataIntegrityError) as info:
        datasets.load("toy-audit-d")
    message = str(info.value)
    assert message.count("To fix:") == 1
    assert "`xdyn data fetch toy-audit-d --force`" in message
    assert main(["data", "fetch", "toy-audit-d", "--force"]) == 0
    assert datasets.load("toy-audit-d").sizes["time"] == 4


def test_the_fix_for_a_corrupt_file_names_the_overrides(toy, cache):
    path = datasets.fetch("toy-audit-d", n=np.int64(6))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataIntegrityError) as info:
        datasets.load("toy-audit-d", n=6)
    message = str(info.value)
    assert message.count("To fix:") == 1 and "xdyn data fetch" not in message
    assert "`xdyn.datasets.load('toy-audit-d', force=True, n=6)`" in message
    assert datasets.load("toy-audit-d", force=True, n=6).sizes["time"] == 6  # as advised


# --- D6: equal numbers, one key ------------------------------------------------------
def test_equal_numbers_name_one_file(cache):
    path = datasets.generated_path("lorenz96-climatology", **TINY)
    same = [
        {**TINY, "t_span": 1},
        {**TINY, "burn_in": -0.0},
        {**TINY, "n": np.int64(8), "n_trajectories": 2.0},
        {**TINY, "t_span": np.float64(1.0), "random_state": np.int32(0)},
    ]
    for config in same:
        assert datasets.generated_path("lorenz96-climatology", **config) == path, config
    spec = generated.get_generated("lorenz96-climatology")
    resolved = spec.resolve_config({"n": np.int64(8), "t_span": 1})
    assert type(resolved["n"]) is int and type(resolved["t_span"]) is float
