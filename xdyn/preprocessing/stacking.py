"""Dataset <-> sample-matrix stacking: the one place xdyn flattens labelled data.

Anything that needs a plain ``(n_samples, n_features)`` matrix (PCA, a
regression, a neural net) gets it from :func:`stack_samples` and turns a matrix
back into labelled data with :func:`unstack_samples`; :class:`Stacker` is the
same pair as a scikit-learn transformer for pipelines. The design follows the
preprocessor of xeofs (Rieger & Levang 2024, JOSS 9, 6060): the sample
dimension is named, every other dimension is a feature, and the layout recorded
when stacking (:class:`StackInfo`) is enough to unstack *any* matrix with the
same features — also unseen samples with other sample coordinates
(PITFALLS 1).

The feature axis is a plain integer dim ``feature`` (``0 .. n_features - 1``)
with a non-index coordinate ``variable_name`` (not ``variable``, which is a
DataArray attribute) naming each column's variable. A MultiIndex is not used:
variables with different dims (Lorenz-63 scalars next to a field) share no
levels. Which columns hold which variable, its feature dims, shape, dtype and
attrs are kept in :class:`StackInfo`, with the coordinates that lack the sample
dim (grids, scalar coords).

Nothing here computes: on dask-backed data the transpose, reshape and
concatenation are dask operations and stay lazy (PITFALLS 2). NaNs pass through
unchanged (no column is dropped).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Hashable

import dask
import dask.array as dsa
import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from xdyn._units import other_units
from xdyn.model_selection import unwrap

__all__ = ["FEATURE_DIM", "VARIABLE_COORD", "StackInfo", "Stacker", "VariableLayout",
           "flatten_variables", "stack_samples", "unflatten_variables", "unstack_samples"]

FEATURE_DIM = "feature"
VARIABLE_COORD = "variable_name"
_UNNAMED = "__xdyn_unnamed__"


@dataclasses.dataclass(frozen=True, eq=False)
class VariableLayout:
    """Where one variable lives in the sample matrix: columns ``start:stop``.

    One entry of :attr:`StackInfo.variables`, made by :func:`stack_samples`.

    Parameters
    ----------
    name : hashable
        The variable's name.
    dims : tuple
        Its dims in their original order, the sample dim included.
    feature_dims : tuple
        The dims flattened into its columns, in C order.
    shape : tuple of int
        Sizes of ``feature_dims``.
    start, stop : int
        Its columns in the sample matrix (:attr:`columns`).
    dtype : numpy.dtype
        Restored on unstacking when the matrix dtype casts to it within its kind.
    attrs : dict
        Its attrs (``units``, ``long_name`` ...).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"x": ("time", np.zeros(4)),
    ...                  "w": (("time", "y"), np.ones((4, 3)), {"units": "m"})})
    >>> X, info = stack_samples(ds)
    >>> layout = info.variables[1]
    >>> layout.name, layout.feature_dims, layout.shape, layout.columns, layout.attrs
    ('w', ('y',), (3,), slice(1, 4, None), {'units': 'm'})
    >>> X[:, layout.columns].shape
    (4, 3)
    """

    name: Hashable
    dims: tuple          # original dims order, sample dim included
    feature_dims: tuple  # the dims flattened into the columns, in C order
    shape: tuple         # their sizes
    start: int
    stop: int
    dtype: np.dtype      # restored when the matrix dtype casts to it within its kind
    attrs: dict          # units, long_name ...

    @property
    def columns(self) -> slice:
        return slice(self.start, self.stop)


@dataclasses.dataclass(frozen=True, eq=False)
class StackInfo:
    """Layout of a stacked Dataset or DataArray: all :func:`unstack_samples` needs.

    Made by :func:`stack_samples` (its second return value); its fields are
    read back as attributes of the same names.

    Parameters
    ----------
    sample_dim : str
        The dim that became the matrix rows.
    variables : tuple of VariableLayout
        In column order (the order of the data variables).
    coords : xarray.Dataset
        Coordinates without the sample dim (grid, scalar coords), attrs included.
    attrs : dict
        Dataset attrs (empty for a DataArray: its attrs are its variable's).
    sample_attrs : dict
        Attrs of the sample coordinate (``time`` units), given to a bare
        ``sample_coord`` when unstacking.
    is_dataarray : bool
        Whether a DataArray was stacked: unstacking then returns a DataArray.
    name : hashable, default=None
        The DataArray's name (``None`` for a Dataset or an unnamed array).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"x": ("time", np.zeros(4)), "w": (("y", "time"), np.zeros((3, 4)))})
    >>> info = stack_samples(ds)[1]
    >>> info.names, info.n_features, info.columns("w")
    (('x', 'w'), 4, slice(1, 4, None))
    >>> layout = info.variables[1]
    >>> layout.dims, layout.feature_dims, layout.shape
    (('y', 'time'), ('y',), (3,))
    """

    sample_dim: str
    variables: tuple
    coords: xr.Dataset
    attrs: dict
    sample_attrs: dict
    is_dataarray: bool
    name: Hashable = None

    @property
    def n_features(self) -> int:
        return self.variables[-1].stop

    @property
    def names(self) -> tuple:
        """Variable names in column order."""
        return tuple(v.name for v in self.variables)

    def columns(self, name) -> slice:
        """The matrix columns of variable ``name``.

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> ds = xr.Dataset({"u": (("time", "x"), np.zeros((2, 3))), "p": ("time", [7.0, 8.0])})
        >>> X, info = stack_samples(ds)
        >>> X[:, info.columns("p")].values.tolist()
        [[7.0], [8.0]]
        >>> info.columns("q")
        Traceback (most recent call last):
        ...
        KeyError: "no variable 'q' in the layout; it has ['u', 'p']"
        """
        for v in self.variables:
            if v.name == name:
                return v.columns
        raise KeyError(f"no variable {name!r} in the layout; it has {list(self.names)}")

    def nonfinite_names(self, values) -> list:
        """Names of the variables with a NaN or infinite value in ``values`` (column order).

        ``values`` is an array whose last axis holds this layout's columns; an
        unnamed DataArray's variable is left out (it has no name to give).

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> ds = xr.Dataset({"u": (("time", "x"), [[1.0, np.nan]]), "p": ("time", [7.0])})
        >>> X, info = stack_samples(ds)
        >>> info.nonfinite_names(X.values)
        ['u']
        """
        ok = np.isfinite(np.asarray(values).reshape(-1, self.n_features)).all(0)
        return [str(v.name) for v in self.variables
                if v.name != _UNNAMED and not ok[v.columns].all()]


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def flatten_variables(ds, variables, lead_dims=None):
    """Flatten the feature dims of ``variables`` into one last axis: the one Dataset -> array path.

    Every Dataset -> array conversion in xdyn goes through here:
    :func:`stack_samples` (one sample dim), a system's ``to_state`` and
    :func:`xdyn.observe.observe` (any leading dims: ``time``, ``member`` ...).

    Parameters
    ----------
    ds : xarray.Dataset
    variables : sequence
        Layout records with ``name``, ``feature_dims`` and ``shape``
        (:class:`VariableLayout`, :class:`xdyn.systems.StateVariable`); their
        columns follow in this order, each flattened in C order.
    lead_dims : sequence of str, optional
        The dims kept in front, in this order. Default: the dims of the first
        variable that are not its feature dims, in the order they appear.

    Returns
    -------
    values : numpy.ndarray or dask.array.Array
        Shape ``(*lead, n_features)``; dask-backed when any variable is.
    lead_dims : tuple of str

    Raises
    ------
    ValueError
        Naming a missing variable, or a variable whose dims are not its
        feature dims plus the leading dims.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from xdyn.systems import StateVariable
    >>> ds = xr.Dataset({"p": ("time", [1.0, 2.0]),
    ...                  "u": (("x", "time"), [[3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])})
    >>> layout = [StateVariable("p"), StateVariable("u", ("x",), (3,))]
    >>> values, lead = flatten_variables(ds, layout)
    >>> lead, values.tolist()
    (('time',), [[1.0, 3.0, 5.0, 7.0], [2.0, 4.0, 6.0, 8.0]])
    >>> flatten_variables(ds.drop_vars("u"), layout)
    Traceback (most recent call last):
    ...
    ValueError: missing variable(s) ['u']; the layout has ['p', 'u'] and the data ['p']
    """
    variables = list(variables)
    missing = [v.name for v in variables if v.name not in ds.data_vars]
    if missing:
        raise ValueError(f"missing variable(s) {missing}; the layout has "
                         f"{[v.name for v in variables]} and the data {list(ds.data_vars)}")
    if lead_dims is None:
        first = variables[0]
        lead_dims = [d for d in ds[first.name].dims if d not in first.feature_dims]
    lead_dims = tuple(lead_dims)
    blocks = []
    for v in variables:
        var = ds[v.name].variable
        got = dict(var.sizes)
        want = {**{d: got.get(d) for d in lead_dims}, **dict(zip(v.feature_dims, v.shape))}
        if set(var.dims) != set(lead_dims) | set(v.feature_dims) or any(
                got[d] != n for d, n in zip(v.feature_dims, v.shape)):
            raise ValueError(f"variable {v.name!r} has dims {got}; expected its feature dims "
                             f"{dict(zip(v.feature_dims, v.shape))} plus the leading dims "
                             f"{lead_dims} (together {want})")
        var = var.transpose(*lead_dims, *v.feature_dims)
        blocks.append(var.data.reshape(var.shape[:len(lead_dims)] + (_size(v.shape),)))
    xp = dsa if any(dask.is_dask_collection(b) for b in blocks) else np
    values = blocks[0] if len(blocks) == 1 else xp.concatenate(blocks, axis=-1)
    return values, lead_dims


def unflatten_variables(values, variables, lead_dims=()):
    """The inverse of :func:`flatten_variables`: ``{name: xarray.Variable}``.

    Parameters
    ----------
    values : array of shape ``(*lead, n_features)``
        numpy or dask (kept lazy).
    variables : sequence
        Layout records with ``name``, ``feature_dims``, ``shape`` and ``attrs``.
    lead_dims : sequence of str
        Names of the leading axes.

    Returns
    -------
    dict
        Variable name -> :class:`xarray.Variable` with dims
        ``(*lead_dims, *feature_dims)`` and the record's attrs.

    Examples
    --------
    >>> import numpy as np
    >>> from xdyn.systems import StateVariable
    >>> layout = [StateVariable("p"), StateVariable("u", ("x",), (2,), {"units": "m"})]
    >>> out = unflatten_variables(np.arange(6.0).reshape(2, 3), layout, ("time",))
    >>> out["u"].dims, out["u"].values.tolist(), out["u"].attrs
    (('time', 'x'), [[1.0, 2.0], [4.0, 5.0]], {'units': 'm'})
    """
    variables = list(variables)
    lead_dims = tuple(lead_dims)
    n_features = sum(_size(v.shape) for v in variables)
    if values.ndim != len(lead_dims) + 1 or values.shape[-1] != n_features:
        raise ValueError(f"array of shape {values.shape} does not match the leading dims "
                         f"{lead_dims} and {n_features} features of the layout "
                         f"{[v.name for v in variables]}")
    lead_shape = values.shape[:-1]
    out, start = {}, 0
    for v in variables:
        stop = start + _size(v.shape)
        block = values[..., start:stop].reshape(lead_shape + tuple(v.shape))
        out[v.name] = xr.Variable(lead_dims + tuple(v.feature_dims), block, dict(v.attrs))
        start = stop
    return out


def stack_samples(data, sample_dim: str | None = None, info: StackInfo | None = None):
    """Stack a Dataset or DataArray into a ``(sample_dim, "feature")`` matrix.

    Every dim other than ``sample_dim`` is flattened (C order, each variable in
    its own dims order) and the variables are concatenated column-wise.

    Parameters
    ----------
    data : xarray.Dataset or xarray.DataArray
        Every data variable must have ``sample_dim`` and a numeric dtype.
    sample_dim : str, optional
        The sample dimension; every other dim is a feature. Default: ``"time"``,
        or ``info.sample_dim`` when ``info`` is given (another one is refused).
    info : StackInfo, optional
        Stack following this layout (from an earlier call on training data);
        ``data`` must then have the same variables, feature dims and sizes, and
        the same grid coordinates, but any number of samples.

    Returns
    -------
    matrix : xarray.DataArray
        Dims ``(sample_dim, "feature")``; coords: the 1-D coordinates along
        ``sample_dim``, ``feature`` (integers) and ``variable_name`` (name per
        column). Dask-backed when any input variable is (nothing is computed).
    info : StackInfo
        The layout, for :func:`unstack_samples`.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset(
    ...     {"x": ("time", np.arange(3.0), {"units": "m"}),
    ...      "w": (("time", "y"), np.ones((3, 2)), {"units": "s-1"})},
    ...     coords={"time": [0.0, 0.1, 0.2], "y": [10, 20]})
    >>> matrix, info = stack_samples(ds)
    >>> matrix.dims, matrix.shape
    (('time', 'feature'), (3, 3))
    >>> matrix["variable_name"].values.tolist()
    ['x', 'w', 'w']
    >>> unstack_samples(matrix, info).identical(ds)
    True
    >>> stack_samples(ds, "y", info=info)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: sample_dim 'y' contradicts info, which stacks along 'time'; ...
    """
    if info is None:
        info = _layout(data, "time" if sample_dim is None else sample_dim)
    else:
        if sample_dim is not None and sample_dim != info.sample_dim:
            raise ValueError(f"sample_dim {sample_dim!r} contradicts info, which stacks along "
                             f"{info.sample_dim!r}; pass sample_dim=None (or "
                             f"{info.sample_dim!r}), or stack anew without info")
        _check_compatible(data, info)
    ds, _ = _as_dataset(data, _internal_name(info))
    sample_dim = info.sample_dim
    values, _ = flatten_variables(ds, info.variables, (sample_dim,))
    coords = {k: c.variable for k, c in ds.coords.items() if c.dims == (sample_dim,)}
    clash = {FEATURE_DIM, VARIABLE_COORD} & set(coords)
    if clash:
        raise ValueError(f"coordinate(s) {sorted(clash)} along {sample_dim!r} clash with the "
                         f"matrix's feature coordinates; rename them first")
    names = ["" if v.name == _UNNAMED else str(v.name) for v in info.variables]
    labels = np.repeat(np.array(names), [v.stop - v.start for v in info.variables])
    coords[FEATURE_DIM] = (FEATURE_DIM, np.arange(info.n_features))
    coords[VARIABLE_COORD] = (FEATURE_DIM, labels)
    return xr.DataArray(values, dims=(sample_dim, FEATURE_DIM), coords=coords), info


def unstack_samples(matrix, info: StackInfo, sample_coord=None):
    """Turn a ``(n_samples, n_features)`` matrix back into the layout of ``info``.

    Parameters
    ----------
    matrix : xarray.DataArray, numpy.ndarray or dask.array.Array
        2-D; a DataArray has a ``feature`` dim and one sample dim (whatever its
        name) whose 1-D coordinates are carried over. Any number of samples.
    info : StackInfo
        From :func:`stack_samples` (or :attr:`Stacker.layout_`).
    sample_coord : array-like or xarray.DataArray, optional
        Coordinate for the sample dim (length ``n_samples``); replaces those of
        a DataArray ``matrix``. A bare array gets the attrs the sample
        coordinate had when stacked. Without one (and a bare ``matrix``) the
        sample dim has no coordinate.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        The kind that was stacked, with its variable names, dims order, grid
        coordinates, variable and dataset attrs. A variable gets its original
        dtype back when the matrix dtype casts to it within its kind (float64 ->
        float32 yes, float -> int no). Lazy when ``matrix`` is a dask array.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"w": (("time", "x"), np.zeros((4, 3)), {"units": "s-1"})},
    ...                 coords={"time": ("time", np.arange(4.0), {"units": "s"})})
    >>> _, info = stack_samples(ds)
    >>> new = unstack_samples(np.ones((2, 3)), info, sample_coord=[7.0, 8.0])
    >>> new.w.dims, new.time.values.tolist(), new.time.attrs["units"], new.w.attrs
    (('time', 'x'), [7.0, 8.0], 's', {'units': 's-1'})
    """
    sd = info.sample_dim
    sample_coords = {}
    if isinstance(matrix, xr.DataArray):
        if matrix.ndim != 2 or FEATURE_DIM not in matrix.dims:
            raise ValueError(f"matrix must be 2-D with a {FEATURE_DIM!r} dim; "
                             f"got dims {matrix.dims}")
        other = next(d for d in matrix.dims if d != FEATURE_DIM)
        matrix = matrix.transpose(other, FEATURE_DIM)
        if FEATURE_DIM in matrix.indexes:  # the stacked columns are labelled 0 .. n - 1
            labels = np.asarray(matrix.indexes[FEATURE_DIM])
            if len(labels) == info.n_features and not np.array_equal(
                    labels, np.arange(info.n_features)):
                raise ValueError(f"the matrix's {FEATURE_DIM!r} labels are not the stacked "
                                 f"order 0 .. {info.n_features - 1} (columns reordered or "
                                 "selected?); sortby or reindex it first")
        sample_coords = {k: xr.Variable((sd,), c.data, c.attrs)
                         for k, c in matrix.coords.items() if c.dims == (other,)}
        if other != sd and other in sample_coords:
            sample_coords[sd] = sample_coords.pop(other)
        values = matrix.data
    else:
        values = matrix if dask.is_dask_collection(matrix) else np.asarray(matrix)
    if values.ndim != 2 or values.shape[1] != info.n_features:
        raise ValueError(f"expected a matrix of shape (n_samples, {info.n_features}); "
                         f"got shape {values.shape}")
    n = values.shape[0]
    if sample_coord is not None:
        labelled = isinstance(sample_coord, xr.DataArray)
        coord = sample_coord.data if labelled else np.asarray(sample_coord)
        if coord.ndim != 1 or coord.shape[0] != n:
            raise ValueError(f"sample_coord must be 1-D with {n} values (one per row); "
                             f"got shape {coord.shape}")
        attrs = sample_coord.attrs if labelled else info.sample_attrs
        sample_coords = {sd: xr.Variable((sd,), coord, dict(attrs))}
    return _in_layout(values, info, (sd,), sample_coords)


def _in_layout(values, info: StackInfo, lead_dims, coords):
    """``values`` ``(*lead, n_features)`` as the kind ``info`` stacked: its variables with
    dims ``(*other lead dims, *the variable's dims)`` (``lead_dims`` holds the sample dim),
    their dtypes and attrs, its grid coordinates and ``coords``; what
    :func:`unstack_samples` returns for one sample dim, and the ROMs for an ensemble's
    members and trajectories too."""
    other = tuple(d for d in lead_dims if d != info.sample_dim)
    data_vars = {}
    for v, var in zip(info.variables,
                      unflatten_variables(values, info.variables, lead_dims).values()):
        if var.dtype != v.dtype and np.can_cast(var.dtype, v.dtype, casting="same_kind"):
            var = var.astype(v.dtype)
        data_vars[v.name] = var.transpose(*other, *v.dims)
    ds = xr.Dataset(data_vars, coords=info.coords.coords, attrs=dict(info.attrs))
    ds = ds.assign_coords(coords)
    if info.is_dataarray:
        return ds[info.variables[0].name].rename(info.name)
    return ds


class Stacker(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Dataset <-> sample matrix as a scikit-learn transformer.

    ``fit`` records the layout (:class:`StackInfo`, no data is read);
    ``transform`` stacks any Dataset with that layout into a matrix for the
    next step (PCA, a regressor ...); ``inverse_transform`` unstacks any such
    matrix — unseen samples included — into a Dataset of the fitted layout.

    Parameters
    ----------
    sample_dim : str, default="time"
        The sample dimension; every other dim is a feature.

    Attributes
    ----------
    layout_ : StackInfo or None
        The fitted layout (``None`` when fitted on a bare matrix).
    n_features_in_ : int
        Columns of the stacked matrix.

    Notes
    -----
    ``transform`` returns a bare 2-D numpy array, or a dask array when the input
    is dask-backed (lazy; a scikit-learn step after it will compute it). The
    sample coordinate does not travel through such steps: pass it back with
    ``inverse_transform(Z, sample_coord=ds.time)``, or assign it afterwards
    (``Pipeline.inverse_transform`` forwards no extra arguments).
    A 2-D numpy array passes through unchanged in both directions (the identity),
    which is what scikit-learn's common checks and a Dataset-free pipeline see.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"w": (("time", "y", "x"), np.ones((5, 2, 3)), {"units": "s-1"})},
    ...                 coords={"time": np.arange(5.0)})
    >>> stacker = Stacker().fit(ds)
    >>> stacker.transform(ds).shape
    (5, 6)
    >>> back = stacker.inverse_transform(np.zeros((2, 6)), sample_coord=[10.0, 11.0])
    >>> back.w.dims, back.time.values.tolist()
    (('time', 'y', 'x'), [10.0, 11.0])
    """

    def __init__(self, sample_dim="time"):
        self.sample_dim = sample_dim

    def fit(self, X, y=None):
        """Record the layout of ``X`` (Dataset, DataArray or 2-D array); returns self.

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> ds = xr.Dataset({"u": (("time", "x"), np.zeros((2, 3))), "p": ("time", [7.0, 8.0])})
        >>> stacker = Stacker().fit(ds)
        >>> stacker.layout_.names, stacker.n_features_in_
        (('u', 'p'), 4)
        """
        X = unwrap(X)
        self.layout_ = _layout(X, self.sample_dim) if _is_xarray(X) else None
        if self.layout_ is not None:
            self.n_features_in_ = self.layout_.n_features
        elif dask.is_dask_collection(X) and X.ndim == 2:  # a lazy matrix is not read
            self.n_features_in_ = int(X.shape[1])
        else:
            validate_data(self, X, reset=True, dtype="numeric", ensure_all_finite="allow-nan")
        return self

    def transform(self, X):
        """The ``(n_samples, n_features)`` matrix of ``X`` (numpy, or dask if ``X`` is lazy).

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> ds = xr.Dataset({"u": (("time", "x"), np.arange(6.0).reshape(2, 3)),
        ...                  "p": ("time", [7.0, 8.0])})
        >>> Stacker().fit(ds).transform(ds)
        array([[0., 1., 2., 7.],
               [3., 4., 5., 8.]])
        """
        check_is_fitted(self)
        X = unwrap(X)
        if _is_xarray(X):
            if self.layout_ is None:
                raise TypeError("this Stacker was fitted on a bare matrix; fit it on the Dataset")
            return stack_samples(X, self.sample_dim, info=self.layout_)[0].data
        return self._check_matrix(X)

    def inverse_transform(self, X, sample_coord=None):
        """Unstack a matrix into the fitted layout (see :func:`unstack_samples`).

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> ds = xr.Dataset({"u": (("time", "x"), np.arange(6.0).reshape(2, 3)),
        ...                  "p": ("time", [7.0, 8.0])})
        >>> stacker = Stacker().fit(ds)
        >>> back = stacker.inverse_transform(np.array([[0.0, 0.0, 0.0, 1.0]]), sample_coord=[2.5])
        >>> back.u.dims, back.p.values.tolist(), back.time.values.tolist()
        (('time', 'x'), [1.0], [2.5])
        """
        check_is_fitted(self)
        if self.layout_ is None:
            return self._check_matrix(X)
        if not isinstance(X, xr.DataArray) and not dask.is_dask_collection(X):
            X = check_array(X, dtype="numeric", ensure_all_finite="allow-nan")
        return unstack_samples(X, self.layout_, sample_coord=sample_coord)

    def _check_matrix(self, X):
        if dask.is_dask_collection(X):
            if X.ndim != 2 or X.shape[1] != self.n_features_in_:
                raise ValueError(f"expected shape (n_samples, {self.n_features_in_}), "
                                 f"got {X.shape}")
            return X
        return validate_data(self, X, reset=False, dtype="numeric", ensure_all_finite="allow-nan")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


# ---------------------------------------------------------------- helpers
def _is_xarray(data) -> bool:
    return isinstance(data, (xr.Dataset, xr.DataArray))


def _internal_name(info):
    return info.variables[0].name if info is not None and info.is_dataarray else None


def _as_dataset(data, name=None):
    """``(Dataset, is_dataarray)``; a DataArray becomes a one-variable Dataset."""
    if isinstance(data, xr.DataArray):
        if name is None:
            name = _UNNAMED if data.name is None else data.name
        return data.to_dataset(name=name), True
    if isinstance(data, xr.Dataset):
        return data, False
    raise TypeError(f"expected an xarray Dataset or DataArray, got {type(data).__name__}")


def _layout(data, sample_dim) -> StackInfo:
    ds, is_dataarray = _as_dataset(data)
    if sample_dim not in ds.dims:
        raise ValueError(f"sample_dim {sample_dim!r} is not a dim of the data; dims are "
                         f"{tuple(ds.dims)}")
    if not ds.data_vars:
        raise ValueError("the Dataset has no data variables to stack")
    variables, start = [], 0
    for name, var in ds.data_vars.items():
        if sample_dim not in var.dims:
            raise ValueError(f"variable {name!r} has no {sample_dim!r} dim (dims {var.dims}); "
                             f"drop it or make it a coordinate: ds.set_coords({name!r})")
        if not (np.issubdtype(var.dtype, np.number) or var.dtype == bool):
            raise TypeError(f"variable {name!r} has non-numeric dtype {var.dtype}")
        feature_dims = tuple(d for d in var.dims if d != sample_dim)
        shape = tuple(int(var.sizes[d]) for d in feature_dims)
        stop = start + int(np.prod(shape, dtype=np.int64))
        variables.append(VariableLayout(name, tuple(var.dims), feature_dims, shape, start, stop,
                                        np.dtype(var.dtype), dict(var.attrs)))
        start = stop
    with_sample = [k for k, c in ds.coords.items() if sample_dim in c.dims]
    mixed = [k for k in with_sample if ds.coords[k].dims != (sample_dim,)]
    if mixed:
        warnings.warn(f"coordinate(s) {mixed} vary along {sample_dim!r} and other dims; they "
                      f"are not kept in the sample matrix and are lost when unstacking",
                      UserWarning, stacklevel=3)
    coords = ds.coords.to_dataset().drop_vars(with_sample)
    sample_attrs = dict(ds[sample_dim].attrs) if sample_dim in ds.coords else {}
    return StackInfo(sample_dim=sample_dim, variables=tuple(variables), coords=coords,
                     attrs={} if is_dataarray else dict(ds.attrs), sample_attrs=sample_attrs,
                     is_dataarray=is_dataarray, name=data.name if is_dataarray else None)


def _check_compatible(data, info: StackInfo) -> None:
    """Raise a ValueError/TypeError naming what differs from the fitted layout."""
    if isinstance(data, xr.DataArray) != info.is_dataarray:
        fitted = "DataArray" if info.is_dataarray else "Dataset"
        raise TypeError(f"the layout was recorded from a {fitted}; got a {type(data).__name__}")
    ds, _ = _as_dataset(data, _internal_name(info))
    sd = info.sample_dim
    if sd not in ds.dims:
        raise ValueError(f"sample_dim {sd!r} is not a dim of the data; dims are {tuple(ds.dims)}")
    missing = [n for n in info.names if n not in ds.data_vars]
    extra = [n for n in ds.data_vars if n not in info.names]
    if missing or extra:
        raise ValueError(f"variables differ from the fitted layout: missing {missing}, "
                         f"not seen in fit {extra}")
    for v in info.variables:
        var = ds[v.name]
        got = {d: int(var.sizes[d]) for d in var.dims if d != sd}
        if sd not in var.dims or got != dict(zip(v.feature_dims, v.shape)):
            raise ValueError(f"variable {v.name!r} has dims {dict(var.sizes)}; the fitted layout "
                             f"has {sd!r} plus {dict(zip(v.feature_dims, v.shape))}")
        # what is unstacked is labelled with the fitted attrs: degC would come back as K
        units, fitted = var.attrs.get("units"), v.attrs.get("units")
        if other_units(units, fitted):
            raise ValueError(f"variable {v.name!r} is in {units!r}, the fitted layout's in "
                             f"{fitted!r}: convert it to {fitted!r} first (what comes back is "
                             f"labelled {fitted!r})")
    for dim, index in info.coords.indexes.items():
        if dim in ds.indexes and not ds.indexes[dim].equals(index):
            raise ValueError(f"coordinate {dim!r} differs from the one seen in fit"
                             f"{_how_it_differs(ds.indexes[dim], index, dim)}")


def _how_it_differs(got, fitted, dim):
    """What to do about a coordinate whose labels are the fitted ones in another order."""
    try:  # labels of mixed kinds do not sort: then nothing more is said
        same = len(got) == len(fitted) and got.sort_values().equals(fitted.sort_values())
    except TypeError:
        return ""
    if not same:
        return ""
    how = f"data.reindex({dim}=fitted_{dim})"
    if fitted.is_monotonic_increasing or fitted.is_monotonic_decreasing:
        how += (f" or data.sortby({dim!r}, "
                f"ascending={bool(fitted.is_monotonic_increasing)})")
    return (f": the same labels in another order (features are read by position); "
            f"reorder it as in fit first, e.g. {how}")
