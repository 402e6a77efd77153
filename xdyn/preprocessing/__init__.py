"""Preprocessing: Dataset <-> sample-matrix stacking, scaling and spectral filters.

Stacking lives here and nowhere else (DESIGN.md: Estimators): every estimator
that needs a ``(n_samples, n_features)`` matrix goes through
:func:`stack_samples` / :func:`unstack_samples` or :class:`Stacker`.

In a :class:`~sklearn.pipeline.Pipeline` the xarray-native steps
(:class:`LowPassFilter`, :class:`StandardScaler`) come before :class:`Stacker`,
and the scikit-learn steps after it: only xdyn's transformers read labels, so
``per_variable`` scaling or a spectral filter cannot run on a bare matrix.
"""

from xdyn.preprocessing.scaling import StandardScaler
from xdyn.preprocessing.spectral import LowPassFilter, split_scales
from xdyn.preprocessing.stacking import (
    FEATURE_DIM,
    VARIABLE_COORD,
    StackInfo,
    Stacker,
    VariableLayout,
    stack_samples,
    unstack_samples,
)

__all__ = [
    "FEATURE_DIM",
    "LowPassFilter",
    "StackInfo",
    "Stacker",
    "StandardScaler",
    "VARIABLE_COORD",
    "VariableLayout",
    "split_scales",
    "stack_samples",
    "unstack_samples",
]
