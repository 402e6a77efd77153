"""Spectral low-pass filter and scale splitting on periodic fields."""

import doctest
import pickle

import dask
import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from sklearn.base import clone

import xdyn.preprocessing.spectral as spectral_module
from xdyn.preprocessing import LowPassFilter, split_scales

from .test_stacking import _raise_on_compute

N = 32
GRID = 2 * np.pi * np.arange(N) / N


def field(modes, n_time=3, dtype=np.float64, length=2 * np.pi):
    """Sum of cos(kx x + ky y) over ``modes = [(ky, kx), ...]`` on an (N, N) grid."""
    x = length * np.arange(N) / N
    k = 2 * np.pi / length
    y2, x2 = np.meshgrid(x, x, indexing="ij")
    grid = sum(np.cos(k * (kx * x2 + ky * y2)) for ky, kx in modes)
    amp = 1.0 + np.arange(n_time)
    return xr.Dataset(
        {"vorticity": (("time", "y", "x"), (amp[:, None, None] * grid).astype(dtype),
                       {"units": "s-1", "long_name": "vorticity"})},
        coords={"time": ("time", 0.5 * np.arange(n_time), {"units": "s"}),
                "y": ("y", x, {"units": "m"}), "x": ("x", x, {"units": "m"})},
        attrs={"system": "KolmogorovFlow", "Re": 34.0},
    )


def test_sharp_cutoff_keeps_exactly_the_low_mode():
    ds = field([(0, 2), (10, 0), (0, 10)])
    out = LowPassFilter(cutoff=5).transform(ds)
    np.testing.assert_allclose(out.vorticity, field([(0, 2)]).vorticity, rtol=0, atol=1e-12)
    assert out.vorticity.attrs == ds.vorticity.attrs and out.attrs == ds.attrs
    assert out.time.attrs == ds.time.attrs and out.vorticity.dims == ("time", "y", "x")


def test_sharp_cutoff_is_isotropic_in_k_magnitude():
    # |(3, 4)| = 5 is kept at cutoff 5 (inclusive); |(4, 4)| = 5.66 is removed
    out = LowPassFilter(cutoff=5).transform(field([(3, 4), (4, 4)]))
    np.testing.assert_allclose(out.vorticity, field([(3, 4)]).vorticity, atol=1e-12)


def test_sharp_filter_is_idempotent():
    rng = np.random.default_rng(0)
    ds = field([(0, 1)]).copy(data={"vorticity": rng.normal(size=(3, N, N))})
    f = LowPassFilter(cutoff=6)
    once = f.transform(ds)
    np.testing.assert_allclose(f.transform(once).vorticity, once.vorticity, atol=1e-13)
    assert float(np.abs(once.vorticity - ds.vorticity).max()) > 0.5  # it did filter


def test_gaussian_transfer_function():
    f = LowPassFilter(cutoff=4, kind="gaussian")
    delta = np.pi / 4
    np.testing.assert_allclose(f.transfer_function(4.0), np.exp(-np.pi**2 / 24), rtol=1e-15)
    np.testing.assert_allclose(f.transfer_function([0.0, 2.0]), [1.0, np.exp(-4 * delta**2 / 24)])
    # a single Fourier mode is multiplied by G(|k|)
    out = f.transform(field([(3, 4)]))
    np.testing.assert_allclose(out.vorticity, f.transfer_function(5.0) * field([(3, 4)]).vorticity,
                               atol=1e-12)


def test_lengths_give_physical_wavenumbers():
    # on a box of side 4 pi, mode number m has k = m / 2: modes 2 and 10 -> k = 1 and 5
    ds = field([(0, 2), (0, 10)], length=4 * np.pi)
    out = LowPassFilter(cutoff=2.0, lengths=4 * np.pi).transform(ds)
    expected = field([(0, 2)], length=4 * np.pi).vorticity
    np.testing.assert_allclose(out.vorticity, expected, atol=1e-12)
    same = LowPassFilter(cutoff=2.0, lengths=(4 * np.pi, 4 * np.pi)).transform(ds)
    xr.testing.assert_identical(same, out)


def test_split_scales_adds_up_and_keeps_labels():
    rng = np.random.default_rng(1)
    ds = field([(0, 1)]).copy(data={"vorticity": rng.normal(size=(3, N, N))})
    ds["u"] = ds.vorticity.copy(data=rng.normal(size=(3, N, N))).assign_attrs(units="m s-1")
    for kind in ("sharp", "gaussian"):
        resolved, unresolved = split_scales(ds, cutoff=4, kind=kind)
        total = resolved + unresolved
        for name in ds.data_vars:
            # two roundings, (x - r) then + r: within eps * (|x| + |x - r|), nothing more
            bound = np.finfo(np.float64).eps * (np.abs(ds[name]) + np.abs(unresolved[name]))
            assert bool((np.abs(total[name] - ds[name]) <= bound).all())
            assert unresolved[name].attrs == ds[name].attrs == resolved[name].attrs
        assert unresolved.attrs == ds.attrs and resolved.attrs == ds.attrs
    resolved, unresolved = split_scales(ds, cutoff=4)
    mean_product = float((resolved.vorticity * unresolved.vorticity).mean())
    assert abs(mean_product) < 1e-12  # sharp filter: the two parts are orthogonal


def test_chunked_input_stays_lazy_and_equal():
    rng = np.random.default_rng(2)
    ds = field([(0, 1)], n_time=6).copy(data={"vorticity": rng.normal(size=(6, N, N))})
    lazy = ds.chunk({"time": 2, "y": 8})  # chunked along a filtered dim: merged, lazily
    with dask.config.set(scheduler=_raise_on_compute):
        out = LowPassFilter(cutoff=5).transform(lazy)
        resolved, unresolved = split_scales(lazy, cutoff=5)
    assert isinstance(out.vorticity.data, dsa.Array)
    assert out.vorticity.chunks == ((2, 2, 2), (N,), (N,))
    eager = LowPassFilter(cutoff=5).transform(ds)
    xr.testing.assert_allclose(out.compute(), eager, rtol=0, atol=1e-14)
    xr.testing.assert_allclose(unresolved.compute(), ds - out.compute(), rtol=0, atol=1e-14)


def test_dtypes_and_one_dimensional_fields():
    ds32 = field([(0, 2), (0, 10)], dtype=np.float32)
    out = LowPassFilter(cutoff=5).transform(ds32)
    assert out.vorticity.dtype == np.float32
    np.testing.assert_allclose(out.vorticity, field([(0, 2)]).vorticity, atol=1e-5)
    line = xr.DataArray(np.cos(2 * GRID) + np.sin(9 * GRID), dims="k", name="x")
    smooth = LowPassFilter(cutoff=3, dims="k").transform(line.expand_dims(time=2))
    np.testing.assert_allclose(smooth.isel(time=0), np.cos(2 * GRID), atol=1e-12)


def test_input_and_parameter_errors():
    ds = field([(0, 2)])
    with pytest.raises(TypeError, match="no grid"):
        LowPassFilter(cutoff=5).fit(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="'energy'.*lacks the filtered dim"):
        LowPassFilter(cutoff=5).transform(ds.assign(energy=("time", np.ones(3))))
    with pytest.raises(ValueError, match="kind"):
        LowPassFilter(cutoff=5, kind="box").fit(ds)
    with pytest.raises(ValueError, match="cutoff"):
        LowPassFilter(cutoff=-1).fit(ds)
    with pytest.raises(ValueError, match="lengths"):
        LowPassFilter(cutoff=5, lengths=(1.0,)).fit(ds)
    with pytest.raises(ValueError, match="sample_dim"):
        LowPassFilter(cutoff=5, dims=("time", "x")).fit(ds)


def test_stateless_clone_and_pickle():
    ds = field([(0, 2), (0, 10)])
    f = LowPassFilter(cutoff=5, kind="gaussian")
    unfitted = f.transform(ds)  # stateless: no fit needed
    assert f.fit(ds) is f
    assert clone(f).get_params() == f.get_params()
    xr.testing.assert_identical(pickle.loads(pickle.dumps(f)).transform(ds), unfitted)
    xr.testing.assert_identical(f.transform(ds.vorticity), unfitted.vorticity)


def test_docstring_examples():
    assert doctest.testmod(spectral_module).failed == 0


def test_a_nan_is_refused_naming_the_variable_not_spread_over_the_field():
    ds = field([(0, 2)], n_time=3)
    ds["vorticity"][1, 4, 7] = np.nan
    with pytest.raises(ValueError, match=r"variable 'vorticity' holds 1 NaN or infinite.*fillna"):
        LowPassFilter(cutoff=5).transform(ds)
    with pytest.raises(ValueError, match="'vorticity'"):
        split_scales(ds.vorticity, cutoff=5)
    # lazy input stays lazy; the refusal comes when the values are computed
    with dask.config.set(scheduler=_raise_on_compute):
        lazy = LowPassFilter(cutoff=5).transform(ds.chunk({"time": 1}))
    with pytest.raises(ValueError, match="'vorticity'"):
        lazy.compute()
    # an infinity too; a filled field goes through
    ds["vorticity"][1, 4, 7] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        LowPassFilter(cutoff=5).transform(ds)
    filled = LowPassFilter(cutoff=5).transform(ds.where(np.isfinite(ds), 0.0))
    assert bool(np.isfinite(filled.vorticity).all())
