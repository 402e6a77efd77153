"""Audit M (session 62) of the metrics: NaN in averaged spectra, one sample set per
``verify_forecast`` table, the rank histogram's NaN and ties, per-variable dims,
ensembles in the relative errors, the burn-in's origin and range, argument checks."""

import numpy as np
import pytest
import xarray as xr

from xdyn import metrics
from xdyn.experiments._amortized_figures import rank_histogram
from xdyn.forecast import lead_aligned_truth, verify_forecast

GRID = {"time": np.arange(8.0), "lat": [-30.0, 0.0, 30.0], "lon": [0.0, 120.0, 240.0]}


# --- M1: a diverged sample is not averaged away ----------------------------------
def test_averaged_energy_spectrum_of_a_diverged_sample_is_nan():
    u = xr.DataArray(np.random.default_rng(2).normal(size=(3, 16)), dims=("time", "x"))
    u[2, 5] = np.nan  # one sample diverged
    spec = metrics.energy_spectrum(u, mean_dims="time")
    assert spec.isnull().all()  # was the mean of the two finite samples


def test_averaged_isotropic_spectrum_of_a_diverged_sample_is_nan():
    v = xr.DataArray(np.random.default_rng(3).normal(size=(4, 8, 8)), dims=("time", "y", "x"))
    v[3, 0, 0] = np.nan
    assert metrics.isotropic_spectrum(v, mean_dims="time").isnull().all()
    # the finite samples alone still average as before
    assert np.isfinite(metrics.isotropic_spectrum(v[:3], mean_dims="time")).all()


# --- M2: one table, one set of samples -------------------------------------------
def _constant_error_forecast(missing_point):
    """A deterministic forecast whose error is the same at every point of an
    initialisation (``1 + init``) and the truth, with one point missing if asked.

    Its per-initialisation RMSE and CRPS (= MAE) are then both ``1 + init``: they
    average to the same number exactly when they average the same initialisations.
    """
    rng = np.random.default_rng(8)
    truth = xr.DataArray(rng.normal(size=(8, 3, 3)), coords=GRID, dims=list(GRID),
                         attrs={"units": "K"})
    init = xr.DataArray(np.arange(7.0), dims="time", coords={"time": np.arange(7.0)})
    fc = (truth.shift(time=-1).isel(time=slice(0, 7)) + (1.0 + init)).expand_dims(
        lead_time=[1.0], axis=1)
    if missing_point:
        truth = truth.copy()
        truth[1, 0, 0] = np.nan  # valid time 1: initialisation 0, lead 1
    return xr.Dataset({"T": fc}), xr.Dataset({"T": truth})


def test_verify_forecast_scores_every_metric_on_the_same_initialisations():
    fc, truth = _constant_error_forecast(missing_point=True)
    clim = xr.Dataset({"T": fc["T"] * 0 + float(truth["T"].mean())})
    table = verify_forecast(fc, truth, climatology=clim)
    # 7 initialisations, error 1..7: mean 4 for both (the CRPS left out init 0: 4.5)
    assert table.T_rmse.item() == pytest.approx(4.0, rel=1e-12)
    assert table.T_crps.item() == pytest.approx(4.0, rel=1e-12)
    # the ACC over the same 7 initialisations, init 0 on its 8 known points
    per_init = metrics.weighted_acc(fc["T"], lead_aligned_truth(truth, fc)["T"], clim["T"],
                                    time_dim=None)
    assert np.isfinite(per_init).all()
    assert table.T_acc.item() == pytest.approx(float(per_init.mean()), rel=1e-12)
    assert table.T_acc.item() != pytest.approx(float(per_init.drop_sel(time=0.0).mean()))


def test_verify_forecast_labels_the_weighted_crps():
    fc, truth = _constant_error_forecast(missing_point=False)
    table = verify_forecast(fc, truth)
    assert table.T_crps.attrs["long_name"].startswith("latitude-weighted CRPS")
    flat = verify_forecast(fc.rename(lat="y", lon="x"), truth.rename(lat="y", lon="x"))
    assert flat.T_crps.attrs["long_name"].startswith("CRPS")


# --- M4: variables on different dims ---------------------------------------------
def test_verify_forecast_scores_variables_on_their_own_dims():
    fc, truth = _constant_error_forecast(missing_point=False)
    level = xr.DataArray([500.0, 850.0], dims="level")
    fc["z"] = fc["T"] * 0 + 2.0 * level / level  # error 2 everywhere, on (level, lat, lon)
    truth["z"] = truth["T"] * 0 + 0 * level
    fc["z"] = fc["z"] + truth["z"].shift(time=-1).isel(time=slice(0, 7))
    clim = fc * 0
    table = verify_forecast(fc, truth, climatology=clim)
    assert table.T_rmse.item() == pytest.approx(4.0) and table.T_crps.item() == pytest.approx(4.0)
    assert table.z_rmse.item() == pytest.approx(2.0) and table.z_crps.item() == pytest.approx(2.0)
    assert "z_acc" in table and "T_acc" in table


# --- M3: the rank histogram's NaN and ties ---------------------------------------
def test_rank_histogram_spreads_ties_evenly():
    ens = xr.DataArray(np.zeros((4000, 4)), dims=("time", "member"))
    freq = rank_histogram(ens, ens.isel(member=0, drop=True))
    np.testing.assert_allclose(freq, 0.2, atol=0.03)  # was [1, 0, 0, 0, 0]
    again = rank_histogram(ens, ens.isel(member=0, drop=True))
    np.testing.assert_array_equal(freq, again)  # seeded: the same figure every call


def test_rank_histogram_leaves_out_a_missing_truth_and_refuses_a_failed_member():
    rng = np.random.default_rng(4)
    ens = xr.DataArray(rng.normal(size=(4000, 4)), dims=("time", "member"))
    truth = xr.DataArray(rng.normal(size=4000), dims="time")
    truth[:2000] = np.nan
    np.testing.assert_allclose(rank_histogram(ens, truth), 0.2, atol=0.03)  # bin 0 was 0.59
    ens[10, 1] = np.nan  # a failed member where there is no truth: not scored anyway
    np.testing.assert_allclose(rank_histogram(ens, truth), 0.2, atol=0.03)
    ens[2500, 1] = np.nan  # ... and where the truth is known: not the others' histogram
    assert np.isnan(rank_histogram(ens, truth)).all()


# --- M5: relative errors of an ensemble ------------------------------------------
def test_relative_errors_score_the_ensemble_mean():
    y = xr.DataArray([3.0, 4.0], dims="x")
    ens = (y + xr.DataArray([[-1.0, 0.0], [1.0, 2.0]], dims=("member", "x")))  # mean: y + [0, 1]
    assert float(metrics.relative_l2(ens, y)) == pytest.approx(0.2)  # was a KeyError-like error
    assert float(metrics.relative_l1(ens, y)) == pytest.approx(1 / 7)
    ens[0, 0] = np.nan  # a failed member: NaN, not the other member's score
    assert np.isnan(float(metrics.relative_l2(ens, y)))
    with pytest.raises(ValueError, match="member dimension 'member'"):
        metrics.relative_l2(ens, y, dim=["member", "x"])


# --- M6: the burn-in -------------------------------------------------------------
def test_burn_in_past_the_record_raises():
    e = xr.DataArray([9.0, 1.0, 3.0], dims="time", coords={"time": [0.0, 1.0, 2.0]})
    with pytest.raises(ValueError, match="burn_in=5.0 leaves no time"):
        metrics.mean_after_burn_in(e, burn_in=5.0)
    assert float(metrics.mean_after_burn_in(e, burn_in=2.0)) == 3.0  # the last time is kept


def test_burn_in_counts_from_the_earliest_time():
    e = xr.DataArray([9.0, 1.0, 3.0], dims="time", coords={"time": [0.0, 1.0, 2.0]})
    shuffled = e.isel(time=[1, 0, 2])
    assert float(metrics.mean_after_burn_in(shuffled, 1.0)) == 2.0  # was 3.0 (from time 1)


# --- M7: argument checks, wavenumber units ---------------------------------------
def test_picp_refuses_a_negative_std_and_keeps_nan():
    y = xr.DataArray([0.0, 0.5, 2.0, -1.5], dims="x")
    with pytest.raises(ValueError, match="std must not be negative"):
        metrics.picp(xr.zeros_like(y), -xr.ones_like(y), y)
    std = xr.DataArray([1.0, np.nan, 1.0, 1.0], dims="x")
    assert np.isnan(float(metrics.picp(xr.zeros_like(y), std, y)))


@pytest.mark.parametrize("lengths", [(1.0, 2.0, 3.0), (1.0,), (1.0, 0.0), (-1.0, 2.0),
                                     (1.0, np.inf)])
def test_isotropic_spectrum_checks_its_lengths(lengths):
    u = xr.DataArray(np.ones((8, 8)), dims=("y", "x"))
    with pytest.raises(ValueError, match="lengths"):
        metrics.isotropic_spectrum(u, lengths=lengths)


@pytest.mark.parametrize("length", [0.0, -2 * np.pi, np.nan])
def test_energy_spectrum_checks_its_length(length):
    with pytest.raises(ValueError, match="length"):
        metrics.energy_spectrum(xr.DataArray(np.ones(8), dims="x"), length=length)


def test_wavenumber_units():
    x = xr.DataArray(np.arange(8.0), dims="x", attrs={"units": "m"})
    u = xr.DataArray(np.cos(np.arange(8.0)), dims="x", coords={"x": x})
    assert metrics.energy_spectrum(u).wavenumber.attrs["units"] == "1"  # mode numbers
    assert metrics.energy_spectrum(u, length=8.0).wavenumber.attrs["units"] == "m-1"
    bare = metrics.energy_spectrum(u.drop_vars("x"), length=8.0).wavenumber
    assert "units" not in bare.attrs  # a length of unknown units: none claimed
    v = xr.DataArray(np.ones((4, 4)), dims=("y", "x"),
                     coords={"y": ("y", np.arange(4.0), {"units": "km"}),
                             "x": ("x", np.arange(4.0), {"units": "km"})})
    assert metrics.isotropic_spectrum(v, lengths=(4.0, 4.0)).wavenumber.attrs["units"] == "km-1"
