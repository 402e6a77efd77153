"""Lorenz (1996) single-scale model on a periodic ring of sites.

Lorenz, E. N. (1996). Predictability: a problem partly solved. ECMWF Seminar.
"""

from __future__ import annotations

import numpy as np

from xdyn.systems.base import DynamicalSystem, StateVariable
from xdyn.systems.integrators import array_namespace

__all__ = ["Lorenz96"]


class Lorenz96(DynamicalSystem):
    """Lorenz-96 ``dx_k/dt = (x_{k+1} - x_{k-2}) x_{k-1} - x_k + F`` on ``n`` periodic sites.

    Parameters
    ----------
    n : int, default=40
        Number of sites (dim ``k``), at least 4.
    F : float, default=8
        Forcing.
    dtype : str or torch.dtype, default="float64"
    device : str, default="cpu"

    Examples
    --------
    >>> ds = Lorenz96(n=40).simulate(n_steps=10, dt=0.05, random_state=0)
    >>> ds.x.dims
    ('time', 'k')
    """

    name = "lorenz96"
    default_dt = 0.05
    presets = {
        # Sakov & Oke (2008): all 40 sites observed every step, dt=0.05, R = I.
        "sakov2008": {"n": 40, "F": 8.0, "_dt": 0.05, "_obs_every": 1, "_noise_std": 1.0},
        "lorenz1996": {"n": 40, "F": 8.0, "_dt": 0.05},
    }

    # four distinct sites k-2, k-1, k, k+1 in the advection term
    _parameter_constraints = {"n": "int>=4", "F": "real"}

    def __init__(self, n=40, F=8.0, dtype="float64", device="cpu"):
        self.n = n
        self.F = F
        self.dtype = dtype
        self.device = device

    def _variables(self):
        return [
            StateVariable(
                "x", ("k",), (int(self.n),),
                {"units": "1", "long_name": "Lorenz-96 slow variable"},
            )
        ]

    def coords(self):
        return {"k": ("k", np.arange(int(self.n)), {"long_name": "site index"})}

    supports_numpy = True

    def rhs(self, t, x):
        # one circular pad then shifted views: no Python loop over sites or members;
        # written once for torch tensors and numpy arrays (see DynamicalSystem.forecast)
        padded = array_namespace(x).concatenate((x[..., -2:], x, x[..., :1]), axis=-1)
        return (padded[..., 3:] - padded[..., :-3]) * padded[..., 1:-2] - x + self.F

    def random_initial_state(self, n, random_state=None):
        rng = np.random.RandomState(random_state) if not hasattr(random_state, "normal") else random_state
        return self.F * np.ones((n, int(self.n))) + rng.normal(size=(n, int(self.n)))
