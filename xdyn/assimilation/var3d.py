"""3D-Var with a static background covariance, solved in incremental form.

The analysis minimises ``J(x) = 1/2 |x - x_b|^2_{B^-1} + 1/2 |y - h(x)|^2_{R^-1}``
with ``x_b`` the model forecast of the previous analysis. For a linear operator
the minimiser is the closed-form BLUE ``x_a = x_b + K (y - H x_b)``,
``K = B H^T (H B H^T + R)^-1`` -- exactly DAPPER's ``Var3D`` (``da_methods/baseline.py``),
which is why DAPPER's docstring calls it "not Var-ish". For a nonlinear operator
(``Squared``), Gauss-Newton outer loops relinearise ``h`` by autodiff at the
current iterate (Courtier et al. 1994, incremental 3D/4D-Var):
``x_{j+1} = x_b + K_j (y - h(x_j) - H_j (x_b - x_j))``; one outer loop is
DAPPER's update (``Obs.linear(mu)``).

Everything is computed with whitened quantities (``W R W^T = I`` on the entries
observed at that time), so missing observations simply drop out.

Reference: Lorenc (1986), Analysis methods for numerical weather prediction,
Q. J. R. Meteorol. Soc. 112, 1177-1194.
"""

from __future__ import annotations

from numbers import Integral, Real

from xdyn.assimilation._linalg import observation_jacobian, whitened_update
from xdyn.assimilation._static import StaticCovarianceCycle
from xdyn.assimilation._validation import FiniteInterval, Interval, NumericArray
from xdyn.assimilation.climatology import fit_background_covariance

# observation_jacobian and whitened_update live in xdyn.assimilation._linalg;
# importable from here as before.
__all__ = ["Var3D", "observation_jacobian", "whitened_update"]


class Var3D(StaticCovarianceCycle):
    """3D-Var: static-covariance variational analysis of the model forecast.

    Parameters
    ----------
    system, operator, noise_std, R, dt, initial_state, initial_spread, burn_in,
    raise_on_divergence
        See :class:`xdyn.assimilation.base.BaseAssimilator`.
    B : array of shape (n_state, n_state) or None, default=None
        Background error covariance. ``None`` uses the climatological covariance
        learned by :meth:`fit` (DAPPER's ``B="clim"``).
    B_scale : float, default=1.0
        Factor on ``B`` (DAPPER's ``xB``): the climatological covariance is far
        larger than the error of a cycled forecast, so it is tuned down.
    n_outer : int, default=1
        Gauss-Newton outer loops for a nonlinear operator (ignored when linear:
        the closed form is exact).
    climatology_length : float or None, default=None
        Model time of the free run that estimates ``B`` when :meth:`fit` gets no
        ``truth`` (see :func:`xdyn.assimilation.climatology.estimate_climatology`).
        None: 100 times the system's ``climatology_burn_in`` (1000 time units for
        the nondimensional systems, 100 days for shallow water).
    return_background : bool, default=False
        Also return the forecast (``<var>_background``).
    random_state : int, RandomState or None
        Seeds the climatology free run.
    progress : bool, default=False

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
    ``fit(obs, truth)`` with a truth trajectory estimates ``B`` from it, as
    DAPPER does (``np.cov(xx.T)``); without ``truth`` it runs the model freely
    for ``climatology_length``. The output ``spread`` and ``<var>_std`` come from
    the (linearised) analysis covariance ``(I - K H) B``.

    Examples
    --------
    >>> import numpy as np
    >>> from xdyn.systems import Lorenz63
    >>> from xdyn.observe import observe
    >>> truth = Lorenz63().simulate(t_span=30, burn_in=5, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=2 ** 0.5, every=25, random_state=1)
    >>> var = Var3D(B_scale=0.1, random_state=0,
    ...             initial_state=truth.isel(time=0).to_array().values)
    >>> analysis = var.fit(obs, truth).predict(obs)
    >>> sorted(analysis.data_vars)
    ['lost', 'n_assimilated', 'spread', 'x', 'x_std', 'y', 'y_std', 'z', 'z_std']
    >>> -var.score(obs, truth) < 1.5
    True
    """

    name = "3dvar"
    aliases = ("var3d",)

    _parameter_constraints: dict = {
        **StaticCovarianceCycle._parameter_constraints,
        "B": [NumericArray((2,)), None],
        "B_scale": [FiniteInterval(Real, 0, None, closed="neither")],
        "n_outer": [Interval(Integral, 1, None, closed="left")],
        "climatology_length": [FiniteInterval(Real, 0, None, closed="neither"), None],
    }

    def __init__(self, system=None, *, operator=None, noise_std=None, R=None, dt=None,
                 B=None, B_scale=1.0, n_outer=1, climatology_length=None,
                 initial_state=None, initial_spread=1.0, burn_in=0.0,
                 return_background=False, raise_on_divergence=True,
                 random_state=None, progress=False):
        self.system = system
        self.operator = operator
        self.noise_std = noise_std
        self.R = R
        self.dt = dt
        self.B = B
        self.B_scale = B_scale
        self.n_outer = n_outer
        self.climatology_length = climatology_length
        self.initial_state = initial_state
        self.initial_spread = initial_spread
        self.burn_in = burn_in
        self.return_background = return_background
        self.raise_on_divergence = raise_on_divergence
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------ fit
    def _fit(self, ctx, truth):
        self.B_ = fit_background_covariance(self, ctx, truth)
