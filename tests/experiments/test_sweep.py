"""Sweeps cut into chunks: gathered in order, the same with or without a dask client."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sklearn.base import clone

from xdyn.assimilation import EnKF
from xdyn.experiments import sweep
from xdyn.experiments.sweep import _chunks
from xdyn.observe import observe
from xdyn.systems import Lorenz96


@pytest.fixture(scope="module")
def twin():
    system = Lorenz96(n=10)
    truth = system.simulate(n_trajectories=3, n_steps=80, burn_in=5.0, random_state=0)
    obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    # a fixed initial ensemble and the deterministic square-root update: nothing random
    # depends on how the grid is batched
    members = np.random.RandomState(2).standard_normal((12, 10))
    x0 = system.to_state(truth.isel(time=0)).numpy()
    est = EnKF(system=system, n_members=12, initial_ensemble=x0[0] + 0.5 * members,
               raise_on_divergence=False, random_state=0, burn_in=1.0)
    return est, obs, truth, x0


def test_chunks_cover_the_grid_once():
    assert _chunks(8, [8], None) == [(None, None)]
    infl = _chunks(8, [8], 16)
    assert [c[0] for c in infl] == [slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)]
    both = _chunks(2, [8], 4)  # one inflation value is already 8 experiments
    assert [c[1] for c in both] == [slice(0, 4), slice(4, 8)] * 2
    assert len(_chunks(0, [5], 2)) == 3


def test_chunked_sweep_equals_one_batch(twin):
    est, obs, truth, x0 = twin
    grid = [1.0, 1.02, 1.05, 1.1, 1.2]
    whole = sweep(est, obs, truth, inflation=grid)
    chunked = sweep(est, obs, truth, inflation=grid, batch_size=4)  # 15 -> 5 chunks
    assert whole.dims == chunked.dims == ("inflation", "trajectory")
    np.testing.assert_array_equal(chunked.inflation, grid)
    xr.testing.assert_allclose(whole, chunked, rtol=1e-6)
    # the grid changes the result: the test would see a misplaced chunk
    assert float(np.ptp(whole.mean("trajectory").values)) > 1e-3
    cut = sweep(est, obs, truth, batch_size=2)  # no inflation grid: the seeds are cut
    xr.testing.assert_allclose(cut, sweep(est, obs, truth), rtol=1e-6)


def test_param_grid_adds_dims_in_the_given_order(twin):
    est, obs, truth, x0 = twin
    out = sweep(clone(est).set_params(initial_ensemble=None, initial_spread=0.5, initial_state=x0),
                obs, truth, inflation=[1.02, 1.1], param_grid={"n_members": [8, 4]})
    assert out.dims == ("n_members", "inflation", "trajectory")
    assert list(out.n_members.values) == [8, 4]
    with pytest.raises(ValueError, match="param_grid.*'members'"):
        sweep(est, obs, truth, param_grid={"members": [4]})
    with pytest.raises(ValueError, match="batch_size"):
        sweep(est, obs, truth, batch_size=0)


def test_sweep_on_a_local_cluster_equals_serial(twin, dask_client):
    from distributed import get_task_stream

    est, obs, truth, x0 = twin
    grid = [1.0, 1.05, 1.1]
    serial = sweep(est, obs, truth, inflation=grid, param_grid={"rtps": [0.0, 0.3]},
                   batch_size=3)
    with get_task_stream(dask_client) as tasks:
        distributed = sweep(est, obs, truth, inflation=grid, param_grid={"rtps": [0.0, 0.3]},
                            batch_size=3, client=dask_client)
    assert sum("_sweep_batch" in t["key"] for t in tasks.data) == 6  # 2 rtps x 3 chunks
    xr.testing.assert_identical(distributed, serial)
