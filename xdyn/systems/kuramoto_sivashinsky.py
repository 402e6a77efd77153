"""Kuramoto-Sivashinsky equation on a periodic domain, stepped with ETDRK4.

``u_t = -u u_x - u_xx - u_xxxx`` on ``[0, L)``, Fourier pseudo-spectral in
space (``torch.fft.rfft``/``irfft``, no dealiasing) and exponential time
differencing RK4 in time, following

Kassam, A.-K. & Trefethen, L. N. (2005). Fourth-order time-stepping for stiff
PDEs. SIAM J. Sci. Comput., 26(4), 1214-1233 (the ``kursiv.m`` program).
"""

from __future__ import annotations

import numpy as np
import torch

from xdyn.systems._spectral import cached, complex_dtype, etdrk4_coefficients, etdrk4_step, to_torch
from xdyn.systems.base import DynamicalSystem, StateVariable

__all__ = ["KuramotoSivashinsky"]


class KuramotoSivashinsky(DynamicalSystem):
    r"""Kuramoto-Sivashinsky equation ``u_t = -u u_x - u_xx - u_xxxx``, periodic on ``[0, L)``.

    The state is ``u`` on ``N`` equispaced points ``x = L * arange(N) / N``.
    :meth:`step` is ETDRK4 (Kassam & Trefethen 2005) with coefficients from a
    contour integral, cached per ``(dt, dtype, device)``; it is batched over
    leading dims and differentiable with torch autograd. :meth:`rhs` is the full
    semi-discrete time derivative, so RK4 on it (``rk4_step(model.rhs, ...)``)
    solves the same ODE with an explicit scheme (stable only for small ``dt``).
    At the default ``dt = 1/4`` the relative error after 5 time units is
    ~2e-4. The scheme is fourth order, but on the stiff default grid it shows
    the order reduction of Hochbruck & Ostermann (2005): about 3 for
    ``dt`` ~ 0.1-0.5, rising to 4 as ``dt`` shrinks.

    The spatial mean of ``u`` is an invariant: the ``k = 0`` mode has no linear
    growth and the nonlinear term ``-(u^2)_x / 2`` has zero mean, so ETDRK4
    keeps it to round-off.

    Parameters
    ----------
    L : float, default=32*pi
        Domain length.
    N : int, default=128
        Number of grid points (even).
    dtype : str or torch.dtype, default="float64"
    device : str, default="cpu"

    References
    ----------
    Kassam & Trefethen (2005); Cox, S. M. & Matthews, P. C. (2002). Exponential
    time differencing for stiff systems. J. Comput. Phys., 176, 430-455;
    Hochbruck, M. & Ostermann, A. (2005). Explicit exponential Runge-Kutta
    methods for semilinear parabolic problems. SIAM J. Numer. Anal., 43,
    1069-1090 (the order reduction seen on stiff problems); Cvitanovic, P., Davidchack, R. L. & Siminos, E.
    (2010). On the state space geometry of the Kuramoto-Sivashinsky flow in a
    periodic domain. SIAM J. Appl. Dyn. Syst., 9(1), 1-33.

    Examples
    --------
    >>> model = KuramotoSivashinsky()
    >>> ds = model.simulate(t_span=10.0, random_state=0)
    >>> ds.u.dims, ds.sizes["time"]
    (('time', 'x'), 41)
    >>> bool(abs(ds.u.mean("x")).max() < 1e-12)  # the mean is conserved
    True
    """

    name = "kuramoto_sivashinsky"
    default_dt = 0.25
    integrator = "etdrk4"
    presets = {
        # Kassam & Trefethen (2005), kursiv.m: L = 32 pi, N = 128, h = 1/4.
        "kassam2005": {"L": 32 * np.pi, "N": 128, "_dt": 0.25},
        # L = 22, the chaotic domain studied by Cvitanovic et al. (2010); N = 64
        # and h = 1/4 as in their ``ksfmstp`` integrator.
        "cvitanovic2010": {"L": 22.0, "N": 64, "_dt": 0.25},
    }

    _parameter_constraints = {"L": "real>0", "N": "int>=4"}

    def __init__(self, L=32 * np.pi, N=128, dtype="float64", device="cpu"):
        self.L = L
        self.N = N
        self.dtype = dtype
        self.device = device

    def _variables(self):
        return [
            StateVariable(
                "u", ("x",), (int(self.N),),
                {"units": "1", "long_name": "Kuramoto-Sivashinsky field"},
            )
        ]

    def coords(self):
        x = float(self.L) * np.arange(int(self.N)) / int(self.N)
        return {"x": ("x", x, {"units": "1", "long_name": "position"})}

    # --- spectral operators -------------------------------------------------
    def _wavenumbers(self) -> np.ndarray:
        N = int(self.N)
        if N < 4 or N % 2:
            raise ValueError(f"N must be an even integer >= 4, got {self.N}")
        if not float(self.L) > 0:
            raise ValueError(f"L must be positive, got {self.L}")
        return 2 * np.pi / float(self.L) * np.arange(N // 2 + 1)

    def _operators(self):
        """Linear symbol ``L(k) = k^2 - k^4`` and nonlinear factor ``-i k / 2``."""
        k = self._wavenumbers()
        lin = k**2 - k**4
        # The Nyquist mode gets no first derivative (it would be imaginary for a
        # real field), as in Kassam & Trefethen; it keeps its true damping.
        k_deriv = k.copy()
        k_deriv[-1] = 0.0
        return lin, -0.5j * k_deriv

    def _coefficients(self, dt: float, dtype=None, device=None):
        """ETDRK4 coefficients ``(E, E2, Q, f1, f2, f3, g)`` for step ``dt``.

        Cached per (dt, dtype, device, L, N): the key holds ``L`` and ``N`` too,
        so ``set_params`` never reuses stale coefficients.
        """
        dtype = self.torch_dtype if dtype is None else dtype
        device = self.torch_device if device is None else torch.device(device)

        def build():
            lin, g = self._operators()
            c = to_torch(etdrk4_coefficients(lin, float(dt)), dtype, device)
            g = torch.as_tensor(g, dtype=complex_dtype(dtype), device=device)
            return tuple(c[k] for k in ("E", "E2", "Q", "f1", "f2", "f3")) + (g,)

        return cached(self, "etdrk4", (float(dt), dtype, device, float(self.L), int(self.N)), build)

    def _nonlinear(self, v, g):
        u = torch.fft.irfft(v, n=int(self.N), dim=-1)
        return g * torch.fft.rfft(u * u, dim=-1)

    # --- dynamics ---------------------------------------------------------
    def rhs(self, t, x):
        def build():
            lin, g = self._operators()
            return (torch.as_tensor(lin, dtype=x.dtype, device=x.device),
                    torch.as_tensor(g, dtype=complex_dtype(x.dtype), device=x.device))

        lin, g = cached(self, "rhs", (x.dtype, x.device, float(self.L), int(self.N)), build)
        v = torch.fft.rfft(x, dim=-1)
        return torch.fft.irfft(lin * v + self._nonlinear(v, g), n=int(self.N), dim=-1)

    def step(self, x, dt):
        """One ETDRK4 step (Cox & Matthews 2002, as in Kassam & Trefethen's ``kursiv.m``)."""
        E, E2, Q, f1, f2, f3, g = self._coefficients(dt, x.dtype, x.device)
        coeffs = {"E": E, "E2": E2, "Q": Q, "f1": f1, "f2": f2, "f3": f3}
        v = etdrk4_step(torch.fft.rfft(x, dim=-1), lambda v: self._nonlinear(v, g), coeffs)
        return torch.fft.irfft(v, n=int(self.N), dim=-1)

    def random_initial_state(self, n, random_state=None):
        """Kassam & Trefethen's ``cos(x') (1 + sin(x'))``, ``x' = 2 pi x / L``, plus small random low modes.

        Every term is a non-constant Fourier mode, so the mean is zero.
        """
        rng = np.random.RandomState(random_state) if not hasattr(random_state, "normal") else random_state
        theta = 2 * np.pi * np.arange(int(self.N)) / int(self.N)
        base = np.cos(theta) * (1 + np.sin(theta))
        modes = np.arange(1, min(8, int(self.N) // 2 - 1) + 1)
        a = rng.normal(scale=0.1, size=(n, modes.size))
        b = rng.normal(scale=0.1, size=(n, modes.size))
        phase = modes[:, None] * theta[None, :]
        noise = a @ np.cos(phase) + b @ np.sin(phase)
        u = base[None, :] + noise
        return u - u.mean(axis=-1, keepdims=True)
