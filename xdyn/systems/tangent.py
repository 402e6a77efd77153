"""Tangent-linear model: a forecast together with its Jacobian.

The Jacobian of an ``n_steps`` forecast is the product of the step Jacobians
along the trajectory (``DynamicalSystem.step_jacobian`` at each step). The
extended Kalman filter propagates its covariance with it and 4D-Var's
backward pass applies its transpose (the adjoint). Two ways are offered:
torch reverse-mode autodiff through the model steps, and complex-step
differentiation of the numpy fast path of tiny states (Squire & Trapp 1998),
exact to round-off for a real-analytic right-hand side.
"""

from __future__ import annotations

import numpy as np
import torch

from xdyn.systems.base import DynamicalSystem

__all__ = ["forecast_with_jacobian", "complex_step_applies"]

_COMPLEX_STEP = 1e-30


def forecast_with_jacobian(system, x: torch.Tensor, dt: float, n_steps: int = 1,
                           method: str = "autodiff"):
    """Forecast ``n_steps`` model steps and the Jacobian of that map at ``x``.

    With ``method="autodiff"`` the Jacobian comes from one batched forward
    pass of ``n`` copies of the state and one backward pass, without the
    per-call ``vmap`` overhead; ``"complex-step"`` integrates the ``n``
    complex-perturbed copies in numpy (tiny states only, see
    :func:`complex_step_applies`).

    Parameters
    ----------
    system : DynamicalSystem
    x : tensor (*batch, n)
    dt : float
    n_steps : int, default=1
    method : {"autodiff", "complex-step"}, default="autodiff"

    Returns
    -------
    x_next : tensor (*batch, n)
    M : tensor (*batch, n, n)

    Raises
    ------
    ValueError
        ``method="complex-step"`` for a system it cannot differentiate: one whose
        ``rhs`` does not run on numpy arrays, that overrides ``step``, or that has a
        tensor parameter or one value per trajectory.

    Examples
    --------
    >>> import torch
    >>> from xdyn.systems import Lorenz63
    >>> x = torch.tensor([1.0, 2.0, 20.0], dtype=torch.float64)
    >>> x_next, M = forecast_with_jacobian(Lorenz63(), x, 0.01, 1)
    >>> torch.allclose(M, Lorenz63().step_jacobian(x, 0.01))
    True
    """
    if method == "complex-step":
        reason = _complex_step_refusal(system)
        if reason is not None:
            raise ValueError(f"{type(system).__name__}: complex-step differentiation does not "
                             f"apply: {reason}; use 'autodiff'")
        return _forecast_with_jacobian_complex_step(system, x, dt, n_steps)
    if method != "autodiff":
        raise ValueError(f"method must be 'autodiff' or 'complex-step', got {method!r}")
    n = x.shape[-1]
    with torch.enable_grad():
        xr = x.detach().unsqueeze(-2).expand(*x.shape[:-1], n, n).clone().requires_grad_(True)
        out = system.forecast(xr, dt, int(n_steps))
        eye = torch.eye(n, dtype=x.dtype, device=x.device).expand_as(out)
        (M,) = torch.autograd.grad(out, xr, eye)  # row i = e_i^T M
    return out[..., 0, :].detach(), M


def _forecast_with_jacobian_complex_step(system, x, dt, n_steps):
    """Complex-step derivative through the numpy fast path (Squire & Trapp 1998).

    ``Im f(x + i h e_j) / h = M e_j`` exactly up to round-off for a right-hand
    side that is real-analytic (the Lorenz models are polynomials): no
    subtractive cancellation, so ``h`` can be tiny and the result agrees with
    autodiff to machine precision, at the cost of one complex forecast of the
    ``n`` perturbed copies in numpy.
    """
    from xdyn.systems.integrators import rk4_forecast_components, rk4_step_numpy

    n = x.shape[-1]
    z = x.detach().cpu().numpy()[..., None, :] + 1j * _COMPLEX_STEP * np.eye(n)
    tendency = getattr(system, "componentwise_tendency", None)
    if tendency is not None and z.ndim == 2:
        # one state: its n complex copies in plain Python scalars (no array overhead)
        z = np.array(rk4_forecast_components(tendency, [tuple(r) for r in z], dt, n_steps))
    else:
        for _ in range(int(n_steps)):
            z = rk4_step_numpy(system.rhs, 0.0, z, dt)
    M = np.swapaxes(z.imag, -1, -2) / _COMPLEX_STEP
    as_x = dict(dtype=x.dtype, device=x.device)
    return torch.as_tensor(z.real[..., 0, :].copy(), **as_x), torch.as_tensor(M, **as_x)


def _complex_step_refusal(system) -> str | None:
    """Why complex step cannot differentiate ``system``, or None where it can.

    It integrates ``system.rhs`` with numpy RK4 on complex copies of the state and
    reads the parameters as plain numbers: any other stepping would give the Jacobian
    (and the forecast) of another model, without a word.
    """
    if not system.supports_numpy:
        return "its rhs does not run on numpy arrays (supports_numpy is False)"
    if type(system).step is not DynamicalSystem.step:
        return "it overrides step (another integrator or model noise), which complex step skips"
    if not system._has_scalar_parameters():
        return "a parameter is a tensor or holds one value per trajectory"
    return None


def complex_step_applies(system, x: torch.Tensor) -> bool:
    """Whether the ``n`` complex-step copies of ``x`` take the system's numpy fast path.

    The path needs a system that supports numpy and keeps the base ``step``, plain
    numbers for its parameters (no tensor, no value per trajectory), a CPU tensor, and
    ``n`` times the size of ``x`` within ``numpy_fast_path_max_size``.

    Parameters
    ----------
    system : DynamicalSystem
        The system to differentiate.
    x : tensor (..., n)
        The state(s) at which the Jacobian would be taken.

    Returns
    -------
    bool
        Whether ``"auto"`` (EKF, 4D-Var) picks complex step. The size limit is for speed:
        ``forecast_with_jacobian(method="complex-step")`` refuses a system only for
        the other conditions, under which it would differentiate another model.

    Examples
    --------
    >>> import torch
    >>> from xdyn.systems import Lorenz63
    >>> complex_step_applies(Lorenz63(), torch.zeros(3, dtype=torch.float64))
    True
    """
    copies = x.detach().unsqueeze(-2).expand(*x.shape[:-1], x.shape[-1], x.shape[-1])
    return system._use_numpy(copies)
