"""Dask: metrics and preprocessing stay lazy; assimilators compute (a sequential cycle).

DESIGN (Data model): "Datasets may be dask-backed; nothing in xdyn calls
``.values`` on a whole dataset unless it must". Metrics and preprocessing never
must: they are checked under a dask scheduler that fails on any compute (as
``xarray.tests.raise_if_dask_computes``). An assimilator must: each analysis
needs the previous one, so it reads the observations into memory; it gives the
same analysis on chunked observations as on numpy ones.
"""

import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xdyn import metrics
from xdyn.preprocessing import LowPassFilter, StandardScaler, Stacker, split_scales


def _raise_on_compute(dsk, keys, **kwargs):
    raise AssertionError("dask computed where nothing should be computed")


def _ensemble(seed=0, n_time=12, n_members=5):
    rng = np.random.default_rng(seed)
    lat = np.arange(-87.1875, 90.0, 5.625)[::4]
    lon = np.arange(0.0, 360.0, 5.625)[::8]
    coords = {
        "time": pd.date_range("2017-01-01", periods=n_time, freq="12h"),
        "lat": ("lat", lat, {"units": "degrees_north"}),
        "lon": ("lon", lon, {"units": "degrees_east"}),
    }
    shape = (n_time, lat.size, lon.size)
    truth = xr.Dataset({"z500": (("time", "lat", "lon"), 5e4 + 100 * rng.normal(size=shape),
                                 {"units": "m**2 s**-2"})}, coords)
    noise = 30 * rng.normal(size=(n_members, *shape))
    ens = truth + xr.DataArray(noise, dims=("member", "time", "lat", "lon"))
    ens["z500"].attrs = truth.z500.attrs
    return ens.transpose("time", "member", "lat", "lon"), truth


def _periodic(seed=1, n_time=6, n=16):
    rng = np.random.default_rng(seed)
    x = 2 * np.pi * np.arange(n) / n
    return xr.Dataset(
        {"u": (("time", "y", "x"), rng.normal(size=(n_time, n, n)), {"units": "m s-1"})},
        coords={"time": ("time", np.arange(n_time) * 0.1, {"units": "1"}), "y": x, "x": x},
    )


ENS, TRUTH = _ensemble()
CLIM = TRUTH.mean("time")
FIELD = _periodic()
METRICS = {
    "rmse": lambda e, t: metrics.rmse(e.mean("member"), t),
    "mae": lambda e, t: metrics.mae(e.mean("member"), t),
    "bias": lambda e, t: metrics.bias(e.mean("member"), t),
    "weighted_rmse": lambda e, t: metrics.weighted_rmse(e.mean("member"), t),
    "weighted_acc": lambda e, t: metrics.weighted_acc(e.mean("member"), t, CLIM),
    "crps_ensemble": lambda e, t: metrics.crps_ensemble(e, t),
    "crps_fair": lambda e, t: metrics.crps_ensemble(e, t, fair=True),
    "spread": lambda e, t: metrics.spread(e),
    "spread_skill_ratio": lambda e, t: metrics.spread_skill_ratio(e, t),
}


@pytest.mark.parametrize("name", sorted(METRICS))
def test_metrics_on_chunked_input_do_not_compute_and_equal_numpy(name):
    func = METRICS[name]
    lazy_ens = ENS.chunk({"time": 4, "member": -1})
    lazy_truth = TRUTH.chunk({"time": 4})
    with dask.config.set(scheduler=_raise_on_compute):
        lazy = func(lazy_ens, lazy_truth)
    assert any(isinstance(v.data, dsa.Array) for v in lazy.data_vars.values()), name
    xr.testing.assert_allclose(lazy.compute(), func(ENS, TRUTH), rtol=1e-12)


@pytest.mark.parametrize("name", ["energy_spectrum", "isotropic_spectrum"])
def test_spectra_on_chunked_input_do_not_compute(name):
    func = {
        "energy_spectrum": lambda u: metrics.energy_spectrum(u, dim="x"),
        "isotropic_spectrum": lambda u: metrics.isotropic_spectrum(u, dims=("y", "x")),
    }[name]
    with dask.config.set(scheduler=_raise_on_compute):
        lazy = func(FIELD.u.chunk({"time": 2}))
    assert isinstance(lazy.data, dsa.Array)
    xr.testing.assert_allclose(lazy.compute(), func(FIELD.u), rtol=1e-12)


def test_preprocessing_on_chunked_input_does_not_compute():
    lazy = FIELD.chunk({"time": 2})
    eager_scaled = StandardScaler().fit(FIELD).transform(FIELD)
    with dask.config.set(scheduler=_raise_on_compute):
        filtered = LowPassFilter(cutoff=3).transform(lazy)
        resolved, unresolved = split_scales(lazy, cutoff=3)
        matrix = Stacker().fit(lazy).transform(lazy)
        scaler = StandardScaler().fit(FIELD)  # statistics from numpy: fitting must reduce
        scaled = scaler.transform(lazy)
        back = scaler.inverse_transform(scaled)
    for out in (filtered.u, resolved.u, unresolved.u, scaled.u, back.u):
        assert isinstance(out.data, dsa.Array)
    assert isinstance(matrix, dsa.Array)
    xr.testing.assert_allclose(filtered.compute(), LowPassFilter(cutoff=3).transform(FIELD))
    xr.testing.assert_allclose(scaled.compute(), eager_scaled)
    xr.testing.assert_allclose(back.compute(), FIELD)


def test_an_assimilator_computes_chunked_observations_and_gives_the_numpy_result():
    from xdyn.assimilation import EnKF
    from xdyn.observe import observe
    from xdyn.systems import Lorenz96

    truth = Lorenz96(n=40).simulate(n_steps=60, burn_in=5, random_state=0)
    obs = observe(truth, "every2", noise_std=1.0, random_state=1)
    params = dict(n_members=20, inflation=1.02, random_state=0, raise_on_divergence=False,
                  initial_state=truth.x.isel(time=0).values)
    eager = EnKF(**params).fit(obs).predict(obs)
    chunked = obs.chunk({"time": 7})
    lazy = EnKF(**params).fit(chunked).predict(chunked)
    # the sequential cycle reads the observations into memory: numpy out, same numbers
    assert isinstance(lazy.x.data, np.ndarray)
    xr.testing.assert_identical(lazy.drop_attrs(), eager.drop_attrs())
