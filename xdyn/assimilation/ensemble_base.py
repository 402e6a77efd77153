"""Shared parts of ensemble assimilators: initial ensemble, batched forecast,
inflation, RTPS relaxation and mean-preserving random rotation.

The ensemble is one tensor ``E`` of shape ``(*batch, n_members, n_state)``;
every operation is batched over members and batch dims (no Python loop).
"""

from __future__ import annotations

import functools
from numbers import Integral, Real

import numpy as np
import torch
import xarray as xr

from xdyn.assimilation._validation import FiniteInterval, Interval, NumericArray
from xdyn.assimilation._start import initial_ensemble_tensor
from xdyn.assimilation.base import BaseAssimilator

__all__ = ["BaseEnsembleAssimilator", "random_mean_preserving_rotation", "initial_ensemble_tensor"]


def random_mean_preserving_rotation(batch_shape, n_members, rng, dtype, device) -> torch.Tensor:
    """Random orthogonal ``(N, N)`` matrices that keep the ensemble mean.

    ``O = V diag(1, Q) V^T`` with ``V`` an orthonormal basis starting with
    ``ones/sqrt(N)`` and ``Q`` Haar-distributed on O(N-1) (QR of a Gaussian
    with the sign of ``diag(R)`` fixed; Mezzadri 2007). Sakov & Oke (2008).

    Parameters
    ----------
    batch_shape : tuple of int
        One independent rotation per batch element.
    n_members : int
        Ensemble size ``N``.
    rng : numpy.random.RandomState
    dtype : torch.dtype
    device : str or torch.device

    Returns
    -------
    torch.Tensor of shape (*batch_shape, N, N)

    Examples
    --------
    >>> import numpy as np, torch
    >>> O = random_mean_preserving_rotation((), 5, np.random.RandomState(0), torch.float64, "cpu")
    >>> eye, ones = torch.eye(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    >>> torch.allclose(O @ O.T, eye), torch.allclose(O @ ones, ones)  # orthogonal, keeps the mean
    (True, True)
    >>> A = torch.as_tensor(np.random.RandomState(1).standard_normal((5, 3)))
    >>> A = A - A.mean(0)  # ensemble anomalies (N=5 members, 3 variables)
    >>> torch.allclose((O @ A).mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    True
    >>> random_mean_preserving_rotation((2,), 5, np.random.RandomState(0), torch.float64,
    ...                                 "cpu").shape  # one rotation per batch element
    torch.Size([2, 5, 5])
    """
    N = int(n_members)
    V = _basis_beginning_with_ones(N, dtype, torch.device(device))
    G = torch.as_tensor(rng.standard_normal(tuple(batch_shape) + (N - 1, N - 1)), dtype=dtype,
                        device=device)
    Q, R = torch.linalg.qr(G)
    Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)
    block = torch.zeros(tuple(batch_shape) + (N, N), dtype=dtype, device=device)
    block[..., 0, 0] = 1.0
    block[..., 1:, 1:] = Q
    return V @ block @ V.T


@functools.lru_cache(maxsize=32)
def _basis_beginning_with_ones(N, dtype, device) -> torch.Tensor:
    """Orthonormal ``(N, N)`` basis whose first column is ``+ones/sqrt(N)``; built once per
    size (its SVD took about 15% of a rotating EnKF's analysis, at every cycle)."""
    V = torch.linalg.svd(torch.ones(N, 1, dtype=dtype, device=device))[0]
    return V * torch.sign(V[:, :1].sum())


class BaseEnsembleAssimilator(BaseAssimilator):
    """Ensemble initialisation, forecast and post-analysis processing.

    Parameters
    ----------
    n_members : int >= 2
        Ensemble size.
    inflation : float > 0 or 1-D array
        Multiplicative inflation of the analysis anomalies (a 1-D array sweeps
        the first batch dim of the observations). Inflation, RTPS and rotation
        act at times with observations only: where every observation is
        missing the forecast runs free (a subclass's ``_analyze`` returns it).
    rtps : float in [0, 1], optional
        Relaxation to prior spread (Whitaker & Hamill 2012).
    rotate : bool, optional
        Random mean-preserving rotation of the anomalies after each analysis.
    initial_ensemble : xarray.Dataset or array, optional
        Start from these members (see :func:`initial_ensemble_tensor`).
    return_ensemble : bool, optional
        Return the members, not only mean and spread.
    **params
        Those of :class:`~xdyn.assimilation.BaseAssimilator`. A subclass takes
        in its ``__init__`` the parameters it uses (``n_members`` and the base
        class's at least); the optional ones above have defaults here.

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

    Examples
    --------
    An ensemble method implements ``_analyze`` on the ensemble tensor
    ``(*batch, n_members, n_state)``; initialisation, forecast, the
    summaries and ``_post_process`` (inflation, RTPS, rotation) come from
    this class. Without an analysis the ensemble is a free run, no better
    than climatology, and the cycle says so:

    >>> import warnings
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz63
    >>> class FreeEnsemble(BaseEnsembleAssimilator):
    ...     def __init__(self, system=None, *, n_members=10, inflation=1.0, operator=None,
    ...                  noise_std=None, R=None, dt=None, initial_state=None,
    ...                  initial_spread=1.0, burn_in=0.0, return_background=False,
    ...                  raise_on_divergence=True, random_state=None):
    ...         self.system, self.n_members, self.inflation = system, n_members, inflation
    ...         self.operator, self.noise_std, self.R, self.dt = operator, noise_std, R, dt
    ...         self.initial_state, self.initial_spread = initial_state, initial_spread
    ...         self.burn_in, self.return_background = burn_in, return_background
    ...         self.raise_on_divergence, self.random_state = raise_on_divergence, random_state
    ...     def _analyze(self, E, k, ctx, rng):
    ...         return self._post_process(E, E, rng)  # no update: only the inflation
    >>> truth = Lorenz63().simulate(n_steps=1000, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=1.0, every=5, random_state=1)
    >>> free = FreeEnsemble(n_members=5, random_state=0, raise_on_divergence=False).fit(obs)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     analysis = free.predict(obs)
    >>> sorted(analysis.data_vars)
    ['lost', 'n_assimilated', 'spread', 'x', 'x_std', 'y', 'y_std', 'z', 'z_std']
    >>> bool(analysis.lost.any()), [w.category.__name__ for w in caught]
    (True, ['LostTrackWarning'])
    """

    _ensemble = True

    _parameter_constraints: dict = {
        **BaseAssimilator._parameter_constraints,
        "n_members": [Interval(Integral, 2, None, closed="left")],
        "inflation": [FiniteInterval(Real, 0, None, closed="neither"),
                      NumericArray((1,), positive=True)],
        "rtps": [Interval(Real, 0, 1, closed="both")],
        "rotate": ["boolean"],
        "initial_ensemble": [NumericArray((2, 3, 4, 5)), xr.Dataset, None],
        "return_ensemble": ["boolean"],
    }

    def _check_context(self, ctx):
        if hasattr(self, "inflation"):
            self._check_batch_param("inflation", self.inflation, ctx)

    def _initialize(self, ctx, rng):
        return self._initial_ensemble(ctx, rng, int(self.n_members))

    # A climatological ensemble of N members spans only N-1 of the state's
    # directions; an ensemble analysis would leave the error of the others at its
    # climatological size. The first observations are therefore assimilated into
    # the members with the full-rank climatological covariance they sample
    # (perturbed observations, Burgers et al. 1998), with twice the observation
    # error variance; the cycle's own first analysis then assimilates them again
    # with twice the variance too (ctx.obs_error_scale, read by ctx.whitening), so
    # the first observations weigh 1/(2R) + 1/(2R) = 1/R in all, as they should.
    # It acts at the start of the analysis step (_before_analysis), after the cycle
    # has recorded the background: the recorded background is the prior.
    _preanalysis = True

    def _climatological_update(self, E, k, ctx, rng):
        # the members are still samples of the invariant measure at the first
        # observed time (the flow preserves it), so B is still their covariance
        _, A = self._climatology(ctx)                            # B = A^T A, A (n_pool, n)
        W = ctx.whitening(k)  # of 2R: obs_error_scale[k] is set
        Hw = W @ ctx.jacobian_h(E.mean(-2))                     # (..., q, n)
        HA = Hw @ A.T                                            # (..., q, n_pool)
        S = HA @ HA.transpose(-1, -2)
        S = S + torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)
        Kt = torch.linalg.solve(S, HA @ A)                       # K^T in whitened units
        noise = torch.as_tensor(rng.standard_normal(tuple(E.shape[:-1]) + (W.shape[0],)),
                                dtype=E.dtype, device=E.device)
        dw = (ctx.innovation_data(k).unsqueeze(-2) - ctx.h(E)) @ W.T + noise
        return E + dw @ Kt

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
        if np.any(np.asarray(infl, dtype=float) != 1.0):
            A = A * self._inflation_tensor(E)
        if getattr(self, "rotate", False):
            O = random_mean_preserving_rotation(E.shape[:-2], E.shape[-2], rng, E.dtype, E.device)
            A = O @ A
        return mu + A
