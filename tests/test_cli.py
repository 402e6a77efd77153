import subprocess
import sys

import pytest
import xarray as xr

from xdyn.cli import main


def test_list_shows_catalogue_and_default(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "lorenz96-twin" in out and "* lorenz96-twin" in out


def test_run_quick_experiment_writes_outputs(tmp_path, capsys):
    assert main(["run", "lorenz96-spectrum", "--quick", "--out", str(tmp_path), "--seed", "3",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "spectral peak" in out and "peak memory" in out
    ds = xr.open_dataset(tmp_path / "lorenz96-spectrum" / "results.nc")
    assert ds.attrs["seed"] == 3 and ds.attrs["quick"] == 1
    assert "x_spectrum" in ds and ds.x_spectrum.attrs.get("units")
    ds.close()
    assert (tmp_path / "lorenz96-spectrum" / "spectrum.png").exists()


def test_unknown_experiment_is_a_clear_error(capsys):
    assert main(["run", "no-such-thing", "--no-progress"]) == 2
    assert "unknown experiment" in capsys.readouterr().err


def test_data_list(capsys):
    assert main(["data", "list"]) == 0
    assert "lorenz96-sample" in capsys.readouterr().out


def test_console_script_is_installed():
    proc = subprocess.run([sys.executable, "-m", "xdyn.cli", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "run" in proc.stdout


@pytest.mark.parametrize("argv", [["bench", "nothing"], ["data"]])
def test_bad_arguments_exit_nonzero(argv):
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code != 0
