"""Ensemble Kalman filters: perturbed-observation EnKF, ETKF square root and DEnKF.

References: Burgers et al. (1998) for perturbed observations; Hunt et al.
(2007) and Sakov & Oke (2008a) for the symmetric square root (ETKF) and the
random rotation; Sakov & Oke (2008b) for the deterministic EnKF (DEnKF).
All analyses are written in ensemble space with whitened observations
(``W R W^T = I``), so missing observations drop out and the cost per cycle is
one ``(N, N)`` eigendecomposition per batch element.
"""

from __future__ import annotations

import torch

from xdyn.assimilation._linalg import ensemble_transform, whitened_anomalies
from xdyn.assimilation._validation import StrOptions
from xdyn.assimilation.ensemble_base import BaseEnsembleAssimilator

__all__ = ["EnKF", "ensemble_transform"]

_KINDS = ("perturbed-obs", "sqrt", "denkf")


class EnKF(BaseEnsembleAssimilator):
    """Ensemble Kalman filter (perturbed observations, square root, or DEnKF).

    Parameters
    ----------
    system, operator, noise_std, R, dt, initial_state, initial_spread, burn_in,
    raise_on_divergence
        See :class:`xdyn.assimilation.base.BaseAssimilator`.
    kind : {"sqrt", "perturbed-obs", "denkf"}, default="sqrt"
        Analysis flavour: symmetric square root (ETKF), stochastic EnKF with
        perturbed observations, or deterministic EnKF (half-gain anomalies).
    n_members : int >= 2, default=20
        Ensemble size.
    inflation : float or 1-D array, default=1.0
        Multiplicative inflation of the analysis anomalies; a 1-D array sweeps
        over the first batch dim of the observations (one value per element).
        At a time where every observation is missing the forecast runs free:
        no inflation, RTPS or rotation there (DAPPER post-processes at
        observation times only).
    rtps : float, default=0.0
        Relaxation-to-prior-spread factor in [0, 1].
    rotate : bool, default=False
        Random mean-preserving rotation of the analysis anomalies (sqrt form).
    initial_ensemble : Dataset with a ``member`` dim, array (..., n_members, n_state), or None
        Initial ensemble. ``None`` with ``initial_state=None`` (the default)
        draws ``n_members`` independent states of the system's invariant
        measure (:func:`xdyn.systems.climatology.climatological_sample`).
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

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> from xdyn.observe import observe
    >>> truth = Lorenz63().simulate(n_steps=500, burn_in=5, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=2 ** 0.5, every=25, random_state=1)
    >>> enkf = EnKF(n_members=10, inflation=1.02, rotate=True, random_state=0,
    ...             initial_state=truth.isel(time=0).to_array().values, initial_spread=1.4)
    >>> analysis = enkf.fit(obs).predict(obs)
    >>> analysis.x.dims
    ('time', 'member')
    >>> -enkf.score(obs, truth) < 1.4
    True
    """

    name = "enkf"

    _parameter_constraints: dict = {
        **BaseEnsembleAssimilator._parameter_constraints,
        "kind": [StrOptions(set(_KINDS))],
    }

    def __init__(self, system=None, *, operator=None, noise_std=None, R=None, dt=None,
                 kind="sqrt", n_members=20, inflation=1.0, rtps=0.0, rotate=False,
                 initial_state=None, initial_spread=1.0, initial_ensemble=None, burn_in=0.0,
                 return_ensemble=True, return_background=False, raise_on_divergence=True,
                 random_state=None, progress=False):
        self.system = system
        self.operator = operator
        self.noise_std = noise_std
        self.R = R
        self.dt = dt
        self.kind = kind
        self.n_members = n_members
        self.inflation = inflation
        self.rtps = rtps
        self.rotate = rotate
        self.initial_state = initial_state
        self.initial_spread = initial_spread
        self.initial_ensemble = initial_ensemble
        self.burn_in = burn_in
        self.return_ensemble = return_ensemble
        self.return_background = return_background
        self.raise_on_divergence = raise_on_divergence
        self.random_state = random_state
        self.progress = progress

    def _analyze(self, E, k, ctx, rng):
        if not bool(ctx.mask[k].any()):
            return E  # nothing observed: the forecast runs free (no inflation, RTPS, rotation)
        W = ctx.whitening(k)
        y = ctx.innovation_data(k)
        HE = ctx.h(E)
        mu, A, Yw, dw = whitened_anomalies(E, HE, y, W)
        if self.kind == "sqrt":
            w, T, _ = ensemble_transform(Yw, dw)
            Ea = mu + w.unsqueeze(-2) @ A + T @ A
        elif self.kind == "denkf":
            w, _, Pw = ensemble_transform(Yw, dw, transform=False)
            Ea = mu + w.unsqueeze(-2) @ A + A - 0.5 * (Yw @ Yw.transpose(-1, -2) @ Pw @ A)
        else:
            # Burgers et al. (1998): each member assimilates its own perturbed obs;
            # perturbations centred as in DAPPER's PertObs.
            D = torch.as_tensor(rng.standard_normal(tuple(Yw.shape)), dtype=E.dtype,
                                device=E.device)
            D = D - D.mean(-2, keepdim=True)
            innov = (y.unsqueeze(-2) - HE) @ W.T - D
            _, _, Pw = ensemble_transform(Yw, dw, transform=False)
            Ea = E + innov @ Yw.transpose(-1, -2) @ Pw @ A
        return self._post_process(Ea, E, rng)
