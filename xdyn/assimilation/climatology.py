"""Climatological background statistics shared by OI, 3D-Var and 4D-Var.

The static background error covariance ``B`` of the baseline methods is the
covariance of the system's climatology (its invariant measure), and OI's
background is its climatological mean. DAPPER (``da_methods/baseline.py``:
``OptInterp``, ``Var3D``; ``variational.py``: ``Var4D``) estimates both from
the *truth trajectory* of the twin experiment (``np.cov(xx.T)``): given a
truth, :func:`estimate_climatology` does exactly that; without one, it runs
the forecast model freely instead, which is what a user without the truth can
do.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import xarray as xr
from sklearn.utils import check_random_state

from xdyn.model_selection import unwrap

__all__ = ["estimate_climatology", "resolve_background_covariance", "fit_background_covariance",
           "symmetric_sqrt"]

_FREE_RUN_TRAJECTORIES = 10   # independent free runs integrated in one batched call
_FREE_RUN_BURN_IN = 10.0      # model time discarded to reach the attractor
_CHUNK = 500                  # steps accumulated per chunk (bounded memory)


def estimate_climatology(system, truth=None, length=1000.0, dt=None, random_state=None):
    """Climatological mean and covariance of a system's state.

    Parameters
    ----------
    system : DynamicalSystem
    truth : xarray.Dataset, numpy array of shape (n_samples, n_state), or None
        A state trajectory of ``system``. Every sample along every non-state dim
        (``time``, ``trajectory`` ...) is pooled, as DAPPER's ``np.cov(xx.T)``.
    length : float, default=1000
        Without ``truth``: total model time of the free run (split over
        ``10`` batched trajectories, each started on the attractor after a
        burn-in of 10 model time units); every model step is one sample.
    dt : float, optional
        Model step of the free run (the system's ``default_dt`` if omitted).
    random_state : int, RandomState or None
        Seed of the free run's initial states.

    Returns
    -------
    mean : ndarray of shape (n_state,)
    cov : ndarray of shape (n_state, n_state)
        Unbiased sample covariance (``ddof=1``).

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> truth = Lorenz63().simulate(n_steps=2000, burn_in=5, random_state=0)
    >>> mean, cov = estimate_climatology(Lorenz63(), truth)
    >>> cov.shape
    (3, 3)
    >>> bool(np.allclose(cov, np.cov(truth.to_array().values)))
    True
    """
    n = int(system.n_state)
    truth = unwrap(truth)
    if truth is not None:
        if isinstance(truth, xr.Dataset):
            x = system.to_state(truth).detach().cpu().numpy()
        elif isinstance(truth, xr.DataArray):
            raise TypeError("truth must be a state Dataset (one variable per state variable)")
        else:
            x = np.asarray(truth, dtype=float)
        if x.shape[-1] != n:
            raise ValueError(f"truth has {x.shape[-1]} state entries, the system has {n}")
        x = x.reshape(-1, n).astype(float)
        if x.shape[0] < 2:
            raise ValueError("truth needs at least 2 samples to estimate a covariance")
        if not np.all(np.isfinite(x)):
            raise ValueError("truth contains non-finite values")
        return x.mean(0), np.atleast_2d(np.cov(x.T))
    length = float(length)
    if not length > 0:
        raise ValueError(f"climatology_length must be > 0, got {length}")
    dt = float(system.default_dt if dt is None else dt)
    rng = check_random_state(random_state)
    n_traj = _FREE_RUN_TRAJECTORIES
    n_steps = max(2, math.ceil(length / dt / n_traj))
    with torch.no_grad():
        x = system.as_tensor(system.random_initial_state(n_traj, rng))
        x = system.forecast(x, dt, int(round(_FREE_RUN_BURN_IN / dt)))
        acc = _MomentAccumulator(x.reshape(-1, n).mean(0))
        done = 0
        while done < n_steps:
            m = min(_CHUNK, n_steps - done)
            states = system.integrate(x, dt, m)[1:]           # (m, n_traj, n)
            acc.add(states.reshape(-1, n))
            x = states[-1]
            done += m
    if not acc.finite:
        raise ValueError(f"the free run of {type(system).__name__} became non-finite; reduce dt")
    return acc.result()


class _MomentAccumulator:
    """Running mean and covariance, shifted by a reference to avoid cancellation."""

    def __init__(self, ref: torch.Tensor):
        self.ref = ref
        self.count = 0
        self.s1 = torch.zeros_like(ref)
        self.s2 = torch.zeros(ref.shape + ref.shape, dtype=ref.dtype, device=ref.device)

    def add(self, x: torch.Tensor):
        z = x - self.ref
        self.count += z.shape[0]
        self.s1 += z.sum(0)
        self.s2 += z.T @ z

    @property
    def finite(self) -> bool:
        return bool(torch.isfinite(self.s2).all())

    def result(self):
        c = self.count
        mean = self.ref + self.s1 / c
        cov = (self.s2 - torch.outer(self.s1, self.s1) / c) / (c - 1)
        cov = 0.5 * (cov + cov.T)
        return mean.cpu().numpy(), cov.cpu().numpy()


def resolve_background_covariance(B, B_scale, n_state, climatology=None) -> np.ndarray:
    """``B_scale`` times the explicit ``B`` (validated) or the climatological covariance.

    Examples
    --------
    >>> resolve_background_covariance(None, 0.5, 2, np.eye(2)).tolist()
    [[0.5, 0.0], [0.0, 0.5]]
    """
    scale = float(B_scale)
    if not scale > 0 or not np.isfinite(scale):
        raise ValueError(f"B_scale must be a positive finite number, got {B_scale}")
    if B is None:
        if climatology is None:
            raise ValueError("B=None needs a climatological covariance")
        B = climatology
    B = np.array(B, dtype=float)
    if B.shape != (n_state, n_state):
        raise ValueError(f"B must have shape ({n_state}, {n_state}), got {B.shape}")
    if not np.all(np.isfinite(B)):
        raise ValueError("B contains non-finite values")
    if not np.allclose(B, B.T, rtol=1e-8, atol=1e-12 * max(1.0, np.abs(B).max())):
        raise ValueError("B must be symmetric")
    if np.linalg.eigvalsh(0.5 * (B + B.T)).min() < -1e-8 * np.abs(B).max():
        raise ValueError("B must be positive semi-definite")
    return scale * B


def fit_background_covariance(estimator, ctx, truth=None) -> np.ndarray:
    """The ``B`` a variational estimator uses: its explicit ``B`` or the climatology's,
    times its ``B_scale`` (the shared ``fit`` step of Var3D and Var4D)."""
    clim = None
    if estimator.B is None:
        _, clim = estimate_climatology(ctx.system, truth, estimator.climatology_length,
                                       ctx.dt, estimator.random_state)
    return resolve_background_covariance(estimator.B, estimator.B_scale, ctx.n_state, clim)


def symmetric_sqrt(B: torch.Tensor) -> torch.Tensor:
    """Symmetric square root ``B^{1/2}`` (eigenvalues clipped at 0), as DAPPER's ``sym_sqrt``.

    Examples
    --------
    >>> symmetric_sqrt(torch.tensor([[4.0, 0.0], [0.0, 9.0]])).round().tolist()
    [[2.0, 0.0], [0.0, 3.0]]
    """
    evals, evecs = torch.linalg.eigh(0.5 * (B + B.transpose(-1, -2)))
    return (evecs * evals.clamp_min(0).sqrt().unsqueeze(-2)) @ evecs.transpose(-1, -2)
