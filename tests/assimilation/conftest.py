"""Small twin-experiment data shared by the assimilation tests."""

import numpy as np
import pytest

from xdyn.observe import observe
from xdyn.systems import Lorenz63, Lorenz96


@pytest.fixture(scope="session")
def l96_twin():
    """Lorenz-96 sakov2008 setup: 40 sites, every site observed every step, R = I."""
    system = Lorenz96()
    truth = system.simulate(n_steps=1000, dt=0.05, burn_in=10.0, random_state=3)
    obs = observe(truth, "identity", noise_std=1.0, every=1, random_state=4)
    return system, truth, obs


@pytest.fixture(scope="session")
def l63_twin():
    """Lorenz-63 sakov2012 setup: dt 0.01, all variables every 25 steps, variance 2."""
    system = Lorenz63()
    truth = system.simulate(n_steps=25 * 400, dt=0.01, burn_in=5.0, random_state=5)
    obs = observe(truth, "identity", noise_std=float(np.sqrt(2.0)), every=25, random_state=6)
    return system, truth, obs


def initial_state(truth, system, spread, seed=0):
    x0 = system.to_state(truth.isel(time=0)).numpy()
    return x0 + spread * np.random.RandomState(seed).standard_normal(x0.shape)
