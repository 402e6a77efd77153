"""Declarative parameter constraints of the assimilators (scikit-learn's mechanism).

Every assimilator declares ``_parameter_constraints`` (parameter name -> list
of constraints) and :class:`~xdyn.assimilation.BaseAssimilator.fit` checks them
once with ``self._validate_params()``, as scikit-learn's estimators do
(``sklearn/decomposition/_pca.py``). scikit-learn keeps the constraint classes
in a private module; this is the one place xdyn imports them from, so a change
there is fixed here only. The classes added here cover what scikit-learn's do
not: finite numbers and numeric arrays of a given dimensionality.

Checks that need the observations (a shape that must match ``n_state``, a
batch dim that must match an inflation array) are made when the cycle context
is built, also at ``fit``.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import (  # noqa: F401 - re-exported
    HasMethods,
    Hidden,
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)

from xdyn.utils._validation import FiniteInterval

__all__ = ["HasMethods", "Hidden", "Interval", "InvalidParameterError", "Options", "StrOptions",
           "FiniteInterval", "NumericArray", "Integral", "Real", "validate_parameter_constraints"]


class NumericArray(Options):
    """A finite numeric array-like (not a bare scalar) with ``ndim`` in ``ndims``.

    Parameters
    ----------
    ndims : tuple of int
        Accepted numbers of dimensions.
    positive : bool, default=False
        Every entry must be > 0.

    Examples
    --------
    >>> NumericArray((1,), positive=True).is_satisfied_by([1.0, 2.0])
    True
    >>> NumericArray((1,), positive=True).is_satisfied_by([[1.0]])
    False
    >>> NumericArray((1,)).is_satisfied_by([1.0, float("nan")])
    False
    """

    # an Options subclass only because sklearn's make_constraint accepts no other
    # custom constraint; the options themselves are unused
    def __init__(self, ndims=(1,), positive=False):
        super().__init__(object, set())
        self.ndims = tuple(ndims)
        self.positive = positive

    def is_satisfied_by(self, val):
        if isinstance(val, (str, bytes, dict)) or np.isscalar(val) or val is None:
            return False
        try:
            a = np.asarray(val, dtype=float)
        except (TypeError, ValueError):
            return False
        if a.ndim not in self.ndims or not np.all(np.isfinite(a)):
            return False
        return not (self.positive and np.any(a <= 0))

    def __str__(self):
        sign = "positive " if self.positive else ""
        return f"a finite {sign}numeric array with ndim in {self.ndims}"
