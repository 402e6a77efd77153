"""Lorenz (1996) single-scale model on a periodic ring of sites.

Lorenz, E. N. (1996). Predictability: a problem partly solved. ECMWF Seminar.
"""

from __future__ import annotations

import numpy as np
import torch

from xdyn.systems._validation import _check_int
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
        # Sakov & Oke (2008); its observations are in xdyn.experiments.setups.sakov2008
        "sakov2008": {"n": 40, "F": 8.0, "_dt": 0.05},
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
        forcing = self.F if isinstance(x, np.ndarray) else self.parameter("F", x)
        return (padded[..., 3:] - padded[..., :-3]) * padded[..., 1:-2] - x + forcing

    # Ensembles at least this large take the site-major in-place kernel below
    ensemble_kernel_min_members = 32

    def forecast(self, x, dt, n_steps):
        """Advance ``x`` by ``n_steps`` RK4 steps; an ensemble on the CPU without autograd
        takes a fused in-place kernel (:func:`_rk4_site_major`), a single state the
        generic path (torch when ``F`` is a tensor or one value per trajectory)."""
        # the kernel hard-codes this class's rhs and RK4 step: not for a subclass that
        # overrides either (model noise, another integrator) nor for a patched rhs; it
        # reads F as a float, which would drop the gradient of a tensor F
        n_steps = _check_int(n_steps, "n_steps", 0)
        own_rhs = (type(self).rhs is Lorenz96.rhs and type(self).step is DynamicalSystem.step
                   and "rhs" not in self.__dict__ and self._has_scalar_parameters())
        if (own_rhs and isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.ndim >= 2
                and n_steps > 0 and not (torch.is_grad_enabled() and x.requires_grad)
                and x.numel() // max(x.shape[-1], 1) >= self.ensemble_kernel_min_members):
            self._check_state(x)  # the generic path checks it in super().forecast
            z = x.detach().numpy().reshape(-1, x.shape[-1])
            with np.errstate(over="ignore", invalid="ignore"):
                z = _rk4_site_major(z, float(dt), n_steps, float(self.F))
            return torch.from_numpy(z).reshape(x.shape)
        return super().forecast(x, dt, n_steps)

    def random_initial_state(self, n, random_state=None):
        rng = np.random.RandomState(random_state) if not hasattr(random_state, "normal") else random_state
        return self.F * np.ones((n, int(self.n))) + rng.normal(size=(n, int(self.n)))


def _tendency_site_major(P, out, F):
    """Lorenz-96 tendency of states held site-major with ghost rows, written into ``out``.

    ``P`` is ``(n + 3, batch)``: rows 2..n+1 are the sites, rows 0-1 copies of the
    last two sites and row n+2 a copy of the first (:func:`_fill_ghosts`), so that
    every shifted neighbour is one whole-array slice: four passes over the ensemble
    and no temporaries.
    """
    np.subtract(P[3:], P[:-3], out=out)
    out *= P[1:-2]
    out -= P[2:-1]
    out += F
    return out


def _fill_ghosts(P):
    n = P.shape[0] - 3
    P[0:2] = P[n:n + 2]
    P[n + 2] = P[2]


def _rk4_site_major(x, dt, n_steps, F):
    """``n_steps`` RK4 steps of a batch of states ``(batch, n)``, in place on
    preallocated site-major buffers (the ensemble forecast of the filters).

    The same arithmetic as :func:`xdyn.systems.integrators.rk4_step_numpy` on
    :meth:`Lorenz96.rhs`, up to the order of floating-point operations.
    """
    n = x.shape[-1]
    P = np.empty((n + 3, len(x)), dtype=x.dtype)  # the state, with ghost rows
    P[2:-1] = x.T
    _fill_ghosts(P)
    Q = np.empty_like(P)  # the intermediate stages, with ghost rows
    z, q = P[2:-1], Q[2:-1]
    k1, k2, k3, k4 = (np.empty_like(z) for _ in range(4))
    h = z.dtype.type(dt / 2)
    full = z.dtype.type(dt)
    sixth = z.dtype.type(dt / 6)
    for _ in range(n_steps):
        _tendency_site_major(P, k1, F)
        np.multiply(k1, h, out=q)
        q += z
        _fill_ghosts(Q)
        _tendency_site_major(Q, k2, F)
        np.multiply(k2, h, out=q)
        q += z
        _fill_ghosts(Q)
        _tendency_site_major(Q, k3, F)
        np.multiply(k3, full, out=q)
        q += z
        _fill_ghosts(Q)
        _tendency_site_major(Q, k4, F)
        k2 += k3
        k2 *= 2.0
        k2 += k1
        k2 += k4
        k2 *= sixth
        z += k2
        _fill_ghosts(P)
    return np.ascontiguousarray(z.T)
