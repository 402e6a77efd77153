"""The interface every stochastic closure keeps: ``BaseClosure``.

A closure models the unresolved scales ``Y`` given the resolved state ``X`` as
a conditional distribution ``p(Y | X)``. Both are stacked into matrices with
:mod:`xdyn.preprocessing.stacking` (the sample dim is ``sample_dim``, every
other dim a feature) and reduced: the resolved state to its ``n_input_modes``
leading principal components (whitened), the unresolved field to its
``n_output_modes`` leading ones (each scaled to unit variance). A subclass
learns the conditional law of the output coefficients given the input ones
(:meth:`_fit_reduced`, :meth:`_sample_reduced`, optionally
:meth:`_predict_reduced`); this base turns it into fields on the original grid.

What the reduced basis leaves out of ``Y`` (the truncation residual) is part of
the predictive distribution too, so that the mean, spread and coverage are
those of the *full* unresolved field: its per-point variance on the training
data adds to the predicted variance, and :meth:`sample` adds a residual drawn
from a bank of ``n_residual_bank`` training residuals (spatially realistic,
independent of ``X``) when ``residual="resample"``.

A ``mean_model`` (a regressor of ``Y`` on ``X`` on their own grids, such as
:class:`~xdyn.closure.ConvFieldRegressor`) takes the conditional mean's bulk:
the closure then models the law of what it leaves, ``Y - mean_model(X)``, and
adds its prediction back to every mean and sample.

``spread_scale`` multiplies the predictive spread (the standard deviation of
:meth:`predict` and every sample's deviation from the conditional mean), so
that a closure whose spread was found too narrow or too wide on held-out data
can be recalibrated without refitting (a split-conformal scale: the 68.3%
quantile of ``|y - mean| / std`` on a calibration set makes the +-1 std
interval cover 68.3% there).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, clone
from sklearn.decomposition import PCA
from sklearn.utils import check_random_state
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from xdyn._labels import MEMBER_DIM
from xdyn.metrics import relative_l2
from xdyn.model_selection import unwrap
from xdyn.preprocessing.stacking import stack_samples, unstack_samples
from xdyn.utils._prefit import PrefitCloneMixin
from xdyn.utils._validation import is_integer

__all__ = ["BaseClosure"]



class BaseClosure(PrefitCloneMixin, BaseEstimator):
    """Base class of the stochastic closures of unresolved scales.

    Parameters
    ----------
    n_input_modes : int, default=16
        Principal components of the resolved state the closure is conditioned on.
    n_output_modes : int, default=16
        Principal components of the unresolved field the closure models.
    residual : {"resample", "none"}, default="resample"
        How the unresolved field outside the ``n_output_modes`` enters: its
        training variance is added to the predicted variance and a random
        training residual to each sample ("resample"), or it is ignored.
    n_residual_bank : int, default=256
        Training residuals kept for ``residual="resample"``.
    spread_scale : float, default=1.0
        Factor on the predictive spread: the standard deviation of
        :meth:`predict` and each sample's deviation from the conditional mean
        (the residual outside the basis included). Set it from held-out data
        to calibrate the closure (see the module docstring); 1 keeps the
        learned law.
    sample_dim : str, default="time"
    trajectory_dim : str or None, default="trajectory"
        When labelled data have this dim, its entries are samples too (every
        snapshot of every trajectory), and outputs keep it.
    random_state : int, RandomState or None, default=None
    mean_model : regressor or None, default=None
        An estimator with ``fit(X, Y)`` and ``predict(X)`` on the closure's own
        inputs, whose prediction is the bulk of ``E[Y | X]``; the closure models
        ``Y - mean_model.predict(X)``. None: the closure models ``Y`` itself.
    prefit_mean_model : bool, default=False
        ``mean_model`` is fitted already and used as is (one mean model shared
        by several closures, and by the closure's clones, as scikit-learn's
        ``FrozenEstimator``); False: a clone of it is fitted on ``(X, Y)``.

    Attributes
    ----------
    mean_model_ : regressor or None
        The fitted ``mean_model``.
    input_info_, output_info_ : StackInfo
        Layouts of the resolved and unresolved data.
    input_pca_, output_pca_ : sklearn.decomposition.PCA
    output_scale_ : ndarray of shape (n_output_modes,)
        Standard deviation of each output coefficient (the model sees unit ones).
    residual_var_ : ndarray of shape (n_features_out,)
        Per-point variance of the training residual outside the output basis.
    residual_bank_ : ndarray of shape (n_residual_bank, n_features_out)
    n_samples_fit_ : int

    Examples
    --------
    A closure is ``_fit_reduced`` / ``_predict_reduced`` / ``_sample_reduced`` on the
    whitened coefficients; the concrete ones are :class:`GPClosure`,
    :class:`VAEClosure` and :class:`DiffusionClosure`:

    >>> import numpy as np
    >>> from xdyn.closure import GPClosure
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-2, 2, (200, 2))
    >>> Y = np.sin(X) + 0.1 * rng.normal(size=X.shape)
    >>> gp = GPClosure(2, 2, max_epochs=30, random_state=0).fit(X, Y)
    >>> isinstance(gp, BaseClosure), gp.predict(X[:3], return_std=True)[1].shape
    (True, (3, 2))
    """

    _parameter_constraints = {
        "n_input_modes": [Interval(Integral, 1, None, closed="left")],
        "n_output_modes": [Interval(Integral, 1, None, closed="left")],
        "residual": [StrOptions({"resample", "none"})],
        "n_residual_bank": [Interval(Integral, 1, None, closed="left")],
        "spread_scale": [Interval(Real, 0, None, closed="neither")],
        "sample_dim": [str],
        "trajectory_dim": [str, None],
        "random_state": ["random_state"],
        "mean_model": [HasMethods(["fit", "predict"]), None],
        "prefit_mean_model": ["boolean"],
    }

    _prefit_models = {"prefit_mean_model": ("mean_model",)}  # clones keep it

    def __init__(self, n_input_modes=16, n_output_modes=16, *, residual="resample",
                 n_residual_bank=256, spread_scale=1.0, sample_dim="time",
                 trajectory_dim="trajectory", random_state=None, mean_model=None,
                 prefit_mean_model=False):
        self.n_input_modes = n_input_modes
        self.n_output_modes = n_output_modes
        self.residual = residual
        self.n_residual_bank = n_residual_bank
        self.spread_scale = spread_scale
        self.sample_dim = sample_dim
        self.trajectory_dim = trajectory_dim
        self.random_state = random_state
        self.mean_model = mean_model
        self.prefit_mean_model = prefit_mean_model

    # --- hooks of a subclass ----------------------------------------------
    def _fit_reduced(self, Z, C):
        """Learn ``p(C | Z)``: ``Z`` whitened input coefficients, ``C`` unit-scaled outputs."""
        raise NotImplementedError

    def _sample_reduced(self, Z, n_samples, rng):
        """``(n_samples, n, n_output_modes)`` draws of the unit-scaled output coefficients."""
        raise NotImplementedError

    def _predict_reduced(self, Z):
        """Mean and covariance ``(n, k)``, ``(n, k, k)`` of the coefficients, or None.

        None (the default): moments are estimated from ``n_moment_samples`` draws.
        """
        return None

    n_moment_samples = 64

    # --- fit ----------------------------------------------------------------
    def fit(self, X, Y, Y_mean=None):
        """Learn the law of the unresolved ``Y`` given the resolved ``X``.

        Parameters
        ----------
        X : xarray.Dataset, xarray.DataArray or ndarray of shape (n_samples, n_features_in)
            Resolved state; ``sample_dim`` is the sample dimension.
        Y : same kinds, the unresolved field at the same samples.
            Labelled ``Y`` is paired with labelled ``X`` by label along
            ``sample_dim`` (and ``trajectory_dim``), whatever order it is stored
            in; a ``ValueError`` names the dim whose labels differ.
        Y_mean : same kind as ``Y``, optional
            ``mean_model.predict(X)`` when it is known already (only with
            ``prefit_mean_model=True``): saves evaluating the mean model on
            every training sample.

        Returns
        -------
        self
        """
        self._validate_params()
        X, Y, Y_mean = unwrap(X), unwrap(Y), unwrap(Y_mean)  # model_selection's sample views
        if Y_mean is not None and not (self.mean_model is not None and self.prefit_mean_model):
            raise ValueError("Y_mean is the prediction of a prefit mean model; it needs "
                             "mean_model and prefit_mean_model=True")
        if Y_mean is not None and _layout(Y_mean) != _layout(Y):
            raise ValueError(f"Y_mean must have Y's layout {_layout(Y)}; got {_layout(Y_mean)}")
        # rows are paired by label, not by storage order: Y (and Y_mean) in X's order
        Y = self._align_samples(X, Y, "Y")
        if Y_mean is not None:
            Y_mean = self._align_samples(X, Y_mean, "Y_mean")
        self.mean_model_ = self._fitted_mean_model(X, Y)
        if self.mean_model_ is not None:
            Y = same_fields_op(np.subtract, Y, self.mean_model_.predict(X)
                               if Y_mean is None else Y_mean, "Y and the mean model's output")
        Xm, self.input_info_ = self._stack(X, "X")
        Ym, self.output_info_ = self._stack(Y, "Y")
        if Xm.shape[0] != Ym.shape[0]:
            raise ValueError(f"X and Y must have the same number of samples along "
                             f"{self.sample_dim!r}; got {Xm.shape[0]} and {Ym.shape[0]}")
        n = Xm.shape[0]
        for name, m, k in (("n_input_modes", Xm, self.n_input_modes),
                           ("n_output_modes", Ym, self.n_output_modes)):
            if k > min(m.shape):
                raise ValueError(f"{name}={k} exceeds min(n_samples, n_features) = "
                                 f"{min(m.shape)} of the data")
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        self.input_pca_ = PCA(self.n_input_modes, whiten=True, random_state=seed).fit(Xm)
        Z = self.input_pca_.transform(Xm).astype(np.float64)
        del Xm
        self.output_pca_ = PCA(self.n_output_modes, random_state=seed).fit(Ym)
        C = self.output_pca_.transform(Ym).astype(np.float64)
        self.output_scale_ = C.std(0) + np.finfo(np.float64).tiny
        rng = np.random.RandomState(seed)
        keep = np.sort(rng.choice(n, min(n, self.n_residual_bank), replace=False))
        self.residual_var_, self.residual_bank_ = self._residual_stats(Ym, C, keep)
        self.n_samples_fit_ = n
        self._fit_reduced(Z, C / self.output_scale_)
        return self

    def _align_samples(self, X, Y, name):
        """``Y`` ordered along the sample dims as ``X`` is, when both are labelled.

        The sample dims are ``sample_dim`` and, when ``X`` has it, ``trajectory_dim``.
        """
        labelled = (xr.Dataset, xr.DataArray)
        if not (isinstance(X, labelled) and isinstance(Y, labelled)):
            return Y
        td = self.trajectory_dim
        if td is not None and td in Y.dims and td not in X.dims:
            raise ValueError(f"{name} has the dim {td!r} (trajectory_dim) and X has not; "
                             "their samples cannot be paired")
        dims = [d for d in (td, self.sample_dim) if d is not None and d in X.dims]
        return align_labels(X, Y, dims, name)

    def _fitted_mean_model(self, X, Y):
        if self.mean_model is None:
            return None
        if not self.prefit_mean_model:
            return clone(self.mean_model).fit(X, Y)
        try:
            check_is_fitted(self.mean_model)
        except NotFittedError as err:
            raise NotFittedError("prefit_mean_model=True but mean_model is not fitted; fit it "
                                 "first, or set prefit_mean_model=False") from err
        return self.mean_model

    def _add_mean(self, out, X):
        """``out`` (fields of the closure's law) plus the mean model's prediction at ``X``."""
        if getattr(self, "mean_model_", None) is None:
            return out
        return same_fields_op(np.add, out, self.mean_model_.predict(X),
                              "the closure's law and its mean model's output")

    def _residual_stats(self, Ym, C, keep, chunk=4096):
        """Per-point second moment of ``Ym`` outside the output basis, and its rows ``keep``.

        In chunks of rows: the residual of every sample at once would be another
        copy of the training fields (2.6 GB for 40000 snapshots of 64 x 64 x 2).
        """
        n, total = Ym.shape[0], np.zeros(Ym.shape[1])
        bank = []
        for start in range(0, n, chunk):
            rows = slice(start, min(start + chunk, n))
            resid = Ym[rows] - self.output_pca_.inverse_transform(C[rows])
            total += (resid.astype(np.float64) ** 2).sum(0)
            picked = keep[(keep >= rows.start) & (keep < rows.stop)] - rows.start
            bank.append(resid[picked].astype(np.float32))
        return total / n, np.concatenate(bank)

    # --- predict / sample ---------------------------------------------------
    def predict(self, X, return_std=False):
        """Conditional mean (and standard deviation) of the unresolved field.

        Parameters
        ----------
        X : Dataset, DataArray or ndarray
            Resolved states, laid out as in :meth:`fit`.
        return_std : bool, default=False
            Also return the predictive standard deviation per point (the
            residual outside the output basis included unless ``residual="none"``).

        Returns
        -------
        mean : same kind as the ``Y`` of :meth:`fit` (ndarray when ``X`` is one)
        std : same kind, only when ``return_std``
        """
        X = unwrap(X)
        Z, coord, labelled = self._reduce(X)
        mean_c, var = self._moments(Z, need_var=return_std)
        mean = self._add_mean(self._out(mean_c @ self._weights() + self.output_pca_.mean_,
                                        coord, labelled), X)
        if not return_std:
            return mean
        if self.residual == "resample":
            var = var + self.residual_var_
        std = self.spread_scale * np.sqrt(var)
        return mean, self._out(std, coord, labelled)

    def score(self, X, Y):
        """Minus the relative L2 error of the conditional mean against ``Y``.

        ``||Y - mean|| / ||Y||`` over every point, variable and sample
        (:func:`xdyn.metrics.relative_l2`), the rel-L2 of Zighed et al. (2025);
        higher is better, as scikit-learn expects of a score, so a model search
        over closures ranks them by it.

        Parameters
        ----------
        X : Dataset, DataArray or ndarray
            Resolved states, laid out as in :meth:`fit`.
        Y : same kind as the ``Y`` of :meth:`fit`
            The unresolved field at those states. As in :meth:`fit`, labelled
            ``Y`` is paired with ``X`` by label along ``sample_dim`` (and
            ``trajectory_dim``), whatever order it is stored in; a
            ``ValueError`` names the dim whose labels differ. Its other dims
            must carry the fitted ``Y``'s coordinates.

        Returns
        -------
        float

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> from xdyn.closure import GPClosure
        >>> rng = np.random.RandomState(0)
        >>> X = xr.Dataset({"u": (("time", "x"), rng.normal(size=(40, 2)))},
        ...                coords={"time": np.arange(40.0)})
        >>> gp = GPClosure(2, 2, max_epochs=5, random_state=0).fit(X, X**2)
        >>> reordered = (X**2).isel(time=slice(None, None, -1))  # same labels, other order
        >>> gp.score(X, reordered) == gp.score(X, X**2)
        True
        """
        check_is_fitted(self, "input_pca_")
        X, Y = unwrap(X), unwrap(Y)
        # paired by label as in fit: Y's samples in X's order (predict keeps X's)
        Y = self._align_samples(X, Y, "Y")
        mean = self.predict(X)
        if isinstance(mean, xr.Dataset):
            missing = [v for v in mean.data_vars if not isinstance(Y, xr.Dataset)
                       or v not in Y.data_vars]
            if missing:
                raise ValueError(f"Y lacks the variable(s) {missing} the closure predicts")
            mean = mean.to_dataarray("variable")
            Y = Y[list(mean["variable"].values)].to_dataarray("variable")
        elif not isinstance(mean, xr.DataArray):
            mean, Y = xr.DataArray(mean), xr.DataArray(np.asarray(Y, dtype=float))
        return -float(relative_l2(mean, Y))

    def sample(self, X, n_samples=10, random_state=None):
        """Draws of the unresolved field given the resolved state: a ``member`` dim.

        Parameters
        ----------
        X : Dataset, DataArray or ndarray
        n_samples : int, default=10
        random_state : int, RandomState or None
            None: the estimator's ``random_state``.

        Returns
        -------
        samples : same kind as ``Y`` with a leading ``member`` dim (ndarray:
            shape ``(n_samples, n, n_features_out)``)
        """
        if not is_integer(n_samples) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}")
        X = unwrap(X)
        Z, coord, labelled = self._reduce(X)
        rng = check_random_state(self.random_state if random_state is None else random_state)
        draws = self._sample_reduced(Z, int(n_samples), rng)
        if self.spread_scale != 1:
            # deviations from the conditional mean scaled, the mean kept
            center = self._moments(Z, rng, need_var=False)[0]
            draws = center + self.spread_scale * (draws - center)
        draws = draws * self.output_scale_
        fields = np.stack([self.output_pca_.inverse_transform(d) for d in draws])
        if self.residual == "resample":
            pick = rng.randint(len(self.residual_bank_), size=fields.shape[:2])
            fields = fields + self.spread_scale * self.residual_bank_[pick]
        if not labelled:
            return self._add_mean(fields, X)
        out = [self._out(f, coord, True) for f in fields]
        out = xr.concat(out, dim=MEMBER_DIM, coords="minimal", join="override").assign_coords(
            {MEMBER_DIM: np.arange(n_samples)})
        return self._add_mean(out, X)

    # --- helpers ------------------------------------------------------------
    def _weights(self):
        """Unit-scaled output coefficients -> field: ``(n_output_modes, n_features_out)``."""
        return self.output_pca_.components_ * self.output_scale_[:, None]

    def _moments(self, Z, rng=None, need_var=True):
        """Mean of the unit-scaled coefficients and the per-point field variance they imply.

        From :meth:`_predict_reduced` when the subclass gives moments, else from
        ``n_moment_samples`` draws. ``need_var=False`` skips the variance (None).
        """
        moments = self._predict_reduced(Z)
        W = self._weights()
        if moments is None:
            rng = check_random_state(self.random_state) if rng is None else rng
            draws = self._sample_reduced(Z, self.n_moment_samples, rng)
            mean_c = draws.mean(0)
            if not need_var:
                return mean_c, None
            var = np.zeros((Z.shape[0], W.shape[1]))
            for d in draws:  # one draw at a time: memory n x n_features
                var += ((d - mean_c) @ W) ** 2
            return mean_c, var / max(len(draws) - 1, 1)
        mean_c, cov = moments
        if not need_var:
            return mean_c, None
        var = np.einsum("nkl,kf,lf->nf", cov, W, W) if cov.ndim == 3 else cov @ W ** 2
        return mean_c, var

    def _stack(self, data, name, info=None):
        if isinstance(data, (xr.Dataset, xr.DataArray)):
            if self.sample_dim not in data.dims:
                raise ValueError(f"{name} has no sample dim {self.sample_dim!r} "
                                 f"(sample_dim); its dims are {tuple(data.dims)}")
            if info is not None and not hasattr(info, "variables"):
                raise TypeError(f"the closure was fitted on arrays; pass {name} as a 2-D array")
            data, _ = self._merge_trajectories(data)
            matrix, info = stack_samples(data, self.sample_dim, info)
            m, named = _as_float(matrix.values), info
        else:
            m, named = _as_float(data), None
            if m.ndim != 2:
                raise ValueError(f"{name} must be a Dataset, a DataArray or a 2-D array; "
                                 f"got an array of shape {m.shape}")
            if info is not None and getattr(info, "n_features", m.shape[1]) != m.shape[1]:
                raise ValueError(f"{name} has {m.shape[1]} features; the closure was fitted "
                                 f"on {info.n_features}")
        if m.shape[0] == 0:
            raise ValueError(f"{name} has no samples")
        if not np.isfinite(m).all():
            bad = [] if named is None else named.nonfinite_names(m)
            where = f" (variable(s) {bad})" if bad else ""
            raise ValueError(f"{name} contains NaN or infinite values{where}")
        return m, info

    def _reduce(self, X):
        check_is_fitted(self, "input_pca_")
        labelled = isinstance(X, (xr.Dataset, xr.DataArray))
        width = _Width(self.input_pca_.n_features_in_)
        Xm, _ = self._stack(X, "X", (self.input_info_ or width) if labelled else width)
        coord = None
        if labelled:
            merged, restore = self._merge_trajectories(X)
            coord = restore if restore is not None else (
                X[self.sample_dim] if self.sample_dim in X.coords else None)
        labelled = labelled and self.output_info_ is not None
        return self.input_pca_.transform(Xm).astype(np.float64), coord, labelled

    def _out(self, matrix, coord, labelled):
        if not labelled:
            return matrix
        if isinstance(coord, _Restore):
            return coord(unstack_samples(matrix, self.output_info_))
        return unstack_samples(matrix, self.output_info_, sample_coord=coord)

    def _merge_trajectories(self, data):
        """Trajectories x snapshots as one sample dim, and how to undo it (None if no trajectories)."""
        td, sd = self.trajectory_dim, self.sample_dim
        if td is None or td not in data.dims:
            return data, None
        stacked = data.stack({_MERGED: (td, sd)}, create_index=True)
        index = stacked.indexes[_MERGED]
        flat = stacked.drop_vars([_MERGED, td, sd], errors="ignore").rename({_MERGED: sd})
        # stack puts the merged dim last: the sample dim first again, as a Y without
        # trajectories has it, so outputs for X without trajectories are (time, x), not (x, time)
        flat = flat.transpose(sd, ...)
        # the index levels carry no attrs: the coordinates' own (units) are given back
        attrs = {d: dict(data[d].attrs) for d in (td, sd) if d in data.coords}
        return flat, _Restore(index, sd, td, attrs)


_MERGED = "__xdyn_sample__"


def same_fields_op(op, a, b, what):
    """``op(a, b)`` of two fields of the same kind on the same grid.

    Two Datasets must have the same variables; xarray's default inner join dropped
    the variables and points one side lacks, without a word, so labels must match
    exactly. Two DataArrays are one field each, whatever their names (the result
    keeps ``a``'s). A DataArray or an array with an array ``b`` (what a scikit-learn
    regressor predicts) is paired by position: ``b``'s shape must end ``a``'s.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.Dataset({"u": ("x", [1.0, 2.0])}, coords={"x": [0.0, 1.0]})
    >>> float(same_fields_op(np.add, a, a, "a and a").u.sum())
    6.0
    >>> same_fields_op(np.subtract, np.ones((2, 3)), np.ones((2, 3)), "a and b").shape
    (2, 3)
    """
    labelled = (xr.Dataset, xr.DataArray)
    if not isinstance(b, labelled) and not isinstance(a, xr.Dataset):
        b = np.asarray(b)
        if np.ndim(a) < b.ndim or np.shape(a)[np.ndim(a) - b.ndim:] != b.shape:
            raise ValueError(f"{what} have other shapes: {np.shape(a)} and {b.shape}")
        with xr.set_options(keep_attrs=True):
            return op(a, b)
    if type(a) is not type(b) or not isinstance(a, labelled):
        raise ValueError(f"{what} are of other kinds: {type(a).__name__} and "
                         f"{type(b).__name__}")
    if isinstance(a, xr.Dataset) and set(a.data_vars) != set(b.data_vars):
        raise ValueError(f"{what} have other variables: {sorted(a.data_vars)} and "
                         f"{sorted(b.data_vars)}")
    with xr.set_options(arithmetic_join="exact", keep_attrs=True):
        try:
            out = op(a, b)
        except ValueError as err:
            raise ValueError(f"{what} are on other grids ({err})") from None
    return out.rename(a.name) if isinstance(a, xr.DataArray) else out


def align_labels(X, Y, dims, name="Y"):
    """``Y`` reordered along ``dims`` to ``X``'s labels: samples are paired by label.

    Parameters
    ----------
    X, Y : xarray.Dataset or xarray.DataArray
    dims : iterable of str
        Dims of ``X`` along which ``Y`` must carry the same labels, in any order.
    name : str, default="Y"
        ``Y``'s name in error messages.

    Returns
    -------
    ``Y``, along each of ``dims`` in ``X``'s order.

    Raises
    ------
    ValueError
        ``Y`` lacks one of ``dims``, or its labels along one are not a
        permutation of ``X``'s (other, missing or duplicated labels); without
        coordinates on either side, when the sizes differ.
    """
    for dim in dims:
        if dim not in Y.dims:
            raise ValueError(f"{name} lacks the dim {dim!r} of X; its dims are {tuple(Y.dims)}")
        xi, yi = X.indexes.get(dim), Y.indexes.get(dim)
        if xi is None or yi is None:  # positions are all there is to pair
            if X.sizes[dim] != Y.sizes[dim]:
                raise ValueError(f"X and {name} must have the same size along {dim!r}; got "
                                 f"{X.sizes[dim]} and {Y.sizes[dim]}")
            continue
        if xi.equals(yi):
            continue
        if len(xi) == len(yi) and xi.is_unique and yi.is_unique:
            where = yi.get_indexer(xi)
            if (where >= 0).all():  # the same labels stored in another order
                Y = Y.isel({dim: where})
                continue
        missing, other = xi.difference(yi)[:3].tolist(), yi.difference(xi)[:3].tolist()
        detail = (f"{name} lacks {missing} and has {other}" if missing or other
                  else "duplicated labels")
        raise ValueError(f"X and {name} must have the same {dim!r} labels (samples are paired "
                         f"by label); they differ: {detail} (first ones shown), sizes "
                         f"{len(xi)} and {len(yi)}")
    return Y


def _layout(data):
    """Dims and sizes of labelled data, else the shape."""
    return dict(data.sizes) if isinstance(data, (xr.Dataset, xr.DataArray)) else np.shape(data)


def _as_float(data):
    """``data`` as a float array: float32 kept (a large training set's memory halved), else
    float64."""
    m = np.asarray(data)
    return m if m.dtype == np.float32 else np.asarray(m, dtype=np.float64)


class _Restore:
    """Splits a merged sample dim back into (trajectory, sample) with their coordinates
    (and the coordinates' ``attrs``)."""

    def __init__(self, index, sample_dim, trajectory_dim, attrs=None):
        self.index, self.sample_dim, self.trajectory_dim = index, sample_dim, trajectory_dim
        self.attrs = {} if attrs is None else attrs

    def __call__(self, data):
        # levels renamed while they share the merged dim's name (xarray refuses that)
        levels = ("__xdyn_trajectory__", "__xdyn_time__")
        index = self.index.set_names(levels)
        coords = xr.Coordinates.from_pandas_multiindex(index, self.sample_dim)
        out = data.assign_coords(coords).unstack(self.sample_dim)
        out = out.rename({levels[0]: self.trajectory_dim, levels[1]: self.sample_dim})
        out = out.assign_coords({d: out[d].assign_attrs(a) for d, a in self.attrs.items()})
        return out.transpose(self.trajectory_dim, self.sample_dim, ...)


class _Width:
    """A layout stand-in for array inputs: only the number of features is checked."""

    def __init__(self, n_features):
        self.n_features = n_features
