import numpy as np
import pytest
import xarray as xr
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from xdyn.assimilation import EnKF, analysis_rmse
from xdyn.model_selection import GridSearchCV as XGridSearchCV
from xdyn.model_selection import SampleView, TimeSeriesSplit, samples, unwrap, warm_start_score
from xdyn.observe import observe
from xdyn.systems import Lorenz96


@pytest.fixture(scope="module")
def twin():
    system = Lorenz96(n=20)
    truth = system.simulate(n_steps=360, burn_in=10.0, random_state=0)
    obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    return system, truth, obs


def test_sklearn_alone_miscounts_datasets(twin):
    """The pitfall this module exists for: len(Dataset) counts data variables."""
    _, _, obs = twin
    assert len(obs) == 3  # observation, observation_clean, noise_std
    assert sum(1 for _ in KFold(3).split(obs)) == 3
    assert max(len(t) for _, t in KFold(3).split(obs)) == 1  # not 361 time samples
    assert len(samples(obs)) == obs.sizes["time"]


def test_time_series_split_is_forward_with_gap(twin):
    _, _, obs = twin
    cv = TimeSeriesSplit(n_splits=3, gap=5)
    folds = list(cv.split(obs))
    assert len(folds) == cv.get_n_splits() == 3
    for train, test in folds:
        assert train.max() + 5 < test.min()  # gap respected, no future in training
        assert np.all(np.diff(test) == 1)
    assert sum(len(t) for _, t in folds) == 3 * (obs.sizes["time"] // 4)
    with pytest.raises(ValueError, match="cannot make"):
        list(TimeSeriesSplit(n_splits=50, gap=20).split(obs))
    with pytest.raises(ValueError, match="dim"):
        list(TimeSeriesSplit(dim="lat").split(obs))
    # a negative gap put the first test samples in training; 0 and fractions were read
    # as the default and truncated
    for bad in (dict(gap=-2), dict(test_size=0), dict(gap=1.9), dict(n_splits=2.7)):
        with pytest.raises(ValueError, match="must be an integer"):
            list(TimeSeriesSplit(**bad).split(obs))


def test_sample_view_indexing(twin):
    _, _, obs = twin
    view = samples(obs)
    sub = view[np.array([3, 4, 5])]
    assert isinstance(sub, SampleView)
    np.testing.assert_array_equal(unwrap(sub).time, obs.time[3:6])
    mask = np.zeros(len(view), bool)
    mask[:4] = True
    assert len(view[mask]) == 4
    assert unwrap(obs) is obs


def test_grid_search_over_inflation_matches_manual_sweep(twin):
    system, truth, obs = twin
    truth_at_obs = truth.sel(time=obs.time)
    cv = TimeSeriesSplit(n_splits=2, gap=2)
    # raise_on_divergence=False: the lost filter (no inflation) must score, not raise,
    # for the manual loop below to compare every number
    base = EnKF(system=system, n_members=16, random_state=0, burn_in=2.0, initial_spread=3.0,
                return_ensemble=False, raise_on_divergence=False)
    grid = [1.0, 1.1, 1.5]
    search = GridSearchCV(base, {"inflation": grid}, cv=cv).fit(samples(obs), samples(truth_at_obs))
    manual = []
    for infl in grid:
        scores = []
        for train, test in cv.split(obs):
            est = base.set_params(inflation=infl).fit(obs.isel(time=train))
            scores.append(est.score(obs.isel(time=test), truth_at_obs.isel(time=test)))
        manual.append(np.mean(scores))
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], manual, rtol=1e-12)
    assert search.best_params_["inflation"] == grid[int(np.argmax(manual))]


def test_cross_val_score_on_datasets(twin):
    system, truth, obs = twin
    est = EnKF(system=system, n_members=16, inflation=1.1, random_state=0, burn_in=2.0,
               initial_spread=3.0,
               return_ensemble=False)
    scores = cross_val_score(est, samples(obs), samples(truth.sel(time=obs.time)),
                             cv=TimeSeriesSplit(n_splits=3))
    assert scores.shape == (3,)
    tr = truth.sel(time=obs.time)
    manual = [est.fit(obs.isel(time=a)).score(obs.isel(time=b), tr.isel(time=b))
              for a, b in TimeSeriesSplit(n_splits=3).split(obs)]
    np.testing.assert_allclose(scores, manual, rtol=1e-12)
    assert np.all(scores < 0)


# ------------------------------------------------ the call a user writes first
def test_sklearn_grid_search_on_bare_datasets_fails_as_documented(twin):
    """What xdyn.model_selection.GridSearchCV exists for: sklearn's own counts data vars."""
    system, truth, obs = twin
    est = EnKF(system=system, n_members=8)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[3, 1\]"):
        GridSearchCV(est, {"inflation": [1.0, 1.1]}, cv=3).fit(obs, truth)


def test_grid_search_as_written_picks_the_whole_run_optimum(twin):
    """``GridSearchCV(est, grid, cv=3).fit(obs, truth)`` on bare Datasets: forward folds,
    each scored on skill (the filter warm from the observations before it), so the
    choice and the fold scores match a sweep over the whole run."""
    system, truth, obs = twin
    base = EnKF(system=system, n_members=16, random_state=0, burn_in=5.0,
                return_ensemble=False, raise_on_divergence=False)
    grid = [1.0, 1.03, 1.3]  # whole-run scores -0.199, -0.188, -0.411 (climatological start)
    search = XGridSearchCV(base, {"inflation": grid}, cv=3).fit(obs, truth)
    whole = np.array([clone(base).set_params(inflation=i).fit(obs).score(obs, truth)
                      for i in grid])
    assert search.best_params_["inflation"] == grid[int(np.argmax(whole))] == 1.03
    fold_scores = search.cv_results_["mean_test_score"]
    np.testing.assert_allclose(fold_scores, whole, rtol=0.05)
    # the stored parameters are untouched by fit (clone and get_params see what was given)
    assert search.cv == 3 and search.scoring is None
    assert clone(search).get_params()["cv"] == 3


def test_warm_start_score_equals_a_hand_written_fold(twin):
    system, truth, obs = twin
    est = EnKF(system=system, n_members=16, inflation=1.03, random_state=0, burn_in=5.0,
               return_ensemble=False).fit(obs)
    view, target = samples(obs), samples(truth)
    test = np.arange(200, 280)
    score = warm_start_score(est, view[test], target[test])
    analysis = est.predict(obs.isel(time=slice(0, 280))).isel(time=test)
    expected = -analysis_rmse(analysis, truth.isel(time=test))
    assert score == pytest.approx(expected, rel=1e-12)
    # a bare Dataset has no history: the estimator's own score
    assert warm_start_score(est, obs, truth) == est.score(obs, truth)


class _FailsAtTime240(EnKF):
    """An EnKF whose analysis is NaN from time index 240 on, as a failed cycle leaves it."""

    def predict(self, X, *args, **kwargs):
        out = super().predict(X, *args, **kwargs)
        return out.where(xr.DataArray(np.arange(out.sizes["time"]) < 240, dims="time"))


def test_warm_start_score_of_a_filter_that_fails_in_the_fold_is_nan(twin):
    # the fold's mean used to skip the NaN times: the times before the failure scored alone
    system, truth, obs = twin
    est = _FailsAtTime240(system=system, n_members=16, inflation=1.03, random_state=0,
                          burn_in=5.0, return_ensemble=False).fit(obs)
    view, target = samples(obs), samples(truth)
    before, across = np.arange(160, 240), np.arange(200, 280)
    assert np.isfinite(warm_start_score(est, view[before], target[before]))
    assert np.isnan(warm_start_score(est, view[across], target[across]))


class _NoScore(BaseEstimator):
    """Fits, but has no score: every fold scores NaN."""

    def __init__(self, a=1):
        self.a = a

    def fit(self, X, y=None):
        return self


def test_search_raises_when_no_candidate_can_be_scored():
    # every score was NaN and the first candidate was returned as the best, with a warning
    ds = xr.Dataset({"u": (("time", "x"), np.zeros((12, 3)))}, coords={"time": np.arange(12.0)})
    with pytest.warns(UserWarning, match="Scoring failed"):
        with pytest.raises(ValueError, match="_NoScore has no usable score .*Pass scoring="):
            XGridSearchCV(_NoScore(), {"a": [1, 2]}, cv=2).fit(ds)


class _PerTrajectory(BaseEstimator):
    """Scores minus |mean(X) - mean(y) - shift|: a stand-in for an assimilator of trajectories."""

    def __init__(self, shift=0.0):
        self.shift = shift

    def fit(self, X, y=None):
        self.fitted_ = True
        return self

    def score(self, X, y):
        X, y = unwrap(X), unwrap(y)
        return -abs(float(X.u.mean() - y.u.mean()) - self.shift)


def test_folds_of_trajectories_are_scored_by_the_estimator():
    """Warm-starting reads a record along time; folds of trajectories (each its own start)
    went through it and failed with a bare KeyError: 'trajectory'."""
    u = np.random.RandomState(0).normal(size=(6, 5))
    X = xr.Dataset({"u": (("trajectory", "time"), u)},
                   coords={"trajectory": np.arange(6), "time": np.arange(5.0)})
    search = XGridSearchCV(_PerTrajectory(), {"shift": [0.0, 1.0]}, cv=KFold(2),
                           dim="trajectory", error_score="raise").fit(X, X + 1.0)
    assert search.best_params_ == {"shift": 0.0}
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], [-1.0, -2.0])


class _Analysis(BaseEstimator):
    """An 'analysis' that is the truth plus a fixed error of 0.5, with a score of its own
    (-7) that the warm-start RMSE can never equal."""

    def fit(self, X, y=None):
        self.truth_ = unwrap(y)
        return self

    def predict(self, X):
        return self.truth_.sel(time=unwrap(X).time) + 0.5

    def score(self, X, y):
        return -7.0


class _MarkedAnalysis(_Analysis):
    _sequential_filter = True


def test_the_filter_marker_decides_the_score(twin):
    """Every estimator given a truth on time folds was run over the record and scored by the
    RMSE of its prediction, filter or not; only a marked one is now, the others by their
    own score."""
    _, truth, obs = twin
    view, target = samples(obs), samples(truth)
    fold = np.arange(200, 240)
    marked = _MarkedAnalysis().fit(obs, truth)
    assert warm_start_score(marked, view[fold], target[fold]) == pytest.approx(-0.5)
    assert warm_start_score(_Analysis().fit(obs, truth), view[fold], target[fold]) == -7.0
    search = XGridSearchCV(_Analysis(), {}, cv=2).fit(obs, truth)
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], [-7.0])


def test_every_filter_is_marked_and_scored_by_its_own_metric():
    """Every estimator of xdyn.assimilation with a predict and a score is marked a filter
    (LD-EnSF and its encoder by hand, not through the base), and one whose score is not the
    assimilators' RMSE gives warm_start_score the per-time error its score averages: their
    time folds were ranked by a pooled raw RMSE, another metric."""
    import inspect

    import xdyn.assimilation as assimilation

    estimators = [c for c in map(assimilation.__dict__.get, assimilation.__all__)
                  if inspect.isclass(c) and callable(getattr(c, "predict", None))
                  and callable(getattr(c, "score", None))]
    assert len(estimators) > 10
    assert all(c._sequential_filter is True for c in estimators)
    own = [c for c in estimators if c.score is not assimilation.BaseAssimilator.score]
    assert {"LDEnSF", "ObservationEncoder"} <= {c.__name__ for c in own}
    assert all(callable(getattr(c, "_per_time_error", None)) for c in own), own


def test_a_closure_on_time_folds_gets_its_own_score():
    """Closures fitted with a truth were scored as filters: minus the RMSE of their mean
    over the fold, not minus their relative L2 error."""
    from xdyn.closure import GPClosure

    rng = np.random.RandomState(0)
    X = xr.Dataset({"u": (("time", "x"), rng.normal(size=(48, 3)))},
                   coords={"time": np.arange(48.0)})
    Y = X**2
    gp = GPClosure(2, 2, max_epochs=3, random_state=0).fit(X, Y)
    fold = np.arange(36, 48)
    own = gp.score(X.isel(time=fold), Y.isel(time=fold))
    assert warm_start_score(gp, samples(X)[fold], samples(Y)[fold]) == own
    search = XGridSearchCV(GPClosure(2, 2, max_epochs=3, random_state=0), {}, cv=2,
                           error_score="raise").fit(X, Y)
    manual = [clone(gp).fit(X.isel(time=a), Y.isel(time=a)).score(X.isel(time=b),
                                                                   Y.isel(time=b))
              for a, b in TimeSeriesSplit(2).split(X)]
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], [np.mean(manual)],
                               rtol=1e-10)


def test_a_pipeline_ending_in_a_filter_is_scored_as_the_filter(twin):
    """A scaler in front of an EnKF (units invariance, tests/test_observe_scaling.py) is
    warm-started like the plain EnKF, with the EnKF's burn_in (it was read from the
    Pipeline, which has none: times before the burn-in were scored)."""
    from sklearn.pipeline import Pipeline

    from xdyn.observe import ObservationScaler

    system, truth, obs = twin

    def make():
        return EnKF(system=system, n_members=16, inflation=1.03, random_state=0, burn_in=5.0,
                    return_ensemble=False)

    view, target = samples(obs), samples(truth)
    fold = np.arange(60, 160)  # times 3 to 8: across the burn-in
    plain = warm_start_score(make().fit(obs), view[fold], target[fold])
    piped = Pipeline([("scale", ObservationScaler()), ("da", make())]).fit(obs)
    assert warm_start_score(piped, view[fold], target[fold]) == pytest.approx(plain, rel=1e-6)


# ------------------------------------------------ audit M (s61): the splitter's dim, shuffled folds
_SEEN = []  # not a parameter: clone deep-copies those


class _SeenSizes(BaseEstimator):
    """Records the sizes of every training set it is fitted on in ``_SEEN``; scores 0."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def fit(self, X, y=None):
        _SEEN.append(dict(unwrap(X).sizes))
        return self

    def score(self, X, y=None):
        return 0.0


def _trajectories():
    x = np.random.RandomState(0).normal(size=(8, 10))
    return xr.Dataset({"x": (("trajectory", "time"), x)},
                      coords={"trajectory": np.arange(8), "time": np.arange(10.0)})


def test_grid_search_splits_along_the_dim_of_its_time_series_split():
    """GridSearchCV wrapped a Dataset along time whatever its cv's dim, and TimeSeriesSplit
    ignored its dim for a view: "trajectory folds" were the trajectories' first times."""
    ds, seen = _trajectories(), _SEEN
    seen.clear()
    cv = TimeSeriesSplit(n_splits=3, dim="trajectory")
    XGridSearchCV(_SeenSizes(), {"alpha": [1.0]}, cv=cv, refit=False,
                  error_score="raise").fit(ds)
    assert seen == [{"trajectory": n, "time": 10} for n in (2, 4, 6)]  # whole trajectories
    # the search's own dim, and an integer cv along it, as before
    seen.clear()
    XGridSearchCV(_SeenSizes(), {"alpha": [1.0]}, cv=3, dim="trajectory",
                  refit=False).fit(ds)
    assert seen == [{"trajectory": n, "time": 10} for n in (2, 4, 6)]
    seen.clear()
    XGridSearchCV(_SeenSizes(), {"alpha": [1.0]}, cv=3, refit=False).fit(ds)
    assert [s["time"] for s in seen] == [4, 6, 8] and {s["trajectory"] for s in seen} == {8}


def test_a_split_along_another_dim_than_the_views_is_refused():
    ds = _trajectories()
    cv = TimeSeriesSplit(n_splits=3, dim="trajectory")
    with pytest.raises(ValueError, match="dim='trajectory'.* along 'time'"):
        cross_val_score(_SeenSizes(), samples(ds), cv=cv, error_score="raise")
    with pytest.raises(ValueError, match="dim='time' but cv splits along 'trajectory'"):
        XGridSearchCV(_SeenSizes(), {"alpha": [1.0]}, cv=cv, dim="time").fit(ds)
    # no dim given: the view's own, whichever it is
    view = samples(ds, "trajectory")
    assert [len(t) for t, _ in TimeSeriesSplit(n_splits=3).split(view)] == [2, 4, 6]


class _RunningMean(BaseEstimator):
    """A 'filter' whose analysis is the running mean of the observations; it records how
    many times it was run over."""

    _sequential_filter = True
    burn_in = 0.0

    def fit(self, X, y=None):
        return self

    def predict(self, X):
        X = unwrap(X)
        self.n_seen_ = X.sizes["time"]
        return X.cumsum("time") / xr.DataArray(np.arange(1, self.n_seen_ + 1), dims="time")


def test_warm_start_score_takes_folds_in_any_order():
    """The filter ran up to the fold's last listed time and then failed with a bare KeyError
    on the later ones (a ShuffleSplit fold)."""
    from sklearn.model_selection import ShuffleSplit

    t = np.arange(20) * 0.5
    obs = xr.Dataset({"x": ("time", np.random.RandomState(1).normal(size=20))},
                     coords={"time": t})
    truth = obs * 0.0
    est = _RunningMean()
    shuffled = np.array([17, 12, 15])
    score = warm_start_score(est, samples(obs)[shuffled], samples(truth)[shuffled])
    assert est.n_seen_ == 18  # up to the latest time of the fold, index 17
    running = np.cumsum(obs.x.values) / np.arange(1, 21)
    expected = -np.mean(np.abs(running[shuffled]))  # mean over times of per-time RMSE
    assert score == pytest.approx(expected, rel=1e-12)
    assert score == pytest.approx(warm_start_score(est, samples(obs)[np.sort(shuffled)],
                                                   samples(truth)[np.sort(shuffled)]))
    cv = ShuffleSplit(n_splits=3, test_size=5, random_state=0)
    scores = cross_val_score(est, samples(obs), samples(truth), cv=cv,
                             scoring=warm_start_score, error_score="raise")
    manual = [-np.mean(np.abs(running[test])) for _, test in cv.split(t)]
    np.testing.assert_allclose(scores, manual, rtol=1e-12)
