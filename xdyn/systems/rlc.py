"""Series RLC circuit driven by a constant source, in the charge-current formulation."""

from __future__ import annotations

import torch
from sklearn.utils import check_random_state

from xdyn.systems.base import DynamicalSystem, StateVariable
from xdyn.systems.pendulum import ParametricSystemMixin

__all__ = ["RLCCircuit"]


class RLCCircuit(ParametricSystemMixin, DynamicalSystem):
    r"""Series RLC circuit ``q' = i``, ``i' = (V - R i - q / C) / L``.

    The state is the capacitor charge ``q`` (C) and the loop current ``i`` (A), the
    formulation in which the stored energy ``q^2 / (2C) + L i^2 / 2`` (J) has the
    budget ``dE/dt = V i - R i^2`` (:meth:`energy`). Time in seconds. The circuit
    is underdamped when ``R < 2 sqrt(L / C)``.

    Parameters
    ----------
    R : float or tensor, default=0.5
        Resistance (ohm).
    L : float or tensor, default=1
        Inductance (H).
    C : float or tensor, default=1
        Capacitance (F).
    voltage : float or tensor, default=0
        Constant source voltage ``V`` (V). Every parameter may be a tensor
        broadcastable to the state's leading dims (one value per batch member), and
        may be drawn per trajectory with ``simulate(parameter_ranges=...)``.
    dtype : str or torch.dtype, default="float64"
    device : str, default="cpu"

    Examples
    --------
    >>> ds = RLCCircuit().simulate(n_trajectories=3, t_span=1.0, random_state=0,
    ...                            parameter_ranges={"R": (0.1, 1.0)})
    >>> ds.R.attrs["units"], ds.current.attrs["units"]
    ('ohm', 'A')
    """

    name = "rlc_circuit"
    default_dt = 0.01
    time_units = "s"
    parameter_attrs = {
        "R": {"units": "ohm", "long_name": "resistance"},
        "L": {"units": "H", "long_name": "inductance"},
        "C": {"units": "F", "long_name": "capacitance"},
        "voltage": {"units": "V", "long_name": "source voltage"},
    }
    presets = {"lossless": {"R": 0.0}}

    _parameter_constraints = {"R": "real>=0", "L": "real>0", "C": "real>0", "voltage": "real"}

    def __init__(self, R=0.5, L=1.0, C=1.0, voltage=0.0, dtype="float64", device="cpu"):
        self.R = R
        self.L = L
        self.C = C
        self.voltage = voltage
        self.dtype = dtype
        self.device = device

    def _variables(self):
        return [
            StateVariable("charge", attrs={"units": "C", "long_name": "capacitor charge"}),
            StateVariable("current", attrs={"units": "A", "long_name": "loop current"}),
        ]

    def rhs(self, t, x):
        q, i = x[..., 0], x[..., 1]
        p = {name: self.parameter(name, x) for name in ("R", "L", "C", "voltage")}
        return torch.stack((i, (p["voltage"] - p["R"] * i - q / p["C"]) / p["L"]), dim=-1)

    def energy(self, x):
        """Stored energy ``q^2 / (2C) + L i^2 / 2`` (J), shape ``x.shape[:-1]``.

        Examples
        --------
        >>> float(RLCCircuit(L=2.0, C=0.5).energy(torch.tensor([1.0, 1.0], dtype=torch.float64)))
        2.0
        """
        x = self.as_tensor(x)
        return x[..., 0] ** 2 / (2 * self.parameter("C", x)) + 0.5 * self.parameter("L", x) * x[..., 1] ** 2

    def random_initial_state(self, n, random_state=None):
        """Charges uniform in ``(-1, 1)`` C and currents uniform in ``(-1, 1)`` A."""
        rng = check_random_state(random_state)
        return rng.uniform(-1.0, 1.0, size=(n, 2))
