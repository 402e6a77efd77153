"""The template every matrix-based Dataset estimator follows (as xeofs' ``fit`` -> ``_fit_algorithm``).

A reduced-order model, a closure's reduced basis or any estimator whose
algorithm works on a ``(n_samples, n_features)`` matrix subclasses
:class:`DatasetTransformer` and writes only the algorithm:

``_fit_matrix(X, y)``
    learn from the stacked training matrix (a float numpy array);
``_transform_matrix(X)``
    ``(n_samples, n_features)`` -> ``(n_samples, n_components)``;
``_inverse_transform_matrix(Z)``
    ``(n_samples, n_components)`` -> ``(n_samples, n_features)``.

Everything around them is the template's, written once: parameter validation
(``_parameter_constraints``, once per ``fit``), Dataset / DataArray / ndarray
in, the one Dataset -> matrix path (:func:`~xdyn.preprocessing.stack_samples`)
with ``sample_dim`` a parameter, the checks of bad input (NaN, a missing
variable, other dims or grid than in ``fit``) before any work, and the kind
that came in back out: ``transform`` gives a DataArray ``(sample_dim,
component)`` with the samples' coordinates, ``inverse_transform`` a Dataset
(or DataArray) of the fitted layout with its coordinates and CF attrs, also
for samples never seen in ``fit``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import FLOAT_DTYPES, check_is_fitted, validate_data

from xdyn.model_selection import unwrap
from xdyn.preprocessing.stacking import _is_xarray, stack_samples, unstack_samples

__all__ = ["DatasetTransformer"]

COMPONENT_DIM = "component"


class DatasetTransformer(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Base class for estimators that fit a matrix algorithm to labelled fields.

    Subclasses implement ``_fit_matrix``, ``_transform_matrix`` and
    ``_inverse_transform_matrix`` on float numpy matrices and extend
    ``_parameter_constraints``; the base does the rest (see the module docs).

    Parameters
    ----------
    sample_dim : str, default="time"
        The sample dimension; every other dim is a feature.

    Attributes
    ----------
    layout_ : xdyn.preprocessing.StackInfo or None
        The fitted layout (``None`` when fitted on a bare matrix).
    n_features_in_ : int

    Examples
    --------
    A mean-removal "model" with one component per feature, written as the
    three matrix methods:

    >>> import numpy as np, xarray as xr
    >>> class Anomaly(DatasetTransformer):
    ...     def _fit_matrix(self, X, y=None):
    ...         self.mean_ = X.mean(axis=0)
    ...     def _transform_matrix(self, X):
    ...         return X - self.mean_
    ...     def _inverse_transform_matrix(self, Z):
    ...         return Z + self.mean_
    >>> ds = xr.Dataset({"T": (("time", "x"), [[1.0, 2.0], [3.0, 6.0]], {"units": "K"})},
    ...                 coords={"time": [0, 1], "x": [10.0, 20.0]})
    >>> z = Anomaly().fit(ds).transform(ds)
    >>> z.dims, z.values.tolist()
    (('time', 'component'), [[-1.0, -2.0], [1.0, 2.0]])
    >>> Anomaly().fit(ds).inverse_transform(z).identical(ds)
    True
    >>> Anomaly().fit(ds).transform(ds.rename(T="q"))
    Traceback (most recent call last):
    ...
    ValueError: Anomaly: variables differ from the fitted layout: missing ['T'], not seen in fit ['q']
    """

    _parameter_constraints: dict = {"sample_dim": [str]}
    #: whether NaN may reach ``_fit_matrix`` / ``_transform_matrix``
    _allow_nan = False

    def __init__(self, sample_dim="time"):
        self.sample_dim = sample_dim

    # ----------------------------------------------------------- the template
    def fit(self, X, y=None):
        """Stack ``X`` and fit the matrix algorithm; returns self.

        Parameters
        ----------
        X : xarray.Dataset, xarray.DataArray or array of shape (n_samples, n_features)
        y : ignored by transformers; passed on to ``_fit_matrix``.

        Examples
        --------
        >>> import numpy as np
        >>> class Mean(DatasetTransformer):
        ...     def _fit_matrix(self, X, y=None):
        ...         self.mean_ = X.mean(axis=0)
        >>> Mean().fit(np.array([[1.0, 2.0], [3.0, 4.0]])).mean_.tolist()
        [2.0, 3.0]
        """
        self._validate_params()
        matrix = self._to_matrix(X, reset=True)
        self._fit_matrix(matrix, y)
        return self

    def transform(self, X):
        """Components of ``X``: a DataArray ``(sample_dim, component)`` for labelled input.

        Examples
        --------
        See :class:`DatasetTransformer`.
        """
        check_is_fitted(self)
        X = unwrap(X)
        Z = np.asarray(self._transform_matrix(self._to_matrix(X, reset=False)))
        if self.layout_ is None:
            return Z
        sd = self.layout_.sample_dim
        coords = {k: c for k, c in X.coords.items() if c.dims == (sd,)}
        coords[COMPONENT_DIM] = np.arange(Z.shape[1])
        return xr.DataArray(Z, dims=(sd, COMPONENT_DIM), coords=coords,
                            attrs={"long_name": f"{type(self).__name__} components"})

    def inverse_transform(self, Z):
        """Fields from components, in the fitted layout; also for unseen samples.

        Parameters
        ----------
        Z : xarray.DataArray ``(sample_dim, component)`` or array of shape (n_samples, n_components)

        Examples
        --------
        See :class:`DatasetTransformer`.
        """
        check_is_fitted(self)
        Z = unwrap(Z)
        sample_coord = None
        if isinstance(Z, xr.DataArray):
            if Z.ndim != 2 or COMPONENT_DIM not in Z.dims:
                raise ValueError(f"{type(self).__name__}: components must be 2-D with a "
                                 f"{COMPONENT_DIM!r} dim; got dims {Z.dims}")
            other = next(d for d in Z.dims if d != COMPONENT_DIM)
            Z = Z.transpose(other, COMPONENT_DIM)
            if COMPONENT_DIM in Z.indexes and not np.array_equal(
                    np.asarray(Z.indexes[COMPONENT_DIM]), np.arange(Z.shape[1])):
                raise ValueError(f"{type(self).__name__}: the {COMPONENT_DIM!r} labels are not "
                                 f"0 .. {Z.shape[1] - 1} in order (reordered or selected?); "
                                 "components are read by position")
            sample_coord = Z[other] if other in Z.coords else None
            Z = Z.values
        Z = np.asarray(Z, dtype=float)
        if Z.ndim != 2:
            raise ValueError(f"{type(self).__name__}: components must be 2-D "
                             f"(n_samples, n_components); got shape {Z.shape}")
        X = np.asarray(self._inverse_transform_matrix(Z))
        if self.layout_ is None:
            return X
        return unstack_samples(X, self.layout_, sample_coord=sample_coord)

    # ------------------------------------------------------- for subclasses
    def _fit_matrix(self, X, y=None):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement _fit_matrix")

    def _transform_matrix(self, X):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement _transform_matrix")

    def _inverse_transform_matrix(self, Z):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not implement "
                                  f"_inverse_transform_matrix")

    def _to_matrix(self, X, reset):
        """The float matrix of ``X``; on ``reset`` records ``layout_`` and ``n_features_in_``."""
        X = unwrap(X)
        name = type(self).__name__
        if _is_xarray(X):
            if not reset and self.layout_ is None:
                raise TypeError(f"{name} was fitted on a bare matrix; got a {type(X).__name__}")
            try:
                matrix, info = stack_samples(X, self.sample_dim if reset else
                                             self.layout_.sample_dim,
                                             info=None if reset else self.layout_)
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"{name}: {exc}") from None
            values = np.asarray(matrix.values, dtype=float)
            if reset:
                self.layout_ = info
        else:
            if not reset and self.layout_ is not None:
                raise TypeError(f"{name} was fitted on a {'DataArray' if self.layout_.is_dataarray else 'Dataset'}; "
                                f"got a {type(X).__name__}")
            values = validate_data(self, X, reset=reset, dtype=FLOAT_DTYPES,
                                   ensure_all_finite="allow-nan" if self._allow_nan else True)
            if reset:
                self.layout_ = None
        if not self._allow_nan and not np.isfinite(values).all():
            where = "" if self.layout_ is None else " (variables " + ", ".join(
                str(v.name) for v in self.layout_.variables
                if not np.isfinite(values[:, v.columns]).all()) + ")"
            raise ValueError(f"{name}: the data contain NaN or inf{where}; fill or drop them first")
        if reset:
            self.n_features_in_ = values.shape[1]
        return values

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self._allow_nan
        return tags
