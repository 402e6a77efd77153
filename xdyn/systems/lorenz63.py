"""Lorenz (1963) three-variable convection model.

Lorenz, E. N. (1963). Deterministic nonperiodic flow. J. Atmos. Sci., 20, 130-141.
"""

from __future__ import annotations

import numpy as np
import torch

from xdyn.systems.base import DynamicalSystem, StateVariable

__all__ = ["Lorenz63"]


class Lorenz63(DynamicalSystem):
    """Lorenz-63 system ``x' = sigma (y - x)``, ``y' = x (rho - z) - y``, ``z' = x y - beta z``.

    Parameters
    ----------
    sigma, rho, beta : float
        Prandtl number, Rayleigh number ratio and geometric factor
        (default: the classical chaotic values 10, 28, 8/3).
    dtype : str or torch.dtype, default="float64"
    device : str, default="cpu"
        ``"auto"`` picks CUDA when present.

    Examples
    --------
    >>> ds = Lorenz63().simulate(n_steps=100, dt=0.01, random_state=0)
    >>> sorted(ds.data_vars)
    ['x', 'y', 'z']
    >>> ds.sizes["time"]
    101
    """

    name = "lorenz63"
    default_dt = 0.01
    presets = {
        # Sakov, Oliver & Bertino (2012), used by DAPPER's Lorenz63/sakov2012; its
        # observations are in xdyn.experiments.setups.sakov2012
        "sakov2012": {"_dt": 0.01},
    }

    _parameter_constraints = {"sigma": "real", "rho": "real", "beta": "real"}

    def __init__(self, sigma=10.0, rho=28.0, beta=8.0 / 3.0, dtype="float64", device="cpu"):
        self.sigma = sigma
        self.rho = rho
        self.beta = beta
        self.dtype = dtype
        self.device = device

    def _variables(self):
        attrs = {"units": "1"}
        return [
            StateVariable("x", attrs={**attrs, "long_name": "convective intensity"}),
            StateVariable("y", attrs={**attrs, "long_name": "horizontal temperature difference"}),
            StateVariable("z", attrs={**attrs, "long_name": "vertical temperature difference"}),
        ]

    supports_numpy = True

    def _numpy_operators(self) -> np.ndarray:
        """``[L | Q]`` (3 x 6) with ``rhs(x) = x @ L + x_0 * (x @ Q)``, cached per parameters."""
        key = (self.sigma, self.rho, self.beta)
        cached = self.__dict__.get("_operators_cache")
        if cached is None or cached[0] != key:
            sigma, rho, beta = map(float, key)
            L = np.array([[-sigma, rho, 0.0], [sigma, -1.0, 0.0], [0.0, 0.0, -beta]])
            Q = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
            cached = (key, np.hstack([L, Q]))
            self._operators_cache = cached
        return cached[1]

    def componentwise_tendency(self, a, b, c, params=None):
        """Time derivative from the three components (scalars or arrays, real or complex).

        Shared by :meth:`rhs` and by integrators that hold a few tiny states as
        Python numbers (:func:`xdyn.systems.integrators.rk4_forecast_components`).
        ``params`` is ``(sigma, rho, beta)`` when given, the system's own otherwise.
        """
        sigma, rho, beta = (self.sigma, self.rho, self.beta) if params is None else params
        return (sigma * (b - a), a * (rho - c) - b, a * b - beta * c)

    def rhs(self, t, x):
        # written once for torch tensors and numpy arrays (see DynamicalSystem.forecast)
        if isinstance(x, np.ndarray):  # the tiny-state fast path: fewest numpy calls
            if x.ndim == 1:
                return np.array(self.componentwise_tendency(*x))  # numpy scalars
            # linear part and the two products in one matmul: x @ [L | Q], then x_0 * (x @ Q)
            y = x @ self._numpy_operators().astype(x.real.dtype, copy=False)  # keep float32
            return y[..., :3] + x[..., :1] * y[..., 3:]
        # parameters as tensors of x's dtype: one value per trajectory, or learnable
        params = tuple(self.parameter(name, x[..., 0]) for name in ("sigma", "rho", "beta"))
        return torch.stack(self.componentwise_tendency(x[..., 0], x[..., 1], x[..., 2], params),
                           dim=-1)

    def random_initial_state(self, n, random_state=None):
        rng = np.random.RandomState(random_state) if not hasattr(random_state, "normal") else random_state
        # Near the attractor (DAPPER's mu0 = [1.509, -1.531, 25.46]) with unit spread.
        return np.array([1.509, -1.531, 25.46]) + rng.normal(size=(n, 3))
