"""A convolutional regression of one field on another: ``ConvFieldRegressor``.

The unresolved scales of a flow are shaped locally by the resolved ones (their
gradients, their strain), so a map applied the same way at every grid point --
a periodic convolutional network -- learns it from far fewer snapshots than a
map between global bases (principal components) does: on the quick
Kolmogorov data (three training trajectories of 400 snapshots on 32 x 32 and
their symmetry images) it left 12% (rel-L2) of the held-out trajectory's
unresolved field, where an MLP between 48 resolved and 256 unresolved
principal components left 26%. A closure takes it as its ``mean_model`` and
models the law of what it leaves.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from xdyn._labels import grid_order
from xdyn.closure.base import align_labels
from xdyn.model_selection import unwrap
from xdyn.nn.callbacks import cosine_annealing
from xdyn.nn.modules import PeriodicConvNet
from xdyn.nn.net import XdynNet
from xdyn.nn.params import TRAINING_CONSTRAINTS

__all__ = ["ConvFieldRegressor"]


class ConvFieldRegressor(RegressorMixin, BaseEstimator):
    """Regression of a gridded field on another by a periodic convolutional network.

    The input's variables are the network's input channels, the output's its
    output channels (each standardised by its training mean and standard
    deviation); the two ``grid_dims`` are the (doubly periodic) grid and every
    other dim a sample. Trained on the mean squared error through skorch
    (:class:`xdyn.nn.XdynNet`, AdamW, a cosine-annealed learning rate).

    A DataArray is one channel, and gives a DataArray back.

    Parameters
    ----------
    hidden : int, default=32
        Channels of the hidden layers.
    n_layers : int, default=5
        Convolutions (see :class:`xdyn.nn.PeriodicConvNet`).
    kernel_size : int, default=5
    max_epochs : int, default=20
    lr : float, default=2e-3
        Peak learning rate; it falls along a half cosine over ``max_epochs``.
    batch_size : int, default=32
    grid_dims : tuple of str, default=("y", "x")
        The grid's dims in labelled data.
    device : str or torch.device, default="auto"
    dtype : str or torch.dtype, default="float32"
    random_state : int, RandomState or None, default=None
    progress : bool, default=False

    Attributes
    ----------
    net_ : xdyn.nn.XdynNet
    input_variables_, output_variables_ : list of str
        Variable names of the input and output Datasets (empty for arrays).
    input_mean_, input_scale_, output_mean_, output_scale_ : ndarray of shape (n_channels,)
    output_attrs_ : dict
        Attributes of each output variable, given back by :meth:`predict`.
    dataarray_ : bool
        Whether the regressor was fitted on DataArrays.
    grid_shape_ : tuple of int
        The fitted grid's shape; ``predict`` refuses another.
    grid_ : dict
        The fitted grid's coordinates along ``grid_dims`` (labelled data):
        ``predict`` reorders a grid stored in another order and accepts a
        shifted one of the same spacing (the convolution is periodic), else raises.

    Examples
    --------
    The Laplacian of a periodic field, learned from random fields:

    >>> import numpy as np
    >>> from xdyn.closure import ConvFieldRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(256, 1, 12, 12)).astype(np.float32)
    >>> lap = lambda a: sum(np.roll(a, s, ax) for s in (1, -1) for ax in (-1, -2)) - 4 * a
    >>> reg = ConvFieldRegressor(hidden=8, n_layers=2, kernel_size=3, max_epochs=40,
    ...                          lr=1e-2, random_state=0).fit(X, lap(X))
    >>> float(np.linalg.norm(reg.predict(X) - lap(X)) / np.linalg.norm(lap(X))) < 0.1
    True
    """

    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "hidden": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 2, None, closed="left")],
        "kernel_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "grid_dims": [tuple],
    }

    def __init__(self, hidden=32, n_layers=5, kernel_size=5, *, max_epochs=20, lr=2e-3,
                 batch_size=32, grid_dims=("y", "x"), device="auto", dtype="float32",
                 random_state=None, progress=False):
        self.hidden = hidden
        self.n_layers = n_layers
        self.kernel_size = kernel_size
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.grid_dims = grid_dims
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress

    def fit(self, X, Y):
        """Learn ``Y`` from ``X`` at the same samples.

        Parameters
        ----------
        X, Y : xarray.Dataset, xarray.DataArray or ndarray
            Of the same kind, on the same grid; an array has the shape
            ``(n_samples, n_channels, n_y, n_x)``. Labelled ``Y`` is paired with
            ``X`` by dim name and coordinate label (its dims may be in another
            order, its labels stored in another order); other labels raise.

        Returns
        -------
        self
        """
        self._validate_params()
        X, Y = unwrap(X), unwrap(Y)  # model_selection's sample views
        if len(self.grid_dims) != 2:
            raise ValueError(f"grid_dims must name two dims; got {self.grid_dims!r}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd; got {self.kernel_size}")
        kinds = {type(d) if isinstance(d, (xr.Dataset, xr.DataArray)) else np.ndarray
                 for d in (X, Y)}
        if len(kinds) > 1:
            raise TypeError("X and Y must both be Datasets, both DataArrays or both arrays")
        self.dataarray_ = isinstance(X, xr.DataArray)
        X, Y = _as_dataset(X), _as_dataset(Y)
        Xa, self.input_variables_ = self._as_array(X, "X")
        order = None
        if isinstance(X, xr.Dataset):
            # samples and grid points are paired by name and label, not by storage order
            order = self._sample_dims(X, "X")
            y_dims = self._sample_dims(Y, "Y")
            if set(y_dims) != set(order):
                raise ValueError(f"X and Y must have the same sample dims (those besides "
                                 f"grid_dims); X has {tuple(order)}, Y has {tuple(y_dims)}")
            Y = align_labels(X, Y, (*order, *self.grid_dims), "Y")
        Ya, self.output_variables_ = self._as_array(Y, "Y", order)
        if Xa.shape[0] != Ya.shape[0] or Xa.shape[2:] != Ya.shape[2:]:
            raise ValueError(f"X and Y must have the same samples and grid; got X of shape "
                             f"{Xa.shape} and Y of shape {Ya.shape} (samples, channels, grid)")
        self.output_attrs_ = ({v: dict(Y[v].attrs) for v in self.output_variables_}
                              if isinstance(Y, xr.Dataset) else {})
        self.grid_shape_ = tuple(Xa.shape[2:])
        self.grid_ = ({d: np.asarray(X.indexes[d], float) for d in self.grid_dims
                       if d in X.indexes} if isinstance(X, xr.Dataset) else {})
        self.input_mean_, self.input_scale_ = _channel_moments(Xa)
        self.output_mean_, self.output_scale_ = _channel_moments(Ya)
        self.net_ = _FieldNet(
            PeriodicConvNet, module__in_channels=Xa.shape[1], module__out_channels=Ya.shape[1],
            module__hidden=self.hidden, module__n_layers=self.n_layers,
            module__kernel_size=self.kernel_size, optimizer=torch.optim.AdamW, lr=self.lr,
            max_epochs=self.max_epochs, batch_size=self.batch_size, device=self.device,
            dtype=self.dtype, random_state=self.random_state, progress=self.progress,
            callbacks=[("lr_schedule", cosine_annealing(self.max_epochs, eta_min=0.0))])
        self.net_.fit(_standard(Xa, self.input_mean_, self.input_scale_),
                      _standard(Ya, self.output_mean_, self.output_scale_))
        return self

    def predict(self, X):
        """The predicted field, of ``X``'s kind: a Dataset (``X``'s dims and coordinates,
        the output variables of :meth:`fit`), a DataArray, or an array."""
        check_is_fitted(self, "net_")
        X = unwrap(X)
        labelled = isinstance(X, (xr.Dataset, xr.DataArray))
        if labelled != bool(self.input_variables_) or (
                labelled and isinstance(X, xr.DataArray) != self.dataarray_):
            kind = ("a DataArray" if self.dataarray_ else "a Dataset") if self.input_variables_ \
                else "an array"
            raise TypeError(f"the regressor was fitted on {kind}; pass X as one too")
        # a DataArray is one channel, whatever its name (that of the fitted one given it)
        X = _as_dataset(X, self.input_variables_[0] if self.dataarray_ else None)
        if isinstance(X, xr.Dataset):
            X = self._on_fitted_grid(X)
        Xa, names = self._as_array(X, "X")
        if tuple(Xa.shape[2:]) != getattr(self, "grid_shape_", tuple(Xa.shape[2:])):
            raise ValueError(f"X is on a {tuple(Xa.shape[2:])} grid; the regressor was fitted "
                             f"on {self.grid_shape_} (its kernels are in grid cells)")
        if names != self.input_variables_:
            raise ValueError(f"X has variables {names}; the regressor was fitted on "
                             f"{self.input_variables_}")
        if Xa.shape[1] != len(self.input_mean_):
            raise ValueError(f"X has {Xa.shape[1]} channels; the regressor was fitted on "
                             f"{len(self.input_mean_)}")
        out = self.net_.predict(_standard(Xa, self.input_mean_, self.input_scale_))
        out = out * self.output_scale_[:, None, None] + self.output_mean_[:, None, None]
        if not self.input_variables_:
            return out
        out = self._as_dataset(out, X)
        return out[self.output_variables_[0]] if self.dataarray_ else out

    def score(self, X, Y, sample_weight=None):
        """R^2 of the predicted field against ``Y``, the score of a scikit-learn regressor.

        :func:`sklearn.metrics.r2_score` of the fields flattened to one row per
        sample (each grid point of each output channel an output, the R^2
        averaged over them). scikit-learn's own ``RegressorMixin.score`` took
        neither Datasets nor ``(n_samples, n_channels, n_y, n_x)`` arrays.

        Parameters
        ----------
        X : xarray.Dataset, xarray.DataArray or ndarray
            As for :meth:`predict`.
        Y : same kind as ``X``
            The field at those samples. Labelled ``Y`` is paired with ``X`` by
            dim name and label, as in :meth:`fit`; other labels raise.
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> rng = np.random.RandomState(0)
        >>> X = xr.Dataset({"w": (("time", "y", "x"), rng.normal(size=(16, 8, 8)))},
        ...                coords={"time": np.arange(16.0)})
        >>> reg = ConvFieldRegressor(hidden=4, n_layers=2, kernel_size=3, max_epochs=2,
        ...                          device="cpu", random_state=0).fit(X, 2 * X)
        >>> score = reg.score(X, 2 * X)
        >>> score == reg.score(X, (2 * X).isel(time=slice(None, None, -1)))  # by label
        True
        """
        X, Y = unwrap(X), unwrap(Y)
        pred = self.predict(X)
        if isinstance(pred, (xr.Dataset, xr.DataArray)):
            if type(Y) is not type(pred):
                raise TypeError(f"Y must be a {type(pred).__name__}, as the prediction is")
            name = self.output_variables_[0] if self.dataarray_ else None
            pred, Y = _as_dataset(pred), _as_dataset(Y, name)
            missing = [v for v in self.output_variables_ if v not in Y.data_vars]
            if missing:
                raise ValueError(f"Y lacks the variable(s) {missing} the regressor predicts")
            order = self._sample_dims(pred, "X")
            Y = align_labels(pred, Y[self.output_variables_], (*order, *self.grid_dims), "Y")
            pred, Y = (self._as_array(d, n, order)[0] for d, n in ((pred, "X"), (Y, "Y")))
        Y = np.asarray(Y, dtype=np.float64)
        if Y.shape != pred.shape:
            raise ValueError(f"Y has shape {Y.shape}; the prediction has {pred.shape}")
        return float(r2_score(Y.reshape(len(Y), -1), pred.reshape(len(pred), -1),
                              sample_weight=sample_weight))

    def _on_fitted_grid(self, X):
        """``X`` with each grid dim in the fitted order: a grid stored in another order is
        reordered (the kernels are not symmetric), a shifted one of the same spacing kept
        (the convolution is periodic); another spacing raises."""
        for d, want in getattr(self, "grid_", {}).items():
            if d not in X.indexes or X.sizes[d] != len(want):
                continue  # the shape check names it
            got = np.asarray(X.indexes[d], float)
            if np.allclose(np.diff(got), np.diff(want)):
                continue
            order = grid_order(got, want, rtol=1e-5, atol=1e-8)  # np.allclose's defaults
            if order is not None:
                X = X.isel({d: order})
                continue
            raise ValueError(f"X's {d!r} coordinates are not the fitted grid's (another "
                             f"spacing or order): {got[:4].tolist()} ... against "
                             f"{want[:4].tolist()} ...")
        return X

    # --- layouts -------------------------------------------------------------
    def _as_array(self, data, name, sample_dims=None):
        """``(n_samples, n_channels, n_y, n_x)`` float32 and the variable names.

        Samples are flattened in the order of ``sample_dims`` (default: as the
        first variable of ``data`` holds them).
        """
        if isinstance(data, xr.Dataset):
            names = list(data.data_vars)
            if not names:
                raise ValueError(f"{name} has no data variables")
            dims = self._sample_dims(data, name) if sample_dims is None else list(sample_dims)
            arr = np.stack([data[v].transpose(*dims, *self.grid_dims).values for v in names],
                           axis=len(dims))
            arr = arr.reshape(-1, *arr.shape[len(dims):])
        else:
            names, arr = [], np.asarray(data)
            if arr.ndim != 4:
                raise ValueError(f"{name} must be an array of shape (n_samples, n_channels, "
                                 f"n_y, n_x); got shape {arr.shape}")
        arr = np.asarray(arr, dtype=np.float32)
        if arr.shape[0] == 0:
            raise ValueError(f"{name} has no samples")
        if not np.isfinite(arr).all():
            bad = [n for n, ok in zip(names, np.isfinite(arr).all((0, 2, 3))) if not ok]
            where = f" (variable(s) {bad})" if bad else ""
            raise ValueError(f"{name} contains NaN or infinite values{where}")
        return arr, names

    def _sample_dims(self, ds, name):
        missing = [d for d in self.grid_dims if d not in ds.dims]
        if missing:
            raise ValueError(f"{name} lacks the grid dims {missing} (grid_dims); its dims are "
                             f"{tuple(ds.dims)}")
        first = [d for d in ds[next(iter(ds.data_vars))].dims if d not in self.grid_dims]
        for v in ds.data_vars:
            if set(ds[v].dims) != set(first) | set(self.grid_dims):
                raise ValueError(f"every variable of {name} must have the same dims; "
                                 f"{v!r} has {ds[v].dims}")
        return first

    def _as_dataset(self, out, X):
        dims = self._sample_dims(X, "X")
        shape = tuple(X.sizes[d] for d in dims)
        out = out.reshape(*shape, *out.shape[1:])
        all_dims = (*dims, *self.grid_dims)
        coords = {k: c for k, c in X.coords.items() if set(c.dims) <= set(all_dims)}
        data = {v: (all_dims, out[..., i, :, :], self.output_attrs_.get(v, {}))
                for i, v in enumerate(self.output_variables_)}
        return xr.Dataset(data, coords=coords)


def _as_dataset(data, name=None):
    """A DataArray as a one-variable Dataset named ``name`` (default: its own, or
    ``"field"``)."""
    if isinstance(data, xr.DataArray):
        if name is None:
            name = data.name if data.name is not None else "field"
        return data.to_dataset(name=name)
    return data


def _channel_moments(arr):
    """Per-channel mean and standard deviation (float64) over samples and grid."""
    mean = arr.mean(axis=(0, 2, 3), dtype=np.float64)
    std = arr.std(axis=(0, 2, 3), dtype=np.float64)
    return mean, np.where(std > 0, std, 1.0)


def _standard(arr, mean, scale):
    return ((arr - mean[:, None, None]) / scale[:, None, None]).astype(np.float32)


class _FieldNet(XdynNet):
    # a convolution applies every weight at every grid point (the quick Kolmogorov CNN:
    # 4 ms a 32 x 32 field on one core; 2400 fields 4.6 -> 2.6 s on two threads)
    _keeps_process_threads = True
