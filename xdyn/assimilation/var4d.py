"""Strong-constraint 4D-Var over consecutive windows, with gradients by torch autograd.

Each window holds ``window`` observation times ``k0 .. k0 + window - 1``. Its
control variable is the state ``x0`` at the *control time*: the time of the
last observation of the previous window (the first observation time for the
first window, whose first observation then sits at the control time). With
the static background covariance ``B`` and the model ``M_k`` from the control
time to observation time ``k``, the cost

    J(x0) = 1/2 (x0 - x_b)^T B^-1 (x0 - x_b) + 1/2 sum_k |W_k (y_k - h(M_k(x0)))|^2

is minimised in the preconditioned control variable ``v`` with
``x0 = x_b + B^{1/2} v`` (so ``J = 1/2 |v|^2 + ...``; no ``B^-1`` is formed)
by L-BFGS with a strong-Wolfe line search; the gradient is back-propagated
through the differentiable system (the adjoint model comes for free). The
analysis trajectory ``M_k(x0_a)`` is the output at every observation time of
the window, and its end state is the background of the next window.

Relation to DAPPER's ``Var4D`` (``da_methods/variational.py``): DAPPER cycles
like its iEnKS: windows of ``Lag`` observation intervals that slide by *one*
observation time, each assimilating only its newest observation, with the
control variable at the window start, Gauss-Newton iterations with the tangent
linear model (``nIter`` of them), and ``xB`` scaling ``B``. With ``window=1``
the two schemes solve the same problem (same control time, background, ``B``
and observation); for ``window > 1`` the windows here are disjoint and every
observation in them is assimilated at once -- the classical cycled 4D-Var.
The analyses at the earlier times of a window use later observations too
(a smoother inside the window).

On DAPPER's own Lorenz-63 ``sakov2012`` truth and observations (seed 3000,
1000 cycles, ``B_scale=0.1``): ``window=1`` scores 0.773 against DAPPER's
``Var4D(Lag=1, xB=0.1)`` 0.787; ``window=2`` 0.581 and ``window=3`` 0.460
(0.626 and 0.515 counting only the window ends, i.e. filter analyses), where
DAPPER's ``Lag=2`` and ``Lag=3`` give 0.835 and 0.989, and 3D-Var 1.03.

The cost of a long window has many local minima (Pires, Vautard & Talagrand
1996, Tellus 48A, 96-121); ``quasi_static=True`` follows their remedy.

References: Le Dimet & Talagrand (1986), Tellus 38A, 97-110;
Courtier, Thépaut & Hollingsworth (1994), Q. J. R. Meteorol. Soc. 120, 1367-1387.
"""

from __future__ import annotations

from numbers import Integral, Real

import torch

from xdyn.assimilation._linalg import symmetric_sqrt
from xdyn.assimilation._validation import FiniteInterval, Interval, NumericArray
from xdyn.assimilation.base import BaseAssimilator
from xdyn.assimilation.climatology import fit_background_covariance
from xdyn.systems.tangent import complex_step_applies, forecast_with_jacobian

__all__ = ["Var4D"]


class Var4D(BaseAssimilator):
    """Strong-constraint 4D-Var with L-BFGS and autograd through the model.

    Parameters
    ----------
    system, operator, noise_std, R, dt, initial_state, initial_spread, burn_in,
    raise_on_divergence
        See :class:`xdyn.assimilation.base.BaseAssimilator`.
    window : int, default=3
        Observation times per assimilation window.
    n_iter : int, default=50
        Maximum L-BFGS iterations per window (per stage with ``quasi_static``).
        It stops earlier once the cost (in whitened units) changes by less
        than ``1e-6`` or the gradient in the preconditioned variable is below
        ``1e-5``.
    B : array of shape (n_state, n_state) or None, default=None
        Background error covariance at the control time; ``None`` uses the
        climatological covariance learned by :meth:`fit`.
    B_scale : float, default=1.0
        Factor on ``B`` (DAPPER's ``xB``).
    quasi_static : bool, default=True
        Lengthen the window one observation time at a time, each minimisation
        warm-started from the last (Pires, Vautard & Talagrand 1996). The cost
        of a long window over a chaotic model has many local minima; starting
        L-BFGS at the background on the full window lands in a wrong one (a
        wrong Lorenz-63 wing) in a sizeable fraction of windows.
    climatology_length : float or None, default=None
        Model time of the free run that estimates ``B`` when :meth:`fit` gets
        no ``truth``.
        None: 100 times the system's ``climatology_burn_in`` (1000 time units for
        the nondimensional systems, 100 days for shallow water).
    return_background : bool, default=False
        Also return the free forecast of the background through each window
        (``<var>_background``).
    random_state : int, RandomState or None
        Seeds the climatology free run and the initial state.
    progress : bool, default=False
        Show a progress bar over windows.

    Attributes
    ----------
    B_ : ndarray of shape (n_state, n_state)
        Background covariance used (already multiplied by ``B_scale``).
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
    The independent experiments along batch dims are minimised together, as
    one L-BFGS problem on the sum of their costs (block-diagonal Hessian):
    they share its line search, curvature pairs and stopping test, so an
    experiment's analysis depends on its batch-mates within the
    minimisation's tolerance (5e-4 on Lorenz-63 at the defaults; up to the
    error itself where ``n_iter`` stops it early). Assimilate an experiment
    alone for a result that does not depend on others. (One L-BFGS per
    experiment was tried and reverted: 3-6x slower on batches of 4-16, and
    systems with one parameter value per trajectory would need their
    parameters sliced per experiment.) No analysis covariance is computed, so
    the output has no ``spread``. The output attrs record ``n_windows`` and
    ``n_cost_evaluations`` (model runs forward and back, summed over the
    windows).
    ``fit(obs, truth)`` estimates ``B`` from the truth as DAPPER does.

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> from xdyn.observe import observe
    >>> truth = Lorenz63().simulate(t_span=3, burn_in=5, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=2 ** 0.5, every=25, random_state=1)
    >>> var = Var4D(window=2, B_scale=0.1,
    ...             initial_state=truth.isel(time=0).to_array().values)
    >>> analysis = var.fit(obs, truth).predict(obs)
    >>> analysis.x.dims, analysis.attrs["n_windows"]
    (('time',), 7)
    >>> -var.score(obs, truth) < 1.0
    True
    """

    name = "4dvar"
    aliases = ("var4d",)

    _no_grad = False  # the cost is differentiated through the model
    _windowed = True  # ``_analyze`` gets the observation times of one window

    _parameter_constraints: dict = {
        **BaseAssimilator._parameter_constraints,
        "window": [Interval(Integral, 1, None, closed="left")],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "B": [NumericArray((2,)), None],
        "B_scale": [FiniteInterval(Real, 0, None, closed="neither")],
        "quasi_static": ["boolean"],
        "climatology_length": [FiniteInterval(Real, 0, None, closed="neither"), None],
    }

    def __init__(self, system=None, *, operator=None, noise_std=None, R=None, dt=None,
                 window=3, n_iter=50, B=None, B_scale=1.0, quasi_static=True,
                 climatology_length=None,
                 initial_state=None, initial_spread=1.0, burn_in=0.0,
                 return_background=False, raise_on_divergence=True,
                 random_state=None, progress=False):
        self.system = system
        self.operator = operator
        self.noise_std = noise_std
        self.R = R
        self.dt = dt
        self.window = window
        self.n_iter = n_iter
        self.B = B
        self.B_scale = B_scale
        self.quasi_static = quasi_static
        self.climatology_length = climatology_length
        self.initial_state = initial_state
        self.initial_spread = initial_spread
        self.burn_in = burn_in
        self.return_background = return_background
        self.raise_on_divergence = raise_on_divergence
        self.random_state = random_state
        self.progress = progress

    def _fit(self, ctx, truth):
        self.B_ = fit_background_covariance(self, ctx, truth)

    # ------------------------------------------------------------ cycle hooks
    # The state is ``(x, trajectory)``: the state at the control time (the end of
    # the previous window) and the analysis trajectory of the last window.
    def _windows(self, ctx):
        n_times, w = len(ctx.times), int(self.window)
        return (list(range(k0, min(k0 + w, n_times))) for k0 in range(0, n_times, w))

    def _initialize(self, ctx, rng):
        ctx.scratch["B_half"] = symmetric_sqrt(ctx.system.as_tensor(self.B_))
        ctx.scratch["n_cost_evaluations"] = 0
        with torch.no_grad():
            return self._initial_mean(ctx, rng), None

    def _forecast(self, state, n_steps, ctx, rng):
        # the window cost integrates from the control time itself: nothing to do here
        return state

    def _analyze(self, state, ks, ctx, rng):
        x_b = state[0]
        v, n_eval = self._minimize(x_b, ctx.scratch["B_half"], ks, ctx)
        ctx.scratch["n_cost_evaluations"] += n_eval
        with torch.no_grad():
            trajectory = _trajectory(x_b + v @ ctx.scratch["B_half"], ks, ctx)
        return trajectory[-1], trajectory

    def _summarize(self, state):
        return state[0], None, None

    def _window_summaries(self, state, ks, ctx, background):
        if background:  # the free forecast of the background through the window
            with torch.no_grad():
                return [(x, None, None) for x in _trajectory(state[0], ks, ctx)]
        return [(x, None, None) for x in state[1]]

    def _to_dataset(self, callbacks, ctx, wall):
        out = super()._to_dataset(callbacks, ctx, wall)
        out.attrs["n_windows"] = int(ctx.n_windows)
        out.attrs["n_cost_evaluations"] = int(ctx.scratch["n_cost_evaluations"])
        return out

    def _minimize(self, x_b, B_half, ks, ctx):
        v = torch.zeros_like(x_b, requires_grad=True)
        n_eval = 0
        # quasi-static: lengthen the window one observation at a time, each
        # minimisation warm-started from the previous one (Pires et al. 1996)
        stages = range(1, len(ks) + 1) if self.quasi_static else [len(ks)]
        for n_obs in stages:
            # The cost is in whitened units and its Hessian in v is >= I (Gauss-Newton
            # part), so these absolute tolerances bound the error of v directly;
            # intermediate stages only have to reach the right basin.
            final = n_obs == len(ks)
            opt = torch.optim.LBFGS([v], lr=1.0, max_iter=int(self.n_iter),
                                    line_search_fn="strong_wolfe",
                                    tolerance_grad=1e-5 if final else 1e-2,
                                    tolerance_change=1e-6 if final else 1e-3)

            def closure():
                nonlocal n_eval
                n_eval += 1
                opt.zero_grad()
                cost = _window_cost(v, x_b, B_half, ks[:n_obs], ctx)
                cost.backward()
                return cost

            with torch.enable_grad():
                opt.step(closure)
        return v.detach(), n_eval


class _ForecastWithTangent(torch.autograd.Function):
    """A forecast whose backward pass applies the transposed tangent linear model.

    For tiny states that integrate in numpy, the Jacobian of the whole segment
    comes from complex-step differentiation (exact to round-off, see
    :func:`xdyn.systems.tangent.forecast_with_jacobian`): one cheap
    forward pass instead of recording every torch operation of every RK4 step.
    """

    @staticmethod
    def forward(ctx_fn, x, system, dt, n_steps):
        x_next, M = forecast_with_jacobian(system, x.detach(), dt, n_steps, method="complex-step")
        ctx_fn.save_for_backward(M)
        return x_next

    @staticmethod
    def backward(ctx_fn, grad_out):
        (M,) = ctx_fn.saved_tensors
        return (grad_out.unsqueeze(-2) @ M).squeeze(-2), None, None, None


def _segment(x, n_steps, ctx):
    system = ctx.system
    if (n_steps > 0 and x.requires_grad and torch.is_grad_enabled()
            and complex_step_applies(system, x)):
        return _ForecastWithTangent.apply(x, system, ctx.dt, n_steps)
    return system.forecast(x, ctx.dt, n_steps)


def _trajectory(x0, ks, ctx):
    """States at the observation times ``ks``, starting from the control time."""
    out = []
    x = x0
    for k in ks:
        x = _segment(x, int(ctx.n_steps[k]), ctx)
        out.append(x)
    return out


def _window_cost(v, x_b, B_half, ks, ctx):
    """4D-Var cost of the preconditioned control ``v`` (summed over batch dims)."""
    cost = 0.5 * (v**2).sum()
    # B_half is symmetric: B^{1/2} v == v @ B_half along the last dim
    for k, x in zip(ks, _trajectory(x_b + v @ B_half, ks, ctx)):
        W = ctx.whitening(k)
        r = (ctx.innovation_data(k) - ctx.h(x)) @ W.T
        cost = cost + 0.5 * (r**2).sum()
    return cost
