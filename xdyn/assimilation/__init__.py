"""Data assimilation: classical filters and variational methods as sklearn estimators."""

from xdyn.assimilation._cycle import (CycleCallback, DivergenceMonitor, LostTrackMonitor,
                                      LostTrackWarning, ProgressBar, Recorder)
from xdyn.assimilation._amortized_cycle import ClampWarning
from xdyn.assimilation.amortized import AmortizedAssimilator
from xdyn.assimilation.base import ASSIMILATORS, BaseAssimilator, analysis_rmse
from xdyn.assimilation.enkf import EnKF
from xdyn.assimilation.enkf_n import EnKFN
from xdyn.assimilation.ensf import EnSF
from xdyn.assimilation.extended_kalman import ExtendedKalmanFilter
from xdyn.assimilation.ldensf import LDEnSF
from xdyn.assimilation.letkf import LETKF
from xdyn.assimilation.observation_encoder import ObservationEncoder
from xdyn.assimilation.neural_var3d import NeuralVar3D
from xdyn.assimilation.oi import OptimalInterpolation
from xdyn.assimilation.particle_filter import ParticleFilter
from xdyn.assimilation.var3d import Var3D
from xdyn.assimilation.var4d import Var4D

__all__ = ["CycleCallback", "DivergenceMonitor", "LostTrackMonitor", "ProgressBar", "Recorder",
           "AmortizedAssimilator", "BaseAssimilator", "ClampWarning", "LostTrackWarning", "EnKF", "EnKFN", "EnSF", "ExtendedKalmanFilter", "LDEnSF", "LETKF", "ObservationEncoder", "NeuralVar3D", "OptimalInterpolation",
           "ParticleFilter", "Var3D", "Var4D", "analysis_rmse", "METHODS", "make_assimilator",
           "registered_assimilators"]


def _methods():
    """Every registered name, alias and class name (lower case) -> assimilator class."""
    return ASSIMILATORS.lookup_table()


def registered_assimilators() -> dict:
    """The assimilators :func:`make_assimilator` can build, by declared name.

    Every subclass of :class:`BaseAssimilator` that declares a class-level
    ``name`` registers itself when it is defined (in any module, a user's
    included); its ``aliases`` and class name are accepted too.

    Examples
    --------
    >>> {"enkf", "letkf", "3dvar", "oi", "pf"} <= set(registered_assimilators())
    True
    """
    return ASSIMILATORS.classes()


def make_assimilator(method, **params):
    """Instantiate an assimilator by short name (``"enkf"``, ``"letkf"``, ``"3dvar"`` ...).

    Names, aliases and class names are matched case-insensitively; see
    :func:`registered_assimilators`.

    Parameters
    ----------
    method : str
        Short name, alias or class name of the method (case-insensitive).
    **params
        Parameters of the assimilator's constructor.

    Raises
    ------
    ValueError
        An unknown name; the message suggests the closest known ones.

    Examples
    --------
    >>> make_assimilator("enkf", n_members=10).n_members
    10
    >>> make_assimilator("ParticleFilter").name
    'pf'
    >>> make_assimilator("letfk")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown assimilation method 'letfk'; did you mean 'letkf'...? Known: [...]
    """
    return ASSIMILATORS.get(method)(**params)


def __getattr__(name):
    if name == "METHODS":  # computed on access: classes defined later are included
        return _methods()
    raise AttributeError(name)
