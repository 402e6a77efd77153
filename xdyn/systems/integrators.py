"""Explicit time steppers shared by the systems (batched, differentiable).

ETDRK4 for stiff spectral PDEs lives with the PDE systems that need it
(coefficients depend on the linear operator); see
:mod:`xdyn.systems.kuramoto_sivashinsky`.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["rk4_step", "rk4_step_numpy", "rk4_forecast_components", "euler_step", "array_namespace"]


def array_namespace(x):
    """``numpy`` for numpy arrays, ``torch`` otherwise (for right-hand sides written once).

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        The state a right-hand side is called with.

    Returns
    -------
    module
        :mod:`numpy` or :mod:`torch`, whichever has the functions for ``x``.

    Examples
    --------
    One right-hand side for both the numpy fast path and the torch path:

    >>> import numpy as np, torch
    >>> def rhs(t, x):
    ...     return array_namespace(x).sin(x)
    >>> rhs(0.0, np.zeros(2)), rhs(0.0, torch.zeros(2))
    (array([0., 0.]), tensor([0., 0.]))
    """
    return np if isinstance(x, np.ndarray) else torch


def rk4_step_numpy(rhs, t, x: np.ndarray, dt: float) -> np.ndarray:
    """:func:`rk4_step` on numpy arrays (the fast path for tiny states, no autograd).

    Parameters
    ----------
    rhs : callable
        ``rhs(t, x) -> dx/dt`` on numpy arrays, same shape as ``x``.
    t : float
        Time at the start of the step.
    x : numpy.ndarray
        State(s) at ``t``, any shape ``rhs`` takes.
    dt : float
        Step size.

    Returns
    -------
    numpy.ndarray
        The state at ``t + dt``.

    Examples
    --------
    >>> import numpy as np
    >>> x = rk4_step_numpy(lambda t, x: -x, 0.0, np.ones(2), 0.1)
    >>> float(x[0])  # exp(-0.1) to 4th order: 1 - h + h**2/2 - h**3/6 + h**4/24
    0.9048375
    """
    k1 = rhs(t, x)
    k2 = rhs(t + dt / 2, x + (dt / 2) * k1)
    k3 = rhs(t + dt / 2, x + (dt / 2) * k2)
    k4 = rhs(t + dt, x + dt * k3)
    k2 += k3
    k2 *= 2.0
    k2 += k1
    k2 += k4
    return x + (dt / 6) * k2


def rk4_step(rhs, t, x: torch.Tensor, dt: float) -> torch.Tensor:
    """Classical 4th-order Runge-Kutta step of ``dx/dt = rhs(t, x)``.

    Parameters
    ----------
    rhs : callable
        ``rhs(t, x) -> tensor`` shaped like ``x``. Unless ``x`` requires grad (with
        grad enabled), the stages are summed in place into the second stage's output,
        so ``rhs`` must return a new tensor, not one it keeps.
    t : float
        Time at the start of the step.
    x : torch.Tensor
        State at ``t``; any shape ``rhs`` accepts.
    dt : float
        Time step.

    Returns
    -------
    torch.Tensor
        The state at ``t + dt``.

    Examples
    --------
    >>> import torch
    >>> x = rk4_step(lambda t, x: -x, 0.0, torch.ones(2, dtype=torch.float64), 0.1)
    >>> round(float(x[0]), 6)  # exp(-0.1) to 4th order
    0.904837
    """
    k1 = rhs(t, x)
    k2 = rhs(t + dt / 2, torch.add(x, k1, alpha=dt / 2))
    k3 = rhs(t + dt / 2, torch.add(x, k2, alpha=dt / 2))
    k4 = rhs(t + dt, torch.add(x, k3, alpha=dt))
    if torch.is_grad_enabled() and x.requires_grad:
        return x + (dt / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    # no graph to keep: accumulate in place (fewer temporaries, fewer ops)
    return torch.add(x, k2.add_(k3).mul_(2.0).add_(k1).add_(k4), alpha=dt / 6)


def rk4_forecast_components(tendency, states, dt: float, n_steps: int):
    """RK4 on states held as tuples of Python scalars (real or complex).

    For a handful of tiny states (the complex-step copies of a 3-variable
    model), plain Python arithmetic beats any array library's per-call cost.
    ``tendency(*components)`` returns the tuple of time derivatives.

    Parameters
    ----------
    tendency : callable
        ``tendency(*components) -> tuple`` of the components' time derivatives
        (autonomous: no time argument).
    states : sequence of tuple
        The states, each a tuple of scalar components; each is stepped independently.
    dt : float
        Time step.
    n_steps : int
        Number of RK4 steps (0 returns ``states`` as given).

    Returns
    -------
    list of tuple
        The states after ``n_steps`` steps.

    Examples
    --------
    >>> out = rk4_forecast_components(lambda x: (-x,), [(1.0,)], 0.1, 1)
    >>> round(out[0][0], 6)
    0.904837
    """
    h2, h6 = dt / 2, dt / 6
    for _ in range(int(n_steps)):
        new = []
        for x in states:
            k1 = tendency(*x)
            k2 = tendency(*[xi + h2 * ki for xi, ki in zip(x, k1)])
            k3 = tendency(*[xi + h2 * ki for xi, ki in zip(x, k2)])
            k4 = tendency(*[xi + dt * ki for xi, ki in zip(x, k3)])
            new.append(tuple(xi + h6 * (a + 2 * b + 2 * c + d)
                             for xi, a, b, c, d in zip(x, k1, k2, k3, k4)))
        states = new
    return states


def euler_step(rhs, t, x: torch.Tensor, dt: float) -> torch.Tensor:
    """Forward Euler step (first order; for tests and cheap surrogates).

    Parameters
    ----------
    rhs : callable
        ``rhs(t, x) -> dx/dt``, same shape as ``x``.
    t : float
        Time at the start of the step.
    x : torch.Tensor
        State(s) at ``t``.
    dt : float
        Step size.

    Returns
    -------
    torch.Tensor
        ``x + dt * rhs(t, x)``.

    Examples
    --------
    >>> import torch
    >>> euler_step(lambda t, x: -x, 0.0, torch.ones(2, dtype=torch.float64), 0.1)
    tensor([0.9000, 0.9000], dtype=torch.float64)
    """
    return x + dt * rhs(t, x)
