"""Audit T of session 62 on the twin experiments and the sweep (findings T1-T6)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xdyn.assimilation import EnKF
from xdyn.experiments import sweep
from xdyn.experiments import twin as twin_module
from xdyn.experiments.setups import SAKOV2008
from xdyn.experiments.twin import MethodConfig, format_table, twin_experiment
from xdyn.observe import observe
from xdyn.systems import Lorenz96

ENKF = MethodConfig("EnKF N=10", "enkf", {"n_members": 10, "inflation": 1.05})


@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if the truth is simulated: bad input must be refused before."""
    def simulated(*args, **kwargs):
        raise AssertionError("the truth was simulated before the input was checked")

    monkeypatch.setattr(twin_module, "twin_data", simulated)


# ------------------------------------------------------------------ T2
def test_a_misspelt_method_is_an_error_naming_it_not_a_nan_row(no_simulation):
    # it was a row of NaNs with status "unavailable" and the run went on
    methods = [ENKF, MethodConfig("LETKF N=10", "letfk", {"n_members": 10})]
    with pytest.raises(ValueError, match="method 'LETKF N=10': unknown assimilation method "
                                         "'letfk'; did you mean 'letkf'") as err:
        twin_experiment(Lorenz96(n=10), "identity", 1.0, 1, 20, methods, progress=False)
    assert "'enkf'" in str(err.value) and "'3dvar'" in str(err.value)  # the known names


# ------------------------------------------------------------------ T5
@pytest.mark.parametrize("burn_in_cycles", [True, 21, -1, 2.0])
def test_burn_in_is_checked_as_an_integer_before_the_truth_is_simulated(no_simulation,
                                                                        burn_in_cycles):
    # True passed the check and failed inside xarray's indexing, after the simulation
    with pytest.raises(ValueError, match=r"burn_in_cycles must be an integer in \[0, 20\]"):
        twin_experiment(Lorenz96(n=10), "identity", 1.0, 1, 20, [ENKF], progress=False,
                        burn_in_cycles=burn_in_cycles)


@pytest.mark.parametrize("seed", [2**32 - 2, -1, 0.5, True])
def test_a_seed_numpy_cannot_take_is_refused_by_name(no_simulation, seed):
    # 2**32 - 2 failed in numpy ("Seed must be between ...") on seed + 3, after the truth
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32 - 4\]"):
        twin_experiment(Lorenz96(n=10), "identity", 1.0, 1, 20, [ENKF], seed=seed,
                        progress=False)


# ------------------------------------------------------------------ T1, T3
@pytest.fixture(scope="module")
def static_and_ensemble():
    methods = [MethodConfig("OI", "oi", {}), MethodConfig("3D-Var", "3dvar", {"B_scale": 0.1}),
               ENKF]
    return twin_experiment(Lorenz96(n=10), "identity", 1.0, 1, 60, methods, seed=0,
                           burn_in_cycles=10, initial_spread=0.5, progress=False)


def test_the_spread_of_oi_and_3dvar_is_labelled_as_their_static_b_std(static_and_ensemble):
    # it was "analysis ensemble spread" for all, and the footer said "of the ensemble-mean
    # analysis"; OI and 3D-Var have no ensemble: theirs is the std their fixed B implies
    res = static_and_ensemble[0]
    kinds = dict(zip(res.assimilator.values.tolist(), res.spread_kind.values.tolist()))
    assert kinds == {"OI": "static background covariance",
                     "3D-Var": "static background covariance", "EnKF N=10": "ensemble"}
    assert "ensemble spread" not in res.spread.attrs["long_name"]
    assert res.spread_kind.attrs["long_name"]
    # constant in time, whatever the errors: a nominal value, not a measured spread
    for label in ("OI", "3D-Var"):
        spread = res.spread.sel(assimilator=label).values[1:]
        assert np.ptp(spread) < 1e-9 * spread.mean()
    enkf = res.spread.sel(assimilator="EnKF N=10").values[1:]
    assert np.ptp(enkf) > 0.01
    table = format_table(res)
    assert ("spread of OI, 3D-Var: the analysis std implied by the static background "
            "covariance") in table
    assert "ensemble-mean analysis" not in table


def test_results_record_the_system_parameters_and_burn_in_time(static_and_ensemble):
    # config_json held only "Lorenz96()": n, F and the integrator were nowhere in results.nc
    config = json.loads(static_and_ensemble[0].attrs["config_json"])
    assert config["system"] == "Lorenz96" and config["integrator"] == "rk4"
    assert config["system_params"]["n"] == 10 and config["system_params"]["F"] == 8.0
    assert config["t_burn"] == pytest.approx(10 * 0.05)
    assert config["burn_in_cycles"] == 10 and config["dt"] == pytest.approx(0.05)


# ------------------------------------------------------------------ T3, T6
def test_catalogue_twin_records_its_setup_and_says_what_ref_is():
    methods = SAKOV2008.methods(["3D-Var (B x 0.02)"])
    result = twin_module._run_twin(SAKOV2008, "cpu", 20, 5, methods, SAKOV2008.reference(),
                                   0, False, variable="x", site=0)
    res = result.results
    config = json.loads(res.attrs["config_json"])
    assert config["setup"] == "sakov2008" and config["system_params"]["n"] == 40
    # the refs are xdyn's runs of DAPPER on DAPPER's own truth, not a published number
    assert "measured by xdyn on DAPPER's own truth" in res.reference_rmse.attrs["long_name"]
    assert "measured by xdyn on DAPPER's own truth" in result.table
    assert "reports on this setup" not in result.table and "none published" not in result.table


# ------------------------------------------------------------------ T4
def test_sweep_rmse_keeps_the_units_of_the_state():
    # the attrs were replaced: units '1' was lost, with and without a parameter grid
    truth = Lorenz96(n=10).simulate(n_trajectories=2, n_steps=30, burn_in=5.0, random_state=0)
    obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    enkf = EnKF(n_members=10, inflation=1.05, raise_on_divergence=False, random_state=0)
    by_inflation = sweep(enkf, obs, truth, inflation=[1.02, 1.05])
    by_members = sweep(enkf, obs, truth, param_grid={"n_members": [8, 10]})
    assert truth.x.attrs["units"] == "1"
    for scores in (by_inflation, by_members):
        assert scores.attrs["units"] == "1" and scores.attrs["method"] == "EnKF"
        assert 0 < float(scores.mean()) < 1.5  # an analysis RMSE under unit noise
