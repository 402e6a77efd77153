"""Dataset <-> sample matrix: round trips, layouts, laziness, the Stacker transformer."""

import doctest
import pickle

import dask
import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

import xdyn.preprocessing.stacking as stacking_module
from xdyn.model_selection import samples
from xdyn.preprocessing import Stacker, StandardScaler, stack_samples, unstack_samples


def _raise_on_compute(dsk, keys, **kwargs):
    raise AssertionError("dask computed where nothing should be computed")


def make_mixed(n_time=12, seed=0, t0=0.0):
    """Scalar diagnostics next to a float32 field stored as (y, time, x), with NaNs."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(3, n_time, 4)).astype("float32")
    w[0, 1, 2] = np.nan
    return xr.Dataset(
        {
            "energy": ("time", rng.normal(size=n_time),
                       {"units": "m2 s-2", "long_name": "kinetic energy"}),
            "enstrophy": ("time", rng.normal(size=n_time), {"units": "s-2", "long_name": "enstrophy"}),
            "vorticity": (("y", "time", "x"), w,
                          {"units": "s-1", "long_name": "vorticity",
                           "standard_name": "atmosphere_relative_vorticity"}),
        },
        coords={
            "time": ("time", t0 + 0.1 * np.arange(n_time),
                     {"units": "s", "long_name": "model time"}),
            "step": ("time", np.arange(n_time)),
            "y": ("y", [0.0, 1.0, 2.0], {"units": "m"}),
            "x": ("x", [0.0, 0.5, 1.0, 1.5], {"units": "m"}),
            "level": ((), 500.0, {"units": "hPa"}),
        },
        attrs={"system": "Toy", "dt": 0.1, "seed": 0},
    )


@pytest.fixture
def mixed():
    return make_mixed()


# ------------------------------------------------------------ functions
def test_round_trip_is_identical(mixed):
    matrix, info = stack_samples(mixed)
    assert matrix.dims == ("time", "feature")
    assert matrix.shape == (12, 1 + 1 + 12)
    assert info.names == ("energy", "enstrophy", "vorticity")
    assert info.columns("vorticity") == slice(2, 14)
    assert matrix["variable_name"].values.tolist() == ["energy", "enstrophy"] + ["vorticity"] * 12
    np.testing.assert_array_equal(matrix["step"], mixed["step"])
    # a column is the field at one (y, x) point, C order over (y, x)
    np.testing.assert_array_equal(matrix.isel(feature=2 + 1 * 4 + 3),
                                  mixed.vorticity.isel(y=1, x=3))
    back = unstack_samples(matrix, info)
    xr.testing.assert_identical(back, mixed)
    assert back.vorticity.dims == ("y", "time", "x") and back.vorticity.dtype == np.float32
    assert np.isnan(back.vorticity[0, 1, 2])  # NaN passes through


@pytest.mark.parametrize("name", ["vorticity", None])
def test_dataarray_round_trip(mixed, name):
    da = mixed.vorticity.rename(name)
    matrix, info = stack_samples(da)
    assert matrix.shape == (12, 12) and info.is_dataarray
    back = unstack_samples(matrix, info)
    assert isinstance(back, xr.DataArray)
    xr.testing.assert_identical(back, da)


def test_unseen_samples_with_other_time_coords(mixed):
    _, info = stack_samples(mixed)
    new = make_mixed(n_time=5, seed=3, t0=100.0)
    matrix, _ = stack_samples(new, info=info)
    assert matrix.shape == (5, info.n_features)
    xr.testing.assert_identical(unstack_samples(matrix, info), new)
    # a bare matrix: the sample coordinate is given back, with the fitted attrs
    back = unstack_samples(matrix.values, info, sample_coord=new.time.values)
    assert back.time.attrs == mixed.time.attrs
    xr.testing.assert_identical(back, new.drop_vars("step"))
    bare = unstack_samples(matrix.values, info)
    assert "time" not in bare.coords and bare.sizes["time"] == 5


def test_unstack_renamed_sample_dim_and_errors(mixed):
    matrix, info = stack_samples(mixed)
    renamed = matrix.rename(time="sample").transpose("feature", "sample")
    back = unstack_samples(renamed, info)
    np.testing.assert_array_equal(back.time, mixed.time)
    with pytest.raises(ValueError, match="shape"):
        unstack_samples(np.zeros((3, info.n_features + 1)), info)
    with pytest.raises(ValueError, match="sample_coord"):
        unstack_samples(matrix.values, info, sample_coord=[1.0, 2.0])
    with pytest.raises(ValueError, match="feature"):
        unstack_samples(xr.DataArray(np.zeros((2, 14)), dims=("a", "b")), info)
    # columns in another order were unstacked by position, into other variables and points
    shuffled = matrix.isel(feature=np.roll(np.arange(info.n_features), 1))
    with pytest.raises(ValueError, match="not the stacked order"):
        unstack_samples(shuffled, info)
    xr.testing.assert_identical(unstack_samples(shuffled.sortby("feature"), info),
                                unstack_samples(matrix, info))


def test_dtype_restored_within_kind():
    ds = xr.Dataset({"n": (("time", "k"), np.arange(6).reshape(3, 2)),
                     "f": ("time", np.ones(3, dtype="float32"))})
    matrix, info = stack_samples(ds)
    assert matrix.dtype == np.float64
    back = unstack_samples(matrix, info)
    assert back.f.dtype == np.float32 and back.n.dtype == np.float64  # float never truncated to int
    ints, info_int = stack_samples(ds[["n"]])
    assert unstack_samples(ints, info_int).n.dtype == ds.n.dtype


def test_stacking_stays_lazy(mixed):
    lazy = mixed.chunk({"time": 5, "x": 2})
    with dask.config.set(scheduler=_raise_on_compute):
        matrix, info = stack_samples(lazy)
        assert isinstance(matrix.data, dsa.Array)
        back = unstack_samples(matrix, info)
        assert isinstance(back.vorticity.data, dsa.Array)
        transformed = Stacker().fit(lazy).transform(lazy)
        assert isinstance(transformed, dsa.Array)
    np.testing.assert_array_equal(matrix.values, stack_samples(mixed)[0].values)
    xr.testing.assert_identical(back.compute(), mixed)


def test_layout_errors(mixed):
    _, info = stack_samples(mixed)
    with pytest.raises(ValueError, match="set_coords"):
        stack_samples(mixed.assign(mask=(("y", "x"), np.ones((3, 4)))))
    with pytest.raises(ValueError, match="sample_dim 'member'"):
        stack_samples(mixed, sample_dim="member")
    with pytest.raises(TypeError, match="non-numeric"):
        stack_samples(mixed.assign(label=("time", np.array(["a"] * 12))))
    with pytest.raises(ValueError, match=r"missing \['enstrophy'\]"):
        stack_samples(mixed.drop_vars("enstrophy"), info=info)
    with pytest.raises(ValueError, match="'vorticity'"):
        stack_samples(mixed.isel(x=slice(0, 3)), info=info)
    with pytest.raises(ValueError, match="coordinate 'x' differs from the one seen in fit$"):
        stack_samples(mixed.assign_coords(x=mixed.x + 1), info=info)
    # a variable in other units would be unstacked under the fitted ones (s-1 for h-1)
    in_hours = mixed.assign(vorticity=mixed.vorticity.assign_attrs(units="h-1"))
    with pytest.raises(ValueError, match="'vorticity' is in 'h-1', the fitted layout's in 's-1'"):
        stack_samples(in_hours, info=info)
    stack_samples(mixed.assign(vorticity=mixed.vorticity.assign_attrs(units="1/s")), info=info)
    # the same labels stored the other way round (a descending y): say so, and how to sort
    with pytest.raises(ValueError, match=r"the same labels in another order .*"
                                         r"sortby\('y', ascending=True\)"):
        stack_samples(mixed.isel(y=slice(None, None, -1)), info=info)
    # fitted labels in no order: only reindex puts them back (no sortby to offer)
    shuffled = mixed.isel(x=[2, 0, 3, 1])
    _, shuffled_info = stack_samples(shuffled)
    with pytest.raises(ValueError, match=r"reindex\(x=fitted_x\)\)?$"):
        stack_samples(mixed, info=shuffled_info)
    with pytest.raises(TypeError, match="Dataset"):
        stack_samples(mixed.vorticity, info=info)
    with pytest.warns(UserWarning, match="lost when unstacking"):
        stack_samples(mixed.assign_coords(noise=(("time", "x"), np.zeros((12, 4)))))


# ------------------------------------------------------------ Stacker
def test_stacker_round_trip_on_unseen_data(mixed):
    stacker = Stacker().fit(mixed)
    assert stacker.n_features_in_ == 14
    assert stacker.layout_.names == ("energy", "enstrophy", "vorticity")
    new = make_mixed(n_time=4, seed=1, t0=50.0)
    matrix = stacker.transform(new)
    assert isinstance(matrix, np.ndarray) and matrix.shape == (4, 14)
    back = stacker.inverse_transform(matrix, sample_coord=new.time)
    xr.testing.assert_identical(back, new.drop_vars("step"))
    # SampleView (xdyn.model_selection) is accepted wherever a Dataset is
    np.testing.assert_array_equal(stacker.transform(samples(new)), matrix)


def test_stacker_numpy_is_identity():
    X = np.arange(12.0).reshape(4, 3)
    stacker = Stacker().fit(X)
    assert stacker.layout_ is None and stacker.n_features_in_ == 3
    np.testing.assert_array_equal(stacker.transform(X), X)
    np.testing.assert_array_equal(stacker.inverse_transform(X), X)
    with pytest.raises(TypeError, match="bare matrix"):
        stacker.transform(make_mixed())
    lazy = dsa.from_array(X, chunks=2)
    with dask.config.set(scheduler=_raise_on_compute):
        assert Stacker().fit(lazy).transform(lazy) is lazy


def test_stacker_fitted_on_dataset_checks_matrices(mixed):
    stacker = Stacker().fit(mixed)
    with pytest.raises(ValueError, match="14 features"):
        stacker.transform(np.zeros((2, 3)))
    np.testing.assert_array_equal(stacker.transform(np.ones((2, 14))), np.ones((2, 14)))
    with pytest.raises(NotFittedError):
        Stacker().transform(mixed)


def test_stacker_clone_pickle_and_sample_dim_param(mixed):
    ens = mixed.fillna(0.0).rename(time="member")
    stacker = Stacker(sample_dim="member")
    assert clone(stacker).sample_dim == "member"
    fitted = stacker.fit(ens)
    again = pickle.loads(pickle.dumps(fitted))
    back = again.inverse_transform(again.transform(ens), sample_coord=ens.member)
    xr.testing.assert_identical(back, ens.drop_vars("step"))
    pipe = Pipeline([("stack", Stacker()), ("pca", PCA(2))]).set_params(stack__sample_dim="member")
    assert clone(pipe).get_params()["stack__sample_dim"] == "member"
    assert pipe.fit(ens).transform(ens).shape == (12, 2)


def test_pipeline_stacker_pca_inverse_to_dataset(mixed):
    data = mixed.fillna(0.0)
    pipe = Pipeline([("stack", Stacker()), ("pca", PCA())]).fit(data)
    scores = pipe.transform(data)
    back = pipe.inverse_transform(scores).assign_coords(time=data.time, step=data.step)
    xr.testing.assert_allclose(back, data, atol=1e-5)  # float32 field
    assert back.vorticity.attrs == data.vorticity.attrs and back.attrs == data.attrs


def test_pipeline_scale_stack_pca_inverse_path(mixed):
    """xdyn's labelled steps first, scikit-learn's after: the inverse path ends in a Dataset."""
    data = mixed.fillna(0.0)
    pipe = Pipeline([("scale", StandardScaler()), ("stack", Stacker()), ("pca", PCA(5))]).fit(data)
    new = make_mixed(n_time=6, seed=7, t0=30.0).fillna(0.0)
    scores = pipe.transform(new)
    assert scores.shape == (6, 5)
    recon = pipe.inverse_transform(scores)
    assert isinstance(recon, xr.Dataset)
    assert list(recon.data_vars) == ["energy", "enstrophy", "vorticity"]
    assert recon.vorticity.dims == ("y", "time", "x")
    assert recon.vorticity.attrs == data.vorticity.attrs
    np.testing.assert_array_equal(recon.y, data.y)
    # with every component kept (more samples than features) unseen data is reconstructed
    full = Pipeline([("scale", StandardScaler()), ("stack", Stacker()), ("pca", PCA())])
    full.fit(make_mixed(n_time=40, seed=2).fillna(0.0))
    xr.testing.assert_allclose(full.inverse_transform(full.transform(new)),
                               new.drop_vars(["time", "step"]), atol=1e-4)


def test_docstring_examples():
    assert doctest.testmod(stacking_module).failed == 0
