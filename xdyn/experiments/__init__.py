"""The catalogue of named, reproducible experiments run by ``xdyn run``.

Each experiment is a function ``(quick, seed, device, progress) -> ExperimentResult``
registered with :func:`register`; :func:`run` executes one, writes its results
Dataset (configuration, wall time and peak memory in attrs) atomically to
netCDF, saves its figures as PNG, and returns the result with a printable table.
"""

from xdyn.experiments.catalogue import (
    DEFAULT_EXPERIMENT,
    Experiment,
    ExperimentResult,
    get_experiment,
    list_experiments,
    register,
    run,
)
from xdyn.experiments.sweep import sweep

# importing the modules registers their experiments
from xdyn.experiments import twin as _twin  # noqa: F401,E402
from xdyn.experiments import spectrum as _spectrum  # noqa: F401,E402
from xdyn.experiments import neural_var as _neural_var  # noqa: F401,E402
from xdyn.experiments import kolmogorov_closure as _kolmogorov_closure  # noqa: F401,E402
from xdyn.experiments import amortized as _amortized  # noqa: F401,E402
from xdyn.experiments import vgbdm as _vgbdm  # noqa: F401,E402
from xdyn.experiments import era5 as _era5  # noqa: F401,E402
from xdyn.experiments import ldensf as _ldensf  # noqa: F401,E402

__all__ = [
    "DEFAULT_EXPERIMENT",
    "Experiment",
    "ExperimentResult",
    "get_experiment",
    "list_experiments",
    "register",
    "run",
    "sweep",
]
