"""Optimal interpolation: a static Kalman gain from a climatological covariance.

Follows DAPPER's ``OptInterp`` (``da_methods/baseline.py``): the background
error covariance ``B`` is the climatological covariance, and the background
of every analysis is the *climatological mean* -- the model forecast is
discarded, so OI is a baseline that measures what the observations alone (with
climatological prior knowledge) achieve. ``background="forecast"`` instead
analyses the model forecast with the same static gain (then OI is 3D-Var with
the unscaled climatological ``B``).

Reference: Gandin (1963), Objective analysis of meteorological fields;
Kalnay (2003), Atmospheric Modeling, Data Assimilation and Predictability, §5.4.
"""

from __future__ import annotations

from numbers import Integral, Real

import torch

from xdyn.assimilation._static import StaticCovarianceCycle
from xdyn.assimilation._validation import FiniteInterval, Interval, StrOptions
from xdyn.assimilation.climatology import estimate_climatology

__all__ = ["OptimalInterpolation"]

_BACKGROUNDS = ("climatology", "forecast")


class OptimalInterpolation(StaticCovarianceCycle):
    """Optimal interpolation (OI) with a climatological background covariance.

    Parameters
    ----------
    system, operator, noise_std, R, dt, initial_state, initial_spread, burn_in,
    raise_on_divergence
        See :class:`xdyn.assimilation.base.BaseAssimilator`.
    background : {"climatology", "forecast"}, default="climatology"
        Background of each analysis: the climatological mean (DAPPER's
        ``OptInterp``; the model is not run) or the model forecast of the
        previous analysis.
    n_outer : int, default=1
        Gauss-Newton outer loops for a nonlinear operator (see
        :class:`~xdyn.assimilation.Var3D`); ignored when it is linear. One loop
        linearises at the background, as DAPPER does; that fails when ``h`` is
        flat there (``x**2`` at a climatological mean ``x = 0``).
    climatology_length : float or None, default=None
        Model time of the free run that estimates the climatology when
        :meth:`fit` gets no ``truth``.
        None: 100 times the system's ``climatology_burn_in`` (1000 time units for
        the nondimensional systems, 100 days for shallow water).
    return_background : bool, default=False
        Also return the background (``<var>_background``).
    random_state : int, RandomState or None
        Seeds the climatology free run (and the initial state with
        ``background="forecast"``).
    progress : bool, default=False

    Attributes
    ----------
    climatological_mean_ : ndarray of shape (n_state,)
    B_ : ndarray of shape (n_state, n_state)
        Climatological covariance (``ddof=1``).
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
    ``fit(obs, truth)`` with the truth trajectory computes the climatology from
    it, as DAPPER does (its ``OptInterp`` uses ``np.mean(xx, 0)`` and the
    covariance of ``xx``, the truth): with a short truth this is
    optimistic. Without ``truth`` the model runs freely for
    ``climatology_length``. ``spread`` and ``<var>_std`` come from
    the analysis covariance ``(I - K H) B`` (DAPPER reports a sigmoid-fitted
    diagnostic instead).

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> from xdyn.observe import observe
    >>> truth = Lorenz63().simulate(t_span=30, burn_in=5, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=2 ** 0.5, every=25, random_state=1)
    >>> oi = OptimalInterpolation().fit(obs, truth)
    >>> analysis = oi.predict(obs)
    >>> float(analysis.spread[0]) < 1.4
    True
    >>> -oi.score(obs, truth) < 1.5
    True
    """

    name = "oi"

    _parameter_constraints: dict = {
        **StaticCovarianceCycle._parameter_constraints,
        "background": [StrOptions(set(_BACKGROUNDS))],
        "n_outer": [Interval(Integral, 1, None, closed="left")],
        "climatology_length": [FiniteInterval(Real, 0, None, closed="neither"), None],
    }

    def __init__(self, system=None, *, operator=None, noise_std=None, R=None, dt=None,
                 background="climatology", n_outer=1, climatology_length=None,
                 initial_state=None, initial_spread=1.0, burn_in=0.0,
                 return_background=False, raise_on_divergence=True,
                 random_state=None, progress=False):
        self.system = system
        self.operator = operator
        self.noise_std = noise_std
        self.R = R
        self.dt = dt
        self.background = background
        self.n_outer = n_outer
        self.climatology_length = climatology_length
        self.initial_state = initial_state
        self.initial_spread = initial_spread
        self.burn_in = burn_in
        self.return_background = return_background
        self.raise_on_divergence = raise_on_divergence
        self.random_state = random_state
        self.progress = progress

    def _uses_forecast_background(self):
        # with the climatological background the misfit *is* the climatology's
        return self.background == "forecast"

    def _fit(self, ctx, truth):
        self.climatological_mean_, self.B_ = estimate_climatology(
            ctx.system, truth, self.climatology_length, ctx.dt, self.random_state)

    # The state is ``(mean, std, B)``.
    def _climatological_state(self, ctx, B):
        batch_shape = tuple(ctx.y.shape[1:-1])
        mean = ctx.system.as_tensor(self.climatological_mean_).expand(batch_shape + (ctx.n_state,))
        return mean, torch.diagonal(B).sqrt().expand_as(mean), B

    def _initialize(self, ctx, rng):
        if self.background == "climatology":
            return self._climatological_state(ctx, ctx.system.as_tensor(self.B_))
        return super()._initialize(ctx, rng)

    def _forecast(self, state, n_steps, ctx, rng):
        if self.background == "climatology":  # the forecast is discarded: skip it
            return self._climatological_state(ctx, state[2])
        return super()._forecast(state, n_steps, ctx, rng)
