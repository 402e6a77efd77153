"""Data assimilation: classical filters and variational methods as sklearn estimators."""

from xdyn.assimilation.base import BaseAssimilator, analysis_rmse
from xdyn.assimilation.enkf import EnKF

__all__ = ["BaseAssimilator", "EnKF", "analysis_rmse"]
