"""The Kolmogorov closure set: split by trajectory, cached by configuration, physical fields."""

import json

import numpy as np
import pytest
import xarray as xr

from xdyn.datasets import generated_path, load_kolmogorov_closure, vorticity_from_velocity
from xdyn.datasets.kolmogorov_closure import QUICK_CONFIG

TINY = {"solve_grid": 16, "output_grid": 8, "burn_in": 1.0, "n_train": 2,
        "n_snapshots": 4, "n_snapshots_val": 6}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDYN_DATA_DIR", str(tmp_path))
    return tmp_path


def test_splits_shapes_and_config(data_dir):
    data = load_kolmogorov_closure(**TINY)
    assert set(data) == {"train", "val", "test"}
    assert data["train"].u.shape == (2, 4, 8, 8)
    assert data["val"].u.shape == (1, 6, 8, 8)
    assert data["test"].v.shape == (1, 4, 8, 8)
    assert data["train"].u.dtype == np.float32
    record = json.loads(data["test"].attrs["xdyn_config"])
    assert record["config"] == {**QUICK_CONFIG, **TINY}
    # split by trajectory: no two trajectories share their states
    fields = np.concatenate([d.u.values[:, :4] for d in data.values()], axis=0)
    flat = fields.reshape(fields.shape[0], -1)
    assert np.linalg.matrix_rank(flat) == flat.shape[0]


def test_cached_by_configuration(data_dir):
    load_kolmogorov_closure(**TINY)
    path = generated_path("kolmogorov-closure", **{**QUICK_CONFIG, **TINY})
    assert path.is_file()
    stamp = path.stat().st_mtime_ns
    load_kolmogorov_closure(**TINY)  # second load reads the cache
    assert path.stat().st_mtime_ns == stamp
    other = generated_path("kolmogorov-closure", **{**QUICK_CONFIG, **TINY, "random_state": 1})
    assert other != path


def test_velocity_is_divergence_free_and_vorticity_matches(data_dir):
    from xdyn.systems import KolmogorovFlow

    flow = KolmogorovFlow(N=16)
    ds = flow.diagnostics(flow.simulate(n_steps=3, random_state=0))
    w = vorticity_from_velocity(ds)
    np.testing.assert_allclose(w.values, ds.vorticity.values, atol=1e-10)
    u_hat, v_hat = np.fft.fft2(ds.u.values), np.fft.fft2(ds.v.values)
    k = np.fft.fftfreq(16, 1 / 16)
    div = 1j * k[None, :] * u_hat + 1j * k[:, None] * v_hat
    assert np.abs(div).max() < 1e-8 * np.abs(u_hat).max()


def test_bad_configuration(data_dir):
    with pytest.raises(ValueError, match="output_grid"):
        load_kolmogorov_closure(**{**TINY, "output_grid": 32})
    with pytest.raises(TypeError, match="unknown configuration"):
        load_kolmogorov_closure(n_members=3)


@pytest.mark.parametrize("n", [16, 15])
def test_vorticity_of_nyquist_modes_is_zero(n):
    # cos(n/2 * y) is +1, -1, ... on the grid: its derivative is 0 at every grid point
    g = 2 * np.pi * np.arange(n) / n
    y, x = np.meshgrid(g, g, indexing="ij")
    nyquist_y = np.cos(n // 2 * y) if n % 2 == 0 else np.zeros_like(y)
    nyquist_x = np.cos(n // 2 * x) if n % 2 == 0 else np.zeros_like(x)
    # plus a resolved part, whose vorticity must be unchanged: dv/dx - du/dy = -cos x + sin y
    u = nyquist_y * np.cos(x) + np.cos(y)
    v = nyquist_x * np.sin(y) - np.sin(x)
    ds = xr.Dataset({"u": (("y", "x"), u), "v": (("y", "x"), v)})
    w = vorticity_from_velocity(ds)
    np.testing.assert_allclose(w.values, -np.cos(x) + np.sin(y), atol=1e-12)


def test_vorticity_on_descending_axes_and_reordered_dims():
    # the same field stored with y (or x) descending, or v's dims in another order than
    # u's, has the same vorticity at the same labels
    n = 16
    g = 2 * np.pi * np.arange(n) / n
    a = np.random.default_rng(0).normal(size=(2, 3, n, n))
    ds = xr.Dataset({"u": (("trajectory", "time", "y", "x"), a),
                     "v": (("trajectory", "time", "y", "x"), a[::-1] ** 2)},
                    coords={"y": g, "x": g})
    w = vorticity_from_velocity(ds)
    flipped = ds.isel(y=slice(None, None, -1), x=slice(None, None, -1))
    w_flipped = vorticity_from_velocity(flipped)
    assert w_flipped.y.values.tolist() == flipped.y.values.tolist()  # in the input's order
    xr.testing.assert_allclose(w_flipped.sortby(["y", "x"]), w)
    shuffled = ds.isel(x=np.random.default_rng(1).permutation(n))
    xr.testing.assert_allclose(vorticity_from_velocity(shuffled).sortby("x"), w)
    swapped = ds.assign(v=ds.v.transpose("time", "trajectory", "y", "x"))
    xr.testing.assert_allclose(vorticity_from_velocity(swapped), w)
    # a single mode: -du/dy of u = sin(y) is -cos(y), whatever the storage order
    one = xr.Dataset({"u": (("y", "x"), np.repeat(np.sin(g)[:, None], n, 1)),
                      "v": (("y", "x"), np.zeros((n, n)))}, coords={"y": g, "x": g})
    w1 = vorticity_from_velocity(one.isel(y=slice(None, None, -1)))
    np.testing.assert_allclose(w1.sel(x=0.0), -np.cos(w1.y), atol=1e-12)
    with pytest.raises(ValueError, match="same dims"):
        vorticity_from_velocity(ds.assign(v=ds.v.isel(time=0)))


@pytest.mark.parametrize("u_units, grid_units, expected", [
    (None, None, "1"), ("1", None, "1"), ("1", "1", "1"), ("m s-1", None, None),
    ("m s-1", "1", "m s-1"), ("m s-1", "km", "km-1 m s-1"), ("m s-1", "m", "s-1"),
    ("1", "m", "m-1")])
def test_vorticity_units_from_the_velocity_and_the_grid(u_units, grid_units, expected):
    n = 8
    g = 2 * np.pi * np.arange(n) / n
    coord = {} if grid_units is None else {"units": grid_units}
    ds = xr.Dataset({"u": (("y", "x"), np.zeros((n, n)), {} if u_units is None else
                           {"units": u_units}), "v": (("y", "x"), np.zeros((n, n)))},
                    coords={"y": ("y", g, coord), "x": ("x", g, coord)})
    assert vorticity_from_velocity(ds).attrs.get("units") == expected


def test_vorticity_refuses_u_and_v_in_other_units_and_reads_one_grid_unit():
    n = 8
    g = 2 * np.pi * np.arange(n) / n
    ds = xr.Dataset({"u": (("y", "x"), np.zeros((n, n)), {"units": "m s-1"}),
                     "v": (("y", "x"), np.zeros((n, n)), {"units": "km h-1"})},
                    coords={"y": ("y", g, {"units": "m"}), "x": ("x", g, {"units": "metre"})})
    with pytest.raises(ValueError, match="'u' and 'v' in the same units"):
        vorticity_from_velocity(ds)
    ok = ds.assign(v=ds.v.assign_attrs(units="m/s"))
    assert vorticity_from_velocity(ok).attrs["units"] == "s-1"  # m and metre: one grid unit
