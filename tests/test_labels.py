"""The time-step reader every lag and every rollout shares (``xdyn._labels.even_step``)."""

import numpy as np
import pytest
import xarray as xr

from xdyn._labels import even_step
from xdyn.preprocessing.delay import lag_step
from xdyn.rom._data import time_step


def test_even_steps_are_read_as_floats_or_timedeltas():
    assert even_step(np.arange(5) * 0.1, "t", "") == pytest.approx(0.1)
    days = np.datetime64("2000-01-01") + np.arange(3) * np.timedelta64(6, "h")
    assert even_step(days, "t", "") == np.timedelta64(6, "h")
    # float32 times far from zero: their rounding is not a gap
    assert even_step((1000 + 0.1 * np.arange(50)).astype(np.float32), "t", "") \
        == pytest.approx(0.1, rel=1e-3)
    for none in (np.array([1.0]), np.array(["a", "b"]), np.zeros((2, 2))):
        assert even_step(none, "t", "") is None


@pytest.mark.parametrize("t, match", [
    # a gap at the end: the median step stays the reference and the gap is named
    (np.r_[0.0, 1.0, 2.0, 3.0, 10.0], "unevenly spaced: a step of 7 from 3 to 10 .the median "
                                      "step is 1.; why"),
    (np.r_[0.0, 1.0, 1.0, 2.0], "must increase strictly: it goes from 1 to 1; why"),
    (np.r_[3.0, 2.0, 1.0], "must increase strictly: it goes from 3 to 2; why")])
def test_uneven_or_decreasing_times_are_named(t, match):
    with pytest.raises(ValueError, match=match):
        even_step(t, "t", "why")


def test_roms_and_delays_read_steps_alike():
    """A gap is refused by both with the step that breaks the spacing, not a range."""
    t = np.r_[np.arange(5.0), np.arange(100.0, 105.0)]
    data = xr.Dataset({"u": ("time", np.sin(t))}, coords={"time": t})
    for read in (lambda: lag_step(data, "time"), lambda: time_step(data["time"])):
        with pytest.raises(ValueError, match="a step of 96 from 4 to 100"):
            read()
    even = data.isel(time=slice(0, 5))
    assert lag_step(even, "time") == time_step(even["time"]) == 1.0


def test_the_step_of_float32_times_far_from_zero_is_their_mean_step():
    """Hourly 'seconds since 1970' in float32 are rounded to 128 s: the median step read
    3584 s, and the k-th time drifted off time0 + k * step (an LDNet refused its own
    training times after 24 of them)."""
    t = (1.5778368e9 + 3600.0 * np.arange(400)).astype(np.float32)
    step = even_step(t, "t", "")
    assert abs(step - 3600.0) < 1.0
    k = np.arange(400)
    assert np.abs(np.float64(t[0]) + k * step - t.astype(np.float64)).max() < 128.0
