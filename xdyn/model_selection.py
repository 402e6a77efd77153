"""Cross-validation over a named dimension of Datasets.

scikit-learn counts samples with ``len(X)`` and indexes them positionally;
``len(xr.Dataset)`` is the number of *data variables*, so its splitters and
``GridSearchCV`` silently misbehave on Datasets. :func:`samples` wraps a
Dataset in a :class:`SampleView` whose length and ``[indices]`` act along one
named dim, and :class:`TimeSeriesSplit` splits that dim into contiguous,
forward-chained folds with an optional gap (so no future leaks into training).
Every xdyn estimator accepts a :class:`SampleView` wherever it takes a Dataset.

A filter restarted on each test fold would be scored on its spin-up, not its
skill (a 16-member EnKF scores -1.8 to -4.8 on cold-started folds against -0.37
on the whole run, and a search then picks the inflation that spins up fastest).
:func:`warm_start_score` therefore runs the filter over every observation up to
the end of the test fold and scores only the fold, and :class:`GridSearchCV`,
scikit-learn's with that scorer and forward-chaining folds, takes Datasets as
they are: ``GridSearchCV(enkf, {"inflation": [...]}, cv=3).fit(obs, truth)``.

Examples
--------
>>> from xdyn.assimilation import EnKF
>>> from xdyn.observe import observe
>>> from xdyn.systems import Lorenz96
>>> system = Lorenz96()
>>> truth = system.simulate(n_steps=300, burn_in=10.0, random_state=0)
>>> obs = observe(truth, "identity", noise_std=1.0, random_state=1)
>>> enkf = EnKF(system=system, n_members=16, burn_in=5.0, random_state=0,
...             return_ensemble=False, raise_on_divergence=False)
>>> search = GridSearchCV(enkf, {"inflation": [1.0, 1.08, 1.5]}, cv=3).fit(obs, truth)
>>> search.best_params_["inflation"] > 1.0  # without inflation 16 members lose track
True
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from sklearn import model_selection as _skms
from sklearn.model_selection import BaseCrossValidator
from sklearn.pipeline import Pipeline

from xdyn.utils._validation import is_integer

__all__ = ["SampleView", "samples", "unwrap", "TimeSeriesSplit", "GridSearchCV",
           "warm_start_score"]


class SampleView:
    """A Dataset seen by scikit-learn as a sequence of samples along ``dim``.

    Parameters
    ----------
    data : xarray.Dataset or DataArray
        The samples this view holds; ``dim`` must be one of its dims.
    dim : str, default="time"
        The dim that ``len`` counts and ``[indices]`` selects along.
    history : xarray.Dataset or DataArray, optional
        The whole record this view was cut from, kept unchanged by indexing, so
        that :func:`warm_start_score` can run a filter over the observations
        before a fold. Default: ``data`` itself (a fresh view is its own record).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"a": ("time", np.arange(5.0)), "b": ("time", np.ones(5))})
    >>> view = samples(ds)
    >>> len(view), len(ds)
    (5, 2)
    >>> fold = view[np.array([1, 2])]
    >>> fold.data.a.values.tolist(), fold.history is ds
    ([1.0, 2.0], True)
    """

    def __init__(self, data, dim: str = "time", history=None):
        if dim not in data.dims:
            raise ValueError(f"dim {dim!r} not in the data's dims {tuple(data.dims)}")
        self.data = data
        self.dim = dim
        # the whole Dataset this view was cut from: a filter scored on a fold starts
        # from the observations before it (see warm_start_score)
        self.history = data if history is None else history

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
        return SampleView(self.data.isel({self.dim: key}), self.dim, self.history)

    def __repr__(self):
        return f"SampleView(dim={self.dim!r}, n_samples={len(self)})"


def samples(data, dim: str = "time") -> SampleView:
    """Wrap ``data`` for scikit-learn model selection along ``dim`` (see :class:`SampleView`).

    Parameters
    ----------
    data : xarray.Dataset or xarray.DataArray
    dim : str, default="time"
        The dim scikit-learn counts and indexes as samples.

    Returns
    -------
    SampleView

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from sklearn.model_selection import train_test_split
    >>> ds = xr.Dataset({"a": ("time", np.arange(6.0)), "b": ("time", np.ones(6))})
    >>> train, test = train_test_split(samples(ds), test_size=2, shuffle=False)
    >>> unwrap(train).a.values.tolist(), unwrap(test).a.values.tolist()
    ([0.0, 1.0, 2.0, 3.0], [4.0, 5.0])
    >>> samples(ds, dim="x")
    Traceback (most recent call last):
    ...
    ValueError: dim 'x' not in the data's dims ('time',)
    """
    return SampleView(data, dim)


def unwrap(data):
    """The Dataset inside a :class:`SampleView` (anything else is returned as is).

    Parameters
    ----------
    data : SampleView or object
        A sample view (its ``data`` is returned) or anything else (returned unchanged).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"a": ("time", np.arange(3.0))})
    >>> unwrap(samples(ds)) is ds, unwrap(ds) is ds
    (True, True)
    """
    return data.data if isinstance(data, SampleView) else data


class TimeSeriesSplit(BaseCrossValidator):
    """Forward-chaining splits over a named dim, with a gap between train and test.

    Fold ``i`` trains on every sample before its test block (minus ``gap``
    samples, which decorrelate the two) and tests on the next contiguous block.

    Parameters
    ----------
    n_splits : int, default=5
    dim : str, optional
        Dim to split. None: a :class:`SampleView`'s own dim, and ``"time"`` for a
        bare Dataset. A :class:`SampleView` along another dim raises a
        ValueError: its indices select along its own dim only, so wrap the data
        with ``samples(data, dim)`` (:class:`GridSearchCV` does so for Datasets).
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
    >>> list(TimeSeriesSplit(dim="trajectory").split(samples(ds)))
    Traceback (most recent call last):
    ...
    ValueError: TimeSeriesSplit(dim='trajectory') was given samples along 'time': ...
    """

    def __init__(self, n_splits=5, dim=None, gap=0, test_size=None):
        self.n_splits = n_splits
        self.dim = dim
        self.gap = gap
        self.test_size = test_size

    def _dim_and_size(self, X):
        """The dim split and its number of samples."""
        if isinstance(X, SampleView):
            # the indices act along the view's dim: splitting another is impossible here,
            # and silently splitting the view's dim instead scored the wrong folds
            if self.dim is not None and self.dim != X.dim:
                raise ValueError(f"TimeSeriesSplit(dim={self.dim!r}) was given samples along "
                                 f"{X.dim!r}: wrap the data with samples(data, {self.dim!r})")
            return X.dim, len(X)
        dim = "time" if self.dim is None else self.dim
        if isinstance(X, (xr.Dataset, xr.DataArray)):
            if dim not in X.dims:
                raise ValueError(f"dim {dim!r} not in {tuple(X.dims)}")
            return dim, int(X.sizes[dim])
        return dim, len(X)

    def split(self, X, y=None, groups=None):
        dim, n = self._dim_and_size(X)
        # integers, and a gap >= 0: a negative one put the first test samples in training
        for name, value, low in (("n_splits", self.n_splits, 1), ("gap", self.gap, 0),
                                 ("test_size", self.test_size, 1)):
            if value is None and name == "test_size":
                continue
            if not is_integer(value) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        n_splits = int(self.n_splits)
        test_size = int(n // (n_splits + 1) if self.test_size is None else self.test_size)
        first_test = n - n_splits * test_size
        if test_size < 1 or first_test - int(self.gap) < 1:
            raise ValueError(
                f"cannot make {n_splits} splits with gap={self.gap} from {n} samples along {dim!r}")
        idx = np.arange(n)
        for i in range(n_splits):
            start = first_test + i * test_size
            yield idx[: start - int(self.gap)], idx[start : start + test_size]

    def get_n_splits(self, X=None, y=None, groups=None):
        return int(self.n_splits)


def warm_start_score(estimator, X, y=None) -> float:
    """Score a filter on a fold by its skill, not its spin-up (a scikit-learn scorer).

    Which score a fold gets is decided by the estimator, not guessed from the
    data: an estimator whose class sets ``_sequential_filter = True`` is a
    sequential filter, whose analysis at a time depends on every observation
    before it (every :class:`xdyn.assimilation.BaseAssimilator` sets it; a
    :class:`~sklearn.pipeline.Pipeline` is one when its final step is). When
    ``X`` is a fold along ``time`` of a :class:`SampleView` and ``y`` is given,
    such a filter assimilates every observation from the start of the whole
    record up to the fold's latest time (as it would in operation; the fold's
    times may come in any order), and ``y`` is
    compared with the analysis at the fold's times only; the filter's
    ``burn_in`` counts from the start of the record. The error at each time is
    the filter's ``_per_time_error(analysis, truth)`` where it defines one (a
    DataArray over ``time``, lower is better: the error its own ``score``
    averages over time, so that a fold is scored by that metric; LD-EnSF's
    fields only, the observation encoder's standardized targets), else the
    RMSE of the analysis mean, :func:`xdyn.metrics.state_rmse` (that of an
    assimilator's ``score``). Every other case is
    ``estimator.score(X, y)``: an estimator without the marker (a closure, a
    ROM, a regressor: scored on the fold by its own metric), folds of other
    samples (trajectories, each assimilated from its own start), or no ``y``.

    Parameters
    ----------
    estimator : fitted estimator
        A sequential filter (see above), or any estimator with a ``score``.
    X : SampleView or Dataset
        Observations (or inputs) of the fold.
    y : SampleView, Dataset or None, default=None
        Truth at (at least) the fold's times; None for an estimator that
        scores ``X`` alone.

    Returns
    -------
    float
        For a sequential filter on a time fold, minus the mean of its error per
        time (see above) over the fold; otherwise ``estimator.score(X, y)``.
        Higher is better.

    Examples
    --------
    >>> from sklearn.model_selection import cross_val_score
    >>> from xdyn.assimilation import EnKF
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz96
    >>> truth = Lorenz96(n=20).simulate(n_steps=300, burn_in=10.0, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    >>> enkf = EnKF(n_members=16, inflation=1.08, burn_in=5.0, random_state=0)
    >>> enkf._sequential_filter  # the marker: time folds are scored warm-started
    True
    >>> scores = cross_val_score(enkf, samples(obs), samples(truth), cv=TimeSeriesSplit(2),
    ...                          scoring=warm_start_score)
    >>> bool(all(-0.5 < s < 0 for s in scores))
    True
    """
    from xdyn.metrics import state_rmse

    # not a filter, no truth, or folds of trajectories (each its own start): its own score
    filt = _sequential_filter(estimator)
    if filt is None or not isinstance(X, SampleView) or y is None or X.dim != "time":
        return estimator.score(X, y)
    fold = X.data[X.dim]
    record = X.history
    times = record[X.dim]
    # up to the fold's latest time, not its last listed one (a shuffled fold)
    seen = record.isel({X.dim: np.flatnonzero((times <= fold.max()).values)})
    analysis, truth = estimator.predict(seen).sel({X.dim: fold}), unwrap(y).sel({X.dim: fold})
    # the filter's own per-time error where it has one (the metric its score averages)
    error = getattr(filt, "_per_time_error", None)
    per_time = state_rmse(analysis, truth) if error is None else error(analysis, truth)
    burn_in = float(getattr(filt, "burn_in", 0.0) or 0.0)
    scored = per_time.where(per_time[X.dim] >= times[0] + burn_in, drop=True)
    if scored.sizes[X.dim] == 0:
        raise ValueError(f"the fold ends before burn_in={burn_in} has passed: nothing to score")
    # a filter that failed in the fold scores NaN, not the times before its failure
    return -float(scored.mean(X.dim, skipna=False))


def _sequential_filter(estimator):
    """The filter that ``estimator`` is or ends with (a Pipeline's final step), or None.

    Filters say so with the class attribute ``_sequential_filter = True``; it is
    read here, not by ``isinstance``, since this module is below ``xdyn.assimilation``.
    """
    while isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    return estimator if getattr(estimator, "_sequential_filter", False) is True else None


class GridSearchCV(_skms.GridSearchCV):
    """scikit-learn's ``GridSearchCV`` for assimilators on Datasets.

    The same estimator as :class:`sklearn.model_selection.GridSearchCV`, with
    three defaults that make ``fit(obs, truth)`` right on time series of
    Datasets: a Dataset (or DataArray) is seen as samples along ``dim`` (a
    :class:`SampleView`); an integer ``cv`` means :class:`TimeSeriesSplit`
    (forward chaining: never train on the future), not ``KFold``; and
    ``scoring=None`` means :func:`warm_start_score`, so that each fold scores
    the filter's skill rather than the spin-up of a restarted filter (and an
    estimator that is no filter, a ROM or a closure, or one fitted without ``y``,
    by its own ``score``). A search in
    which every candidate's mean test score is NaN (the estimator could not be
    scored) raises a ``ValueError`` rather than return an arbitrary best.

    Parameters
    ----------
    estimator, param_grid, scoring, n_jobs, refit, cv, verbose, pre_dispatch,
    error_score, return_train_score
        As in :class:`sklearn.model_selection.GridSearchCV` (``cv`` default 5).
    dim : str, optional
        Sample dim of Dataset inputs. None: the dim of ``cv`` when it is a
        :class:`TimeSeriesSplit` with one (``TimeSeriesSplit(dim="trajectory")``
        keeps trajectories whole), else ``"time"``. A ``dim`` other than the
        ``cv``'s raises a ValueError.

    Examples
    --------
    Lorenz-63 observed every 0.1 time units; the truth is given at the
    observation times, so that both are split along the same ``time``.
    Over-inflating by 2 doubles the analysis error:

    >>> from xdyn.assimilation import EnKF
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz63
    >>> run = Lorenz63().simulate(n_steps=1000, burn_in=5.0, random_state=0)
    >>> obs = observe(run, "identity", noise_std=1.0, every=10, random_state=1)
    >>> truth = run.sel(time=obs.time)
    >>> enkf = EnKF(n_members=10, random_state=0, return_ensemble=False)
    >>> search = GridSearchCV(enkf, {"inflation": [1.02, 2.0]}, cv=2).fit(obs, truth)
    >>> search.best_params_, search.cv  # cv is stored as given: 2 means TimeSeriesSplit(2)
    ({'inflation': 1.02}, 2)
    >>> bool(-search.best_score_ < 0.5)  # analysis RMSE, half the observation error
    True

    The module docstring (:mod:`xdyn.model_selection`) tunes a Lorenz-96 EnKF.
    """

    def __init__(self, estimator, param_grid, *, scoring=None, n_jobs=None, refit=True, cv=None,
                 verbose=0, pre_dispatch="2*n_jobs", error_score=np.nan,
                 return_train_score=False, dim=None):
        super().__init__(estimator, param_grid, scoring=scoring, n_jobs=n_jobs, refit=refit,
                         cv=cv, verbose=verbose, pre_dispatch=pre_dispatch,
                         error_score=error_score, return_train_score=return_train_score)
        self.dim = dim

    def fit(self, X, y=None, **params):
        """Run the search; Datasets are wrapped with :func:`samples` along ``dim``."""
        cv = 5 if self.cv is None else self.cv
        # the splitter's dim decides the samples: wrapped along "time", a
        # TimeSeriesSplit(dim="trajectory") split the trajectories' times
        cv_dim = cv.dim if isinstance(cv, TimeSeriesSplit) else None
        if self.dim is not None and cv_dim is not None and cv_dim != self.dim:
            raise ValueError(f"dim={self.dim!r} but cv splits along {cv_dim!r}: give one dim")
        dim = self.dim or cv_dim or "time"
        X, y = (samples(v, dim) if isinstance(v, (xr.Dataset, xr.DataArray)) else v
                for v in (X, y))
        if is_integer(cv):
            cv = TimeSeriesSplit(n_splits=int(cv), dim=self.dim)
        scoring = warm_start_score if self.scoring is None else self.scoring
        # the stored parameters stay as given (clone/get_params); only this fit sees the
        # resolved splitter and scorer
        given = self.cv, self.scoring
        self.cv, self.scoring = cv, scoring
        try:
            super().fit(X, y, **params)
        finally:
            self.cv, self.scoring = given
        self._check_some_score()
        return self

    def _check_some_score(self):
        """Raise when every candidate's mean test score (of some metric) is NaN: the
        ranking, best_params_ and the refit would be an arbitrary pick."""
        for key, scores in self.cv_results_.items():
            if key.startswith("mean_test_") and np.isnan(np.asarray(scores, float)).all():
                name = type(self.estimator).__name__
                how = ("warm_start_score, the default" if self.scoring is None
                       else f"scoring={self.scoring!r}")
                raise ValueError(
                    f"every candidate's {key} is NaN: {name} has no usable score with {how} "
                    f"(no score method, or scoring failed in the folds), so there is no best "
                    f"parameter. Pass scoring= a scorer that works for {name} (or "
                    f"error_score='raise' to see why scoring failed)")
