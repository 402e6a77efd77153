"""Shared parts of ensemble assimilators: initial ensemble, batched forecast,
inflation, RTPS relaxation and mean-preserving random rotation.

The ensemble is one tensor ``E`` of shape ``(*batch, n_members, n_state)``;
every operation is batched over members and batch dims (no Python loop).
"""

from __future__ import annotations

import numpy as np
import torch

from xdyn.assimilation.base import BaseAssimilator

__all__ = ["BaseEnsembleAssimilator", "random_mean_preserving_rotation"]


def random_mean_preserving_rotation(batch_shape, n_members, rng, dtype, device) -> torch.Tensor:
    """Random orthogonal ``(N, N)`` matrices that keep the ensemble mean.

    ``O = V diag(1, Q) V^T`` with ``V`` an orthonormal basis starting with
    ``ones/sqrt(N)`` and ``Q`` Haar-distributed on O(N-1) (QR of a Gaussian
    with the sign of ``diag(R)`` fixed; Mezzadri 2007). Sakov & Oke (2008).
    """
    N = int(n_members)
    ones = torch.ones(N, 1, dtype=dtype, device=device)
    V = torch.linalg.svd(ones)[0]
    V = V * torch.sign(V[:, :1].sum())  # first column = +ones/sqrt(N)
    G = torch.as_tensor(rng.standard_normal(tuple(batch_shape) + (N - 1, N - 1)), dtype=dtype,
                        device=device)
    Q, R = torch.linalg.qr(G)
    Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)
    block = torch.zeros(tuple(batch_shape) + (N, N), dtype=dtype, device=device)
    block[..., 0, 0] = 1.0
    block[..., 1:, 1:] = Q
    return V @ block @ V.T


class BaseEnsembleAssimilator(BaseAssimilator):
    """Ensemble initialisation, forecast and post-analysis processing."""

    _ensemble = True

    def _check_ensemble_params(self):
        if int(self.n_members) < 2:
            raise ValueError(f"n_members must be >= 2, got {self.n_members}")
        infl = getattr(self, "inflation", 1.0)
        if np.any(np.asarray(infl) <= 0):
            raise ValueError(f"inflation must be > 0, got {infl}")
        rtps = getattr(self, "rtps", 0.0)
        if not 0.0 <= float(rtps) <= 1.0:
            raise ValueError(f"rtps must lie in [0, 1], got {rtps}")

    def _initialize(self, ctx, rng):
        self._check_ensemble_params()
        mean = self._initial_mean(ctx, rng)
        noise = ctx.system.as_tensor(
            rng.standard_normal(tuple(mean.shape[:-1]) + (int(self.n_members), ctx.n_state)))
        return mean.unsqueeze(-2) + float(self.initial_spread) * noise

    def _forecast(self, E, n_steps, ctx, rng):
        return ctx.system.forecast(E, ctx.dt, n_steps)

    def _summarize(self, E):
        return E.mean(-2), E, E.std(-2)

    def _inflation_tensor(self, E):
        infl = torch.as_tensor(np.asarray(self.inflation, dtype=float), dtype=E.dtype,
                               device=E.device)
        # a 1-D inflation sweeps over the first batch dim (xdyn.experiments.sweep)
        return infl.reshape(infl.shape + (1,) * (E.ndim - infl.ndim))

    def _post_process(self, E, E_background, rng):
        """Multiplicative inflation, RTPS and random rotation of the analysis anomalies."""
        mu = E.mean(-2, keepdim=True)
        A = E - mu
        rtps = float(getattr(self, "rtps", 0.0))
        if rtps > 0:
            # relaxation to prior spread, Whitaker & Hamill (2012) eq. 3
            sb = E_background.std(-2, keepdim=True)
            sa = A.std(-2, keepdim=True).clamp_min(1e-300)
            A = A * (rtps * (sb - sa) / sa + 1.0)
        infl = getattr(self, "inflation", 1.0)
        if np.any(np.asarray(infl) != 1.0):
            A = A * self._inflation_tensor(E)
        if getattr(self, "rotate", False):
            O = random_mean_preserving_rotation(E.shape[:-2], E.shape[-2], rng, E.dtype, E.device)
            A = O @ A
        return mu + A
