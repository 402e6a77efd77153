"""The climatological pool of :mod:`xdyn.systems.climatology`: spin-up in each system's own
time units, an honest drift diagnostic, and a clear refusal of a pool without spread."""

import math

import numpy as np
import pytest
import torch

from xdyn.systems import Lorenz63, Lorenz96, ShallowWater
from xdyn.systems import climatology as C


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _FixedStart(Lorenz63):
    """Lorenz-63 whose "random" initial states are all one point."""

    def random_initial_state(self, n, random_state=None):
        return np.tile([1.0, 2.0, 20.0], (n, 1))


def test_nondimensional_pool_is_40_time_units_from_the_seeded_draws():
    system = Lorenz96(n=8)
    assert system.climatology_spin_up == 40.0 and system.climatology_burn_in == 10.0
    pool = C.climatological_pool(system)
    x = system.as_tensor(system.random_initial_state(C._POOL_SIZE, C._POOL_SEED))
    x = system.forecast(system.forecast(x, 0.05, 600), 0.05, 200)   # 800 steps of 0.05
    np.testing.assert_array_equal(pool, x.numpy())
    assert 0.8 < C.pool_variance_drift(system) < 1.25


def test_shallow_water_pool_spins_up_a_day_and_has_spread():
    sw = ShallowWater.preset("tsunami", N=8)
    assert sw.climatology_spin_up == 86400.0
    pool = C.climatological_pool(sw, dt=600.0)    # 144 steps
    assert pool.shape == (512, 3 * 64)
    assert float(pool.std(0).max()) > 0.01         # random releases, not 512 copies of one
    assert float(np.abs(pool[:, :64]).max()) > 1e-3   # integrated: the water moves
    members = C.climatological_sample(sw, 8, dt=600.0, random_state=0)
    assert float(members.std(0).max()) > 0.01
    assert math.isfinite(C.pool_variance_drift(sw, 600.0))


def test_pool_drift_is_nan_when_the_spin_up_is_a_few_steps():
    system = Lorenz63()
    system.climatology_spin_up = 0.1       # 10 steps of 0.01: nothing to judge convergence by
    C.climatological_pool(system)
    assert np.isnan(C.pool_variance_drift(system))
    assert C.climatological_pool(Lorenz63()).shape == (512, 3)  # another pool, still 40 long


def test_pool_without_random_initial_states_is_refused():
    with pytest.raises(ValueError, match="no spread.*pass an initial ensemble"):
        C.climatological_sample(_FixedStart(), 4, random_state=0)
    assert torch.isfinite(torch.as_tensor(C.climatological_pool(Lorenz63()))).all()
