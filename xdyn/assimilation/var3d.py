"""3D-Var with a static background covariance, solved in incremental form.

The analysis minimises ``J(x) = 1/2 |x - x_b|^2_{B^-1} + 1/2 |y - h(x)|^2_{R^-1}``
with ``x_b`` the model forecast of the previous analysis. For a linear operator
the minimiser is the closed-form BLUE ``x_a = x_b + K (y - H x_b)``,
``K = B H^T (H B H^T + R)^-1`` -- exactly DAPPER's ``Var3D`` (``da_methods/baseline.py``),
which is why DAPPER's docstring calls it "not Var-ish". For a nonlinear operator
(``Squared``), Gauss-Newton outer loops relinearise ``h`` by autodiff at the
current iterate (Courtier et al. 1994, incremental 3D/4D-Var):
``x_{j+1} = x_b + K_j (y - h(x_j) - H_j (x_b - x_j))``; one outer loop is
DAPPER's update (``Obs.linear(mu)``).

Everything is computed with whitened quantities (``W R W^T = I`` on the entries
observed at that time), so missing observations simply drop out.

Reference: Lorenc (1986), Analysis methods for numerical weather prediction,
Q. J. R. Meteorol. Soc. 112, 1177-1194.
"""

from __future__ import annotations

import torch

from xdyn.assimilation.base import BaseAssimilator
from xdyn.assimilation.climatology import fit_background_covariance

__all__ = ["Var3D", "observation_jacobian", "whitened_update"]


def observation_jacobian(operator, system, x: torch.Tensor) -> torch.Tensor:
    """Jacobian ``H`` of an observation operator at flat states ``x``.

    ``(n_obs, n_state)`` for a linear operator (its matrix); otherwise
    ``(*batch, n_obs, n_state)`` by reverse-mode autodiff, in one batched
    backward pass.

    Examples
    --------
    >>> import torch
    >>> from xdyn.observe import Squared
    >>> from xdyn.systems import Lorenz63
    >>> x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    >>> observation_jacobian(Squared(), Lorenz63(), x)[0].diagonal().tolist()
    [2.0, 4.0, 6.0]
    """
    if operator.linear:
        return system.as_tensor(operator.matrix(system))
    n = x.shape[-1]
    p = operator.n_obs(system)
    with torch.enable_grad():
        xr = x.detach().unsqueeze(-2).expand(*x.shape[:-1], p, n).clone().requires_grad_(True)
        hx = operator.apply(xr, system)
        eye = torch.eye(p, dtype=x.dtype, device=x.device).expand_as(hx)
        (jac,) = torch.autograd.grad(hx, xr, eye)
    return jac


def whitened_update(x_b, P, H, W, d, return_cov=True):
    """Kalman/BLUE update in whitened observation space.

    Parameters
    ----------
    x_b : tensor (*batch, n)
        Background (prior mean).
    P : tensor (n, n) or (*batch, n, n)
        Background error covariance (``B`` or the EKF forecast covariance).
    H : tensor (p, n) or (*batch, p, n)
        (Linearised) observation operator.
    W : tensor (q, p)
        Whitening of the q observed entries (``CycleContext.whitening``).
    d : tensor (*batch, p)
        Innovation (any value where missing: ``W`` has zero columns there).
    return_cov : bool
        Also return the analysis covariance ``(I - K H) P``.

    Returns
    -------
    x_a : tensor (*batch, n)
    P_a : tensor or None

    Examples
    --------
    >>> import torch
    >>> one = torch.ones(1, 1, dtype=torch.float64)
    >>> x_a, P_a = whitened_update(torch.zeros(1, dtype=torch.float64), one, one, one,
    ...                            torch.ones(1, dtype=torch.float64))
    >>> round(x_a.item(), 12), round(P_a.item(), 12)
    (0.5, 0.5)
    """
    if W.shape[0] == 0:  # nothing observed
        return x_b, (P if return_cov else None)
    Hw = W @ H                                                   # (..., q, n)
    dw = (d.unsqueeze(-2) @ W.transpose(-1, -2)).squeeze(-2)     # (*batch, q)
    PHt = P @ Hw.transpose(-1, -2)                               # (..., n, q)
    S = Hw @ PHt
    S = S + torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)
    L = torch.linalg.cholesky(S)
    Kt = torch.cholesky_solve(PHt.transpose(-1, -2), L)          # K^T = S^-1 Hw P
    x_a = x_b + (dw.unsqueeze(-2) @ Kt).squeeze(-2)
    if not return_cov:
        return x_a, None
    P_a = P - Kt.transpose(-1, -2) @ (Hw @ P)
    return x_a, 0.5 * (P_a + P_a.transpose(-1, -2))


def _gauss_newton_analysis(x_b, B, k, ctx, n_outer=1):
    """3D-Var analysis at observation time ``k`` by Gauss-Newton outer loops.

    ``x_{j+1} = x_b + K_j (y - h(x_j) - H_j (x_b - x_j))`` with ``H_j`` the
    Jacobian of ``h`` at ``x_j`` (``x_0 = x_b``); a linear operator needs one
    loop (the closed form). Returns the analysis and ``(I - K H) B`` at the
    last linearisation.
    """
    W = ctx.whitening(k)
    y = ctx.innovation_data(k)
    x = x_b
    for _ in range(1 if ctx.operator.linear else int(n_outer)):
        H = ctx.jacobian_h(x)
        # innovation relative to the linearisation point x_j
        d = y - ctx.h(x) - ((x_b - x).unsqueeze(-2) @ H.transpose(-1, -2)).squeeze(-2)
        x, P_a = whitened_update(x_b, B, H, W, d)
    return x, P_a


class StaticCovarianceCycle(BaseAssimilator):
    """Cycle hooks of the methods with a static background covariance (OI, 3D-Var).

    The state is ``(mean, std, B)``: the forecast carries the mean with the
    model and resets its std to that of ``B``; the analysis is the
    (Gauss-Newton) BLUE update with ``B``.
    """

    def _forecast(self, state, n_steps, ctx, rng):
        B = state[2]
        x = ctx.system.forecast(state[0], ctx.dt, n_steps)
        return x, torch.diagonal(B).sqrt().expand_as(x), B

    def _analyze(self, state, k, ctx, rng):
        x_b, _, B = state
        x, P_a = _gauss_newton_analysis(x_b, B, k, ctx, int(self.n_outer))
        std = torch.diagonal(P_a, dim1=-2, dim2=-1).clamp_min(0).sqrt().expand_as(x)
        return x, std, B

    def _summarize(self, state):
        return state[0], None, state[1]


class Var3D(StaticCovarianceCycle):
    """3D-Var: static-covariance variational analysis of the model forecast.

    Parameters
    ----------
    system, operator, noise_std, R, dt, initial_state, initial_spread, burn_in,
    raise_on_divergence
        See :class:`xdyn.assimilation.base.BaseAssimilator`.
    B : array of shape (n_state, n_state) or None, default=None
        Background error covariance. ``None`` uses the climatological covariance
        learned by :meth:`fit` (DAPPER's ``B="clim"``).
    B_scale : float, default=1.0
        Factor on ``B`` (DAPPER's ``xB``): the climatological covariance is far
        larger than the error of a cycled forecast, so it is tuned down.
    n_outer : int, default=1
        Gauss-Newton outer loops for a nonlinear operator (ignored when linear:
        the closed form is exact).
    climatology_length : float, default=1000.0
        Model time of the free run that estimates ``B`` when :meth:`fit` gets no
        ``truth`` (see :func:`xdyn.assimilation.climatology.estimate_climatology`).
    return_background : bool, default=False
        Also return the forecast (``<var>_background``).
    random_state : int, RandomState or None
        Seeds the climatology free run and the initial state.
    progress : bool, default=False

    Attributes
    ----------
    B_ : ndarray of shape (n_state, n_state)
        Background covariance used (already multiplied by ``B_scale``).

    Notes
    -----
    ``fit(obs, truth)`` with a truth trajectory estimates ``B`` from it, as
    DAPPER does (``np.cov(xx.T)``); without ``truth`` it runs the model freely
    for ``climatology_length``. The output ``spread`` and ``<var>_std`` come from
    the (linearised) analysis covariance ``(I - K H) B``.

    Examples
    --------
    >>> import numpy as np
    >>> from xdyn.systems import Lorenz63
    >>> from xdyn.observe import observe
    >>> truth = Lorenz63().simulate(t_span=30, burn_in=5, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=2 ** 0.5, every=25, random_state=1)
    >>> var = Var3D(B_scale=0.1, random_state=0,
    ...             initial_state=truth.isel(time=0).to_array().values)
    >>> analysis = var.fit(obs, truth).predict(obs)
    >>> sorted(analysis.data_vars)
    ['spread', 'x', 'x_std', 'y', 'y_std', 'z', 'z_std']
    >>> -var.score(obs, truth) < 1.5
    True
    """

    def __init__(self, system=None, operator=None, noise_std=None, R=None, dt=None,
                 B=None, B_scale=1.0, n_outer=1, climatology_length=1000.0,
                 initial_state=None, initial_spread=1.0, burn_in=0.0,
                 return_background=False, raise_on_divergence=True,
                 random_state=None, progress=False):
        self.system = system
        self.operator = operator
        self.noise_std = noise_std
        self.R = R
        self.dt = dt
        self.B = B
        self.B_scale = B_scale
        self.n_outer = n_outer
        self.climatology_length = climatology_length
        self.initial_state = initial_state
        self.initial_spread = initial_spread
        self.burn_in = burn_in
        self.return_background = return_background
        self.raise_on_divergence = raise_on_divergence
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------ fit
    def _fit(self, ctx, truth):
        if int(self.n_outer) < 1:
            raise ValueError(f"n_outer must be >= 1, got {self.n_outer}")
        self.B_ = fit_background_covariance(self, ctx, truth)

    # ------------------------------------------------------------ hooks
    # The state is ``(mean, std, B)``: B rides along as a tensor, converted once.
    def _initialize(self, ctx, rng):
        x = self._initial_mean(ctx, rng)
        std = torch.full_like(x, float(self.initial_spread))
        return x, std, ctx.system.as_tensor(self.B_)

