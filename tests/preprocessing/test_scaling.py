"""StandardScaler: scikit-learn's numbers on labelled data, units, per-variable scales, laziness."""

import doctest
import pickle

import dask
import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from sklearn import preprocessing as skp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import xdyn.preprocessing.scaling as scaling_module
from xdyn.preprocessing import StandardScaler, stack_samples

from .test_stacking import _raise_on_compute, make_mixed


F32 = {"rtol": 1e-5, "atol": 1e-6}  # tolerance of round trips through the float32 field


@pytest.fixture
def mixed():
    return make_mixed(n_time=30)


def test_numbers_match_sklearn_on_the_stacked_matrix(mixed):
    matrix = stack_samples(mixed)[0].values.astype(np.float64)
    ref = skp.StandardScaler().fit(matrix)
    ours = StandardScaler().fit(mixed)
    got_mean = stack_samples(ours.mean_.expand_dims(time=1))[0].values[0]
    got_scale = stack_samples(ours.scale_.expand_dims(time=1))[0].values[0]
    np.testing.assert_allclose(got_mean, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(got_scale, ref.scale_, rtol=1e-12)
    z = stack_samples(ours.transform(mixed))[0].values
    np.testing.assert_allclose(z, ref.transform(matrix), **F32)
    # and on the bare matrix (NaN included) they are scikit-learn's to rounding
    bare = StandardScaler().fit(matrix)
    np.testing.assert_allclose(bare.mean_, ref.mean_, rtol=1e-13)
    np.testing.assert_allclose(bare.scale_, ref.scale_, rtol=1e-13)
    np.testing.assert_array_equal(bare.n_samples_seen_, ref.n_samples_seen_)
    np.testing.assert_allclose(bare.transform(matrix), ref.transform(matrix), rtol=1e-12)
    np.testing.assert_allclose(bare.inverse_transform(bare.transform(matrix)), matrix, rtol=1e-12)


def test_units_attrs_and_round_trip(mixed):
    scaler = StandardScaler().fit(mixed)
    assert scaler.mean_.vorticity.attrs["units"] == "s-1"
    z = scaler.transform(mixed)
    assert z.vorticity.dtype == np.float32  # float32 stays float32
    assert z.vorticity.attrs == {**mixed.vorticity.attrs, "units": "1", "original_units": "s-1"}
    assert z.attrs == mixed.attrs and z.time.attrs == mixed.time.attrs
    assert z.vorticity.dims == mixed.vorticity.dims
    np.testing.assert_allclose(z.energy.mean("time"), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.energy.std("time"), 1.0, rtol=1e-12)
    back = scaler.inverse_transform(z)
    xr.testing.assert_allclose(back, mixed, **F32)
    for name in mixed.data_vars:
        assert back[name].attrs == mixed[name].attrs
    xr.testing.assert_identical(mixed, make_mixed(n_time=30))  # input untouched


def test_unseen_data_and_mismatches(mixed):
    scaler = StandardScaler().fit(mixed)
    new = make_mixed(n_time=4, seed=5, t0=99.0)
    z = scaler.transform(new)
    np.testing.assert_array_equal(z.time, new.time)
    xr.testing.assert_allclose(scaler.inverse_transform(z), new, **F32)
    with pytest.raises(ValueError, match="coordinates of variable"):
        scaler.transform(new.assign_coords(x=new.x + 0.25))
    with pytest.raises(ValueError, match="fitted in 's-1'"):
        scaler.transform(new.assign(vorticity=new.vorticity.assign_attrs(units="h-1")))
    with pytest.raises(ValueError, match="expects standardized data"):
        scaler.inverse_transform(new)
    with pytest.raises(ValueError, match="differ from those seen in fit"):
        scaler.transform(new.drop_vars("energy"))
    # one row of a fitted grid: broadcasting applied every row's statistics to it
    for op, data in ((scaler.transform, new), (scaler.inverse_transform, z)):
        with pytest.raises(ValueError, match=r"'vorticity' lacks the dim\(s\) \['y'\]"):
            op(data.isel(y=0))
    with pytest.raises(TypeError, match="fitted on a Dataset"):
        scaler.transform(new.vorticity)
    with pytest.raises(TypeError, match="fitted on a Dataset"):
        scaler.transform(np.zeros((3, 14)))
    with pytest.raises(ValueError, match="no 'time' dim"):
        StandardScaler().fit(mixed.assign(mask=(("y", "x"), np.ones((3, 4)))))


def _kelvin(units, values=((280.0, 290.0), (284.0, 290.0))):
    attrs = {} if units is None else {"units": units}
    return xr.Dataset({"T": (("time", "x"), np.array(values), attrs)})


@pytest.mark.parametrize("units", ["kelvin", "K", "degK", "", "  ", None])
def test_units_compared_as_units(units):
    """Spellings of the fitted unit, and data that states none, are scaled as the fitted
    data; the outputs record the units as spelled in fit."""
    scaler = StandardScaler().fit(_kelvin("K"))
    z = scaler.transform(_kelvin(units))
    assert z.T.values.tolist() == [[-1.0, 0.0], [1.0, 0.0]]
    assert z.T.attrs == {"units": "1", "original_units": "K"}
    back = scaler.inverse_transform(z)
    assert back.T.values.tolist() == [[280.0, 290.0], [284.0, 290.0]]
    assert back.T.attrs == {"units": "K"}
    # standardized data in any spelling of "1", or stating none, is undone
    for standard in ("1", "dimensionless", "", None):
        out = scaler.inverse_transform(_kelvin(standard, z.T.values))
        assert out.T.attrs == {"units": "K"}
        assert out.T.values.tolist() == [[280.0, 290.0], [284.0, 290.0]]


def test_other_units_still_refused():
    scaler = StandardScaler().fit(_kelvin("kelvin"))
    for units in ("degC", "Pa", "K2"):
        with pytest.raises(ValueError, match="fitted in 'kelvin'"):
            scaler.transform(_kelvin(units))
    for units in ("K", "percent", "m"):
        with pytest.raises(ValueError, match="expects standardized data"):
            scaler.inverse_transform(_kelvin(units))


@pytest.mark.parametrize("fitted", ["", None])
def test_fit_without_units_keeps_the_datas_aside(fitted):
    """A fit that stated no units scales data in any; their units are put back."""
    bare = StandardScaler().fit(_kelvin(fitted))
    z = bare.transform(_kelvin("K"))
    assert z.T.attrs == {"units": "1", "original_units": "K"}
    assert bare.inverse_transform(z).T.attrs == {"units": "K"}


def test_with_std_false_compares_units():
    """A mean fitted in K was subtracted from (and added back to) data in degC silently."""
    centred = StandardScaler(with_std=False).fit(_kelvin("K"))
    for op in (centred.transform, centred.inverse_transform):
        for units in ("degC", "Pa", "1"):
            with pytest.raises(ValueError, match=f"'T' is in '{units}' but was fitted in 'K'"):
                op(_kelvin(units))
    # the fitted unit in another spelling, or none stated, is centred (and back) as the fit
    for units in ("kelvin", "degK", "", None):
        out = centred.transform(_kelvin(units))
        assert out.T.values.tolist() == [[-2.0, 0.0], [2.0, 0.0]]
        assert out.T.attrs == _kelvin(units).T.attrs  # the data keeps its units
        back = centred.inverse_transform(out)
        assert back.T.values.tolist() == [[280.0, 290.0], [284.0, 290.0]]
        assert back.T.attrs == _kelvin(units).T.attrs
    # no statistic applied (neither mean nor std): the data is passed through as it is
    neither = StandardScaler(with_mean=False, with_std=False).fit(_kelvin("K"))
    assert neither.transform(_kelvin("degC")).identical(_kelvin("degC"))


def test_inverse_refuses_data_standardized_from_other_units():
    """Data standardized from degC was put back by a scaler fitted in K, labelled K."""
    celsius = _kelvin("degC", ((7.0, 17.0), (11.0, 17.0)))
    z = StandardScaler().fit(celsius).transform(celsius)
    assert z.T.attrs["original_units"] == "degC"
    kelvin = StandardScaler().fit(_kelvin("K"))
    with pytest.raises(ValueError, match="'T' was standardized from 'degC' but this scaler "
                                         "was fitted in 'K'"):
        kelvin.inverse_transform(z)
    # original_units in another spelling of the fitted unit, or none stated, are undone
    for original in ("kelvin", "", None):
        attrs = {"units": "1"} if original is None else {"units": "1", "original_units": original}
        out = kelvin.inverse_transform(z.assign(T=(z.T.dims, z.T.values, attrs)))
        assert out.T.attrs == {"units": "K"}
        assert out.T.values.tolist() == [[280.0, 290.0], [284.0, 290.0]]


def test_per_variable_scaling(mixed):
    scaler = StandardScaler(per_variable=True).fit(mixed)
    assert scaler.mean_.vorticity.dims == () and scaler.scale_.vorticity.dims == ()
    w = mixed.vorticity.values.astype(np.float64)
    np.testing.assert_allclose(scaler.mean_.vorticity, np.nanmean(w), rtol=1e-12)
    np.testing.assert_allclose(scaler.scale_.vorticity, np.nanstd(w), rtol=1e-12)
    z = scaler.transform(mixed)
    assert abs(float(z.vorticity.mean())) < 1e-6 and abs(float(z.vorticity.std()) - 1) < 1e-6
    # one scale per variable keeps the relative amplitude of grid points
    ratio = z.vorticity.isel(y=0, x=0).std() / z.vorticity.isel(y=1, x=1).std()
    expected = mixed.vorticity.isel(y=0, x=0).std() / mixed.vorticity.isel(y=1, x=1).std()
    np.testing.assert_allclose(ratio, expected, rtol=1e-5)
    xr.testing.assert_allclose(scaler.inverse_transform(z), mixed, **F32)


def test_constant_feature_gets_scale_one():
    ds = xr.Dataset({"a": (("time", "k"), np.c_[np.full(5, 3.0), np.arange(5.0)], {"units": "K"})})
    scaler = StandardScaler().fit(ds)
    np.testing.assert_array_equal(scaler.scale_.a, [1.0, np.sqrt(2.0)])
    np.testing.assert_array_equal(scaler.transform(ds).a[:, 0], 0.0)
    assert StandardScaler(per_variable=True).fit(ds[["a"]].isel(k=[0])).scale_.a == 1.0


def test_with_mean_or_std_off(mixed):
    centred = StandardScaler(with_std=False).fit(mixed)
    assert centred.scale_ is None
    out = centred.transform(mixed)
    assert out.vorticity.attrs == mixed.vorticity.attrs  # same units: only centred
    np.testing.assert_allclose(out.energy, mixed.energy - mixed.energy.mean(), rtol=1e-12)
    scaled = StandardScaler(with_mean=False).fit(mixed)
    np.testing.assert_allclose(scaled.transform(mixed).energy, mixed.energy / mixed.energy.std(),
                               rtol=1e-12)


def test_dataarray_in_dataarray_out(mixed):
    da = mixed.vorticity
    scaler = StandardScaler().fit(da)
    assert isinstance(scaler.mean_, xr.DataArray) and scaler.n_features_in_ == 12
    z = scaler.transform(da.rename("renamed"))
    assert isinstance(z, xr.DataArray) and z.name == "renamed" and z.attrs["units"] == "1"
    xr.testing.assert_allclose(scaler.inverse_transform(z), da.rename("renamed"), **F32)


def test_fit_computes_once_and_transform_is_lazy(mixed):
    lazy = mixed.chunk({"time": 10})
    calls = []

    def counting(dsk, keys, **kwargs):
        calls.append(1)
        return dask.get(dsk, keys, **kwargs)

    with dask.config.set(scheduler=counting):
        scaler = StandardScaler().fit(lazy)
    assert len(calls) == 1
    with dask.config.set(scheduler=_raise_on_compute):
        z = scaler.transform(lazy)
        back = scaler.inverse_transform(z)
    assert isinstance(z.vorticity.data, dsa.Array) and z.vorticity.chunks == lazy.vorticity.chunks
    eager = StandardScaler().fit(mixed)
    xr.testing.assert_allclose(z.compute(), eager.transform(mixed))
    xr.testing.assert_allclose(back.compute(), mixed, **F32)


def test_not_fitted_clone_pickle(mixed):
    with pytest.raises(NotFittedError):
        StandardScaler().transform(mixed)
    scaler = StandardScaler(sample_dim="time", per_variable=True).fit(mixed)
    assert clone(scaler).get_params() == scaler.get_params()
    again = pickle.loads(pickle.dumps(scaler))
    xr.testing.assert_identical(again.transform(mixed), scaler.transform(mixed))


def test_docstring_examples():
    assert doctest.testmod(scaling_module).failed == 0


def test_a_dimensionless_ratio_is_physical_not_standardized():
    """Specific humidity in 'kg kg**-1' reads as the unit "1": standardized data was then
    standardized again by a scaler fitted on q, and physical q 'de-standardized'."""
    q = xr.Dataset({"q": (("time", "x"), np.array([[0.004, 0.006], [0.006, 0.008]]),
                          {"units": "kg kg**-1"})})
    scaler = StandardScaler().fit(q)
    z = scaler.transform(q)
    with pytest.raises(ValueError, match="is standardized data .*'kg kg\\*\\*-1' aside"):
        scaler.transform(z)
    with pytest.raises(ValueError, match="has units 'kg kg\\*\\*-1'; inverse_transform expects"):
        scaler.inverse_transform(q)
    np.testing.assert_allclose(scaler.inverse_transform(z).q, q.q)
    # a scaler fitted on standardized data scales it (a second scaler in a chain)
    again = StandardScaler().fit(z)
    np.testing.assert_allclose(again.transform(z).q, z.q, atol=1e-12)
