"""The Kolmogorov set's Lyapunov exponent: right on a known case, cached by configuration."""

import json

import numpy as np
import pytest

from xdyn.datasets import generated_path
from xdyn.datasets.kolmogorov_closure import QUICK_CONFIG
from xdyn.datasets.kolmogorov_lyapunov import (LYAPUNOV_CONFIG, kolmogorov_lyapunov,
                                               load_kolmogorov_lyapunov)

TINY = {"solve_grid": 16, "dt": 0.05, "burn_in": 1.0, "n_trajectories": 2, "n_steps": 20,
        "tangent_burn_in": 2}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDYN_DATA_DIR", str(tmp_path))
    return tmp_path


def test_laminar_flow_decays_at_the_slowest_viscous_rate():
    # below the first instability the flow is the laminar fixed point; a perturbation
    # ~ cos(y) (k_x = 0) is not advected by the shear and decays exactly at -k^2 / Re,
    # the slowest of all: lambda_1 = -1 / Re. Measured -0.2036 at Re = 5 (2 trajectories)
    ds = kolmogorov_lyapunov(Re=5.0, solve_grid=16, dt=0.02, burn_in=20.0, n_trajectories=2,
                             n_steps=500, tangent_burn_in=100)
    assert abs(float(ds.lyapunov_exponent) + 1 / 5.0) < 0.01
    assert float(ds.lyapunov_exponent.attrs["standard_error"]) < 0.01
    assert np.isinf(ds.lyapunov_time)  # no growth, no Lyapunov time


def test_cached_by_configuration_and_recomputable(data_dir):
    first = load_kolmogorov_lyapunov(**TINY)
    config = json.loads(first.attrs["xdyn_config"])["config"]
    keys = ("Re", "n_forcing", "solve_grid", "dt", "burn_in", "random_state")
    assert config == {**{k: QUICK_CONFIG[k] for k in keys}, **LYAPUNOV_CONFIG, **TINY}
    path = generated_path("kolmogorov-closure-lyapunov", **config)
    stamp = path.stat().st_mtime_ns
    again = load_kolmogorov_lyapunov(**TINY)  # read back, not recomputed
    assert path.stat().st_mtime_ns == stamp
    assert float(again.lyapunov_exponent) == float(first.lyapunov_exponent)
    forced = load_kolmogorov_lyapunov(force=True, **TINY)  # computed again: the same number
    np.testing.assert_allclose(float(forced.lyapunov_exponent),
                               float(first.lyapunov_exponent), rtol=1e-9)
    other = generated_path("kolmogorov-closure-lyapunov", **{**config, "random_state": 1})
    assert other != path
    # quick=False: the original's set (its transient of 100 time units)
    tiny = {k: v for k, v in TINY.items() if k != "burn_in"}
    full = json.loads(load_kolmogorov_lyapunov(quick=False, **tiny).attrs["xdyn_config"])
    assert full["config"]["burn_in"] == 100.0 != QUICK_CONFIG["burn_in"]


@pytest.mark.slow
def test_quick_set_flow_is_chaotic_with_a_lyapunov_time_of_about_fifteen():
    # the quick set's own configuration (64^2, dt 0.01), ~1 min on one thread. Measured:
    # 0.062 +- 0.012 (this run), 0.068 +- 0.006 over 8 trajectories x 100 time units,
    # 0.056 +- 0.012 and 0.067 +- 0.011 over 4 x 40 units after a transient of 150
    ds = kolmogorov_lyapunov(**{k: QUICK_CONFIG[k] for k in ("Re", "n_forcing", "solve_grid",
                                                             "dt", "burn_in", "random_state")},
                             **LYAPUNOV_CONFIG)
    lam, stderr = float(ds.lyapunov_exponent), ds.lyapunov_exponent.attrs["standard_error"]
    assert 0.04 < lam < 0.14 and stderr < 0.3 * lam
