"""Two-dimensional FitzHugh-Nagumo reaction-diffusion on a periodic grid.

The default parameters are those of PDEBench's 2-D diffusion-reaction benchmark
(Takamoto et al. 2022, ``pdebench/data_gen/configs/diff-react.yaml``); PDEBench
uses no-flux boundaries and finite volumes, xdyn a periodic box and a spectral
Laplacian. The ``"turing"`` preset is the Turing-pattern setup of Rossant's
*IPython Cookbook* (ch. 12), rewritten with ``Dv`` already divided by ``tau``.

Takamoto, M. et al. (2022). PDEBench: an extensive benchmark for scientific
machine learning. NeurIPS Datasets and Benchmarks.
"""

from __future__ import annotations

import numpy as np
import torch

from xdyn.systems.base import DynamicalSystem, StateVariable
from xdyn.systems._spectral import cached, etdrk4_coefficients, etdrk4_step, to_torch

__all__ = ["ReactionDiffusion"]


class ReactionDiffusion(DynamicalSystem):
    r"""FitzHugh-Nagumo activator ``u`` and inhibitor ``v`` on the periodic box ``[-L/2, L/2)^2``.

    .. math::

        \partial_t u = D_u \nabla^2 u + u - u^3 - k - v, \qquad
        \partial_t v = D_v \nabla^2 v + (u - v) / \tau .

    With ``tau=1`` this is PDEBench's system (``R_u = u - u^3 - k - v``,
    ``R_v = u - v``). The Laplacian is spectral; the reaction is evaluated pointwise
    on the grid (collocation, no dealiasing). Time stepping is ETDRK4 with the
    diffusion integrated exactly, so ``dt`` is limited by the reaction only
    (``dt <= 0.05`` for states with ``|u| <~ 3``; the default 0.01 also takes the
    white-noise initial states of PDEBench).

    Parameters
    ----------
    Du, Dv : float, default=1e-3, 5e-3
        Diffusion coefficients of ``u`` and ``v``.
    k : float, default=5e-3
        Excitability threshold.
    tau : float, default=1
        Time scale of the inhibitor.
    N : int, default=128
        Grid points per side.
    L : float, default=2
        Side of the box (PDEBench: ``[-1, 1]^2``).
    dtype : str or torch.dtype, default="float64"
    device : str, default="cpu"

    Examples
    --------
    >>> rd = ReactionDiffusion(N=32)
    >>> ds = rd.simulate(t_span=0.1, random_state=0)
    >>> sorted(ds.data_vars), ds.u.dims
    (['u', 'v'], ('time', 'y', 'x'))
    """

    name = "reaction_diffusion"
    default_dt = 0.01
    integrator = "etdrk4"
    presets = {
        # PDEBench 2D diffusion-reaction: t in [0, 5], 101 saved times, 128^2 cells.
        "pdebench": {"Du": 1e-3, "Dv": 5e-3, "k": 5e-3, "tau": 1.0, "N": 128, "L": 2.0,
                     "_dt": 0.01, "_save_every": 5, "_t_span": 5.0},
        # Rossant, IPython Cookbook ch. 12: a=2.8e-4, b=5e-3, tau=0.1, k=-0.005 there
        # (their "+k" is our "-k"; their dv/dt = (b lap v + u - v)/tau).
        "turing": {"Du": 2.8e-4, "Dv": 5e-2, "k": 5e-3, "tau": 0.1, "N": 100, "L": 2.0,
                   "_dt": 0.01, "_t_span": 9.0},
    }

    _parameter_constraints = {
        "Du": "real>=0", "Dv": "real>=0", "k": "real", "tau": "real>0", "N": "int>=2",
        "L": "real>0",
    }

    def __init__(self, Du=1e-3, Dv=5e-3, k=5e-3, tau=1.0, N=128, L=2.0, dtype="float64",
                 device="cpu"):
        self.Du = Du
        self.Dv = Dv
        self.k = k
        self.tau = tau
        self.N = N
        self.L = L
        self.dtype = dtype
        self.device = device

    def _variables(self):
        n = int(self.N)
        return [
            StateVariable("u", ("y", "x"), (n, n), {"units": "1", "long_name": "activator"}),
            StateVariable("v", ("y", "x"), (n, n), {"units": "1", "long_name": "inhibitor"}),
        ]

    def coords(self):
        n, length = int(self.N), float(self.L)
        pts = -length / 2 + length * (np.arange(n) + 0.5) / n  # cell centres, as PDEBench
        return {d: (d, pts, {"units": "1", "long_name": f"{d} coordinate"}) for d in ("x", "y")}

    # --- operators --------------------------------------------------------------
    def _ops_key(self):
        return (int(self.N), float(self.L), float(self.Du), float(self.Dv), self.torch_dtype,
                self.torch_device)

    def _ops(self):
        return cached(self, "ops", self._ops_key(), self._build_ops)

    def _build_ops(self):
        n = int(self.N)
        if n < 2:
            raise ValueError(f"N must be >= 2, got {n}")
        scale = 2 * np.pi / float(self.L)
        ky = np.fft.fftfreq(n, 1.0 / n)[:, None] * scale
        kx = np.fft.rfftfreq(n, 1.0 / n)[None, :] * scale
        k2 = ky**2 + kx**2
        linear = -np.stack((float(self.Du) * k2, float(self.Dv) * k2))  # (2, N, N//2+1)
        return {**to_torch({"linear": linear}, self.torch_dtype, self.torch_device),
                "linear_np": linear}

    def _etd(self, dt):
        linear = self._ops()["linear_np"]
        return cached(self, "etd", (float(dt),) + self._ops_key(),
                      lambda: to_torch(etdrk4_coefficients(linear, float(dt)),
                                       self.torch_dtype, self.torch_device))

    def _grid(self, x):
        n = int(self.N)
        return x.reshape(*x.shape[:-1], 2, n, n)

    def _reaction(self, fields):
        u, v = fields[..., 0, :, :], fields[..., 1, :, :]
        return torch.stack((u - u**3 - self.k - v, (u - v) / self.tau), dim=-3)

    def _reaction_hat(self, x_hat):
        n = int(self.N)
        fields = torch.fft.irfft2(x_hat, s=(n, n), norm="forward")
        return torch.fft.rfft2(self._reaction(fields), norm="forward")

    # --- dynamics -----------------------------------------------------------------
    def rhs(self, t, x):
        """Time derivative of the flat state ``(..., 2*N*N)`` (``u`` then ``v``)."""
        n = int(self.N)
        fields = self._grid(x)
        lap = torch.fft.irfft2(self._ops()["linear"] * torch.fft.rfft2(fields, norm="forward"),
                               s=(n, n), norm="forward")
        return (lap + self._reaction(fields)).flatten(-3)

    def step(self, x, dt):
        """One ETDRK4 step (diffusion exact, reaction by the exponential RK4 stages)."""
        return self.forecast(x, dt, 1)

    def forecast(self, x, dt, n_steps):
        n_steps = self._forecast_steps(x, n_steps)
        n = int(self.N)
        x_hat = torch.fft.rfft2(self._grid(x), norm="forward")
        coeffs = self._etd(dt)
        for _ in range(n_steps):
            x_hat = etdrk4_step(x_hat, self._reaction_hat, coeffs)
        return torch.fft.irfft2(x_hat, s=(n, n), norm="forward").flatten(-3)

    def random_initial_state(self, n, random_state=None):
        """Independent standard-normal values at every grid point, as PDEBench."""
        rng = random_state if hasattr(random_state, "normal") else np.random.RandomState(random_state)
        return rng.normal(size=(n, self.n_state))
