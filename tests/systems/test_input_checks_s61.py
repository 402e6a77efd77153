"""Input checks at the edges of the systems API: explicit complex step, forecast's
``n_steps`` and state length, the ``dt`` of the climatology and Lyapunov's ``burn_in``."""

import re

import numpy as np
import pytest
import torch

from xdyn.systems import (KolmogorovFlow, KuramotoSivashinsky, Lorenz63, Lorenz96,
                          ReactionDiffusion, TwoScaleLorenz96)
from xdyn.systems.climatology import climatological_sample, estimate_climatology
from xdyn.systems.lyapunov import lyapunov_exponents
from xdyn.systems.tangent import complex_step_applies, forecast_with_jacobian


class EulerLorenz96(Lorenz96):
    """Lorenz-96 stepped by forward Euler: complex step (numpy RK4) would differentiate RK4."""

    def step(self, x, dt):
        return x + dt * self.rhs(0.0, x)


def _x(system, n=None, seed=0):
    x = system.as_tensor(system.random_initial_state(1 if n is None else n, seed))
    return x[0] if n is None else x


# --- complex step (S1) -------------------------------------------------------------
@pytest.mark.parametrize("system, match", [
    (EulerLorenz96(n=8), "EulerLorenz96: .*overrides step"),
    (KuramotoSivashinsky(L=22.0, N=16), "KuramotoSivashinsky: .*supports_numpy is False"),
    (Lorenz96(n=8, F=torch.tensor(8.0)), "Lorenz96: .*tensor or holds one value per trajectory"),
], ids=["overridden-step", "no-numpy-rhs", "tensor-parameter"])
def test_complex_step_refused_where_it_cannot_differentiate(system, match):
    x = _x(system)
    with pytest.raises(ValueError, match=match + ".*use 'autodiff'"):
        forecast_with_jacobian(system, x, 0.01, 2, method="complex-step")
    x_next, _ = forecast_with_jacobian(system, x, 0.01, 2)  # autodiff still serves
    torch.testing.assert_close(x_next, system.forecast(x, 0.01, 2))


def test_complex_step_refused_for_one_parameter_per_trajectory():
    system = Lorenz63(sigma=np.array([[10.0], [12.0]]))
    with pytest.raises(ValueError, match="Lorenz63: .*one value per trajectory"):
        forecast_with_jacobian(system, _x(system, 2), 0.01, 1, method="complex-step")


def test_complex_step_not_refused_for_size_or_grad():
    # the size limit picks "auto"'s method; it does not make complex step wrong
    system = Lorenz96(n=40)
    x = _x(system, 3)
    assert not complex_step_applies(system, x)
    x_c, M_c = forecast_with_jacobian(system, x.requires_grad_(True), 0.05, 2,
                                      method="complex-step")
    x_a, M_a = forecast_with_jacobian(system, x.detach(), 0.05, 2)
    torch.testing.assert_close(x_c, x_a, rtol=1e-13, atol=1e-12)
    torch.testing.assert_close(M_c, M_a, rtol=1e-12, atol=1e-12)


# --- forecast's n_steps (S2) ------------------------------------------------------------
SMALL = {
    "lorenz63": lambda: (Lorenz63(), None),
    "lorenz96": lambda: (Lorenz96(n=8), None),
    "lorenz96-kernel": lambda: (Lorenz96(n=8), 32),  # the ensemble's fused kernel
    "kolmogorov": lambda: (KolmogorovFlow(N=16, n_forcing=2), None),
    "reaction-diffusion": lambda: (ReactionDiffusion(N=8), None),
    "kuramoto-sivashinsky": lambda: (KuramotoSivashinsky(L=22.0, N=16), None),
    "two-scale-lorenz96": lambda: (TwoScaleLorenz96(K=4, J=2), None),
}


@pytest.mark.parametrize("make", SMALL.values(), ids=SMALL.keys())
@pytest.mark.parametrize("n_steps, error", [(2.9, TypeError), ("3", TypeError), (-1, ValueError)])
def test_forecast_refuses_a_bad_step_count(make, n_steps, error):
    system, n = make()
    with pytest.raises(error, match="n_steps must be an integer"):
        system.forecast(_x(system, n), 0.001, n_steps)


@pytest.mark.parametrize("make", SMALL.values(), ids=SMALL.keys())
def test_forecast_takes_numpy_integers_and_whole_floats(make):
    system, n = make()
    x = _x(system, n)
    expected = system.forecast(x, 0.001, 2)
    for n_steps in (np.int64(2), np.int32(2), 2.0):
        torch.testing.assert_close(system.forecast(x, 0.001, n_steps), expected)


# --- state length (S3) ----------------------------------------------------------------
@pytest.mark.parametrize("make", SMALL.values(), ids=SMALL.keys())
@pytest.mark.parametrize("entry", ["forecast", "integrate"])
def test_a_state_of_the_wrong_length_is_refused(make, entry):
    system, n = make()
    x = _x(system, n)[..., :-1]
    message = (f"{type(system).__name__}: the state has shape {tuple(x.shape)}, "
               f"not (..., n_state) with n_state={system.n_state}")
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(system, entry)(x, 0.001, 1)


def test_state_length_message_and_valid_layouts():
    system = Lorenz96(n=8)
    with pytest.raises(ValueError) as info:
        system.forecast(torch.zeros(40, 7, dtype=torch.float64), 0.05, 1)
    assert str(info.value) == ("Lorenz96: the state has shape (40, 7), "
                               "not (..., n_state) with n_state=8")
    with pytest.raises(ValueError, match=r"shape \(\)"):
        system.integrate(torch.tensor(1.0, dtype=torch.float64), 0.05, 1)
    # trajectories x members x n_state, and a batch of states in the kernel, still run
    assert system.forecast(torch.ones(2, 3, 8, dtype=torch.float64), 0.05, 1).shape == (2, 3, 8)
    assert system.integrate(torch.ones(2, 40, 8), 0.05, 2).shape == (3, 2, 40, 8)


def test_step_is_left_unchecked():
    # the inner loop: one Lorenz-96 step of a 7-site ring is the caller's business
    assert Lorenz96(n=8).step(torch.ones(7, dtype=torch.float64), 0.05).shape == (7,)


# --- dt of the climatology, burn_in of the Lyapunov exponents (S4) ----------------------
@pytest.mark.parametrize("dt", [0, -0.01, float("nan"), float("inf")])
def test_climatology_refuses_a_bad_dt(dt):
    with pytest.raises(ValueError, match="dt must be a positive finite number"):
        estimate_climatology(Lorenz63(), dt=dt)
    with pytest.raises(ValueError, match="dt must be a positive finite number"):
        climatological_sample(Lorenz63(), 4, dt=dt)


def test_climatology_refuses_a_dt_that_is_not_a_number():
    with pytest.raises(TypeError, match="dt must be a number"):
        estimate_climatology(Lorenz63(), dt="0.01")


@pytest.mark.parametrize("burn_in, error, match", [
    (float("inf"), ValueError, "burn_in must be a finite number >= 0"),
    (float("nan"), ValueError, "burn_in must be a finite number >= 0"),
    (-1.0, ValueError, "burn_in must be a finite number >= 0"),
    ("5", TypeError, "burn_in must be a number"),
])
def test_lyapunov_refuses_a_bad_burn_in(burn_in, error, match):
    with pytest.raises(error, match=match):
        lyapunov_exponents(Lorenz63(), n_steps=10, burn_in=burn_in)
