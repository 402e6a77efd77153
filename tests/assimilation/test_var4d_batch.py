"""Var4D on a batch: each trajectory's analysis is the one it gets alone."""

import numpy as np
import pytest
import xarray as xr

from xdyn.assimilation.var4d import Var4D
from xdyn.observe import observe
from xdyn.systems import Lorenz63


@pytest.fixture(scope="module")
def l63_three():
    """Three independent Lorenz-63 twins, observed every 25 steps with variance 2."""
    truth = Lorenz63().simulate(n_trajectories=3, n_steps=25 * 8, burn_in=5.0,
                                random_state=11)
    return observe(truth, "identity", noise_std=2**0.5, every=25, random_state=12)


@pytest.mark.parametrize("quasi_static", [True, False])
def test_batched_analysis_equals_each_trajectory_alone(l63_three, quasi_static):
    obs = l63_three
    # a fixed B and initial state: nothing learned from the batch; few iterations, so
    # that a shared L-BFGS (line search, curvature pairs, stopping test) shows clearly
    params = dict(window=2, n_iter=10, B=np.diag([4.0, 6.0, 5.0]), B_scale=0.1,
                  quasi_static=quasi_static, initial_state=[1.0, 1.0, 22.0])
    batched = Var4D(**params).fit(obs).predict(obs)
    alone = [Var4D(**params).fit(obs.isel(trajectory=i)).predict(obs.isel(trajectory=i))
             for i in range(obs.sizes["trajectory"])]
    for i, an in enumerate(alone):
        for name in ("x", "y", "z"):
            np.testing.assert_allclose(batched[name].isel(trajectory=i), an[name],
                                       rtol=1e-6, atol=1e-6)
    # the cost evaluations of the batch are those of its trajectories, summed
    assert batched.attrs["n_cost_evaluations"] == sum(
        an.attrs["n_cost_evaluations"] for an in alone)


def test_two_batch_dims_are_flattened_and_restored(l63_three):
    """A (sample, trajectory) batch: every element is minimised on its own data."""
    obs = l63_three
    # the second sample holds the same trajectories in another order (relabelled, so
    # that concat does not align them back)
    shuffled = obs.isel(trajectory=[2, 0, 1]).assign_coords(trajectory=obs["trajectory"])
    stacked = xr.concat([obs, shuffled], dim="sample", join="exact")
    params = dict(window=2, n_iter=10, B=np.diag([4.0, 6.0, 5.0]), B_scale=0.1,
                  initial_state=[1.0, 1.0, 22.0])
    an = Var4D(**params).fit(stacked).predict(stacked)
    assert an.x.dims == ("time", "sample", "trajectory")
    np.testing.assert_allclose(an.x.isel(sample=1).values,
                               an.x.isel(sample=0, trajectory=[2, 0, 1]).values,
                               rtol=1e-6, atol=1e-6)
