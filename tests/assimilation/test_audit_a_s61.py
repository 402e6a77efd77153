"""Audit A (s61) of the classical filters' edges: float32 observation times, and a truth
that cannot score every analysed time."""

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from xdyn.assimilation import EnKF, Var3D
from xdyn.observe import observe
from xdyn.systems import Lorenz63


@pytest.fixture(scope="module")
def l63():
    truth = Lorenz63().simulate(n_steps=3000, burn_in=5, random_state=0)  # t in [0, 30]
    return truth, observe(truth, "identity", noise_std=1.0, every=10, random_state=1)


def test_float32_observation_times_are_on_the_grid(l63):
    # a file's float32 times are 1.5e-4 steps off the grid at t = 30: they were refused as
    # "not multiples of the model step"; they now give the float64 times' analysis
    truth, obs = l63
    as32 = obs.assign_coords(time=obs.time.astype("float32"))
    ref = Var3D(random_state=0).fit(obs).predict(obs)
    got = Var3D(random_state=0).fit(as32).predict(as32)
    np.testing.assert_allclose(got.x.values, ref.x.values, rtol=1e-10, atol=1e-10)
    off = obs.assign_coords(time=obs.time + np.r_[0.0, np.full(obs.sizes["time"] - 1, 3e-3)])
    with pytest.raises(ValueError, match="not multiples of the model step"):
        Var3D().fit(off)  # 0.3 steps off: no rounding


@pytest.mark.parametrize("spoil, message", [
    (lambda t: t.where(t.time != t.time[500]), "holds NaN or inf at 1 of"),
    (lambda t: t.assign(z=t.z * np.nan), "'z' holds NaN or inf"),
    (lambda t: t.isel(time=slice(0, 1500)), "truth lacks 1[0-9]+ of the 301 observation times"),
])
def test_score_refuses_a_truth_that_cannot_score_every_time(l63, spoil, message):
    # an all-NaN time made the score NaN (as a diverged filter's), an all-NaN variable was
    # left out (0.2479 for 0.2348), a truth cut short raised pandas' KeyError
    truth, obs = l63
    enkf = EnKF(n_members=10, random_state=0).fit(obs)
    with pytest.raises(ValueError, match=message):
        enkf.score(obs, spoil(truth))


def test_score_refuses_a_burn_in_beyond_the_record(l63):
    truth, obs = l63
    with pytest.raises(ValueError, match="burn_in=40.0 leaves no analysis time"):
        Var3D(burn_in=40.0).fit(obs).score(obs, truth)
    assert np.isfinite(Var3D(burn_in=30.0).fit(obs).score(obs, truth))  # the last time


def test_finite_interval_messages_read_as_english():
    with pytest.raises(InvalidParameterError, match="must be a finite float in the range"):
        EnKF(inflation=-1.0).fit(observe(Lorenz63().simulate(n_steps=20, random_state=0),
                                         "identity", random_state=0))
