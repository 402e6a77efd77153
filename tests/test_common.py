"""xdyn's common estimator checks (DESIGN.md: Estimators), run on every estimator.

scikit-learn's ``parametrize_with_checks`` feeds estimators bare 2-D arrays
with class labels or regression targets. Assimilators consume observation
Datasets whose ``time`` coordinate carries model time and whose attrs name the
operator; a bare matrix has neither, so the data-driven sklearn checks do not
apply to them. The sklearn checks that need no data (parameter handling,
``__init__`` hygiene) run on every estimator below.
"""

import pickle

import numpy as np
import pytest
import xarray as xr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

import xdyn.assimilation as assimilation
from xdyn.observe import observe
from xdyn.systems import Lorenz63, Lorenz96

# Small, fast configurations per estimator class (anything not listed uses defaults).
FAST_PARAMS = {
    "EnKF": {"n_members": 8},
    "EnSF": {"n_members": 8, "n_pseudo_steps": 20},
    "LETKF": {"n_members": 8, "localization_radius": 3.0},
    "ParticleFilter": {"n_members": 50},
    "Var4D": {},
    "NeuralVar3D": {"max_epochs": 1, "window": 4, "device": "cpu", "module__hidden_size": 8},
    "AmortizedAssimilator": {"n_members": 4, "hidden_size": 4, "seq_len": 4, "max_epochs": 1,
                             "batch_size": 8, "device": "cpu"},
}
LORENZ63_ONLY = {"ExtendedKalmanFilter", "ParticleFilter", "Var4D"}


def _estimator_classes():
    seen = {}
    for cls in assimilation._methods().values():
        seen[cls.__name__] = cls
    return [seen[k] for k in sorted(seen)]


def _make(cls, system, truth):
    params = dict(FAST_PARAMS.get(cls.__name__, {}))
    params.update(system=system, random_state=0)
    if "initial_state" in cls().get_params():
        params["initial_state"] = system.to_state(truth.isel(time=0)).numpy()
    return cls(**params)


def _data(cls, seed=0, n_steps=None):
    if cls.__name__ in LORENZ63_ONLY:
        system = Lorenz63()
        truth = system.simulate(n_steps=n_steps or 200, burn_in=5.0, random_state=seed)
        obs = observe(truth, "identity", noise_std=1.0, every=25, random_state=seed + 1)
    else:
        system = Lorenz96(n=12)
        truth = system.simulate(n_steps=n_steps or 12, burn_in=5.0, random_state=seed)
        obs = observe(truth, "identity", noise_std=1.0, every=1, random_state=seed + 1)
    return system, truth, obs


ESTIMATORS = _estimator_classes()
ids = [c.__name__ for c in ESTIMATORS]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=ids)
def test_sklearn_parameter_checks(cls):
    name = cls.__name__
    est = cls()
    check_parameters_default_constructible(name, est)
    check_no_attributes_set_in_init(name, est)
    check_get_params_invariance(name, est)
    check_set_params(name, est)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=ids)
def test_clone_and_not_fitted(cls):
    system, truth, obs = _data(cls)
    est = _make(cls, system, truth)
    with pytest.raises(NotFittedError):
        est.predict(obs)
    fitted = est.fit(obs, truth)
    copy = clone(fitted)
    assert copy.get_params(deep=False).keys() == est.get_params(deep=False).keys()
    with pytest.raises(NotFittedError):
        copy.predict(obs)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=ids)
def test_attrs_coords_kept_and_input_untouched(cls):
    system, truth, obs = _data(cls)
    before = obs.copy(deep=True)
    an = _make(cls, system, truth).fit(obs, truth).predict(obs)
    xr.testing.assert_identical(obs, before)
    np.testing.assert_array_equal(an["time"].values, obs["time"].values)
    assert an["time"].attrs == obs["time"].attrs
    for v in system.variables:
        assert an[v.name].attrs.get("units") == v.attrs["units"]
    assert an.attrs["system"] == type(system).__name__
    assert an.attrs["method"] == cls.__name__
    # every output counts the observations assimilated and flags a lost filter
    np.testing.assert_array_equal(an["n_assimilated"].values,
                                  np.isfinite(obs.observation.values).sum(-1))
    assert an["lost"].dtype == bool and an["lost"].dims[0] == "time"
    assert an.attrs["diverged"] in (0, 1) and an.attrs["lost_track"] in (0, 1)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=ids)
def test_pickle_round_trip_and_seed_reproducibility(cls):
    system, truth, obs = _data(cls)
    est = _make(cls, system, truth).fit(obs, truth)
    a = est.predict(obs)
    again = pickle.loads(pickle.dumps(est))
    xr.testing.assert_allclose(a, again.predict(obs).drop_attrs(deep=False).assign_attrs(a.attrs))
    b = clone(est).fit(obs, truth).predict(obs)
    for v in system.variables:
        np.testing.assert_array_equal(a[v.name].values, b[v.name].values)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=ids)
def test_unseen_observations(cls):
    """Fitted on one record, the estimator assimilates another of a different length."""
    system, truth, obs = _data(cls)
    est = _make(cls, system, truth).fit(obs, truth)
    _, truth2, obs2 = _data(cls, seed=10, n_steps=None)
    obs2 = obs2.isel(time=slice(0, max(2, obs2.sizes["time"] - 3)))
    an = est.predict(obs2)
    np.testing.assert_array_equal(an["time"].values, obs2["time"].values)
    assert all(np.isfinite(an[v.name]).all() for v in system.variables)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=ids)
def test_dask_backed_observations(cls):
    """Chunked observations give the same analysis (assimilation must read them: the
    cycle is sequential in time)."""
    system, truth, obs = _data(cls)
    est = _make(cls, system, truth).fit(obs, truth)
    a = est.predict(obs)
    b = est.predict(obs.chunk({"time": 3}))
    for v in system.variables:
        np.testing.assert_allclose(a[v.name].values, b[v.name].values)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=ids)
def test_parameters_are_declared_and_keyword_only(cls):
    """Every parameter has a declared constraint (checked once at fit) and all but the
    first are keyword-only (scikit-learn's convention)."""
    import inspect

    params = cls().get_params(deep=False)
    assert set(params) <= set(cls._parameter_constraints), \
        set(params) - set(cls._parameter_constraints)
    sig = inspect.signature(cls.__init__).parameters
    # **kwargs is allowed only for skorch-style routed ``module__*`` parameters (NeuralVar3D)
    kinds = [p.kind for name, p in sig.items()
             if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD]
    assert all(k is inspect.Parameter.KEYWORD_ONLY for k in kinds[1:])
