"""Inputs every assimilator reads through BaseAssimilator: units of the spread, missing
observations marked with ``where``, per-trajectory missing patterns, sites in another order."""

import numpy as np
import pytest

from xdyn.assimilation import EnSF, LostTrackWarning
from xdyn.observe import observe
from xdyn.systems import DampedPendulum, Lorenz96


pytestmark = pytest.mark.filterwarnings("ignore", category=LostTrackWarning)


def _ensf(**kw):
    return EnSF(**{"n_members": 4, "n_pseudo_steps": 5, "random_state": 0,
                   "return_ensemble": False, "raise_on_divergence": False, **kw})


@pytest.fixture(scope="module")
def l96():
    truth = Lorenz96(n=8).simulate(n_trajectories=2, n_steps=40, dt=0.05, save_every=2,
                                   burn_in=5.0, random_state=0)
    return truth, observe(truth, "every2", noise_std=1.0, random_state=1)


def test_spread_over_variables_in_other_units_says_mixed(l96):
    # the rms std over theta (rad) and omega (rad s-1) was labelled 'rad'
    truth = DampedPendulum().simulate(t_span=1.0, random_state=0)
    obs = observe(truth, "identity", noise_std=0.1, every=20, random_state=1)
    out = _ensf().fit(obs).predict(obs)
    assert out.theta_std.attrs["units"] == "rad" and out.omega_std.attrs["units"] == "rad s-1"
    assert out.spread.attrs["units"] == "mixed" == obs.observation.attrs["units"]
    _, obs = l96  # one variable: its units
    out = _ensf().fit(obs).predict(obs)
    assert out.spread.attrs["units"] == out.x.attrs["units"]


def test_missing_observations_marked_with_where_keep_their_noise(l96):
    # obs.where(cond) also NaNs noise_std (broadcast along time): it was refused as
    # "noise_std varies along ['time']"; only the observation is missing there
    _, obs = l96
    obs = obs.isel(trajectory=0)
    masked = obs.where(obs.observation < 6)
    assert masked.noise_std.isnull().any()
    only = obs.assign(observation=obs.observation.where(obs.observation < 6))
    a, b = (_ensf().fit(o).predict(o) for o in (masked, only))
    np.testing.assert_array_equal(a.x.values, b.x.values)
    assert a.n_assimilated.min() < 4
    varies = masked.assign(noise_std=masked.noise_std * (1 + masked.time))
    with pytest.raises(ValueError, match=r"noise_std varies along \['time'\]"):
        _ensf().fit(varies)
    present = obs.assign(noise_std=obs.noise_std.where(obs.time > 0.2))
    with pytest.raises(ValueError, match="noise_std is NaN where an observation is present"):
        _ensf().fit(present)


def test_missing_patterns_per_trajectory_are_refused_with_the_ways_round(l96):
    truth, _ = l96
    obs = observe(truth, "every2", noise_std=1.0, missing_fraction=0.2, random_state=1)
    with pytest.raises(ValueError, match=r"differ between the elements of the batch dims "
                       r"\['trajectory'\].*obs\.isel\(trajectory=i\)"):
        _ensf().fit(obs)
    # the message's second way: hide in every trajectory what is missing in any
    common = obs.assign(observation=obs.observation.where(
        obs.observation.notnull().all(["trajectory"])))
    out = _ensf().fit(common).predict(common)
    assert 0 < int(out.n_assimilated.min()) < 4


def test_sites_in_another_order_are_named_so_with_the_sort(l96):
    # the same sites permuted were blamed on the operator ("Pass operator=None ..."), which
    # the user had not given
    _, obs = l96
    perm = obs.isel(obs=[3, 1, 0, 2])
    est = _ensf().fit(obs)
    for call in (est.predict, _ensf().fit):
        with pytest.raises(ValueError, match=r"in another order .*obs\.sortby\('state_index'\)"):
            call(perm)
    sorted_ = est.predict(perm.sortby("state_index"))
    np.testing.assert_array_equal(sorted_.x.values, est.predict(obs).x.values)
