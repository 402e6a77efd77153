"""Preprocessing: Dataset <-> sample-matrix stacking, scaling and spectral filters.

Stacking lives here and nowhere else (DESIGN.md: Estimators): every estimator
that needs a ``(n_samples, n_features)`` matrix goes through
:func:`stack_samples` / :func:`unstack_samples` or :class:`Stacker` (systems and
observations through the same :func:`flatten_variables`), and a matrix algorithm
on labelled fields subclasses :class:`DatasetTransformer` and writes only its
``_fit_matrix`` / ``_transform_matrix`` / ``_inverse_transform_matrix``.

In a :class:`~sklearn.pipeline.Pipeline` the xarray-native steps
(:class:`LowPassFilter`, :class:`StandardScaler`) come before :class:`Stacker`,
and the scikit-learn steps after it: only xdyn's transformers read labels, so
``per_variable`` scaling or a spectral filter cannot run on a bare matrix.
:func:`delay_embedding` puts a state's past beside it as more variables.
"""

from xdyn.preprocessing.delay import delay_embedding, delayed_variables, lagged_name
from xdyn.preprocessing.scaling import StandardScaler
from xdyn.preprocessing.spectral import LowPassFilter, split_scales
from xdyn.preprocessing.stacking import (
    FEATURE_DIM,
    VARIABLE_COORD,
    StackInfo,
    Stacker,
    VariableLayout,
    flatten_variables,
    stack_samples,
    unflatten_variables,
    unstack_samples,
)
from xdyn.preprocessing.template import DatasetTransformer

__all__ = [
    "DatasetTransformer",
    "FEATURE_DIM",
    "LowPassFilter",
    "StackInfo",
    "Stacker",
    "StandardScaler",
    "VARIABLE_COORD",
    "VariableLayout",
    "delay_embedding",
    "delayed_variables",
    "flatten_variables",
    "lagged_name",
    "split_scales",
    "stack_samples",
    "unflatten_variables",
    "unstack_samples",
]
