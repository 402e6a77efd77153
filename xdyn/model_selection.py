"""Cross-validation over a named dimension of Datasets.

scikit-learn counts samples with ``len(X)`` and indexes them positionally;
``len(xr.Dataset)`` is the number of *data variables*, so its splitters and
``GridSearchCV`` silently misbehave on Datasets. :func:`samples` wraps a
Dataset in a :class:`SampleView` whose length and ``[indices]`` act along one
named dim, and :class:`TimeSeriesSplit` splits that dim into contiguous,
forward-chained folds with an optional gap (so no future leaks into training).
Every xdyn estimator accepts a :class:`SampleView` wherever it takes a Dataset.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from sklearn.model_selection import BaseCrossValidator

__all__ = ["SampleView", "samples", "unwrap", "TimeSeriesSplit"]


class SampleView:
    """A Dataset seen by scikit-learn as a sequence of samples along ``dim``.

    Parameters
    ----------
    data : xarray.Dataset or DataArray
    dim : str, default="time"

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"a": ("time", np.arange(5.0)), "b": ("time", np.ones(5))})
    >>> view = samples(ds)
    >>> len(view), len(ds)
    (5, 2)
    >>> view[np.array([1, 2])].data.a.values.tolist()
    [1.0, 2.0]
    """

    def __init__(self, data, dim: str = "time"):
        if dim not in data.dims:
            raise ValueError(f"dim {dim!r} not in the data's dims {tuple(data.dims)}")
        self.data = data
        self.dim = dim

    @property
    def shape(self):
        return (int(self.data.sizes[self.dim]),)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, tuple):  # sklearn's ``X[key, ...]``
            key = key[0]
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        return SampleView(self.data.isel({self.dim: key}), self.dim)

    def __repr__(self):
        return f"SampleView(dim={self.dim!r}, n_samples={len(self)})"


def samples(data, dim: str = "time") -> SampleView:
    """Wrap ``data`` for scikit-learn model selection along ``dim`` (see :class:`SampleView`)."""
    return SampleView(data, dim)


def unwrap(data):
    """The Dataset inside a :class:`SampleView` (anything else is returned as is)."""
    return data.data if isinstance(data, SampleView) else data


class TimeSeriesSplit(BaseCrossValidator):
    """Forward-chaining splits over a named dim, with a gap between train and test.

    Fold ``i`` trains on every sample before its test block (minus ``gap``
    samples, which decorrelate the two) and tests on the next contiguous block.

    Parameters
    ----------
    n_splits : int, default=5
    dim : str, default="time"
        Dim split when given a bare Dataset (a :class:`SampleView` carries its own).
    gap : int, default=0
        Samples dropped between the end of training and the start of testing.
    test_size : int, optional
        Samples per test block (default ``n // (n_splits + 1)``).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"a": ("time", np.arange(12.0)), "b": ("time", np.ones(12))})
    >>> for train, test in TimeSeriesSplit(n_splits=2, gap=1).split(ds):
    ...     print(train.tolist(), test.tolist())
    [0, 1, 2] [4, 5, 6, 7]
    [0, 1, 2, 3, 4, 5, 6] [8, 9, 10, 11]
    """

    def __init__(self, n_splits=5, dim="time", gap=0, test_size=None):
        self.n_splits = n_splits
        self.dim = dim
        self.gap = gap
        self.test_size = test_size

    def _n_samples(self, X):
        if isinstance(X, SampleView):
            return len(X)
        if isinstance(X, (xr.Dataset, xr.DataArray)):
            if self.dim not in X.dims:
                raise ValueError(f"dim {self.dim!r} not in {tuple(X.dims)}")
            return int(X.sizes[self.dim])
        return len(X)

    def split(self, X, y=None, groups=None):
        n = self._n_samples(X)
        n_splits = int(self.n_splits)
        if n_splits < 1:
            raise ValueError(f"n_splits must be >= 1, got {n_splits}")
        test_size = int(self.test_size or n // (n_splits + 1))
        first_test = n - n_splits * test_size
        if test_size < 1 or first_test - int(self.gap) < 1:
            raise ValueError(
                f"cannot make {n_splits} splits with gap={self.gap} from {n} samples along {self.dim!r}")
        idx = np.arange(n)
        for i in range(n_splits):
            start = first_test + i * test_size
            yield idx[: start - int(self.gap)], idx[start : start + test_size]

    def get_n_splits(self, X=None, y=None, groups=None):
        return int(self.n_splits)
