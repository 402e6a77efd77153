"""Published setups: one place for the numbers that twin runs, benchmarks and tests read."""

import math

import numpy as np
import pytest

from xdyn.experiments import twin
from xdyn.experiments.setups import SAKOV2008, SAKOV2008_EVERY4, SAKOV2012, SETUPS, get_setup
from xdyn.observe import observe
from xdyn.systems import Lorenz63, Lorenz96


def test_setups_make_the_same_truth_and_obs_as_the_hand_built_fixtures():
    # the assimilation tests' fixtures were built by hand like this before the setups
    # existed; their thresholds were tuned on exactly these numbers
    truth, obs = SAKOV2008.make_twin(n_cycles=200, seed=3, spin_up=10.0)
    ref_truth = Lorenz96().simulate(n_steps=200, dt=0.05, burn_in=10.0, random_state=3)
    ref_obs = observe(ref_truth, "identity", noise_std=1.0, every=1, random_state=4)
    np.testing.assert_array_equal(truth.x.values, ref_truth.x.values)
    np.testing.assert_array_equal(obs.observation.values, ref_obs.observation.values)
    assert obs.sizes == {"time": 201, "obs": 40}

    truth, obs = SAKOV2012.make_twin(n_cycles=40, seed=5, spin_up=5.0)
    ref_truth = Lorenz63().simulate(n_steps=25 * 40, dt=0.01, burn_in=5.0, random_state=5)
    ref_obs = observe(ref_truth, "identity", noise_std=float(np.sqrt(2.0)), every=25,
                      random_state=6)
    np.testing.assert_array_equal(truth.z.values, ref_truth.z.values)
    np.testing.assert_array_equal(obs.observation.values, ref_obs.observation.values)
    assert obs.sizes == {"time": 41, "obs": 3}


def test_the_every4_variant_observes_every_4th_site():
    truth, obs = SAKOV2008_EVERY4.make_twin(n_cycles=3, seed=0, spin_up=1.0)
    assert obs.k.values.tolist() == list(range(0, 40, 4))
    # observation minus truth: unit noise, so about 1 in RMS over 40 draws
    err = obs.observation.values - truth.x.values[:, ::4]
    assert 0.6 < float(np.sqrt(np.mean(err**2))) < 1.5


@pytest.mark.parametrize("setup, dapper_module", [
    (SAKOV2008, "dapper.mods.Lorenz96.sakov2008"), (SAKOV2012, "dapper.mods.Lorenz63.sakov2012"),
])
def test_setups_match_dapper(setup, dapper_module):
    pytest.importorskip("dapper")
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        HMM = importlib.import_module(dapper_module).HMM
    assert setup.dt == HMM.tseq.dt
    assert setup.obs_every == HMM.tseq.dko
    assert setup.make_system().n_state == HMM.Nx
    assert math.isclose(setup.noise_std**2, HMM.Obs(0).noise.C.diag[0])
    assert math.isclose(setup.initial_spread**2, HMM.X0.C.diag[0])


def test_tuning_tables_name_registered_methods_and_one_row_per_label():
    from xdyn.assimilation import make_assimilator

    for setup in SETUPS.values():
        labels = [m.label for m in setup.tuning]
        assert len(labels) == len(set(labels)), setup.name
        for m in setup.tuning:
            est = make_assimilator(m.method, **m.params)  # every parameter is a real one
            assert set(m.params) <= set(est.get_params()), m.label
            assert m.reference_rmse is None or 0.1 < m.reference_rmse < 1.5


def test_twin_experiments_read_the_setups():
    assert twin.L96_REFERENCE == SAKOV2008.reference()
    assert twin.L63_REFERENCE["PF N=100 reg 2.4 NER 0.3"] == 0.35
    for cfg in twin.lorenz96_methods() + twin.lorenz63_methods():
        assert cfg.label in twin.L96_REFERENCE or cfg.label in twin.L63_REFERENCE \
            or cfg.label == "EnKF sqrt N=40 infl 1.01"
    assert get_setup("sakov2008") is SAKOV2008
    with pytest.raises(ValueError, match="did you mean 'sakov2008'"):
        get_setup("sakov2080")
    with pytest.raises(ValueError, match="no tuning rows"):
        SAKOV2008.methods(["EnKF N=1000"])
