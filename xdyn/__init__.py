"""xdyn: an xarray-native toolkit for chaotic geophysical dynamics with scikit-learn conventions.

Importing xdyn only registers the ``.xdyn`` accessor on Datasets and DataArrays.
"""

from xdyn._version import __version__
from xdyn import accessor as _accessor  # noqa: F401  (registers ds.xdyn)
from xdyn.exceptions import DivergenceError

__all__ = ["__version__", "DivergenceError"]
