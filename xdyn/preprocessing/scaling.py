"""Standardization over the sample dimension, on labelled data.

:class:`StandardScaler` is scikit-learn's ``StandardScaler`` with named dims:
statistics are taken over ``sample_dim`` for every feature (every grid point of
every variable), or once per variable (``per_variable=True``: one mean and one
scale per physical quantity, the usual normalization of fields, e.g. the
WeatherBench baselines of Rasp et al. 2020). Population statistics (``ddof=0``)
and the treatment of constant features (scale 1) follow scikit-learn, so the
numbers on a bare matrix are scikit-learn's.
"""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import FLOAT_DTYPES, check_is_fitted, validate_data

from xdyn._units import other_units, spelled_dimensionless, stated_units
from xdyn.model_selection import unwrap
from xdyn.preprocessing.stacking import _UNNAMED, _as_dataset, _is_xarray

__all__ = ["StandardScaler"]


class StandardScaler(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Remove the mean and divide by the standard deviation along the sample dim.

    Parameters
    ----------
    sample_dim : str, default="time"
        Dimension the statistics are taken over; every other dim is a feature.
    with_mean : bool, default=True
        Subtract the mean.
    with_std : bool, default=True
        Divide by the standard deviation (``ddof=0``); a constant feature or
        variable gets scale 1, as in scikit-learn.
    per_variable : bool, default=False
        One mean and one scale per variable, over the sample dim *and* all its
        feature dims, instead of one per feature. On a bare matrix every column
        is its own variable, so this has no effect there: put the scaler before
        :class:`~xdyn.preprocessing.Stacker` in a pipeline.

    Attributes
    ----------
    mean_ : xarray.Dataset, xarray.DataArray or ndarray of shape (n_features,)
        Per-feature (or per-variable, scalar) means, float64, the same kind as
        the fitted data, with the variables' attrs (their ``units``).
    scale_ : same kind as ``mean_``, or None
        Standard deviations (1 where constant); ``None`` if ``with_std=False``.
    n_samples_seen_ : int or ndarray of int
        Samples along ``sample_dim`` (per feature for a matrix with NaNs).
    n_features_in_ : int
        Number of features (columns once stacked).

    Notes
    -----
    On xarray input, ``transform`` returns the kind it got, with coordinates,
    dataset and variable attrs; a scaled variable has ``units = "1"`` and its
    fitted units in ``attrs["original_units"]``, which ``inverse_transform``
    puts back (``with_std=False`` keeps the units). Units are compared as units
    (``xdyn._units``: ``"K"`` is ``"kelvin"``), and a blank or missing ``units``
    attr states none: data is refused only where it states other units than
    the fitted ones (also with ``with_std=False``, whose data keeps them), or
    than ``"1"`` in ``inverse_transform`` of standardized data, whose
    ``original_units``, where stated, must be the fitted ones; where the fit
    stated none, the data's own units are kept aside. Floating dtypes are kept
    (float32 stays float32). ``fit`` must read the data: it computes mean and
    variance in a single ``dask.compute`` call; ``transform`` and
    ``inverse_transform`` stay lazy on dask-backed input. Grid coordinates must
    match those seen in ``fit`` exactly (no silent re-alignment). NaNs are
    ignored in the statistics and passed through.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"T": (("time", "x"), [[280.0, 290.0], [284.0, 290.0]], {"units": "K"})})
    >>> scaler = StandardScaler().fit(ds)
    >>> scaler.mean_["T"].values.tolist(), scaler.scale_["T"].values.tolist()
    ([282.0, 290.0], [2.0, 1.0])
    >>> z = scaler.transform(ds)
    >>> z["T"].values.tolist(), z["T"].attrs
    ([[-1.0, 0.0], [1.0, 0.0]], {'units': '1', 'original_units': 'K'})
    >>> scaler.inverse_transform(z).identical(ds)
    True
    """

    def __init__(self, sample_dim="time", with_mean=True, with_std=True, per_variable=False):
        self.sample_dim = sample_dim
        self.with_mean = with_mean
        self.with_std = with_std
        self.per_variable = per_variable

    def fit(self, X, y=None):
        """Compute the mean and scale of ``X`` (Dataset, DataArray or 2-D array); returns self.

        Examples
        --------
        >>> import xarray as xr
        >>> ds = xr.Dataset({"T": (("time", "x"), [[280.0, 290.0], [284.0, 290.0]])})
        >>> float(StandardScaler(per_variable=True).fit(ds).mean_["T"])  # over time and x
        286.0
        """
        X = unwrap(X)
        if _is_xarray(X):
            return self._fit_labelled(X)
        X = validate_data(self, X, reset=True, dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan")
        finite = ~np.isnan(X)
        count = finite.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):  # all-NaN columns give NaN, silently
            mean = np.where(finite, X, 0).sum(axis=0, dtype=np.float64) / count
            var = (np.where(finite, X - mean, 0) ** 2).sum(axis=0, dtype=np.float64) / count
        self.mean_ = mean
        self.scale_ = _scale_from_var(var, mean, count) if self.with_std else None
        self.n_samples_seen_ = int(count[0]) if np.all(count == count[0]) else count
        return self

    def transform(self, X):
        """Standardize ``X``; returns the kind it got (see Notes for units).

        Examples
        --------
        New samples are scaled with the fitted statistics (mean 282 and 290 K, scale 2 and 1 K):

        >>> import xarray as xr
        >>> ds = xr.Dataset({"T": (("time", "x"), [[280.0, 290.0], [284.0, 290.0]], {"units": "K"})})
        >>> new = xr.Dataset({"T": (("time", "x"), [[282.0, 292.0]], {"units": "K"})})
        >>> StandardScaler().fit(ds).transform(new)["T"].values.tolist()
        [[0.0, 2.0]]
        """
        return self._apply(X, inverse=False)

    def inverse_transform(self, X):
        """Undo :meth:`transform` (units restored); also on unseen data.

        Examples
        --------
        >>> import numpy as np
        >>> scaler = StandardScaler().fit(np.array([[1.0, 10.0], [3.0, 10.0]]))
        >>> scaler.inverse_transform(np.zeros((1, 2)))  # zero anomaly: the mean
        array([[ 2., 10.]])
        """
        return self._apply(X, inverse=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ------------------------------------------------------------ internals
    def _fit_labelled(self, X):
        ds, is_dataarray = _as_dataset(X)
        sd = self.sample_dim
        if sd not in ds.dims:
            raise ValueError(f"sample_dim {sd!r} is not a dim of the data; dims are "
                             f"{tuple(ds.dims)}")
        n_features = 0
        for name, var in ds.data_vars.items():
            if sd not in var.dims:
                raise ValueError(f"variable {name!r} has no {sd!r} dim (dims {var.dims})")
            if not np.issubdtype(var.dtype, np.number):
                raise TypeError(f"variable {name!r} has non-numeric dtype {var.dtype}")
            n_features += int(var.size // var.sizes[sd])
        dim = None if self.per_variable else sd
        ds64 = ds.astype(np.float64, copy=False)  # float64 statistics, as scikit-learn's
        # one graph, one pass over the data (PITFALLS 2: the only compute, and it is fit's)
        mean, var, count = dask.compute(ds64.mean(dim, keep_attrs=True),
                                        ds64.var(dim, keep_attrs=True), ds.count(dim))
        scale = None
        if self.with_std:
            scale = mean.copy(data={k: _scale_from_var(var[k].values, mean[k].values,
                                                       count[k].values) for k in mean.data_vars})
        if is_dataarray:
            name = next(iter(ds.data_vars))
            mean = mean[name].rename(X.name)
            scale = None if scale is None else scale[name].rename(X.name)
        self.mean_, self.scale_ = mean, scale
        self.n_samples_seen_ = int(ds.sizes[sd])
        self.n_features_in_ = n_features
        return self

    def _apply(self, X, inverse):
        check_is_fitted(self)
        X = unwrap(X)
        labelled = _is_xarray(self.mean_)
        if not _is_xarray(X):
            if labelled:
                raise TypeError(f"this StandardScaler was fitted on a {type(self.mean_).__name__}; "
                                f"got a {type(X).__name__}")
            X = validate_data(self, X, reset=False, dtype=FLOAT_DTYPES, copy=True,
                              ensure_all_finite="allow-nan")
            mean, scale = self.mean_.astype(X.dtype), _astype(self.scale_, X.dtype)
            if inverse:
                X = X * scale if self.with_std else X
                return X + mean if self.with_mean else X
            X = X - mean if self.with_mean else X
            return X / scale if self.with_std else X
        if not labelled or isinstance(X, xr.DataArray) != isinstance(self.mean_, xr.DataArray):
            fitted = type(self.mean_).__name__ if labelled else "bare matrix"
            raise TypeError(f"this StandardScaler was fitted on a {fitted}; "
                            f"got a {type(X).__name__}")
        return self._apply_labelled(X, inverse)

    def _apply_labelled(self, X, inverse):
        name = _UNNAMED if isinstance(X, xr.DataArray) else None
        ds, mean = _as_dataset(X, name)[0], _as_dataset(self.mean_, name)[0]
        scale = None if self.scale_ is None else _as_dataset(self.scale_, name)[0]
        if set(ds.data_vars) != set(mean.data_vars):
            raise ValueError(f"variables {sorted(map(str, ds.data_vars))} differ from those "
                             f"seen in fit {sorted(map(str, mean.data_vars))}")
        result = ds.assign({
            k: self._apply_variable(k, x, mean[k], None if scale is None else scale[k], inverse)
            for k, x in ds.data_vars.items()})
        return result[name].rename(X.name) if name is not None else result

    def _apply_variable(self, name, x, mean, scale, inverse):
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
        m = mean.reset_coords(drop=True).astype(dtype)
        s = None if scale is None else scale.reset_coords(drop=True).astype(dtype)
        fitted_units, attrs = mean.attrs.get("units"), dict(x.attrs)
        missing = [d for d in m.dims if d not in x.dims]
        if missing:  # broadcasting would apply every fitted row to the one left (y=0)
            raise ValueError(f"variable {name!r} lacks the dim(s) {missing} its statistics "
                             f"were fitted over; its dims are {x.dims}")
        # standardized data is marked by its units spelled "1" (a ratio such as q's "kg kg-1"
        # is dimensionless too, but physical); otherwise units compared as units (xdyn._units)
        if s is not None and inverse and not spelled_dimensionless(attrs.get("units")):
            raise ValueError(f"variable {name!r} has units {attrs['units']!r}; inverse_transform "
                             f"expects standardized data (units '1')")
        if s is not None and inverse and other_units(attrs.get("original_units"), fitted_units):
            raise ValueError(f"variable {name!r} was standardized from "
                             f"{attrs['original_units']!r} but this scaler was fitted in "
                             f"{fitted_units!r}")
        # data in physical units: what transform scales, or what an inverse without a scale
        # (with_std=False) adds the mean back to; no statistic at all leaves it as it is
        physical = (s is not None or self.with_mean) and not (inverse and s is not None)
        if physical and other_units(attrs.get("units"), fitted_units):
            raise ValueError(f"variable {name!r} is in {attrs['units']!r} but was fitted in "
                             f"{fitted_units!r}")
        if physical and stated_units(attrs.get("original_units")) is not None \
                and stated_units(mean.attrs.get("original_units")) is None:
            raise ValueError(f"variable {name!r} is standardized data (it keeps its units "
                             f"{attrs['original_units']!r} aside) and this scaler was fitted on "
                             f"data in {fitted_units!r}: inverse_transform it first")
        if inverse:
            x = _binary(np.multiply, x, s, name) if s is not None else x
            x = _binary(np.add, x, m, name) if self.with_mean else x
        else:
            x = _binary(np.subtract, x, m, name) if self.with_mean else x
            x = _binary(np.divide, x, s, name) if s is not None else x
        if s is not None:  # standardized data is dimensionless; the units are kept aside
            # the fitted ones as spelled in fit; where it stated none, the data's own
            kept = fitted_units if stated_units(fitted_units) is not None else attrs.get(
                "original_units" if inverse else "units", fitted_units)
            attrs.pop("units", None)
            attrs.pop("original_units", None)
            if not inverse:
                attrs["units"] = "1"
            if kept is not None:
                attrs["original_units" if not inverse else "units"] = kept
        return _with_attrs(x, attrs)


def _with_attrs(da, attrs):
    da = da.copy(deep=False)
    da.attrs = attrs
    return da


def _binary(func, x, stat, name):
    """``func(x, stat)`` with exact alignment: a grid that differs from fit's is an error."""
    try:
        # keep_attrs: coordinate attrs come from x (the variable's own are set by the caller)
        return xr.apply_ufunc(func, x, stat, join="exact", keep_attrs=True, dask="allowed")
    except ValueError as err:
        raise ValueError(f"coordinates of variable {name!r} differ from those seen in fit: "
                         f"{err}") from None


def _astype(a, dtype):
    return None if a is None else a.astype(dtype)


def _scale_from_var(var, mean, n):
    """``sqrt(var)``, with 1 where the feature is constant up to rounding (scikit-learn's rule)."""
    eps = np.finfo(np.float64).eps
    n = np.asarray(n, dtype=np.float64)
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    return np.where(constant, 1.0, np.sqrt(var))
