"""Known-but-incomplete physics models for grey-box forecasters.

A grey-box vector field is ``f(x) = f_phys(x; p) + f_nn(x, ...)``: a physics
model whose form is known but which misses a term, with physical parameters
``p`` unknown per trajectory, plus a learned correction
(:class:`xdyn.forecast.VGBDM`). A :class:`PhysicsModel` names the state
variables it acts on (in order), its parameters and their prior bounds, and
gives a batched torch right-hand side ``rhs(t, x, p)``.

The four models here are the incomplete physics of the VGB-DM benchmarks
(Singh et al. 2026, after APHYNITY, Yin et al. 2021):

* :class:`PendulumPhysics`: the frictionless pendulum (friction missing);
* :class:`RLCPhysics`: the lossless LC circuit (the resistance missing);
* :class:`FitzHughNagumoPhysics`: diffusion only (the reaction missing);
* :class:`Lorenz63Physics`: Lorenz-63 without the ``x (rho - z)`` term.

A user brings their own with :class:`FunctionPhysics` (a callable and its
parameter bounds) or a :class:`xdyn.systems.DynamicalSystem` (used as a
complete-form model with no unknown parameter); :func:`as_physics` does the
conversion.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["PhysicsModel", "PendulumPhysics", "RLCPhysics", "FitzHughNagumoPhysics",
           "Lorenz63Physics", "FunctionPhysics", "SystemPhysics", "as_physics", "PHYSICS"]


class PhysicsModel:
    """Base class: an incomplete physical right-hand side with unknown parameters.

    Subclasses set ``variables`` (state variable names, in the order of the
    state vector) and ``parameter_bounds`` (``{name: (low, high)}``, the prior
    support of each unknown parameter; a grey-box encoder maps its latent into
    this interval), and implement :meth:`rhs`.

    Examples
    --------
    >>> import torch
    >>> class Decay(PhysicsModel):
    ...     variables = ("c",)
    ...     parameter_bounds = {"rate": (0.0, 2.0)}
    ...     def rhs(self, t, x, p):
    ...         return -p[..., :1] * x
    >>> Decay().p_dim, Decay().rhs(0.0, torch.ones(4, 1), torch.full((4, 1), 0.5))[0].item()
    (1, -0.5)
    """

    variables: tuple = ()
    parameter_bounds: dict = {}

    @property
    def parameter_names(self) -> tuple:
        """Names of the unknown parameters, in the order of ``p``'s last axis."""
        return tuple(self.parameter_bounds)

    @property
    def p_dim(self) -> int:
        """Number of unknown parameters."""
        return len(self.parameter_bounds)

    def rhs(self, t, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Tendency ``dx/dt`` of the known physics, shape ``x.shape``; ``p`` is ``(..., p_dim)``."""
        raise NotImplementedError

    def true_parameters(self, ds):
        """The parameters that made ``ds``, ``(n_trajectory, p_dim)``, or None when not recorded.

        Reads data variables (one value per trajectory) or attrs named like
        the parameters.
        """
        if not self.p_dim:
            return None
        n = ds.sizes.get("trajectory", 1)
        cols = []
        for name in self.parameter_names:
            if name in ds.data_vars:
                cols.append(np.broadcast_to(np.asarray(ds[name].values, float), (n,)))
            elif name in ds.attrs:
                cols.append(np.full(n, float(ds.attrs[name])))
            else:
                return None
        return np.stack(cols, axis=-1)

    def __repr__(self):
        return f"{type(self).__name__}()"


class PendulumPhysics(PhysicsModel):
    r"""Frictionless pendulum ``theta'' = -omega0^2 sin(theta)``; the friction is missing.

    State ``(theta, omega)`` as :class:`xdyn.systems.DampedPendulum`; the unknown
    parameter is ``omega0`` (rad/s).

    Parameters
    ----------
    omega0_bounds : (float, float), default=(0.5, 3.5)
        Prior support of ``omega0``.

    Examples
    --------
    >>> import torch
    >>> PendulumPhysics().rhs(0.0, torch.tensor([[0.0, 1.0]]), torch.tensor([[2.0]]))
    tensor([[1., -0.]])
    """

    variables = ("theta", "omega")

    def __init__(self, omega0_bounds=(0.5, 3.5)):
        self.omega0_bounds = tuple(omega0_bounds)

    @property
    def parameter_bounds(self):
        return {"omega0": self.omega0_bounds}

    def rhs(self, t, x, p):
        w0 = p[..., 0]
        return torch.stack((x[..., 1], -(w0**2) * torch.sin(x[..., 0])), dim=-1)


class RLCPhysics(PhysicsModel):
    r"""Lossless LC circuit ``q' = i``, ``i' = -q / (L C)``; the resistance is missing.

    State ``(charge, current)`` as :class:`xdyn.systems.RLCCircuit` (with no
    source voltage); the unknown parameter is the product ``LC`` (s^2), the
    only combination the lossless form identifies.

    Parameters
    ----------
    LC_bounds : (float, float), default=(0.25, 6.0)
        Prior support of ``L C``.

    Examples
    --------
    >>> import torch
    >>> RLCPhysics().rhs(0.0, torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0]]))
    tensor([[ 0.0000, -0.5000]])
    """

    variables = ("charge", "current")

    def __init__(self, LC_bounds=(0.25, 6.0)):  # noqa: N803 - the physical symbol
        self.LC_bounds = tuple(LC_bounds)

    @property
    def parameter_bounds(self):
        return {"LC": self.LC_bounds}

    def rhs(self, t, x, p):
        return torch.stack((x[..., 1], -x[..., 0] / p[..., 0]), dim=-1)

    def true_parameters(self, ds):
        if "L" in ds.data_vars and "C" in ds.data_vars:
            return np.asarray((ds["L"] * ds["C"]).values, float).reshape(-1, 1)
        return super().true_parameters(ds)


class Lorenz63Physics(PhysicsModel):
    r"""Lorenz-63 without the ``x (rho - z)`` term: ``x' = sigma (y - x)``, ``y' = -y``, ``z' = x y - beta z``.

    The unknown parameters are ``sigma`` and ``beta``; ``rho`` appears only in
    the missing term, left to the learned correction.

    Parameters
    ----------
    sigma_bounds, beta_bounds : (float, float)
        Prior supports, default ``(5, 15)`` and ``(1, 4)``.

    Examples
    --------
    >>> import torch
    >>> Lorenz63Physics().rhs(0.0, torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[10.0, 2.0]]))
    tensor([[10., -2., -4.]])
    """

    variables = ("x", "y", "z")

    def __init__(self, sigma_bounds=(5.0, 15.0), beta_bounds=(1.0, 4.0)):
        self.sigma_bounds = tuple(sigma_bounds)
        self.beta_bounds = tuple(beta_bounds)

    @property
    def parameter_bounds(self):
        return {"sigma": self.sigma_bounds, "beta": self.beta_bounds}

    def rhs(self, t, x, p):
        a, b, c = x[..., 0], x[..., 1], x[..., 2]
        sigma, beta = p[..., 0], p[..., 1]
        return torch.stack((sigma * (b - a), -b, a * b - beta * c), dim=-1)


class FitzHughNagumoPhysics(PhysicsModel):
    r"""Diffusion part of FitzHugh-Nagumo: ``u_t = Du lap u``, ``v_t = Dv lap v``; the reaction is missing.

    Fields ``u`` and ``v`` on the periodic box ``[-L/2, L/2)^2`` with ``N``
    points a side (as :class:`xdyn.systems.ReactionDiffusion`); the state is
    ``u`` then ``v``, each flattened row-major ``(y, x)``. The Laplacian is
    spectral. Unknown parameters: ``Du`` and ``Dv``.

    Parameters
    ----------
    N : int, default=32
    L : float, default=2
    Du_bounds, Dv_bounds : (float, float), default=(0, 0.01)

    Examples
    --------
    >>> import math, torch
    >>> phys = FitzHughNagumoPhysics(N=8, L=2 * math.pi)
    >>> xs = torch.arange(8) * 2 * math.pi / 8
    >>> u = torch.sin(xs)[None, :].expand(8, 8)  # lap u = -u
    >>> x = torch.cat([u.reshape(-1), torch.zeros(64)])[None].double()
    >>> out = phys.rhs(0.0, x, torch.tensor([[0.5, 0.1]], dtype=torch.float64))
    >>> bool(torch.allclose(out[0, :64], -0.5 * u.reshape(-1).double(), atol=1e-6))
    True
    """

    variables = ("u", "v")

    def __init__(self, N=32, L=2.0, Du_bounds=(0.0, 0.01), Dv_bounds=(0.0, 0.01)):  # noqa: N803
        self.N = N
        self.L = L
        self.Du_bounds = tuple(Du_bounds)
        self.Dv_bounds = tuple(Dv_bounds)

    @property
    def parameter_bounds(self):
        return {"Du": self.Du_bounds, "Dv": self.Dv_bounds}

    def _k2(self, x):
        n = int(self.N)
        scale = 2 * np.pi / float(self.L)
        ky = torch.fft.fftfreq(n, 1.0 / n, dtype=x.dtype, device=x.device)[:, None] * scale
        kx = torch.fft.rfftfreq(n, 1.0 / n, dtype=x.dtype, device=x.device)[None, :] * scale
        return ky**2 + kx**2

    def check_grid(self, X):
        """Refuse fields whose ``x`` or ``y`` spacing is not this model's ``L / N``.

        Parameters
        ----------
        X : xarray.Dataset or xarray.DataArray
            The fields; a dim without a coordinate is not checked.

        Raises
        ------
        ValueError
            When a spacing differs from ``L / N``: the Laplacian, and so the
            inferred diffusivities, would be scaled by the squared ratio.
        """
        n, length = int(self.N), float(self.L)
        for dim in ("y", "x"):
            if dim not in X.coords or X[dim].size < 2:
                continue
            spacing = np.abs(np.diff(np.asarray(X[dim].values, dtype=float)))
            if not np.allclose(spacing, length / n, rtol=1e-6, atol=0.0):
                raise ValueError(
                    f"the data's {dim} spacing {spacing[0]:g} is not the physics' L/N = "
                    f"{length:g}/{n} = {length / n:g}; pass physics=FitzHughNagumoPhysics("
                    f"N=..., L=...) with L = N * spacing of the data's grid")

    def rhs(self, t, x, p):
        n = int(self.N)
        if x.shape[-1] != 2 * n * n:
            raise ValueError(f"FitzHughNagumoPhysics(N={n}) needs states of {2 * n * n} "
                             f"values (u and v on {n}x{n}), got {x.shape[-1]}")
        fields = x.reshape(*x.shape[:-1], 2, n, n)
        lap = torch.fft.irfft2(-self._k2(x) * torch.fft.rfft2(fields), s=(n, n))
        coef = p[..., :2].reshape(*p.shape[:-1], 2, 1, 1)
        return (coef * lap).reshape(x.shape)

    def true_parameters(self, ds):
        if "Du" in ds.attrs and "Dv" in ds.attrs:
            n = ds.sizes.get("trajectory", 1)
            return np.tile([float(ds.attrs["Du"]), float(ds.attrs["Dv"])], (n, 1))
        return super().true_parameters(ds)


class FunctionPhysics(PhysicsModel):
    """A user's physics as a callable ``func(t, x, p)`` (or ``func(t, x)`` without parameters).

    Parameters
    ----------
    func : callable
        Batched torch right-hand side; ``x`` is ``(..., n_state)``, ``p`` is
        ``(..., p_dim)`` in the order of ``parameter_bounds``. Define it at
        module level so that a fitted forecaster pickles. ``t`` is a relative
        time (since the training record's start in ``fit``, since the
        initial time in ``predict``): an autonomous right-hand side, not a
        forcing in calendar time.
    parameter_bounds : dict, optional
        ``{name: (low, high)}`` of the unknown parameters; none by default.
    variables : sequence of str, optional
        State variable names, in order; default: the data's order.

    Examples
    --------
    >>> import torch
    >>> phys = FunctionPhysics(lambda t, x, p: -p * x, {"rate": (0.0, 1.0)}, ["c"])
    >>> phys.p_dim, phys.rhs(0.0, torch.ones(2, 1), torch.full((2, 1), 0.5)).tolist()
    (1, [[-0.5], [-0.5]])
    """

    def __init__(self, func, parameter_bounds=None, variables=None):
        if not callable(func):
            raise TypeError(f"FunctionPhysics: func must be callable, got {func!r}")
        self.func = func
        self.parameter_bounds = dict(parameter_bounds or {})
        for name, bounds in self.parameter_bounds.items():
            lo, hi = map(float, bounds)
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise ValueError(f"parameter_bounds[{name!r}] must be finite (low, high) with "
                                 f"low < high, got {bounds!r}")
        self.variables = tuple(variables) if variables is not None else ()

    def rhs(self, t, x, p):
        return self.func(t, x, p) if self.p_dim else self.func(t, x)

    def __repr__(self):
        return f"FunctionPhysics({getattr(self.func, '__name__', self.func)!r})"


class SystemPhysics(PhysicsModel):
    """A :class:`xdyn.systems.DynamicalSystem` as a physics model with no unknown parameter.

    Parameters
    ----------
    system : DynamicalSystem

    Examples
    --------
    >>> import torch
    >>> from xdyn.systems import Lorenz63
    >>> phys = SystemPhysics(Lorenz63())
    >>> phys.variables, phys.p_dim
    (('x', 'y', 'z'), 0)
    """

    parameter_bounds = {}

    def __init__(self, system):
        self.system = system
        self.variables = tuple(v.name for v in system.variables)

    def rhs(self, t, x, p):
        return self.system.rhs(t, x).to(x.dtype)

    def __repr__(self):
        return f"SystemPhysics({self.system!r})"


PHYSICS = {"pendulum": PendulumPhysics, "rlc": RLCPhysics, "lorenz63": Lorenz63Physics,
           "reaction_diffusion": FitzHughNagumoPhysics}


def as_physics(physics):
    """A :class:`PhysicsModel` from what a user passed, or None for none.

    Parameters
    ----------
    physics : None, str, PhysicsModel, DynamicalSystem or callable
        A name in :data:`PHYSICS` (``"pendulum"``, ``"rlc"``, ``"lorenz63"``,
        ``"reaction_diffusion"``), a model, a system, or ``func(t, x)``.

    Examples
    --------
    >>> as_physics("pendulum")
    PendulumPhysics()
    >>> as_physics(3)
    Traceback (most recent call last):
    ...
    TypeError: physics must be None, a name in ['lorenz63', 'pendulum', 'reaction_diffusion', 'rlc'], a PhysicsModel, a DynamicalSystem or a callable, got 3
    """
    from xdyn.systems import DynamicalSystem

    if physics is None or isinstance(physics, PhysicsModel):
        return physics
    if isinstance(physics, str):
        if physics not in PHYSICS:
            raise ValueError(f"physics={physics!r} is unknown; use one of {sorted(PHYSICS)}")
        return PHYSICS[physics]()
    if isinstance(physics, DynamicalSystem):
        return SystemPhysics(physics)
    if callable(physics):
        return FunctionPhysics(physics)
    raise TypeError(f"physics must be None, a name in {sorted(PHYSICS)}, a PhysicsModel, a "
                    f"DynamicalSystem or a callable, got {physics!r}")
