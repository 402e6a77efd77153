"""The pieces every published setup is made of: a tuning row and a twin setup."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["MethodConfig", "TwinSetup", "twin_data"]


@dataclasses.dataclass
class MethodConfig:
    """A named assimilator configuration: one row of a comparison or tuning table.

    Parameters
    ----------
    label : str
        The row's name in tables and in ``summary.csv``.
    method : str
        A registered assimilator name (see
        :func:`xdyn.assimilation.registered_assimilators`).
    params : dict
        Constructor parameters of that assimilator.
    reference_rmse : float or None
        The time-averaged analysis RMSE DAPPER 1.7.1 gives on this setup (the
        project's measurement; None where it was not measured).
    dapper : tuple of (str, dict) or None
        The same configuration in DAPPER: its ``da_methods`` name and parameters.
    dapper_expected : float or None
        The "Expected rmse.a" that DAPPER's own setup file lists for this
        configuration (None where it lists none).

    Examples
    --------
    >>> MethodConfig("EnKF N=20", "enkf", {"n_members": 20}).method
    'enkf'
    """

    label: str
    method: str
    params: dict
    reference_rmse: float | None = None
    dapper: tuple[str, dict] | None = None
    dapper_expected: float | None = None


def twin_data(system, operator, noise_std, obs_every, n_cycles, *, dt=None, seed=0,
              spin_up=10.0):
    """A perfect-model truth and its synthetic observations, both from ``seed``.

    The truth runs ``n_cycles * obs_every`` steps of ``dt`` after a spin-up of
    ``spin_up`` model time from a random state drawn with ``seed``; the
    observations of every ``obs_every``-th step use ``seed + 1``.

    Parameters
    ----------
    system : DynamicalSystem
    operator : ObservationOperator or spec
        Anything :func:`xdyn.observe.make_operator` takes.
    noise_std : float
        Observation error standard deviation.
    obs_every : int
        Model steps between observations.
    n_cycles : int
        Number of observation times after the first.
    dt : float or None
        Model step; the system's ``default_dt`` if None.
    seed : int
    spin_up : float
        Model time run and discarded before the truth starts.

    Returns
    -------
    truth, obs : xarray.Dataset

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> truth, obs = twin_data(Lorenz63(), "identity", 1.0, 5, 10, spin_up=1.0)
    >>> truth.sizes["time"], obs.sizes["time"], obs.sizes["obs"]
    (51, 11, 3)
    """
    from xdyn.observe import make_operator, observe

    dt = system.default_dt if dt is None else dt
    truth = system.simulate(n_steps=n_cycles * obs_every, dt=dt, burn_in=spin_up,
                            random_state=seed)
    obs = observe(truth, make_operator(operator), noise_std=noise_std, every=obs_every,
                  random_state=seed + 1)
    return truth, obs


@dataclasses.dataclass(frozen=True)
class TwinSetup:
    """A published twin-experiment setup: model, observations, start, and tuned methods.

    As DAPPER's ``mods/<Model>/<paper>.py``: one object per paper that twin
    experiments, benchmarks, examples and tests read, so the numbers are
    written once.

    Parameters
    ----------
    name : str
        Short name (``"sakov2008"``).
    citation : str
        The paper, and the DAPPER file of the same setup.
    system : str
        Registered system name (see :func:`xdyn.systems.registry.make_system`).
    preset : str
        The system's preset with the paper's parameters; its ``dt`` setting
        is the model step (see :meth:`DynamicalSystem.preset_settings`).
    operator : str
        Observation operator spec (:func:`xdyn.observe.make_operator`).
    noise_std : float
        Observation error standard deviation.
    obs_every : int
        Model steps between observations.
    initial_spread : float
        Standard deviation of the initial ensemble around the truth's start
        (the paper's initial distribution).
    spin_up : float
        Default model time run before the truth starts.
    tuning : tuple of MethodConfig
        Method configurations tuned for this setup, with reference RMSEs.

    Examples
    --------
    >>> from xdyn.experiments.setups import SAKOV2012
    >>> SAKOV2012.dt, SAKOV2012.obs_every, round(SAKOV2012.noise_std ** 2, 12)
    (0.01, 25, 2.0)
    >>> truth, obs = SAKOV2012.make_twin(n_cycles=4, seed=5, spin_up=1.0)
    >>> truth.sizes["time"], obs.sizes["time"]
    (101, 5)
    >>> SAKOV2012.reference()["OI"]
    1.23
    """

    name: str
    citation: str
    system: str
    preset: str
    operator: str
    noise_std: float
    obs_every: int
    initial_spread: float
    spin_up: float = 10.0
    tuning: tuple[MethodConfig, ...] = ()

    @property
    def dt(self) -> float:
        """The model step of the setup (from the system preset)."""
        from xdyn.systems.registry import registered_systems

        return float(registered_systems()[self.system].preset_settings(self.preset)["dt"])

    def make_system(self, **overrides) -> Any:
        """The system of the paper; ``overrides`` (``device=...``) go to its constructor."""
        from xdyn.systems.registry import registered_systems

        return registered_systems()[self.system].preset(self.preset, **overrides)

    def make_twin(self, n_cycles: int, seed: int = 0, spin_up: float | None = None,
                  system=None):
        """Truth and observations of ``n_cycles`` observation cycles for ``seed``.

        See :func:`twin_data`; ``system`` defaults to :meth:`make_system`.
        """
        system = self.make_system() if system is None else system
        return twin_data(system, self.operator, self.noise_std, self.obs_every, n_cycles,
                         dt=self.dt, seed=seed,
                         spin_up=self.spin_up if spin_up is None else spin_up)

    def methods(self, labels=None) -> list[MethodConfig]:
        """Tuning rows, all or those with the given labels (in that order)."""
        if labels is None:
            return list(self.tuning)
        by_label = {m.label: m for m in self.tuning}
        missing = [lab for lab in labels if lab not in by_label]
        if missing:
            raise ValueError(f"setup {self.name!r} has no tuning rows {missing}; "
                             f"known: {sorted(by_label)}")
        return [by_label[lab] for lab in labels]

    def reference(self) -> dict[str, float]:
        """Label -> reference analysis RMSE, for the rows that have one."""
        return {m.label: m.reference_rmse for m in self.tuning if m.reference_rmse is not None}
