import subprocess
import sys

import pytest
import torch
import xarray as xr

import xdyn
from xdyn import experiments
from xdyn.cli import main
from xdyn.experiments import ExperimentResult, register


@pytest.fixture
def tiny(monkeypatch):
    """A registered experiment that records its calls (to prove checks come first)."""
    calls = []

    @register("tiny-cli", "a tiny experiment for the CLI tests")
    def _tiny(quick=False, seed=0, device="cpu", progress=True):
        calls.append(quick)
        ds = xr.Dataset({"rmse": ("method", [0.5 if quick else 0.1], {"units": "1",
                                                                     "long_name": "RMSE"})},
                        coords={"method": ("method", ["a"], {"long_name": "method"})})
        return ExperimentResult(ds, {}, "table", summary=[
            {"method": "a", "metric": "RMSE", "value": float(ds.rmse[0]), "units": "1",
             "lower_is_better": True}])

    yield calls
    experiments.catalogue._REGISTRY.pop("tiny-cli", None)


def _one_error_line(capsys, *needles):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xdyn: error: "), captured.err
    assert "Traceback" not in captured.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return captured


def test_list_shows_catalogue_and_default(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "lorenz96-twin" in out and "* lorenz96-twin" in out


def test_run_quick_experiment_writes_outputs(tmp_path, capsys):
    assert main(["run", "lorenz96-spectrum", "--quick", "--out", str(tmp_path), "--seed", "3",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "spectral peak" in out and "peak memory" in out and "quick run" in out
    folder = tmp_path / "lorenz96-spectrum-quick"
    with xr.open_dataset(folder / "results.nc") as ds:
        assert ds.attrs["seed"] == 3 and ds.attrs["quick"] == 1 and "shortened" in ds.attrs["quick_note"]
        assert "x_spectrum" in ds and ds.x_spectrum.attrs.get("units")
        for name, var in {**ds.data_vars, **ds.coords}.items():  # CF attrs on everything
            assert var.attrs.get("long_name") and var.attrs.get("units"), name
    assert (folder / "spectrum.png").exists() and (folder / "summary.csv").exists()


def test_quick_run_keeps_full_results_apart(tmp_path, tiny, capsys):
    assert main(["run", "tiny-cli", "--out", str(tmp_path), "--no-progress"]) == 0
    assert main(["run", "tiny-cli", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    with xr.open_dataset(tmp_path / "tiny-cli" / "results.nc") as full:
        assert full.attrs["quick"] == 0 and float(full.rmse[0]) == 0.1
    with xr.open_dataset(tmp_path / "tiny-cli-quick" / "results.nc") as quick:
        assert quick.attrs["quick"] == 1 and float(quick.rmse[0]) == 0.5
    assert "tiny-cli-quick" in capsys.readouterr().out


def test_unknown_experiment_is_one_line_before_any_header(capsys):
    assert main(["run", "lorenz96-twn", "--no-progress"]) == 2
    captured = _one_error_line(capsys, "unknown experiment 'lorenz96-twn'",
                               "did you mean 'lorenz96-twin'")
    assert captured.out == ""  # no "xdyn run ..." header before the error


@pytest.mark.parametrize("device, needle", [("foo", "not a torch device"),
                                            ("cuda", "CUDA is not available")])
def test_bad_device_is_one_line_before_work(device, needle, tiny, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a CPU-only machine
    assert main(["run", "tiny-cli", "--device", device, "--out", str(tmp_path)]) == 2
    _one_error_line(capsys, "--device", needle)
    assert tiny == [] and list(tmp_path.iterdir()) == []


def test_out_that_cannot_be_a_folder_is_one_line_before_work(tmp_path, tiny, capsys):
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder")
    assert main(["run", "tiny-cli", "--out", str(a_file)]) == 2
    _one_error_line(capsys, "--out", "is an existing file")
    assert main(["run", "tiny-cli", "--out", str(a_file / "below")]) == 2
    _one_error_line(capsys, "--out", "not writable")
    # an unset shell variable ("$OUTDIR") wrote into the current folder
    assert main(["run", "tiny-cli", "--out", ""]) == 2
    _one_error_line(capsys, "--out", "empty name")
    assert tiny == []


@pytest.mark.parametrize("seed, needle", [("-1", "outside 0 .. 2**31 - 1"),
                                          ("1.5", "not a whole number")])
def test_bad_seed_is_refused_before_work(seed, needle, tiny, capsys, tmp_path):
    # -1 started the experiment and failed inside it, without naming --seed
    with pytest.raises(SystemExit) as exit_:
        main(["run", "tiny-cli", "--out", str(tmp_path), f"--seed={seed}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--seed" in err and needle in err
    assert tiny == [] and list(tmp_path.iterdir()) == []


def test_out_unwritable_is_one_line_before_work(tmp_path, tiny, capsys, monkeypatch):
    # root may write anywhere, so make the probe fail the way a read-only folder does
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    assert main(["run", "tiny-cli", "--out", str(tmp_path)]) == 2
    _one_error_line(capsys, "--out", "not writable: Permission denied")
    assert tiny == []


def test_no_arguments_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: xdyn") and "xdyn run [NAME]" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as err:
        main(["--version"])
    assert err.value.code == 0 and capsys.readouterr().out.strip() == f"xdyn {xdyn.__version__}"


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["data", "--help"]])
def test_help_has_no_rst_markup(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    out = capsys.readouterr().out
    assert out.startswith("usage:")
    for markup in ("``", ":func:", ":class:", ".. "):
        assert markup not in out, markup


def test_data_list(capsys):
    assert main(["data", "list"]) == 0
    assert "lorenz96-sample" in capsys.readouterr().out


def test_data_fetch_of_a_corrupt_file_names_it_and_the_fix(tmp_path, monkeypatch, capsys):
    shipped = xdyn.datasets.registry.shipped_dir()
    corrupt = tmp_path / "lorenz96_sample.nc"
    data = bytearray((shipped / "lorenz96_sample.nc").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the data region
    corrupt.write_bytes(bytes(data))
    monkeypatch.setenv("XDYN_SHIPPED_DIR", str(tmp_path))
    monkeypatch.setenv("XDYN_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDYN_OFFLINE", "1")
    assert main(["data", "fetch", "lorenz96-sample"]) == 2
    _one_error_line(capsys, str(corrupt), "To fix")


def test_data_fetch_force_is_for_generated_sets(capsys):
    assert main(["data", "fetch", "lorenz96-sample", "--force"]) == 2
    _one_error_line(capsys, "--force remakes a generated dataset", "'lorenz96-sample'")
    assert main(["data", "list", "--force"]) == 2
    _one_error_line(capsys, "--force: only for `xdyn data fetch NAME`")


def test_data_fetch_without_a_name_is_one_line(capsys):
    assert main(["data", "fetch"]) == 2
    _one_error_line(capsys, "needs a dataset NAME")


def test_bench_da_without_dapper_says_so_and_fails(monkeypatch, capsys):
    import xdyn.bench

    monkeypatch.setattr(xdyn.bench, "has_peer", lambda name: False)
    monkeypatch.setattr(xdyn.bench, "bench_da", lambda **kw: pytest.fail("ran without DAPPER"))
    assert main(["bench", "da"]) == 2
    _one_error_line(capsys, "DAPPER", "not installed", "[bench]")


def test_bench_device_is_for_train_only(capsys):
    assert main(["bench", "systems", "--device", "cpu"]) == 2
    _one_error_line(capsys, "--device is for `xdyn bench train`")


def test_bench_train_checks_the_device_first(monkeypatch, capsys):
    import xdyn.bench_train

    monkeypatch.setattr(xdyn.bench_train, "bench_train",
                        lambda **kw: pytest.fail("ran on a device this machine lacks"))
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(["bench", "train", "--device", "cuda"]) == 2
    _one_error_line(capsys, "--device")


def test_console_script_is_installed():
    proc = subprocess.run([sys.executable, "-m", "xdyn.cli", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "run" in proc.stdout


@pytest.mark.parametrize("argv", [["bench", "nothing"], ["data"]])
def test_bad_arguments_exit_nonzero(argv):
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code != 0


def _data_status(capsys):
    """Name -> status column of `xdyn data list`."""
    return {line[:32].strip(): line[33:53].strip() for line in capsys.readouterr().out.splitlines()}


def test_data_list_says_what_is_cached(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDYN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("XDYN_OFFLINE", raising=False)
    assert main(["data", "list"]) == 0
    status = _data_status(capsys)
    assert status["lorenz96-sample"] == "cached"  # shipped in datasets/
    assert status["lorenz96-climatology"] == "generated on demand"  # not on disk
    assert status["weatherbench-z500"] == "needs --known-hash"
    folder = tmp_path / "weatherbench" / "geopotential_500"
    folder.mkdir(parents=True)
    (folder / "geopotential_500hPa_2017_5.625deg.nc").write_bytes(b"x")
    assert main(["data", "list", "weatherbench-z500"]) == 0
    assert _data_status(capsys) == {"weatherbench-z500": "cached"}


@pytest.mark.parametrize("argv, needles", [
    (["data", "list", "lorenz63-sample", "--workers", "3"], ["--workers", "xdyn data fetch"]),
    (["data", "list", "--known-hash", "sha256:00"], ["--known-hash", "xdyn data fetch"]),
    (["data", "list", "no-such-set"], ["unknown dataset 'no-such-set'", "lorenz63-sample"]),
    (["data", "fetch", "lorenz63-sample", "--known-hash", "sha256:00"],
     ["--known-hash is for the weatherbench-*", "'lorenz63-sample'"]),
    (["data", "fetch", "weatherbench-z500"], ["--known-hash sha256:<hex>"]),
])
def test_data_flags_that_do_nothing_are_refused(argv, needles, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDYN_DATA_DIR", str(tmp_path))
    assert main(argv) == 2
    _one_error_line(capsys, *needles)


def test_data_fetch_weatherbench_with_known_hash(tmp_path, monkeypatch, capsys):
    import hashlib
    import zipfile

    import numpy as np

    monkeypatch.setenv("XDYN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("XDYN_OFFLINE", raising=False)  # the archive is on disk already
    root = tmp_path / "weatherbench"
    name = "geopotential_500hPa_2017_5.625deg.nc"
    xr.Dataset({"z": (("time", "lat", "lon"), np.full((1, 32, 64), 5.0e4, "f4"))},
               {"time": [np.datetime64("2017-01-01T00")], "lat": np.arange(-87.1875, 90, 5.625),
                "lon": np.arange(0.0, 360.0, 5.625)}).to_netcdf(tmp_path / name)
    archive = root / ".downloads" / "geopotential_500_5.625deg.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as z:
        z.write(tmp_path / name, name)
    known_hash = "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()
    assert main(["data", "fetch", "weatherbench-z500", "--known-hash", known_hash]) == 0
    assert capsys.readouterr().out.strip() == str(root)
    assert (root / "geopotential_500" / name).read_bytes() == (tmp_path / name).read_bytes()
    ds = xdyn.datasets.load("weatherbench-z500")
    assert ds.z500.shape == (1, 32, 64) and float(ds.z500.min()) == 5.0e4
