"""Audit s62 C1: one diverging cell of a batched sweep no longer turns its neighbours NaN;
review Z1: the NaN cells are rerun by bisection, in a few batched calls, not one per cell."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from xdyn.assimilation import EnKF
from xdyn.experiments import sweep
from xdyn.observe import observe
from xdyn.systems import Lorenz96


@pytest.fixture(scope="module")
def twin():
    truth = Lorenz96(n=10).simulate(n_trajectories=2, n_steps=300, burn_in=5, random_state=0)
    obs = observe(truth, "every2", noise_std=1.0, every=3, random_state=1)
    enkf = EnKF(n_members=10, random_state=0, raise_on_divergence=False, return_ensemble=False)
    return enkf, obs, truth


def test_a_diverging_inflation_leaves_the_other_cells_finite(twin):
    """Inflation 3.0 diverges; 1.05 and 1.5 do not. The batched cycle ended for all three at
    3.0's failure, and the sweep reported every cell NaN (the audit's p5b)."""
    enkf, obs, truth = twin
    scores = sweep(enkf, obs, truth, inflation=[1.05, 1.5, 3.0])
    assert scores.dims == ("inflation", "trajectory")
    healthy = scores.sel(inflation=[1.05, 1.5]).values
    assert np.isfinite(healthy).all() and (healthy < 3.0).all()  # climatology is ~3.6
    assert np.isnan(scores.sel(inflation=3.0)).all()  # fails alone too
    # the whole batch came back NaN: [1.05, 1.5] x 2 (finite), [3.0] x 2, then 3.0 per
    # trajectory alone; one call per cell was 6
    assert scores.attrs["n_rerun"] == 4
    # a healthy cell has the score of the rerun batch that came back finite for it
    half = sweep(enkf, obs, truth, inflation=[1.05, 1.5])
    assert half.attrs["n_rerun"] == 0
    np.testing.assert_allclose(scores.sel(inflation=[1.05, 1.5]), half, rtol=1e-12)


def test_no_rerun_when_nothing_failed_or_every_call_was_alone(twin):
    enkf, obs, truth = twin
    short, t = obs.isel(time=slice(0, 40)), truth.isel(time=slice(0, 120))
    assert sweep(enkf, short, t, inflation=[1.05, 1.5]).attrs["n_rerun"] == 0
    one = sweep(enkf, short.isel(trajectory=[0]), t.isel(trajectory=[0]), inflation=[1e100],
                param_grid={"n_members": [10]})
    assert one.attrs["n_rerun"] == 0 and np.isnan(one).all()


def test_reruns_take_each_cells_own_grid_values(twin):
    enkf, obs, truth = twin
    short, t = obs.isel(time=slice(0, 40)), truth.isel(time=slice(0, 120))
    scores = sweep(enkf, short, t, inflation=[1.05, 1e100], param_grid={"n_members": [8, 10]})
    # each grid point's batch came back NaN: per point [1.05] x 2, [1e100] x 2, then 1e100
    # per trajectory
    assert scores.attrs["n_rerun"] == 8
    assert np.isfinite(scores.sel(inflation=1.05)).all()
    assert np.isnan(scores.sel(inflation=1e100)).all()
    rerun = sweep(clone(enkf).set_params(n_members=8), short, t, inflation=[1.05])
    np.testing.assert_allclose(scores.sel(n_members=8, inflation=[1.05]), rerun, rtol=1e-12)


@pytest.fixture(scope="module")
def four():
    truth = Lorenz96(n=10).simulate(n_trajectories=4, n_steps=300, burn_in=5, random_state=0)
    return truth, observe(truth, "every2", noise_std=1.0, every=3, random_state=1)


def test_reruns_bisect_in_a_few_calls_to_the_cells_that_fail_alone(twin, four):
    """Review Z1 (its probe p4, on 4 trajectories, not 16): inflation 3.0 turned the whole
    24-cell batch NaN, and each cell was rerun alone, 24 calls in sequence. Bisection
    isolates the failing row in batched halves and splits only it down to single cells."""
    enkf = twin[0]
    truth, obs = four
    grid = [1.02, 1.05, 1.1, 1.2, 1.5, 3.0]
    scores = sweep(enkf, obs, truth, inflation=grid)
    alone = sweep(enkf, obs, truth, inflation=grid, batch_size=1)  # every cell its own call
    assert alone.attrs["n_rerun"] == 0
    failed = np.isnan(alone.values)
    assert failed.any() and not failed.all()  # 3.0 fails alone, the others do not
    np.testing.assert_array_equal(np.isnan(scores.values), failed)
    assert 0 < scores.attrs["n_rerun"] <= 2 * np.ceil(np.log2(scores.size)) + 2  # was 24


def test_bisected_reruns_on_a_cluster_equal_serial(twin, dask_client):
    """A level's calls go to the workers together; the numbers are those run here."""
    enkf, obs, truth = twin
    serial = sweep(enkf, obs, truth, inflation=[1.05, 1.5, 3.0])
    distributed = sweep(enkf, obs, truth, inflation=[1.05, 1.5, 3.0], client=dask_client)
    assert distributed.attrs["n_rerun"] == serial.attrs["n_rerun"] == 4
    np.testing.assert_allclose(distributed, serial, rtol=1e-12)  # NaN where serial is NaN
