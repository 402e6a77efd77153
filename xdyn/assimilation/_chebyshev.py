"""Functions of small symmetric positive semi-definite matrices applied to vectors.

A local analysis (LETKF) needs ``f(K) v`` for a few vectors ``v`` and smooth
``f`` (``1 / (lam + a)``, ``1 / sqrt(lam + a)``), never the eigenvectors of ``K``
themselves. A Chebyshev expansion of ``f`` on ``[0, lambda_max]`` gives those
products with matrix-vector products only, far cheaper than one LAPACK ``eigh``
per small matrix. These ``f`` are analytic except at ``lam = -a``, so the
expansion converges geometrically, at a rate set by ``lambda_max / a``; the
degree is chosen for double-precision accuracy, and where it would exceed
``max_degree`` (a very spread ensemble) the caller falls back to ``eigh``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

__all__ = ["psd_functions_times_vectors"]


def psd_functions_times_vectors(K, V, functions, singularity, tol=1e-15, max_degree=64):
    """``f_j(K) @ V[..., j]`` for symmetric PSD matrices ``K``, or None when too costly.

    Parameters
    ----------
    K : torch.Tensor of shape (..., q, q)
        Symmetric positive semi-definite matrices.
    V : torch.Tensor of shape (..., q, m)
        The vectors, one column per function.
    functions : sequence of m callables
        ``f_j(lam)`` on numpy arrays of eigenvalues in ``[0, lambda_max]``.
    singularity : float
        The ``s > 0`` where every ``f_j`` is analytic except at ``lam = -s``
        (``a`` for ``1 / (lam + a)``); it sets the convergence rate.
    tol : float, default 1e-15
        Target accuracy relative to the size of ``f_j`` on the spectrum.
    max_degree : int, default 64
        Beyond this degree the expansion costs more than ``eigh``: returns None.

    Returns
    -------
    torch.Tensor of shape (..., q, m) or None

    Examples
    --------
    >>> import numpy as np, torch
    >>> S = torch.randn(5, 3, 8, dtype=torch.float64)
    >>> K, V = S @ S.transpose(-1, -2), torch.randn(5, 3, 1, dtype=torch.float64)
    >>> out = psd_functions_times_vectors(K, V, [lambda lam: 1 / (lam + 7.0)], 7.0)
    >>> exact = torch.linalg.solve(K + 7.0 * torch.eye(3, dtype=K.dtype), V)
    >>> bool(torch.allclose(out, exact, atol=1e-13))
    True
    """
    a = float(singularity)
    # Gershgorin: for a PSD matrix the largest absolute row sum bounds lambda_max
    top = max(float(K.abs().sum(-1).amax()), 1e-12 * a)
    x = 1.0 + 2.0 * a / top  # -a mapped by lam -> 2 lam / top - 1 onto the real axis
    rho = x + math.sqrt(x * x - 1.0)  # Bernstein ellipse of analyticity
    n = int(math.ceil(math.log(1.0 / tol) / math.log(rho))) + 2
    if n > max_degree:
        return None
    coeffs = torch.as_tensor(_chebyshev_coefficients(functions, top, n), dtype=K.dtype,
                             device=K.device)                              # (n + 1, m)
    q = K.shape[-1]
    lead = K.shape[:-2]
    Kb = K.reshape(-1, q, q)
    CV = coeffs[:, None, None, :] * V.reshape(-1, q, V.shape[-1]).unsqueeze(0)
    # Clenshaw's recurrence with 2 t(K), t(K) = 2 K / top - I mapping the spectrum to [-1, 1]
    T2 = Kb * (4.0 / top) - 2.0 * torch.eye(q, dtype=K.dtype, device=K.device)
    if T2.device.type == "cpu" and not (torch.is_grad_enabled() and T2.requires_grad):
        # numpy's stacked matmul costs ~2/3 of torch's baddbmm on these small blocks
        out = torch.from_numpy(_clenshaw_numpy(T2.numpy(), CV.numpy()))
    else:
        b1, b2 = CV[n], torch.zeros_like(CV[n])
        for j in range(n - 1, 0, -1):
            b1, b2 = torch.baddbmm(CV[j] - b2, T2, b1), b1
        out = torch.baddbmm(CV[0] - b2, T2, b1, alpha=0.5)  # c0 v + t(K) b1 - b2
    return out.reshape(*lead, q, V.shape[-1])


def _clenshaw_numpy(T2, CV):
    """The recurrence above on numpy arrays, in place on two buffers."""
    n = len(CV) - 1
    b1, b2, tmp = CV[n].copy(), np.zeros_like(CV[n]), np.empty_like(CV[n])
    for j in range(n - 1, 0, -1):
        np.matmul(T2, b1, out=tmp)
        tmp += CV[j]
        tmp -= b2
        b1, b2, tmp = tmp, b1, b2
    np.matmul(T2, b1, out=tmp)
    tmp *= 0.5
    tmp += CV[0]
    tmp -= b2
    return tmp


def _chebyshev_coefficients(functions, top, n):
    """Coefficients ``(n + 1, m)`` of the degree-``n`` interpolants on ``[0, top]``."""
    nodes, table = _chebyshev_table(n)
    lam = top * (nodes + 1.0) / 2.0
    values = np.stack([np.asarray(f(lam), dtype=float) for f in functions], -1)
    coeffs = table @ values
    coeffs[0] /= 2.0
    return coeffs


@functools.lru_cache(maxsize=64)
def _chebyshev_table(n):
    """Chebyshev nodes of degree ``n`` and the matrix taking values there to coefficients."""
    k = np.arange(n + 1)
    theta = np.pi * (k + 0.5) / (n + 1)
    table = np.cos(np.outer(k, theta)) * (2.0 / (n + 1))
    table.flags.writeable = False
    return np.cos(theta), table
