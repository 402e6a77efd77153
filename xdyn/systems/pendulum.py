"""Damped pendulum, and per-trajectory physical parameters for grey-box forecasting.

:class:`ParametricSystemMixin` lets ``simulate`` draw a system's physical
parameters per trajectory from ranges and record them as data variables along
``trajectory``; the right-hand side then sees per-batch parameter tensors.
:class:`~xdyn.systems.rlc.RLCCircuit` uses it too.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import torch
from sklearn.utils import check_random_state

from xdyn.systems._simulate import initial_states, seed_record
from xdyn.systems._validation import _check_constraint, _check_int
from xdyn.systems.base import DynamicalSystem, StateVariable

__all__ = ["DampedPendulum", "ParametricSystemMixin"]


class ParametricSystemMixin:
    """``simulate(..., parameter_ranges=...)``: physical parameters drawn per trajectory.

    A parameter may be a float or a tensor broadcastable to the state's leading
    dims ``x.shape[:-1]`` (one value per batch member); the right-hand side reads
    it through :meth:`parameter`. Subclasses list their physical parameters, with
    CF attributes, in ``parameter_attrs``.

    Examples
    --------
    A decay ``dc/dt = -rate c`` whose rate is drawn per trajectory; listed
    before :class:`~xdyn.systems.DynamicalSystem` so its ``simulate`` is the
    one called:

    >>> import numpy as np
    >>> from xdyn.systems import DynamicalSystem, StateVariable
    >>> class Relaxation(ParametricSystemMixin, DynamicalSystem):
    ...     parameter_attrs = {"rate": {"units": "s-1", "long_name": "decay rate"}}
    ...     def __init__(self, rate=1.0):
    ...         self.rate = rate
    ...     def rhs(self, t, x):
    ...         return (-self.parameter("rate", x) * x[..., 0])[..., None]
    ...     def _variables(self):
    ...         return [StateVariable("c", attrs={"units": "1"})]
    ...     def random_initial_state(self, n, random_state=None):
    ...         return np.ones((n, 1))
    >>> ds = Relaxation().simulate(n_trajectories=3, t_span=1.0, dt=0.1, random_state=0,
    ...                            parameter_ranges={"rate": (0.0, 2.0)})
    >>> ds.rate.dims, ds.rate.attrs["units"]
    (('trajectory',), 's-1')
    >>> bool(np.allclose(ds.c.isel(time=-1), np.exp(-ds.rate), atol=1e-5))  # c(1) = exp(-rate)
    True
    >>> Relaxation().simulate(t_span=1.0, parameter_ranges={"mass": (1.0, 2.0)})
    Traceback (most recent call last):
    ...
    ValueError: Relaxation has no physical parameter 'mass'; parameter_ranges may set ['rate']
    """

    parameter_attrs: dict[str, dict] = {}

    def simulate(self, n_trajectories=1, t_span=None, dt=None, save_every=1, burn_in=0.0,
                 x0=None, random_state=None, n_steps=None, progress=False,
                 parameter_ranges=None):
        """Integrate as :meth:`DynamicalSystem.simulate`, optionally with random parameters.

        Parameters
        ----------
        parameter_ranges : dict, optional
            ``{name: (low, high)}``: each trajectory gets its own value of ``name``,
            drawn uniformly with ``random_state`` (after the initial states, so the
            same seed gives the same initial states with or without ranges). The
            values become data variables along ``trajectory``. Both bounds must
            satisfy the parameter's own constraint (an inductance range above 0).

        The other parameters are those of :meth:`DynamicalSystem.simulate`; ``x0``
        and ``n_trajectories`` must agree as there (``x0`` of shape
        ``(n_trajectories, n_state)``: one parameter draw per given state).
        """
        if not parameter_ranges:
            return DynamicalSystem.simulate(
                self, n_trajectories=n_trajectories, t_span=t_span, dt=dt,
                save_every=save_every, burn_in=burn_in, x0=x0, random_state=random_state,
                n_steps=n_steps, progress=progress)
        ranges = self._check_ranges(parameter_ranges)
        n_trajectories = _check_int(n_trajectories, "n_trajectories", 1)
        rng = check_random_state(random_state)
        # the checks and draws of the plain simulate: x0 and n_trajectories must agree
        x0, single = initial_states(self, x0, n_trajectories, rng)
        values = {name: rng.uniform(lo, hi, size=len(x0)) for name, (lo, hi) in ranges.items()}
        system = copy.copy(self)
        for name, val in values.items():
            setattr(system, name, self.as_tensor(val))
        ds = DynamicalSystem.simulate(
            system, t_span=t_span, dt=dt, save_every=save_every, burn_in=burn_in,
            x0=x0[0] if single else x0, n_steps=n_steps, progress=progress)
        ds.attrs["random_state"] = seed_record(random_state)
        ds.attrs.update(self.describe())
        ds.attrs["parameter_ranges"] = json.dumps({k: list(v) for k, v in ranges.items()})
        dims = () if single else ("trajectory",)
        for name, val in values.items():
            attrs = {**self.parameter_attrs.get(name, {}), "comment": f"drawn from U{ranges[name]}"}
            ds[name] = (dims, val[0] if single else val, attrs)
        return ds

    def _check_ranges(self, parameter_ranges) -> dict:
        out = {}
        for name, bounds in dict(parameter_ranges).items():
            if name not in self.parameter_attrs:
                raise ValueError(f"{type(self).__name__} has no physical parameter {name!r}; "
                                 f"parameter_ranges may set {sorted(self.parameter_attrs)}")
            lo, hi = map(float, bounds)
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise ValueError(f"parameter_ranges[{name!r}] must be finite (low, high) with "
                                 f"low <= high, got {bounds!r}")
            # every drawn value lies in [low, high]: both bounds obey the scalar's constraint
            kind = self._parameter_constraints.get(name)
            if kind is not None:
                for bound in (lo, hi):
                    _check_constraint(bound, f"parameter_ranges[{name!r}]", kind,
                                      type(self).__name__)
            out[name] = (lo, hi)
        return out


class DampedPendulum(ParametricSystemMixin, DynamicalSystem):
    r"""Damped pendulum ``theta'' + damping theta' + omega0^2 sin(theta) = 0``.

    State ``theta`` (rad) and ``omega = theta'`` (rad/s); time in seconds. The
    energy per unit ``m l^2``, ``omega^2 / 2 + omega0^2 (1 - cos theta)``, decays at
    the rate ``damping * omega^2`` (:meth:`energy`).

    Parameters
    ----------
    omega0 : float or tensor, default=1
        Small-angle angular frequency ``sqrt(g / l)`` (rad/s).
    damping : float or tensor, default=0.1
        Damping rate ``alpha`` (1/s). Either parameter may be a tensor broadcastable
        to the state's leading dims (one value per batch member).
    dtype : str or torch.dtype, default="float64"
    device : str, default="cpu"

    Examples
    --------
    >>> ds = DampedPendulum().simulate(
    ...     n_trajectories=4, t_span=1.0, random_state=0,
    ...     parameter_ranges={"damping": (0.0, 0.5)})
    >>> ds.damping.dims, ds.theta.attrs["units"]
    (('trajectory',), 'rad')
    """

    name = "damped_pendulum"
    default_dt = 0.01
    time_units = "s"
    parameter_attrs = {
        "omega0": {"units": "rad s-1", "long_name": "small-angle angular frequency"},
        "damping": {"units": "s-1", "long_name": "damping rate"},
    }
    presets = {"undamped": {"damping": 0.0}}

    _parameter_constraints = {"omega0": "real", "damping": "real"}

    def __init__(self, omega0=1.0, damping=0.1, dtype="float64", device="cpu"):
        self.omega0 = omega0
        self.damping = damping
        self.dtype = dtype
        self.device = device

    def _variables(self):
        return [
            StateVariable("theta", attrs={"units": "rad", "long_name": "angle from the downward vertical"}),
            StateVariable("omega", attrs={"units": "rad s-1", "long_name": "angular velocity"}),
        ]

    def rhs(self, t, x):
        theta, omega = x[..., 0], x[..., 1]
        w0, alpha = self.parameter("omega0", x), self.parameter("damping", x)
        return torch.stack((omega, -alpha * omega - w0**2 * torch.sin(theta)), dim=-1)

    def energy(self, x):
        """Mechanical energy per unit ``m l^2``, shape ``x.shape[:-1]``.

        Examples
        --------
        >>> p = DampedPendulum(omega0=2.0)
        >>> float(p.energy(torch.tensor([np.pi, 0.0], dtype=torch.float64)))
        8.0
        """
        x = self.as_tensor(x)
        return 0.5 * x[..., 1] ** 2 + self.parameter("omega0", x) ** 2 * (1 - torch.cos(x[..., 0]))

    def random_initial_state(self, n, random_state=None):
        """Angles uniform in ``(-pi/2, pi/2)``, angular velocities uniform in ``(-1, 1)`` rad/s."""
        rng = check_random_state(random_state)
        return np.column_stack((rng.uniform(-np.pi / 2, np.pi / 2, n), rng.uniform(-1.0, 1.0, n)))
