"""Extended Kalman filter: mean and full covariance, tangent linear model by autodiff.

Follows DAPPER's ``ExtKF`` (``da_methods/extended.py``). At every model step
the covariance is propagated with the tangent linear model ``M`` (the Jacobian
of one model step) and multiplicatively inflated *per unit model time*:
``P <- infl**dt * M P M^T``, so that ``infl`` is the inflation over one time
unit whatever ``dt`` (DAPPER's ``infl_per_dt := infl**dt``). The analysis is
the Kalman update in whitened observation space with the operator linearised
at the forecast mean (missing observations drop out).

Difference to DAPPER: DAPPER's Lorenz models use the Euler resolvent
``I + dt * J(x)`` of the ODE Jacobian evaluated *after* the step
(``Dyn.linear(mu)`` is called on the forecast mean), whereas ``M`` here is the
exact Jacobian of the model's RK4 step at the state it starts from, computed
by torch autodiff (one batched backward pass per forecast). On the same
truth and observations (L63 ``sakov2012``, DAPPER seed 3000, ``infl=180``)
DAPPER scores 0.870 and this filter 0.890; with DAPPER's resolvent swapped in,
this filter gives DAPPER's 0.870 to all digits, so inflation and analysis match.

Reference: Jazwinski (1970), Stochastic Processes and Filtering Theory.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
import torch

from xdyn.assimilation._linalg import whitened_update
from xdyn.assimilation._validation import FiniteInterval, NumericArray, StrOptions
from xdyn.assimilation.base import BaseAssimilator
from xdyn.systems.tangent import complex_step_applies, forecast_with_jacobian

# the tangent-linear model lives with the systems (xdyn.systems.tangent); its two
# functions stay importable from here.
__all__ = ["ExtendedKalmanFilter", "forecast_with_jacobian", "complex_step_applies"]


class ExtendedKalmanFilter(BaseAssimilator):
    """Extended Kalman filter (EKF) with multiplicative inflation per unit time.

    Parameters
    ----------
    system, operator, noise_std, R, dt, initial_state, burn_in, raise_on_divergence
        See :class:`xdyn.assimilation.base.BaseAssimilator`.
    inflation : float or 1-D array, default=1.0
        Multiplicative covariance inflation per unit model time (DAPPER's
        ``infl``), applied as ``infl**dt`` at every model step. A 1-D array
        sweeps over the first batch dim of the observations.
    initial_spread : float, default=1.0
        Standard deviation of the initial error around ``initial_state``:
        ``P_0 = initial_spread**2 I``. Without ``initial_state`` the filter
        starts from the climatological mean and covariance.
    tangent_linear : {"auto", "autodiff", "complex-step"}, default="auto"
        How the Jacobian of each forecast is taken. ``"autodiff"``: torch
        reverse mode through the model steps. ``"complex-step"``: complex-step
        differentiation of the numpy fast path, exact to round-off for
        real-analytic right-hand sides and ~10x faster on tiny states, where
        autograd's per-operation cost dominates. ``"auto"`` picks complex-step
        where the system integrates the state in numpy (tiny states of
        Lorenz-63/96 on CPU), autodiff otherwise. Both give the same matrix to
        1e-12 (tested). ``"complex-step"`` on a system it cannot differentiate
        (no numpy right-hand side, its own ``step``, a tensor parameter or one
        per trajectory) raises a ValueError at the first forecast.
    return_background : bool, default=False
        Also return the forecast (``<var>_background``).
    random_state : int, RandomState or None
        Unused (the filter is deterministic); kept for the common interface.
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
    The output has the mean state plus ``<var>_std`` (square root of the
    diagonal of ``P``) and ``spread``. Without model noise, the EKF of a
    chaotic model needs a large inflation to stay stable: DAPPER tunes
    ``infl=180`` on Lorenz-63 ``sakov2012`` and ``infl=10`` on Lorenz-96
    ``sakov2008``. Memory and time grow as ``n_state**2`` and ``n_state**3``.

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> from xdyn.observe import observe
    >>> truth = Lorenz63().simulate(t_span=20, burn_in=5, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=2 ** 0.5, every=25, random_state=1)
    >>> ekf = ExtendedKalmanFilter(inflation=180, initial_spread=2 ** 0.5,
    ...                            initial_state=truth.isel(time=0).to_array().values)
    >>> analysis = ekf.fit(obs).predict(obs)
    >>> sorted(analysis.data_vars)
    ['lost', 'n_assimilated', 'spread', 'x', 'x_std', 'y', 'y_std', 'z', 'z_std']
    >>> -ekf.score(obs, truth) < 1.2
    True
    """

    name = "extkf"
    aliases = ("ekf",)

    _spread_source = "filter covariance"
    _parameter_constraints: dict = {
        **BaseAssimilator._parameter_constraints,
        "inflation": [FiniteInterval(Real, 0, None, closed="neither"),
                      NumericArray((1,), positive=True)],
        "tangent_linear": [StrOptions({"auto", "autodiff", "complex-step"})],
    }

    def __init__(self, system=None, *, operator=None, noise_std=None, R=None, dt=None,
                 inflation=1.0, initial_state=None, initial_spread=1.0, burn_in=0.0,
                 tangent_linear="auto", return_background=False, raise_on_divergence=True,
                 random_state=None, progress=False):
        self.system = system
        self.operator = operator
        self.noise_std = noise_std
        self.R = R
        self.dt = dt
        self.inflation = inflation
        self.initial_state = initial_state
        self.initial_spread = initial_spread
        self.burn_in = burn_in
        self.tangent_linear = tangent_linear
        self.return_background = return_background
        self.raise_on_divergence = raise_on_divergence
        self.random_state = random_state
        self.progress = progress

    def _check_context(self, ctx):
        self._check_batch_param("inflation", self.inflation, ctx)

    # The state is ``(mean, P, inflation_per_step)``.
    def _initialize(self, ctx, rng):
        x = self._initial_mean(ctx, rng)
        if self.initial_state is None:  # climatological start: P_0 is the climatology's
            A = self._climatology(ctx)[1]  # the pool's anomalies: P_0 = A^T A
            P = (A.T @ A).expand(x.shape + (ctx.n_state,)).clone()
        else:
            eye = torch.eye(ctx.n_state, dtype=x.dtype, device=x.device)
            P = float(self.initial_spread) ** 2 * eye.expand(x.shape + (ctx.n_state,)).clone()
        infl = torch.as_tensor(np.asarray(self.inflation, dtype=float) ** ctx.dt,
                               dtype=x.dtype, device=x.device)
        infl = infl.reshape(infl.shape + (1,) * (P.ndim - infl.ndim))
        return x, P, infl

    def _forecast(self, state, n_steps, ctx, rng):
        x, P, infl = state
        # Without model noise, stepping P <- infl**dt M_i P M_i^T over the steps
        # equals one propagation with the product M of the step Jacobians.
        method = self.tangent_linear
        if method == "auto":
            method = "complex-step" if complex_step_applies(ctx.system, x) else "autodiff"
        x, M = forecast_with_jacobian(ctx.system, x, ctx.dt, n_steps, method=method)
        P = infl ** int(n_steps) * (M @ P @ M.transpose(-1, -2))
        return x, 0.5 * (P + P.transpose(-1, -2)), infl

    def _analyze(self, state, k, ctx, rng):
        x_f, P, infl = state
        H = ctx.jacobian_h(x_f)
        d = ctx.innovation_data(k) - ctx.h(x_f)
        x_a, P_a = whitened_update(x_f, P, H, ctx.whitening(k), d)
        return x_a, P_a, infl

    def _summarize(self, state):
        x, P, _ = state
        return x, None, torch.diagonal(P, dim1=-2, dim2=-1).clamp_min(0).sqrt()
