"""Linear algebra of the analysis steps, shared by every assimilator.

The Kalman/BLUE update in whitened observation space (OI, 3D-Var, ExtKF), the
Jacobian of an observation operator, the symmetric square root of a
covariance (4D-Var's preconditioning), the ensemble's whitened anomalies and
the ETKF ensemble transform (EnKF, EnKF-N).
Everything is batched over leading dims.
"""

from __future__ import annotations

import math

import torch

__all__ = ["observation_jacobian", "whitened_update", "whitened_gain", "symmetric_sqrt",
           "whitened_anomalies", "ensemble_transform"]


def observation_jacobian(operator, system, x: torch.Tensor) -> torch.Tensor:
    """Jacobian ``H`` of an observation operator at flat states ``x``.

    ``(n_obs, n_state)`` for a linear operator (its matrix); otherwise
    ``(*batch, n_obs, n_state)`` by reverse-mode autodiff, in one batched
    backward pass.

    Parameters
    ----------
    operator : ObservationOperator
        The operator; its ``linear`` flag picks the matrix or autodiff.
    system : DynamicalSystem
        The system observed (its variables, grid and dtype).
    x : torch.Tensor, shape (..., n_state)
        Flat states to linearize at; ignored for a linear operator.

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
    Kt = whitened_gain(P, Hw)
    x_a = x_b + (dw.unsqueeze(-2) @ Kt).squeeze(-2)
    if not return_cov:
        return x_a, None
    P_a = P - Kt.transpose(-1, -2) @ (Hw @ P)
    return x_a, 0.5 * (P_a + P_a.transpose(-1, -2))


def whitened_gain(P, Hw):
    """Transposed Kalman gain ``K^T = S^-1 Hw P`` with ``S = Hw P Hw^T + I``.

    ``Hw`` ``(..., q, n)`` is the whitened operator ``W H``: the gain acts on
    whitened innovations, ``x_a = x_b + d_w K^T``.

    Examples
    --------
    >>> import torch
    >>> one = torch.ones(1, 1, dtype=torch.float64)
    >>> round(whitened_gain(one, one).item(), 12)  # B = R = 1: half the innovation
    0.5
    """
    PHt = P @ Hw.transpose(-1, -2)                               # (..., n, q)
    S = Hw @ PHt
    S = S + torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)
    L = torch.linalg.cholesky(S)
    return torch.cholesky_solve(PHt.transpose(-1, -2), L)        # K^T = S^-1 Hw P


def symmetric_sqrt(B: torch.Tensor) -> torch.Tensor:
    """Symmetric square root ``B^{1/2}`` (eigenvalues clipped at 0), as DAPPER's ``sym_sqrt``.

    Parameters
    ----------
    B : torch.Tensor, shape (..., n, n)
        Square matrices (batched over leading dims); symmetrized as ``(B + B^T) / 2`` first.

    Examples
    --------
    >>> import torch
    >>> symmetric_sqrt(torch.tensor([[4.0, 0.0], [0.0, 9.0]])).round().tolist()
    [[2.0, 0.0], [0.0, 3.0]]
    """
    evals, evecs = torch.linalg.eigh(0.5 * (B + B.transpose(-1, -2)))
    return (evecs * evals.clamp_min(0).sqrt().unsqueeze(-2)) @ evecs.transpose(-1, -2)


def whitened_anomalies(E: torch.Tensor, HE: torch.Tensor, y: torch.Tensor, W: torch.Tensor):
    """Ensemble mean and anomalies, with their images in whitened observation space.

    Parameters
    ----------
    E : tensor (..., N, n)
        The forecast ensemble.
    HE : tensor (..., N, q)
        The observed members.
    y : tensor (..., q)
        The observations.
    W : tensor (q, q)
        Whitening ``R^-1/2``.

    Returns
    -------
    mu : tensor (..., 1, n)
        Ensemble mean.
    A : tensor (..., N, n)
        Anomalies ``E - mu``.
    Yw : tensor (..., N, q)
        Whitened observation anomalies.
    dw : tensor (..., q)
        Whitened innovation of the observed mean.

    Examples
    --------
    >>> import torch
    >>> E = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
    >>> mu, A, Yw, dw = whitened_anomalies(E, E[:, :1], torch.tensor([4.0]), torch.eye(1) / 2)
    >>> mu.tolist(), A.tolist(), Yw.tolist(), dw.tolist()
    ([[2.0, 1.0]], [[-1.0, -1.0], [1.0, 1.0]], [[-0.5], [0.5]], [1.0])
    """
    mu = E.mean(-2, keepdim=True)
    hmu = HE.mean(-2, keepdim=True)
    return mu, E - mu, (HE - hmu) @ W.T, (y - hmu.squeeze(-2)) @ W.T


def ensemble_transform(Yw: torch.Tensor, dw: torch.Tensor, transform: bool = True):
    """ETKF weights: mean weights ``w`` and symmetric transform ``T``.

    Parameters
    ----------
    Yw : tensor (..., N, q)
        Whitened observation anomalies of the members.
    dw : tensor (..., q)
        Whitened innovation of the ensemble mean.
    transform : bool, default=True
        Whether ``T`` is wanted (the square-root EnKF). Without it (DEnKF, the
        perturbed-observation EnKF) ``Pw`` comes from a Cholesky factor, not an
        eigendecomposition: about a third of the cost.

    Returns
    -------
    w : tensor (..., N)
    T : tensor (..., N, N) or None
        None when not ``transform``.
    Pw : tensor (..., N, N)
        ``(Yw Yw^T + (N-1) I)^-1``.

    Examples
    --------
    >>> import torch
    >>> Yw = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    >>> w, T, Pw = ensemble_transform(Yw, torch.tensor([2.0], dtype=torch.float64))
    >>> [round(v, 6) for v in w.tolist()]
    [0.666667, -0.666667]
    """
    N = Yw.shape[-2]
    C = Yw @ Yw.transpose(-1, -2)
    C.diagonal(dim1=-2, dim2=-1).add_(N - 1)  # symmetric, eigenvalues >= N - 1
    if transform:
        d, V = torch.linalg.eigh(C)
        Pw = (V / d.unsqueeze(-2)) @ V.transpose(-1, -2)
        T = (V * (math.sqrt(N - 1) / d.sqrt()).unsqueeze(-2)) @ V.transpose(-1, -2)
    else:
        Pw, T = torch.cholesky_inverse(torch.linalg.cholesky(C)), None
    w = ((dw.unsqueeze(-2) @ Yw.transpose(-1, -2)) @ Pw).squeeze(-2)
    return w, T, Pw
