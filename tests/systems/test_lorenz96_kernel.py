"""The site-major in-place RK4 kernel of Lorenz-96 ensembles (Lorenz96.forecast)."""

import numpy as np
import pytest
import torch

from xdyn.systems import Lorenz96
from xdyn.systems.base import DynamicalSystem
from xdyn.systems.integrators import rk4_step


@pytest.mark.parametrize("shape", [(64, 40), (2, 40, 40), (50, 7)])
def test_ensemble_kernel_equals_generic_rk4(shape):
    system = Lorenz96(n=shape[-1])
    x = torch.as_tensor(system.random_initial_state(int(np.prod(shape[:-1])), 0)).reshape(shape)
    fast = system.forecast(x, 0.05, 10)
    generic = x
    for _ in range(10):
        generic = rk4_step(system.rhs, 0.0, generic, 0.05)
    assert fast.shape == x.shape and fast.dtype == x.dtype
    # the same arithmetic in another order: equal to rounding (chaos grows it ~2x a step)
    np.testing.assert_allclose(fast.numpy(), generic.numpy(), atol=1e-10, rtol=0)
    np.testing.assert_array_equal(x.numpy(), x.numpy())  # input untouched
    assert not np.shares_memory(fast.numpy(), x.numpy())


def test_float32_ensemble_accuracy():
    """float32 path: one step agrees with float64 to float32 rounding (~1e-6 relative)."""
    x = torch.as_tensor(Lorenz96().random_initial_state(100, 1))
    one64 = Lorenz96().forecast(x, 0.05, 1)
    one32 = Lorenz96(dtype="float32").forecast(x.float(), 0.05, 1)
    assert one32.dtype == torch.float32
    np.testing.assert_allclose(one32.double().numpy(), one64.numpy(), rtol=0, atol=2e-5)


def test_autograd_and_single_states_take_the_generic_path():
    system = Lorenz96()
    x = torch.as_tensor(system.random_initial_state(40, 2), dtype=torch.float64)
    x.requires_grad_(True)
    y = system.forecast(x, 0.05, 2)
    assert y.requires_grad  # the kernel (numpy) would drop the graph
    one = x.detach()[0]
    np.testing.assert_array_equal(system.forecast(one, 0.05, 3).numpy(),
                                  DynamicalSystem.forecast(system, one, 0.05, 3).numpy())
    with pytest.raises(ValueError, match="n_steps"):
        system.forecast(x.detach(), 0.05, -1)


def test_a_subclass_with_its_own_step_is_not_bypassed():
    class HalfStep(Lorenz96):  # another integrator: half an Euler step, say
        def step(self, x, dt):
            return x + 0.5 * dt * self.rhs(0.0, x)

    system = HalfStep()
    x = torch.as_tensor(system.random_initial_state(64, 0))
    expected = x
    for _ in range(3):
        expected = system.step(expected, 0.05)
    np.testing.assert_allclose(system.forecast(x, 0.05, 3).numpy(), expected.numpy(), rtol=1e-12)

