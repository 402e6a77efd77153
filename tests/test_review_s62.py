"""Review of session 62's fixes (Z3-Z5): mixed leads in an array, the noise-std summary of
masked observations, dated times with a duration as burn-in."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xdyn.forecast._time import _as_timedelta64
from xdyn.metrics import mean_after_burn_in
from xdyn.observe import observe
from xdyn.observe.synthetic import _noise_std_attrs
from xdyn.systems import Lorenz96


def test_a_bare_number_among_durations_in_an_object_array_is_refused():
    # Z3: only lists were checked; np.array(["6h", 12], dtype=object) read 12 as 12 ns
    with pytest.raises(ValueError, match="mix numbers with durations"):
        _as_timedelta64(np.array(["6h", 12], dtype=object))
    assert _as_timedelta64(np.array(["6h", "12h"], dtype=object))[1] == np.timedelta64(12, "h")


def test_masked_noise_stds_are_no_observations_std():
    # Z4: after obs.where the NaN stds made the summary obs_noise_std_rms = nan
    assert _noise_std_attrs([0.5, np.nan, 0.5]) == {"obs_noise_std": 0.5}
    assert _noise_std_attrs([np.nan]) == {}
    truth = Lorenz96(n=8).simulate(n_steps=4, random_state=0)
    obs = observe(truth, "identity", noise_std=np.linspace(0.1, 0.8, 8), random_state=1)
    rms = obs.attrs["obs_noise_std_rms"]
    assert np.isfinite(rms) and rms == pytest.approx(np.sqrt(np.mean(np.linspace(0.1, 0.8, 8)**2)))


def test_dated_times_take_a_duration_as_burn_in():
    # Z5: dates with a timedelta burn-in worked before the burn-in check and were refused
    e = xr.DataArray([9.0, 1.0, 3.0], dims="time",
                     coords={"time": pd.date_range("2000-01-01", periods=3, freq="h")})
    assert float(mean_after_burn_in(e, np.timedelta64(1, "h"))) == 2.0
    assert float(mean_after_burn_in(e, pd.Timedelta("1h"))) == 2.0
    with pytest.raises(ValueError, match="leaves no time"):
        mean_after_burn_in(e, np.timedelta64(5, "h"))
    with pytest.raises(ValueError, match="finite"):
        mean_after_burn_in(e.assign_coords(time=[0.0, 1.0, 2.0]), np.nan)


def test_rank_histogram_names_a_truth_dim_the_ensemble_lacks():
    # Z10: broadcasting failed inside xarray with an unrelated message
    from xdyn.experiments._amortized_figures import rank_histogram

    ens = xr.DataArray(np.zeros((5, 3)), dims=("time", "member"))
    truth = xr.DataArray(np.zeros((5, 2)), dims=("time", "site"))
    with pytest.raises(ValueError, match=r"truth has dims \['site'\]"):
        rank_histogram(ens, truth)
    assert rank_histogram(ens, truth.isel(site=0)).shape == (4,)
