"""The DatasetTransformer template: one subclass (a truncated SVD) written as three matrix methods."""

import pickle

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from xdyn.preprocessing import DatasetTransformer, StandardScaler


class TruncatedSVD(DatasetTransformer):
    """Rank-``n_components`` projection on the leading right singular vectors (test client)."""

    _parameter_constraints = {**DatasetTransformer._parameter_constraints,
                              "n_components": [int]}

    def __init__(self, sample_dim="time", *, n_components=2):
        super().__init__(sample_dim=sample_dim)
        self.n_components = n_components

    def _fit_matrix(self, X, y=None):
        self.mean_ = X.mean(axis=0)
        _, _, vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        self.components_ = vt[: self.n_components]

    def _transform_matrix(self, X):
        return (X - self.mean_) @ self.components_.T

    def _inverse_transform_matrix(self, Z):
        return Z @ self.components_ + self.mean_


@parametrize_with_checks([TruncatedSVD(n_components=1)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _fields(n_time=30, rank=2, seed=0):
    rng = np.random.default_rng(seed)
    modes = rng.standard_normal((rank, 4, 5))
    amps = rng.standard_normal((n_time, rank))
    u = np.einsum("tr,ryx->tyx", amps, modes) + 3.0
    p = amps @ rng.standard_normal(rank)
    return xr.Dataset(
        {"u": (("time", "y", "x"), u, {"units": "m s-1", "long_name": "velocity"}),
         "p": (("time",), p, {"units": "Pa"})},
        coords={"time": ("time", np.arange(n_time) * 0.5, {"units": "s"}),
                "y": np.linspace(0, 1, 4), "x": np.linspace(0, 2, 5)},
        attrs={"source": "test"})


def test_exact_round_trip_of_rank_k_fields_also_unseen():
    train, test = _fields(seed=0), _fields(seed=0).isel(time=slice(5, 9))
    model = TruncatedSVD(n_components=2).fit(train.isel(time=slice(0, 20)))
    z = model.transform(test)
    assert z.dims == ("time", "component") and z.shape == (4, 2)
    np.testing.assert_array_equal(z.time, test.time)
    back = model.inverse_transform(z)
    xr.testing.assert_allclose(back, test, atol=1e-10)
    assert back.u.attrs == test.u.attrs and back.attrs == test.attrs
    assert back.time.attrs == {"units": "s"}
    # a bare component matrix unstacks too, without a sample coordinate
    assert model.inverse_transform(z.values).u.shape == (4, 4, 5)
    # components in another order are refused, not read by position
    with pytest.raises(ValueError, match="labels are not 0 .. 1 in order"):
        model.inverse_transform(z.isel(component=[1, 0]))


def test_rank_deficit_is_visible():
    """A rank-1 model of rank-2 data misses: the round trip is not exact (could fail)."""
    ds = _fields()
    model = TruncatedSVD(n_components=1).fit(ds)
    err = float(np.abs(model.inverse_transform(model.transform(ds)).u - ds.u).max())
    assert err > 1e-3


def test_dataarray_sample_dim_dask_and_pipeline():
    ds = _fields()
    da = ds.u.transpose("y", "x", "time").rename(time="sample")
    model = TruncatedSVD("sample", n_components=2).fit(da.chunk({"sample": 7}))
    back = model.inverse_transform(model.transform(da))
    assert isinstance(back, xr.DataArray) and back.name == "u" and back.dims == da.dims
    xr.testing.assert_allclose(back, da, atol=1e-10)
    pipe = Pipeline([("scale", StandardScaler()), ("svd", TruncatedSVD(n_components=2))]).fit(ds)
    xr.testing.assert_allclose(pipe.inverse_transform(pipe.transform(ds)), ds, atol=1e-9)


def test_bad_input_named_before_any_work():
    ds = _fields()
    with pytest.raises(NotFittedError):
        TruncatedSVD().transform(ds)
    with pytest.raises(ValueError, match="sample_dim 'member' is not a dim"):
        TruncatedSVD("member").fit(ds)
    with pytest.raises(ValueError, match=r"NaN or inf \(variables u\)"):
        TruncatedSVD().fit(ds.assign(u=ds.u.where(ds.u < 3.5)))
    with pytest.raises(ValueError, match="n_components"):
        TruncatedSVD(n_components="2").fit(ds)
    model = TruncatedSVD().fit(ds)
    with pytest.raises(ValueError, match=r"TruncatedSVD: variables differ.*missing \['p'\]"):
        model.transform(ds[["u"]])
    with pytest.raises(ValueError, match="variable 'u' has dims"):
        model.transform(ds.isel(x=slice(0, 3)))
    with pytest.raises(TypeError, match="fitted on a Dataset"):
        model.transform(np.zeros((3, 21)))
    with pytest.raises(ValueError, match="'component' dim"):
        model.inverse_transform(xr.DataArray(np.zeros((3, 2)), dims=("time", "mode")))


def test_clone_and_pickle_keep_the_fit():
    ds = _fields()
    model = TruncatedSVD(n_components=2).fit(ds)
    assert clone(model).get_params() == model.get_params()
    again = pickle.loads(pickle.dumps(model))
    xr.testing.assert_identical(again.transform(ds), model.transform(ds))
