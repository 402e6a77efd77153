"""Common checks of xdyn's preprocessing transformers (DESIGN.md: Estimators).

scikit-learn's ``parametrize_with_checks`` runs on :class:`Stacker` and
:class:`StandardScaler` with 2-D numpy input, and no check is marked as an
expected failure (``check_array_api_input`` skips itself unless
``SCIPY_ARRAY_API=1`` is set; that is the environment, not the estimators).

:class:`LowPassFilter` is not in that list: it filters fields on a periodic
grid, and a bare ``(n_samples, n_features)`` matrix has no grid, so it raises
``TypeError`` on numpy input and declares ``input_tags.two_d_array=False`` (for
which scikit-learn yields no data checks at all). Its parameter-handling checks,
which need no data, run below.

xdyn's own checks then run all three on labelled data: clone and
``NotFittedError``, coordinates and attrs kept with the input untouched, no
dask compute in ``transform``/``inverse_transform``, pickle round trip, and
unseen data.
"""

import pickle

import dask
import numpy as np
import pytest
import sklearn
import xarray as xr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_estimator_tags_renamed,
    check_get_params_invariance,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    check_valid_tag_types,
    parametrize_with_checks,
)

from xdyn.model_selection import samples
from xdyn.preprocessing import LowPassFilter, Stacker, StandardScaler


@parametrize_with_checks([Stacker(), StandardScaler()])
def test_sklearn_compatible_transformer(estimator, check):
    check(estimator)


@pytest.mark.parametrize("est", [Stacker(), StandardScaler()], ids=["Stacker", "StandardScaler"])
def test_output_wrapping_is_off(est):
    """sklearn's set_output has no xarray container (PITFALLS 9): xdyn opts out of it."""
    X = np.arange(12.0).reshape(4, 3)
    assert not hasattr(est, "set_output")
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(clone(est).fit_transform(X), np.ndarray)


@pytest.mark.parametrize("check", [
    check_parameters_default_constructible, check_no_attributes_set_in_init,
    check_get_params_invariance, check_set_params, check_estimator_cloneable,
    check_estimator_repr, check_mixin_order, check_estimator_tags_renamed,
    check_valid_tag_types, check_do_not_raise_errors_in_init_or_set_params,
], ids=lambda c: c.__name__)
def test_low_pass_filter_parameter_checks(check):
    check("LowPassFilter", LowPassFilter(cutoff=4))


# ---------------------------------------------------------------- xdyn's checks on labelled data
def fields(n_time=8, seed=0, t0=0.0):
    rng = np.random.default_rng(seed)
    n = 8
    grid = 2 * np.pi * np.arange(n) / n
    return xr.Dataset(
        {"vorticity": (("time", "y", "x"), rng.normal(size=(n_time, n, n)), {"units": "s-1"}),
         "u": (("time", "y", "x"), rng.normal(size=(n_time, n, n)).astype("float32"),
               {"units": "m s-1", "long_name": "eastward velocity"})},
        coords={"time": ("time", t0 + 0.1 * np.arange(n_time), {"units": "s"}),
                "y": ("y", grid, {"units": "m"}), "x": ("x", grid, {"units": "m"})},
        attrs={"system": "KolmogorovFlow", "seed": seed},
    )


TRANSFORMERS = [Stacker(), StandardScaler(), StandardScaler(per_variable=True),
                LowPassFilter(cutoff=2)]
IDS = ["Stacker", "StandardScaler", "StandardScaler-per_variable", "LowPassFilter"]


def _round_trip(est, data):
    """What comes back to labelled space: inverse_transform(transform) or the filtered field."""
    out = est.transform(data)
    return est.inverse_transform(out, sample_coord=data.time) if isinstance(est, Stacker) else (
        est.inverse_transform(out) if hasattr(est, "inverse_transform") else out)


@pytest.mark.parametrize("est", TRANSFORMERS, ids=IDS)
def test_clone_and_not_fitted(est):
    ds = fields()
    fresh = clone(est)
    if fresh.__sklearn_tags__().requires_fit:
        with pytest.raises(NotFittedError):
            fresh.transform(ds)
    else:  # stateless
        fresh.transform(ds)
    fitted = clone(est).fit(ds)
    assert clone(fitted).get_params() == est.get_params()
    assert not any(k.endswith("_") and not k.startswith("_") for k in vars(clone(fitted)))


@pytest.mark.parametrize("est", TRANSFORMERS, ids=IDS)
def test_coords_attrs_kept_and_input_untouched(est):
    ds = fields()
    before = ds.copy(deep=True)
    back = _round_trip(clone(est).fit(ds), ds)
    xr.testing.assert_identical(ds, before)
    assert isinstance(back, xr.Dataset) and list(back.data_vars) == list(ds.data_vars)
    assert back.attrs == ds.attrs
    for name in ("time", "y", "x"):
        np.testing.assert_array_equal(back[name], ds[name])
        assert back[name].attrs == ds[name].attrs
    for name in ds.data_vars:
        assert back[name].attrs == ds[name].attrs and back[name].dtype == ds[name].dtype


@pytest.mark.parametrize("est", TRANSFORMERS, ids=IDS)
def test_no_dask_compute_outside_fit(est):
    ds = fields()
    lazy = ds.chunk({"time": 3})
    fitted = clone(est).fit(lazy)  # StandardScaler's fit must read the data; the others do not

    def raise_on_compute(dsk, keys, **kwargs):
        raise AssertionError("dask computed")

    with dask.config.set(scheduler=raise_on_compute):
        if not isinstance(est, StandardScaler):
            clone(est).fit(lazy)
        back = _round_trip(fitted, lazy)
    xr.testing.assert_allclose(back.compute(), _round_trip(clone(est).fit(ds), ds))


@pytest.mark.parametrize("est", TRANSFORMERS, ids=IDS)
def test_pickle_round_trip(est):
    ds = fields()
    fitted = clone(est).fit(ds)
    again = pickle.loads(pickle.dumps(fitted))
    xr.testing.assert_identical(_round_trip(again, ds), _round_trip(fitted, ds))


@pytest.mark.parametrize("est", TRANSFORMERS, ids=IDS)
def test_unseen_data(est):
    fitted = clone(est).fit(fields())
    new = fields(n_time=3, seed=9, t0=42.0)
    back = _round_trip(fitted, new)
    np.testing.assert_array_equal(back.time, new.time)
    if isinstance(est, LowPassFilter):  # per-sample: a subset filtered alone is the same
        xr.testing.assert_allclose(back.isel(time=[1]), _round_trip(fitted, new.isel(time=[1])))
    else:
        xr.testing.assert_allclose(back, new, rtol=1e-5, atol=1e-6)
    # SampleView (xdyn.model_selection) is accepted wherever a Dataset is
    via_view, direct = fitted.transform(samples(new)), fitted.transform(new)
    if isinstance(direct, np.ndarray):
        np.testing.assert_array_equal(via_view, direct)
    else:
        xr.testing.assert_identical(via_view, direct)
