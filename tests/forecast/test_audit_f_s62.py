"""Audit F (session 62): ClimODE's members, "auto" periodicity, lead checks, latitude
weights, ``periodic`` validation and early stopping's statistics."""

import numpy as np
import pytest
import xarray as xr

from xdyn.forecast import ClimODE, Persistence, TransportVGBDM, verify_forecast
from xdyn.metrics import crps_ensemble, spread_skill_ratio


def _wave(n_time=40, ny=6, nx=16, seed=0, x=True):
    """A wave moving east along a periodic ``x``, with a little noise (a calm emission)."""
    rng = np.random.default_rng(seed)
    t, xs = np.arange(n_time)[:, None, None], np.arange(nx)[None, None, :]
    u = np.sin(2 * np.pi * (xs - 0.5 * t) / nx) + 0.1 * rng.standard_normal((n_time, ny, nx))
    coords = {"time": np.arange(n_time, dtype=float)}
    if x:
        coords["x"] = np.arange(nx, dtype=float)
    return xr.Dataset({"u": (("time", "y", "x"), u + 3.0, {"units": "m"})}, coords=coords)


TINY = dict(hidden=4, n_steps=1, max_epochs=0, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def untrained():
    ds = _wave(n_time=60, ny=8, nx=32)
    return ds, ClimODE(**TINY).fit(ds)


def _calibrated(model, ds, m):
    """Members (seed 2) and a truth drawn from the same emission (seed 1), past the first
    init (NaN): a calibrated forecast, ~30 000 points."""
    leads = [1.0, 2.0]
    truth = model.set_params(n_members=2, random_state=1).predict(ds, leads)["u"]
    members = model.set_params(n_members=m, random_state=2).predict(ds, leads)["u"]
    model.set_params(n_members=10, random_state=0)
    return members.isel(time=slice(1, None)), truth.isel(member=0, time=slice(1, None))


@pytest.mark.parametrize("m", [2, 10])
def test_members_are_independent_draws_so_a_calibrated_spread_skill_is_one(untrained, m):
    # centred, rescaled members scored sqrt((m + 1) / (m - 1)): 1.73 at m=2, 1.11 at m=10
    ds, model = untrained
    members, truth = _calibrated(model, ds, m)
    assert truth.size > 30_000    # Monte Carlo error of the ratio ~1%
    assert abs(float(spread_skill_ratio(members, truth)) - 1.0) < 0.04


def test_fair_crps_of_the_members_does_not_depend_on_their_number(untrained):
    # exchangeable members: the fair CRPS's expectation is the same for every m
    # (centred ones gave 0.33 at m=2 against 0.53 at m=10, in units of the std)
    ds, model = untrained
    fair = [float(crps_ensemble(*_calibrated(model, ds, m), fair=True).mean()) for m in (2, 10)]
    assert abs(fair[0] / fair[1] - 1.0) < 0.03


def test_one_member_is_the_emission_mean(untrained):
    ds, model = untrained
    one = [model.set_params(n_members=1, random_state=s).predict(ds, [1.0])["u"]
           for s in (0, 1)]
    xr.testing.assert_equal(one[0], one[1])           # deterministic, not one random draw
    many = model.set_params(n_members=400, random_state=0).predict(ds, [1.0])["u"]
    model.set_params(n_members=10)
    gap = (many.mean("member") - one[0].isel(member=0)).isel(time=slice(1, None))
    spread = many.std("member").isel(time=slice(1, None))
    # the mean of 400 draws is the emission mean to std / 20; one draw is off by std
    assert float(np.sqrt((gap ** 2).mean() / (spread ** 2).mean())) < 0.1


def _latlon(lon, names=("lat", "lon"), n_time=8, lat=True):
    rng = np.random.default_rng(0)
    coords = {"time": np.arange(n_time, dtype=float), names[1]: lon}
    if lat:
        coords[names[0]] = np.linspace(-60.0, 60.0, 4)
    data = 280.0 + rng.standard_normal((n_time, 4, len(lon)))
    return xr.Dataset({"t": (("time",) + names, data, {"units": "K"})}, coords=coords)


@pytest.mark.parametrize("case, periodic", [
    ("y, x without coordinates", (True, True)),        # xdyn's doubly periodic grids
    ("x unevenly spaced", (True, False)),
    ("lat, lon closing the circle", (False, True)),
    ("latitude, longitude closing the circle", (False, True)),
    ("lon over half the circle", (False, False)),
])
def test_auto_periodic_reads_the_names_and_checks_longitude(case, periodic):
    ds = {"y, x without coordinates": _wave(n_time=8, x=False),
          "x unevenly spaced": _wave(n_time=8).assign_coords(x=np.arange(16.0) ** 1.5),
          "lat, lon closing the circle": _latlon(np.arange(0.0, 360.0, 45.0)),
          "latitude, longitude closing the circle": _latlon(np.arange(-180.0, 180.0, 45.0),
                                                            ("latitude", "longitude")),
          "lon over half the circle": _latlon(np.arange(0.0, 180.0, 22.5))}[case]
    assert ClimODE(**TINY).fit(ds).periodic_ == periodic


def test_auto_periodic_refuses_a_longitude_without_coordinate():
    ds = _latlon(np.arange(0.0, 360.0, 45.0)).drop_vars("lon")
    with pytest.raises(ValueError, match="'lon' closes the circle.*periodic="):
        ClimODE(**TINY).fit(ds)
    assert ClimODE(**TINY, periodic=(False, True)).fit(ds).periodic_ == (False, True)


@pytest.mark.parametrize("periodic", [("no", "no"), ("False", True), (0, 1)])
def test_periodic_takes_booleans_only(periodic):
    with pytest.raises(TypeError, match=r"ClimODE: periodic\[0\] must be True or False"):
        ClimODE(**TINY, periodic=periodic).fit(_wave(n_time=8))
    assert ClimODE(**TINY, periodic=(np.bool_(False), True)).fit(
        _wave(n_time=8)).periodic_ == (False, True)


def _dated(n_time=8):
    ds = _latlon(np.arange(0.0, 360.0, 45.0), n_time=n_time)
    return ds.assign_coords(time=np.datetime64("2000-01-01") + np.arange(n_time)
                            * np.timedelta64(6, "h"))


@pytest.mark.parametrize("dated, lead, match", [
    (True, "6", "lead time '6' has no unit.*'6h'"),
    (True, ["6h", " 12 "], "lead time ' 12 ' has no unit.*'12h'"),
    (True, ["6h", 12], "mix numbers with durations"),   # 12 was read as 12 ns (review W5)
    (True, [np.timedelta64("NaT")], "lead_times must be finite; got NaT"),
    (False, [1.0, np.nan], "lead_times must be finite; got nan"),
    (False, [np.inf], "lead_times must be finite; got inf"),
])
def test_non_finite_and_unitless_leads_are_refused(dated, lead, match):
    # pandas reads "6" as 6 ns: Persistence returned a forecast at lead 6 ns, ClimODE a bare
    # AssertionError from torchdiffeq; NaN, inf and NaT leads the same
    ds = _dated() if dated else _latlon(np.arange(0.0, 360.0, 45.0))
    with pytest.raises(ValueError, match=match):
        Persistence().fit(ds).predict(ds, lead)


def test_latitude_weights_are_read_from_latitude_as_from_lat():
    ds = _latlon(np.arange(0.0, 360.0, 45.0))
    era5 = ds.rename(lat="latitude", lon="longitude")   # ERA5's names as downloaded
    weighted = Persistence().fit(ds).score(ds, [1.0])
    flat = Persistence().fit(ds.drop_vars("lat").rename(lat="y")).score(
        ds.drop_vars("lat").rename(lat="y"), [1.0])
    assert abs(weighted - flat) > 1e-3      # the weights matter on these data
    assert Persistence().fit(era5).score(era5, [1.0]) == pytest.approx(weighted, rel=1e-12)
    fc = Persistence().fit(era5).predict(era5, [1.0])
    table = verify_forecast(fc, era5)
    assert table["t_rmse"].attrs["long_name"].startswith("latitude-weighted")
    assert -float(table["t_rmse"].mean()) == pytest.approx(weighted, rel=1e-12)


@pytest.mark.parametrize("cls, first_held_out", [
    # ClimODE(n_steps=1): starts 1 .. 38, the last round(0.2 * 38) = 8 held out: from 31
    (ClimODE, 31),
    # TransportVGBDM(len_episode=2, cubic): windows of 4 samples, 37 starts, the last 7 held
    (TransportVGBDM, 30),
])
def test_early_stopping_fits_the_statistics_on_the_training_part(cls, first_held_out):
    ds = _wave(n_time=40)
    shifted = ds.copy(deep=True)
    shifted["u"][first_held_out:] += 3.0    # only the held-out samples change
    params = dict(hidden=4, max_epochs=1, early_stopping=True, validation_fraction=0.2,
                  device="cpu", random_state=0)
    params.update(n_steps=1) if cls is ClimODE else params.update(len_episode=2, z_dim=0)
    fits = [cls(**params).fit(d) for d in (ds, shifted)]
    part = ds["u"].values[:first_held_out]
    assert fits[1].mean_[0] == pytest.approx(part.mean(), rel=1e-12)
    assert fits[1].std_[0] == pytest.approx(part.std(), rel=1e-9)
    np.testing.assert_allclose(fits[1].climate_, fits[0].climate_, rtol=1e-12)
    # the held-out loss sees the shift: the statistics were not fitted to it
    assert fits[1].best_validation_loss_ > fits[0].best_validation_loss_
