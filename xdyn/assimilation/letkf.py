"""Local ensemble transform Kalman filter (LETKF).

Hunt, Kostelich & Szunyogh (2007): every state grid point gets its own ETKF
analysis from the observations near it, each weighted by a taper of its
distance (on ``R^-1``, i.e. the whitened observation anomalies are multiplied
by ``sqrt(rho)``). All local analyses of a cycle are computed together: the
local ensemble-space (or, when a point sees fewer observations than members,
observation-space) matrices of every point form one batch: a batched ``eigh``, or,
in observation space, a Chebyshev expansion of the two matrix functions the
update needs (:mod:`xdyn.assimilation._chebyshev`; matrix-vector products only,
equal to the ``eigh`` result to rounding and several times cheaper). The
distance and radius conventions are DAPPER's (see
:mod:`xdyn.assimilation.localization`), so ``localization_radius=4`` means
what DAPPER's ``LETKF(loc_rad=4)`` means.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import NamedTuple

import numpy as np
import torch

from xdyn.assimilation._chebyshev import psd_functions_times_vectors
from xdyn.assimilation._validation import FiniteInterval, Interval, StrOptions
from xdyn.assimilation.enkf_n import finite_size_inflation
from xdyn.assimilation.ensemble_base import BaseEnsembleAssimilator
from xdyn.assimilation.localization import TAPERS, local_observations, spatial_grid
from xdyn.systems.integrators import array_namespace

__all__ = ["LETKF", "local_ensemble_transform", "local_finite_size_inflation"]

# Bound on the elements of the (batch, points, members, local obs) block of one pass.
_MAX_BLOCK = 2**24


def local_ensemble_transform(A, Yw, dw, obs_index, sqrt_taper, inflation_prior_weight=None):
    """Local ETKF update of the anomalies at a set of grid points.

    For each point ``i`` with local whitened anomalies ``S_i = Yw[:, obs_index[i]]
    * sqrt_taper[i]`` this returns ``(w_i + T_i) A[:, i]``, the mean increment
    plus the transformed anomalies, with ``w_i = C_i^-1 S_i d_i``,
    ``T_i = sqrt(N-1) C_i^-1/2`` and ``C_i = S_i S_i^T + (N-1) I`` (Hunt et al.
    2007, eqs. 21-24). ``C_i`` is decomposed in ensemble space, or through
    ``S_i^T S_i`` in observation space when the points see fewer observations
    than there are members (the same transform, a smaller matrix, whose two
    functions are applied to ``u_i = S_i x_i`` and ``d_i`` by a Chebyshev expansion
    where its degree stays small, by ``eigh`` otherwise).

    Parameters
    ----------
    A : tensor (..., N, n_points)
        Background anomalies at the points.
    Yw : tensor (..., N, n_obs)
        Whitened observation anomalies (0 for missing observations).
    dw : tensor (..., n_obs)
        Whitened innovation of the mean (0 for missing observations).
    obs_index : LongTensor (n_points, n_local)
        Local observations of each point.
    sqrt_taper : tensor (n_points, n_local)
        Square roots of their taper coefficients (0 on padding).
    inflation_prior_weight : float or None
        When given, each point first inflates its prior by the local finite-size
        (EnKF-N) factor (:func:`local_finite_size_inflation`), with this hyperprior
        weight (DAPPER's ``LETKF(xN=...)``).

    Returns
    -------
    tensor (..., N, n_points)
        Add the background mean to get the analysis ensemble at the points.

    Examples
    --------
    >>> import torch
    >>> A = torch.randn(10, 4, dtype=torch.float64)
    >>> A = A - A.mean(0)
    >>> Yw, dw = A.clone(), torch.ones(4, dtype=torch.float64)
    >>> index, taper = torch.arange(4).expand(4, 4), torch.ones(4, 4, dtype=torch.float64)
    >>> local_ensemble_transform(A, Yw, dw, index, taper).shape
    torch.Size([10, 4])
    """
    N = A.shape[-2]
    a = float(N - 1)
    n_points, n_local = obs_index.shape
    d = dw[..., obs_index] * sqrt_taper  # (..., n, q)
    if inflation_prior_weight is not None:
        l1 = local_finite_size_inflation(Yw, dw, obs_index, sqrt_taper > 0, inflation_prior_weight)
        # inflating the prior inflates both the anomalies and their images (not d)
        A = A * l1.unsqueeze(-2)
        sqrt_taper = sqrt_taper * l1.unsqueeze(-1)
    if n_local < N:
        p = Yw.shape[-1]
        shared = p * p <= 4 * n_points * n_local * n_local
        if shared:
            # K_i = S_i^T S_i is a tapered block of the one global Gram matrix Yw^T Yw
            G = (Yw.transpose(-1, -2) @ Yw).flatten(-2)
            block = (obs_index.unsqueeze(-1) * p + obs_index.unsqueeze(-2)).flatten()
            K = (G.index_select(-1, block).unflatten(-1, (n_points, n_local, n_local))
                 * (sqrt_taper.unsqueeze(-1) * sqrt_taper.unsqueeze(-2)))
            index = obs_index.expand(*Yw.shape[:-2], n_points, n_local)
            u = (Yw.transpose(-1, -2) @ A).transpose(-1, -2).gather(-1, index) * sqrt_taper
        else:
            St = Yw.transpose(-1, -2)[..., obs_index, :] * sqrt_taper.unsqueeze(-1)
            K = St @ St.transpose(-1, -2)
            u = (St @ A.transpose(-1, -2).unsqueeze(-1)).squeeze(-1)  # S_i^T x_i
        # w_i = u_i^T (K_i + a)^-1 d_i and T_i x_i = x_i + S_i^T g(K_i) u_i, with
        # sqrt(a / (lam + a)) - 1 = lam * g(lam): functions of K_i times vectors, by a
        # Chebyshev expansion (no eigenvectors), or eigh where that would cost more
        FV = psd_functions_times_vectors(K, torch.stack((d, u), -1), (
            lambda lam: 1.0 / (lam + a), lambda lam: _transform_factor(lam, a)), a)
        if FV is not None:
            wx = (u * FV[..., 0]).sum(-1)
            z = FV[..., 1]
        else:
            lam, V = torch.linalg.eigh(K)
            lam = lam.clamp_min(0.0)
            proj = V.transpose(-1, -2) @ torch.stack((u, d), -1)
            Vu, Vd = proj[..., 0], proj[..., 1]
            wx = (Vd * Vu / (lam + a)).sum(-1)
            z = (V @ (_transform_factor(lam, a) * Vu).unsqueeze(-1)).squeeze(-1)
        if shared:
            Z = torch.zeros(*z.shape[:-1], p, dtype=z.dtype, device=z.device)
            Sz = Yw @ Z.scatter_add_(-1, index, z * sqrt_taper).transpose(-1, -2)
        else:
            Sz = (z.unsqueeze(-2) @ St).squeeze(-2).transpose(-1, -2)
        return A + Sz + wx.unsqueeze(-2)
    # Ensemble space: C_i = S_i S_i^T + a I, with S_i^T gathered as (..., n, q, N).
    St = Yw.transpose(-1, -2)[..., obs_index, :] * sqrt_taper.unsqueeze(-1)
    x = A.transpose(-1, -2)  # (..., n, N)
    lam, U = torch.linalg.eigh(St.transpose(-1, -2) @ St)
    lam = lam.clamp_min(0.0)
    Ux = (x.unsqueeze(-2) @ U).squeeze(-2)
    Ud = ((d.unsqueeze(-2) @ St) @ U).squeeze(-2)
    wx = (Ud * Ux / (lam + a)).sum(-1)
    Tx = (U @ (torch.sqrt(a / (lam + a)) * Ux).unsqueeze(-1)).squeeze(-1)
    return (Tx + wx.unsqueeze(-1)).transpose(-1, -2)


def _transform_factor(lam, a):
    """``g(lam)`` with ``sqrt(a / (lam + a)) - 1 = lam * g(lam)``, on numpy or torch
    eigenvalues (the symmetric ETKF transform in observation space)."""
    root = array_namespace(lam).sqrt(lam + a)
    return -1.0 / (root * (root + math.sqrt(a)))


def local_finite_size_inflation(Yw, dw, obs_index, in_reach, prior_weight=1.0):
    """EnKF-N inflation factor of each point's local analysis, ``(..., n_points)``.

    As DAPPER's ``local_analyses`` with ``xN``: the dual EnKF-N cost of each
    point is built from its *untapered* local observations (those in reach of
    the taper), so that the sampling error the EnKF-N expects is not smoothed
    away by the taper.

    Parameters
    ----------
    Yw : tensor (..., N, n_obs)
        Whitened observation anomalies of the N members (0 for missing observations).
    dw : tensor (..., n_obs)
        Whitened innovation of the mean (0 for missing observations).
    obs_index : LongTensor (n_points, n_local)
        Local observations of each point.
    in_reach : BoolTensor (n_points, n_local)
        Which of them are in reach of the taper (False on padding); these count untapered.
    prior_weight : float, default=1.0
        Hyperprior weight of :func:`~xdyn.assimilation.enkf_n.finite_size_inflation`
        (DAPPER's ``xN``): 1 is the agnostic Jeffreys hyperprior.

    Returns
    -------
    tensor (..., n_points)
        The factor ``l1`` that multiplies each point's prior anomalies.

    Examples
    --------
    >>> import torch
    >>> Yw = torch.randn(10, 4, dtype=torch.float64)
    >>> index, reach = torch.arange(4).expand(4, 4), torch.ones(4, 4, dtype=torch.bool)
    >>> local_finite_size_inflation(Yw - Yw.mean(0), torch.zeros(4, dtype=torch.float64),
    ...                             index, reach).shape
    torch.Size([4])
    """
    N = Yw.shape[-2]
    mask = in_reach.to(Yw.dtype)
    Su = Yw.transpose(-1, -2)[..., obs_index, :] * mask.unsqueeze(-1)  # (..., n, q, N)
    du = dw[..., obs_index] * mask
    if obs_index.shape[-1] < N:
        lam, U = torch.linalg.eigh(Su @ Su.transpose(-1, -2))
        b2 = lam.clamp_min(0.0) * ((du.unsqueeze(-2) @ U).squeeze(-2)) ** 2
    else:
        lam, V = torch.linalg.eigh(Su.transpose(-1, -2) @ Su)
        b2 = (((du.unsqueeze(-2) @ Su) @ V).squeeze(-2)) ** 2
    l1 = finite_size_inflation(lam, b2, N, prior_weight)
    return torch.as_tensor(l1, dtype=Yw.dtype, device=Yw.device)


class _LocalSetup(NamedTuple):
    points: torch.Tensor | None  # state points with observations in reach (None: all)
    obs_index: torch.Tensor  # (n_points, n_local)
    sqrt_taper: torch.Tensor  # (n_points, n_local)
    whitening: dict  # mask -> symmetric R^-1/2 (full R only)


class LETKF(BaseEnsembleAssimilator):
    """Local ensemble transform Kalman filter (Hunt et al. 2007).

    Each state grid point is analysed by an ETKF that sees only the
    observations near it, weighted by a taper of their distance; distances are
    Euclidean on the system's periodic grid, in grid units (Lorenz-96 sites on
    a ring; ``(y, x)`` points of a 2-D field). Inflation, RTPS and the random
    rotation act on the whole analysis ensemble afterwards, as in DAPPER, at
    times with observations only: where every observation is missing the
    forecast runs free.

    Parameters
    ----------
    system, operator, noise_std, R, dt, initial_state, initial_spread, burn_in,
    raise_on_divergence
        See :class:`xdyn.assimilation.base.BaseAssimilator`. A full ``R`` is
        whitened with its symmetric inverse square root, so that whitened
        observation ``j`` keeps the position of observation ``j`` (DAPPER).
    n_members : int, default=20
    initial_ensemble : Dataset with a ``member`` dim, array (..., n_members, n_state), or None
        The initial members, used instead of ``initial_state`` when given (see
        :class:`xdyn.assimilation.EnKF`). ``None`` with ``initial_state=None``
        (the default) draws ``n_members`` independent climatological states.
    inflation : float, default=1.0
        Multiplicative inflation of the analysis anomalies.
    rtps : float, default=0.0
        Relaxation-to-prior-spread factor in [0, 1].
    rotate : bool, default=False
        Random mean-preserving rotation of the analysis anomalies.
    localization_radius : float, default=4.0
        Localization length scale in grid units, DAPPER's ``loc_rad``: every
        taper is about ``exp(-1/2)`` at this distance. The Gaspari-Cohn
        half-width is ``1.82 * localization_radius`` and its support
        ``3.64 * localization_radius``. ``numpy.inf`` turns localization off
        (the global ETKF, ``EnKF(kind="sqrt")``), and then no grid is needed.
    taper : {"gaspari-cohn", "gaussian", "step"}, default="gaspari-cohn"
        See :func:`xdyn.assimilation.localization.taper_coefficients`.
    adaptive_inflation : bool, default=False
        Estimate a prior inflation for every local analysis at every cycle, by
        the finite-size EnKF-N (Bocquet 2011) of its local observations, as
        DAPPER's ``LETKF(xN=...)``; ``inflation`` then only adds to it.
    inflation_prior_weight : float, default=1.0
        Weight of the EnKF-N hyperprior (DAPPER's ``xN``; see
        :class:`xdyn.assimilation.EnKFN`). A taper leaves less sampling error
        than the EnKF-N assumes, so values of 2-3 can suit localized analyses.
    return_ensemble : bool, default=True
        Return every member (``member`` dim); else the mean plus ``<var>_std``
        and ``spread``.
    return_background : bool, default=False
        Also return the forecast (``<var>_background``).
    random_state : int, RandomState or None
    progress : bool, default=False

    Attributes
    ----------
    system_ : DynamicalSystem
        The forecast model used by :meth:`predict`.
    operator_ : ObservationOperator
        The observation operator used by :meth:`predict`.
    n_obs_ : int
        Observations per time.
    n_state_ : int
        Size of the flat state.

    Notes
    -----
    The cost per cycle is one batched ``eigh`` of ``min(N, n_local)``-sized
    matrices, one per grid point that has observations in reach, or where
    ``n_local < N`` and the ensemble is not too spread (every cycle after the
    spin-up on sakov2008) about 20 batched matrix-vector products instead
    (a Chebyshev expansion, equal to rounding); a point out of
    reach of every observation keeps its background. A state without spatial
    dims (Lorenz-63) cannot be localized: :meth:`fit` raises ``ValueError``
    unless ``localization_radius=numpy.inf``.

    References
    ----------
    Hunt, B. R., Kostelich, E. J. & Szunyogh, I. (2007). Efficient data
    assimilation for spatiotemporal chaos: a local ensemble transform Kalman
    filter. Physica D, 230, 112-126.

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> from xdyn.observe import observe
    >>> truth = Lorenz96(n=40).simulate(n_steps=100, burn_in=10, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    >>> letkf = LETKF(n_members=20, inflation=1.03, localization_radius=4, random_state=0,
    ...               initial_state=truth.isel(time=0).x.values, return_ensemble=False)
    >>> analysis = letkf.fit(obs).predict(obs)
    >>> analysis.x.dims
    ('time', 'k')
    >>> -letkf.score(obs, truth) < 0.4
    True
    """

    name = "letkf"

    _parameter_constraints: dict = {
        **BaseEnsembleAssimilator._parameter_constraints,
        "localization_radius": [Interval(Real, 0, np.inf, closed="right")],  # inf: global
        "taper": [StrOptions(set(TAPERS))],
        "adaptive_inflation": ["boolean"],
        "inflation_prior_weight": [FiniteInterval(Real, 0, None, closed="neither")],
    }

    def __init__(self, system=None, *, operator=None, noise_std=None, R=None, dt=None,
                 n_members=20, inflation=1.0, rtps=0.0, rotate=False,
                 localization_radius=4.0, taper="gaspari-cohn", adaptive_inflation=False,
                 inflation_prior_weight=1.0, initial_state=None, initial_spread=1.0,
                 initial_ensemble=None, burn_in=0.0,
                 return_ensemble=True, return_background=False, raise_on_divergence=True,
                 random_state=None, progress=False):
        self.system = system
        self.operator = operator
        self.noise_std = noise_std
        self.R = R
        self.dt = dt
        self.n_members = n_members
        self.inflation = inflation
        self.rtps = rtps
        self.rotate = rotate
        self.localization_radius = localization_radius
        self.taper = taper
        self.adaptive_inflation = adaptive_inflation
        self.inflation_prior_weight = inflation_prior_weight
        self.initial_state = initial_state
        self.initial_spread = initial_spread
        self.initial_ensemble = initial_ensemble
        self.burn_in = burn_in
        self.return_ensemble = return_ensemble
        self.return_background = return_background
        self.raise_on_divergence = raise_on_divergence
        self.random_state = random_state
        self.progress = progress

    def _check_localization(self, ctx):
        # the values are checked at fit (_parameter_constraints); the grid needs the system
        if not np.isinf(float(self.localization_radius)):
            spatial_grid(ctx.system)  # raises for a state without a grid (Lorenz-63)

    def _check_context(self, ctx):
        super()._check_context(ctx)
        self._check_localization(ctx)

    def _initialize(self, ctx, rng):
        index, coeff = local_observations(ctx.system, ctx.operator,
                                          float(self.localization_radius), self.taper)
        active = np.flatnonzero((coeff > 0).any(1))
        points = None
        if len(active) < ctx.n_state:
            index, coeff = index[active], coeff[active]
            points = torch.as_tensor(active, device=ctx.system.torch_device)
        # the geometry lives on the context: it belongs to this run, not to the estimator
        ctx.scratch["letkf"] = _LocalSetup(points, torch.as_tensor(index, device=ctx.system.torch_device),
                                 ctx.system.as_tensor(np.sqrt(coeff)), {})
        return super()._initialize(ctx, rng)

    def _whiten(self, Yo, do, k, ctx, setup):
        m = ctx.mask[k]
        factor = ctx.whitening_factor(k)  # of 2R at a pre-analysed time
        if ctx.obs_std is not None:
            scale = torch.where(m, factor / ctx.obs_std, torch.zeros_like(ctx.obs_std))
            return Yo * scale, do * scale
        key = bytes(m.cpu().numpy())
        if key not in setup.whitening:
            # symmetric R^-1/2 of the observed block, zero rows/cols for missing obs
            idx = torch.nonzero(m).squeeze(-1)
            Rm = (ctx.R_chol @ ctx.R_chol.T)[idx][:, idx]
            s, V = torch.linalg.eigh(Rm)
            W = torch.zeros(m.numel(), m.numel(), dtype=Rm.dtype, device=Rm.device)
            W[idx.unsqueeze(-1), idx] = (V / s.sqrt()) @ V.T
            setup.whitening[key] = W
        W = setup.whitening[key] * factor
        return Yo @ W.T, do @ W.T

    def _analyze(self, E, k, ctx, rng):
        if not bool(ctx.mask[k].any()):
            return E  # nothing observed: the forecast runs free (no inflation, RTPS, rotation)
        setup = ctx.scratch["letkf"]
        HE = ctx.h(E)
        hmu = HE.mean(-2, keepdim=True)
        mu = E.mean(-2, keepdim=True)
        A = E - mu
        Yw, dw = self._whiten(HE - hmu, ctx.innovation_data(k) - hmu.squeeze(-2), k, ctx, setup)
        if setup.points is None:
            Ea = mu + self._local_update(A, Yw, dw, setup)
        else:
            Ea = E.clone()
            p = setup.points
            Ea[..., p] = mu[..., p] + self._local_update(A[..., p], Yw, dw, setup)
        return self._post_process(Ea, E, rng)

    def _local_update(self, A, Yw, dw, setup):
        weight = float(self.inflation_prior_weight) if self.adaptive_inflation else None
        n_points, n_local = setup.obs_index.shape
        per_point = max(1, int(np.prod(A.shape[:-1])) * max(n_local, A.shape[-2]))
        chunk = max(1, _MAX_BLOCK // per_point)
        if chunk >= n_points:
            return local_ensemble_transform(A, Yw, dw, setup.obs_index, setup.sqrt_taper, weight)
        # memory bound for large grids: blocks of points, each block batched
        return torch.cat([
            local_ensemble_transform(A[..., s:s + chunk], Yw, dw, setup.obs_index[s:s + chunk],
                                     setup.sqrt_taper[s:s + chunk], weight)
            for s in range(0, n_points, chunk)
        ], dim=-1)
