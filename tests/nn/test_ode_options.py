"""Every fixed-grid torchdiffeq method steps by the requested step size (not the output grid)."""

import numpy as np
import pytest
import torch

from xdyn.nn.advection import AdvectionSourceODE
from xdyn.nn.dynamics import integrate_field
from xdyn.nn.transport import TransportSourceField

FIXED = ["euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams",
         "fixed_adams"]


@pytest.mark.parametrize("method", FIXED)
def test_integrate_field_steps_by_step_size(method):
    calls = []

    def func(t, x):
        calls.append(float(t))
        return -x

    out = integrate_field(func, torch.ones(1, dtype=torch.float64),
                          torch.tensor([0.0, 1.0], dtype=torch.float64), method, 0.05)
    assert len(set(calls)) >= 20            # one step per output interval would be 2-3 times
    assert abs(float(out[-1, 0]) - np.exp(-1.0)) < 0.02    # euler: 9e-3


def _spy(monkeypatch, module):
    """Record the ``options`` that ``module`` passes to torchdiffeq's ``odeint``."""
    seen, odeint = [], module.odeint

    def spy(*args, **kwargs):
        seen.append(kwargs.get("options"))
        return odeint(*args, **kwargs)

    monkeypatch.setattr(module, "odeint", spy)
    return seen


def _wave(nx=32):
    return torch.as_tensor(np.sin(2 * np.pi * np.arange(nx) / nx)).expand(1, 1, 4, nx)


@pytest.mark.parametrize("method", ["heun2", "heun3", "fixed_adams", "explicit_adams"])
def test_transport_rollout_steps_by_step_size(method, monkeypatch):
    import xdyn.nn.transport as mod

    seen = _spy(monkeypatch, mod)
    field = TransportSourceField(1, (4, 32), hidden=4, periodic=(False, True), z_dim=0,
                                 max_speed=2.0, method=method, step_size=0.25).double()
    with torch.no_grad():
        field.log_rate.fill_(-60.0)
        field.field[-1].bias[1] = 2.0 * np.arctanh(0.25)      # v_x = 0.5 cells per step
        traj = field.rollout(_wave(), torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, 0),
                             torch.tensor([0.0, 8.0], dtype=torch.float64))
    exact = np.roll(_wave()[0, 0].numpy(), 4, axis=-1)
    assert np.abs(traj[-1, 0, 0].numpy() - exact).max() < 0.02
    assert seen == [{"step_size": 0.25}]


@pytest.mark.parametrize("method", ["heun2", "heun3", "fixed_adams", "explicit_adams"])
def test_advection_ode_steps_by_step_size(method, monkeypatch):
    import xdyn.nn.advection as mod

    seen = _spy(monkeypatch, mod)
    module = AdvectionSourceODE(1, (4, 32), hidden=4, periodic=(False, True), n_steps=8,
                                method=method, step_size=0.25).double()
    with torch.no_grad():
        module.log_rate.fill_(-60.0)
        module.log_velocity_decay.fill_(-60.0)
    u0 = _wave()
    v = torch.cat([torch.zeros_like(u0), torch.full_like(u0, 0.5)], 1)
    with torch.no_grad():
        mean = module(u0, v, torch.zeros(1, 2, dtype=torch.float64))[0, -1, 0, 0].numpy()
    exact = np.roll(u0[0, 0].numpy(), 4, axis=-1)
    assert np.abs(mean - exact).max() < 0.02
    assert seen == [{"step_size": 0.25}]
