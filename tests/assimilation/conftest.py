"""Small twin-experiment data shared by the assimilation tests."""

import numpy as np
import pytest

from xdyn.experiments.setups import SAKOV2008, SAKOV2012
from xdyn.systems.base import DynamicalSystem, StateVariable


@pytest.fixture(scope="session")
def l96_twin():
    """Lorenz-96 sakov2008 setup: 40 sites, every site observed every step, R = I."""
    system = SAKOV2008.make_system()
    truth, obs = SAKOV2008.make_twin(n_cycles=1000, seed=3, spin_up=10.0, system=system)
    return system, truth, obs


@pytest.fixture(scope="session")
def l63_twin():
    """Lorenz-63 sakov2012 setup: dt 0.01, all variables every 25 steps, variance 2."""
    system = SAKOV2012.make_system()
    truth, obs = SAKOV2012.make_twin(n_cycles=400, seed=5, spin_up=5.0, system=system)
    return system, truth, obs


def initial_state(truth, system, spread, seed=0):
    x0 = system.to_state(truth.isel(time=0)).numpy()
    return x0 + spread * np.random.RandomState(seed).standard_normal(x0.shape)


class DampedRotation(DynamicalSystem):
    """A linear system: the EKF must equal the Kalman filter exactly."""

    name = "damped_rotation"
    default_dt = 0.1

    def __init__(self, omega=1.0, damping=0.05, dtype="float64", device="cpu"):
        self.omega = omega
        self.damping = damping
        self.dtype = dtype
        self.device = device

    def _variables(self):
        return [StateVariable("a", attrs={"units": "1"}), StateVariable("b", attrs={"units": "1"})]

    def rhs(self, t, x):
        A = self.as_tensor([[-self.damping, self.omega], [-self.omega, -self.damping]])
        return x @ A.T

    def random_initial_state(self, n, random_state=None):
        return np.random.RandomState(random_state).normal(size=(n, 2))
