"""Data assimilation: classical filters and variational methods as sklearn estimators."""

from xdyn.assimilation._cycle import LostTrackWarning
from xdyn.assimilation.base import BaseAssimilator, analysis_rmse
from xdyn.assimilation.enkf import EnKF
from xdyn.assimilation.enkf_n import EnKFN
from xdyn.assimilation.extended_kalman import ExtendedKalmanFilter
from xdyn.assimilation.letkf import LETKF
from xdyn.assimilation.neural_var3d import NeuralVar3D
from xdyn.assimilation.oi import OptimalInterpolation
from xdyn.assimilation.particle_filter import ParticleFilter
from xdyn.assimilation.var3d import Var3D
from xdyn.assimilation.var4d import Var4D

__all__ = ["BaseAssimilator", "LostTrackWarning", "EnKF", "EnKFN", "ExtendedKalmanFilter", "LETKF", "NeuralVar3D", "OptimalInterpolation",
           "ParticleFilter", "Var3D", "Var4D", "analysis_rmse", "METHODS", "make_assimilator"]


def _methods():
    """Short names of the assimilators (those defined in this package)."""
    import xdyn.assimilation as pkg

    names = {
        "enkf": "EnKF", "enkf-n": "EnKFN", "letkf": "LETKF", "pf": "ParticleFilter",
        "particle-filter": "ParticleFilter", "oi": "OptimalInterpolation",
        "3dvar": "Var3D", "var3d": "Var3D", "4dvar": "Var4D", "var4d": "Var4D",
        "extkf": "ExtendedKalmanFilter", "neural-var": "NeuralVar3D", "ekf": "ExtendedKalmanFilter",
    }
    return {k: getattr(pkg, v) for k, v in names.items() if hasattr(pkg, v)}


def make_assimilator(method, **params):
    """Instantiate an assimilator by short name (``"enkf"``, ``"letkf"``, ``"3dvar"`` ...).

    Examples
    --------
    >>> make_assimilator("enkf", n_members=10).n_members
    10
    """
    methods = _methods()
    key = str(method).lower()
    if key not in methods:
        raise ValueError(f"unknown assimilation method {method!r}; known: {sorted(methods)}")
    return methods[key](**params)


def __getattr__(name):
    if name == "METHODS":
        return _methods()
    raise AttributeError(name)
