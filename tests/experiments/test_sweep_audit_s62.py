"""Audit s62 C1: one diverging cell of a batched sweep no longer turns its neighbours NaN."""

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
    assert scores.attrs["n_rerun"] == 6  # the whole batch came back NaN
    # a rerun cell is the experiment run alone
    alone = sweep(enkf, obs.isel(trajectory=[1]), truth.isel(trajectory=[1]), inflation=[1.5])
    assert alone.attrs["n_rerun"] == 0
    np.testing.assert_allclose(scores.sel(inflation=1.5, trajectory=1), alone.squeeze(),
                               rtol=1e-12)


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
    assert scores.attrs["n_rerun"] == 8  # each grid point's batch came back NaN
    assert np.isfinite(scores.sel(inflation=1.05)).all()
    assert np.isnan(scores.sel(inflation=1e100)).all()
    alone = sweep(clone(enkf).set_params(n_members=8), short.isel(trajectory=[0]),
                  t.isel(trajectory=[0]), inflation=[1.05])
    np.testing.assert_allclose(scores.sel(n_members=8, inflation=1.05, trajectory=0),
                               alone.squeeze(), rtol=1e-12)
