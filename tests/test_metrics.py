"""Tests for xdyn.metrics: hand-computed values, statistical properties, laziness."""

import warnings

import dask
import dask.array
import numpy as np
import pytest
import xarray as xr

from xdyn import metrics
from xdyn.assimilation import EnKF
from xdyn.observe import Squared, observe
from xdyn.systems import Lorenz63


class CountingScheduler:
    """A dask scheduler that fails once more than ``max_computes`` computes ran
    (as ``xarray.tests.raise_if_dask_computes``)."""

    def __init__(self, max_computes=0):
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(f"Too many computes: {self.total_computes} > {self.max_computes}")
        return dask.get(dsk, keys, **kwargs)


def _grid(n_time=4, lats=(-60.0, -20.0, 20.0, 60.0), n_lon=6, seed=0):
    rng = np.random.default_rng(seed)
    coords = {"time": np.arange(n_time), "lat": list(lats), "lon": np.arange(n_lon) * 360.0 / n_lon}
    shape = tuple(len(c) for c in coords.values())

    def field(scale=1.0):
        return xr.DataArray(scale * rng.standard_normal(shape), coords=coords, dims=list(coords),
                            name="z500", attrs={"units": "m2 s-2", "long_name": "geopotential"})

    return field


# ---------------------------------------------------------------- deterministic


def test_rmse_mae_bias_hand_computed():
    f = xr.DataArray([[1.0, 2.0], [3.0, 4.0]], dims=["time", "x"], attrs={"units": "K"})
    t = xr.DataArray([[0.0, 2.0], [3.0, 6.0]], dims=["time", "x"])
    # errors: [[1, 0], [0, -2]]
    assert float(metrics.rmse(f, t)) == pytest.approx(np.sqrt(5 / 4))
    assert float(metrics.mae(f, t)) == pytest.approx(3 / 4)
    assert float(metrics.bias(f, t)) == pytest.approx(-1 / 4)
    np.testing.assert_allclose(metrics.rmse(f, t, dim="x"), [np.sqrt(0.5), np.sqrt(2.0)])
    np.testing.assert_allclose(metrics.mae(f, t, dim="time"), [0.5, 1.0])
    r = metrics.rmse(f, t)
    assert r.attrs["units"] == "K" and "root-mean-square" in r.attrs["long_name"]


def test_rmse_skipna_leaves_out_missing_truth_not_a_missing_forecast():
    # a missing observation leaves the mean; a forecast missing where the truth is known
    # (a diverged run) makes the score NaN instead of scoring the other points
    f = xr.DataArray([1.0, 7.0, 3.0], dims="x")
    t = xr.DataArray([0.0, np.nan, 0.0], dims="x")
    assert float(metrics.rmse(f, t)) == pytest.approx(np.sqrt(5.0))
    assert np.isnan(float(metrics.rmse(f, t, skipna=False)))
    gappy = f.copy(data=[1.0, np.nan, 3.0])
    assert float(metrics.rmse(gappy, t)) == pytest.approx(np.sqrt(5.0))
    assert np.isnan(float(metrics.rmse(gappy, t.fillna(0.0))))
    assert np.isnan(float(metrics.mae(gappy, t.fillna(0.0))))
    assert np.isnan(float(metrics.bias(gappy, t.fillna(0.0))))
    per_x = metrics.rmse(gappy.expand_dims(time=2), t.fillna(0.0), dim="time")
    np.testing.assert_allclose(per_x, [1.0, np.nan, 3.0])


def test_ensemble_scores_are_nan_when_a_member_failed():
    truth = xr.DataArray([0.0, 0.0], dims="x")
    ens = xr.DataArray([[1.0, -1.0, 1.0], [1.0, np.nan, 1.0]], dims=("x", "member"))
    assert np.isnan(float(metrics.rmse(ens, truth)))
    assert np.isnan(float(metrics.crps_ensemble(ens, truth, dim="x")))
    assert np.isnan(float(metrics.spread_skill_ratio(ens, truth)))
    assert np.isnan(float(metrics.spread(ens)))
    assert float(metrics.spread(ens.where(ens.x == 0))) == pytest.approx(float(
        metrics.spread(ens.isel(x=[0]))))  # a point with no member at all is left out
    wide = xr.DataArray([[-2.0, 0.0, 2.0], [-2.0, 0.0, 2.0]], dims=("x", "member"))
    far = xr.DataArray([0.0, 9.0], dims="x")  # covered, not covered
    assert float(metrics.interval_coverage(wide, far, level=0.5)) == 0.5
    # a missing observation leaves the coverage; it does not count as a miss
    assert float(metrics.interval_coverage(wide, far.where(far.x == 0), level=0.5)) == 1.0
    assert float(metrics.picp(wide.mean("member"), wide.std("member"), far.where(far.x == 0))
                 ) == 1.0
    assert np.isnan(float(metrics.picp(xr.DataArray([0.0, np.nan], dims="x"),
                                       xr.ones_like(far), far)))
    ok = ens.fillna(-1.0)
    assert float(metrics.rmse(ok, truth)) == pytest.approx(1 / 3)
    # a member missing where there is no truth is not scored at all
    assert np.isfinite(float(metrics.crps_ensemble(ens, truth.where(ens.x == 0), dim="x")))


def test_lat_weights_mean_one():
    w = metrics.lat_weights(xr.DataArray([-80.0, -10.0, 30.0, 70.0], dims="lat"))
    assert float(w.mean()) == pytest.approx(1.0)
    assert w.attrs["units"] == "1"
    # radians read as degrees weigh almost uniformly: refused, as out-of-range degrees are
    with pytest.raises(ValueError, match="in radians"):
        metrics.lat_weights(xr.DataArray([-1.2, 0.0, 1.2], dims="lat", attrs={"units": "rad"}))
    with pytest.raises(ValueError, match=r"\[-90, 90\]"):
        metrics.lat_weights([0.0, 45.0, 135.0])


def test_weighted_rmse_hand_computed():
    field = _grid()
    f, t = field(), field()
    cos = np.cos(np.deg2rad(f.lat.values))
    w = cos / cos.mean()
    se = (f.values - t.values) ** 2  # (time, lat, lon)
    expected = np.mean(np.sqrt((w[None, :, None] * se).mean(axis=(1, 2))))
    result = metrics.weighted_rmse(f, t)
    assert float(result) == pytest.approx(expected)
    assert result.attrs["units"] == "m2 s-2"
    assert metrics.weighted_rmse(f, t, time_dim=None).dims == ("time",)


def test_weighted_equals_unweighted_at_equator():
    field = _grid(lats=(0.0,))
    f, t = field(), field()
    expected = np.sqrt(((f - t) ** 2).mean(["lat", "lon"])).mean("time")
    assert float(metrics.weighted_rmse(f, t)) == pytest.approx(float(expected))


def test_weighted_acc_perfect_and_anticorrelated():
    field = _grid()
    truth, clim = field(), field().mean("time")
    acc = metrics.weighted_acc(truth, truth, clim)
    assert float(acc) == pytest.approx(1.0)
    assert acc.attrs["units"] == "1"
    assert float(metrics.weighted_acc(2 * clim - truth, truth, clim)) == pytest.approx(-1.0)


def test_weighted_scores_leave_out_missing_truth_and_fail_on_a_missing_forecast():
    field = _grid()
    f, t = field(), field()
    clim = field().mean("time")
    rm, acc = metrics.weighted_rmse(f, t), metrics.weighted_acc(f, t, clim)
    gappy_truth = t.where(t.time != 2)  # a time without observations leaves the time mean
    expected = metrics.weighted_rmse(f.isel(time=[0, 1, 3]), t.isel(time=[0, 1, 3]))
    assert float(metrics.weighted_rmse(f, gappy_truth)) == pytest.approx(float(expected))
    failed = f.where((f.time != 2) | (f.lat != 20.0))  # one latitude row lost at time 2
    assert np.isfinite(float(rm)) and np.isfinite(float(acc))
    assert np.isnan(float(metrics.weighted_rmse(failed, t)))
    assert np.isnan(float(metrics.weighted_acc(failed, t, clim)))
    per_time = metrics.weighted_rmse(failed, t, time_dim=None)
    assert np.isnan(per_time.values).tolist() == [False, False, True, False]


def test_weighted_acc_rejects_unaligned_climatology():
    field = _grid()
    clim = field().rename(time="dayofyear")
    with pytest.raises(ValueError, match="dayofyear"):
        metrics.weighted_acc(field(), field(), clim)


# ---------------------------------------------------------------- probabilistic


def _brute_force_crps(members, y):
    grid = np.linspace(min(members.min(), y) - 1, max(members.max(), y) + 1, 400_001)
    cdf = (members[:, None] <= grid).mean(axis=0)
    return np.trapezoid((cdf - (grid >= y)) ** 2, grid)


def test_crps_one_member_equals_mae():
    rng = np.random.default_rng(1)
    ens = xr.DataArray(rng.standard_normal((1, 10)), dims=["member", "time"])
    truth = xr.DataArray(rng.standard_normal(10), dims="time")
    crps = metrics.crps_ensemble(ens, truth, dim="time")
    assert float(crps) == pytest.approx(float(metrics.mae(ens.isel(member=0), truth)))
    with pytest.raises(ValueError, match="2 members"):
        metrics.crps_ensemble(ens, truth, fair=True)


def test_crps_matches_integral():
    members = np.array([0.3, -1.2, 2.0, 0.5, 0.9])
    y = 0.7
    crps = metrics.crps_ensemble(xr.DataArray(members, dims="member"), xr.DataArray(y))
    assert crps.dims == ()
    assert float(crps) == pytest.approx(_brute_force_crps(members, y), rel=1e-4)


def test_fair_crps_unbiased_plain_biased_high():
    rng = np.random.default_rng(2)
    n, m = 100_000, 3
    ens = xr.DataArray(rng.standard_normal((n, m)), dims=["sample", "member"])
    truth = xr.DataArray(rng.standard_normal(n), dims="sample")
    fair = metrics.crps_ensemble(ens, truth, fair=True)
    plain = metrics.crps_ensemble(ens, truth)
    sem = float(fair.std()) / np.sqrt(n)
    # CRPS of N(0, 1) at y ~ N(0, 1) is 1/sqrt(pi); the plain one is (1 + 1/m)/sqrt(pi) here.
    assert abs(float(fair.mean()) - 1 / np.sqrt(np.pi)) < 4 * sem
    assert float(plain.mean()) == pytest.approx((4 / 3) / np.sqrt(np.pi), abs=4 * sem)
    assert float(plain.mean()) > 1 / np.sqrt(np.pi) + 20 * sem


def test_spread_hand_computed():
    ens = xr.DataArray([[0.0, 2.0], [1.0, 1.0]], dims=["time", "member"], attrs={"units": "m"})
    s = metrics.spread(ens)
    assert float(s) == pytest.approx(1.0)  # variances 2 and 0
    assert s.attrs["units"] == "m"


def test_spread_skill_ratio_calibrated_ensemble():
    rng = np.random.default_rng(3)
    n, m = 50_000, 5
    ens = xr.DataArray(rng.standard_normal((n, m)), dims=["time", "member"])
    truth = xr.DataArray(rng.standard_normal(n), dims="time")
    ratio = metrics.spread_skill_ratio(ens, truth)
    assert float(ratio) == pytest.approx(1.0, abs=0.02)
    assert ratio.attrs["units"] == "1"
    raw = metrics.spread_skill_ratio(ens, truth, correct_finite_members=False)
    assert float(raw) == pytest.approx(np.sqrt(m / (m + 1)), abs=0.02)


# ---------------------------------------------------------------- spectra


def test_energy_spectrum_parseval_and_units():
    rng = np.random.default_rng(4)
    for n in (32, 33):
        u = xr.DataArray(rng.standard_normal((3, n)), dims=["time", "x"], attrs={"units": "m s-1"})
        spec = metrics.energy_spectrum(u)
        assert spec.sizes["wavenumber"] == n // 2 + 1
        np.testing.assert_allclose(spec.sum("wavenumber"), (0.5 * u**2).mean("x"))
        assert spec.attrs["units"] == "m2 s-2"
    assert metrics.energy_spectrum(u, mean_dims="time").dims == ("wavenumber",)
    # one spelling of a square, the observation operator's too: 'dimensionless2' was kept
    for units, squared in (("dimensionless", "1"), ("m/s", "m2 s-2"), ("kelvin", "K2"),
                           ("kg kg**-1", "(kg kg**-1)^2")):  # physical, not standardized
        assert metrics.energy_spectrum(u.assign_attrs(units=units)).attrs["units"] == squared
        assert Squared().obs_units(units) == squared


def test_energy_spectrum_single_mode():
    length, n = 10.0, 64
    x = np.arange(n) * length / n
    u = xr.DataArray(2.0 * np.sin(2 * np.pi * 5 * x / length), dims="x")
    spec = metrics.energy_spectrum(u, length=length)
    assert float(spec.idxmax()) == pytest.approx(2 * np.pi * 5 / length)
    assert float(spec.max()) == pytest.approx(float(spec.sum())) == pytest.approx(1.0)


def test_isotropic_spectrum_parseval_and_shells():
    n = 32
    x = np.linspace(0, 2 * np.pi, n, endpoint=False)
    u = xr.DataArray(np.cos(3 * x)[None, :] * np.ones((n, 1)), dims=["y", "x"], attrs={"units": "K"})
    spec = metrics.isotropic_spectrum(u)
    assert float(spec.sel(wavenumber=3)) == pytest.approx(0.25)
    assert float(spec.sum()) == pytest.approx(0.25)
    assert spec.attrs["units"] == "K2"

    rng = np.random.default_rng(5)
    v = xr.DataArray(rng.standard_normal((2, 16, 24)), dims=["time", "y", "x"])
    spec = metrics.isotropic_spectrum(v, lengths=(1.0, 1.5))
    np.testing.assert_allclose(spec.sum("wavenumber"), (0.5 * v**2).mean(["y", "x"]))
    assert float(spec.wavenumber[1]) == pytest.approx(2 * np.pi / 1.5)


# ---------------------------------------------------------------- containers, laziness, errors


def test_dataset_input_returns_dataset():
    field = _grid()
    f = xr.Dataset({"a": field(), "b": field(2.0)})
    t = xr.Dataset({"a": field(), "b": field()})
    out = metrics.rmse(f, t, dim="time")
    assert isinstance(out, xr.Dataset) and set(out.data_vars) == {"a", "b"}
    xr.testing.assert_allclose(out["b"], metrics.rmse(f["b"], t["b"], dim="time"))
    spec = metrics.energy_spectrum(f, dim="lon")
    assert isinstance(spec, xr.Dataset) and "wavenumber" in spec["a"].dims
    # the variables both have, as xarray's arithmetic joins Datasets
    assert list(metrics.rmse(f, t[["a"]], dim="time").data_vars) == ["a"]


def _lazy_cases():
    field = _grid(n_time=6, n_lon=8)
    f, t, clim = field(), field(), field().mean("time")
    ens = xr.concat([field() for _ in range(4)], dim="member")
    return [
        (metrics.rmse, (f, t), {"dim": ["lat", "lon"]}),
        (metrics.weighted_rmse, (f, t), {}),
        (metrics.weighted_acc, (f, t, clim), {}),
        (metrics.crps_ensemble, (ens, t), {"fair": True, "dim": "time"}),
        (metrics.spread_skill_ratio, (ens, t), {"dim": "time"}),
        (metrics.energy_spectrum, (f,), {"dim": "lon", "mean_dims": "time"}),
        (metrics.isotropic_spectrum, (f,), {"dims": ("lat", "lon")}),
    ]


@pytest.mark.parametrize("case", range(7), ids=lambda i: ["rmse", "wrmse", "acc", "crps", "ssr", "spec", "iso"][i])
def test_dask_lazy_and_equal(case):
    func, args, kwargs = _lazy_cases()[case]
    # Chunk every dim, the core dims included (they are rechunked lazily).
    chunked = [a.chunk({d: max(1, a.sizes[d] // 2) for d in a.dims}) for a in args]
    with dask.config.set(scheduler=CountingScheduler(max_computes=0)):
        lazy = func(*chunked, **kwargs)
    assert isinstance(lazy.data, dask.array.Array)
    xr.testing.assert_allclose(lazy.compute(), func(*args, **kwargs))
    assert lazy.attrs == func(*args, **kwargs).attrs


def test_wrong_dim_raises():
    f = xr.DataArray(np.zeros((2, 3)), dims=["time", "x"])
    with pytest.raises(ValueError, match="'tiem'"):
        metrics.rmse(f, f, dim="tiem")
    with pytest.raises(ValueError, match="'members'"):
        metrics.crps_ensemble(f, f.isel(time=0), member_dim="members")
    with pytest.raises(ValueError, match="'y'"):
        metrics.energy_spectrum(f, dim="y")
    with pytest.raises(ValueError, match="'lat'"):
        metrics.weighted_rmse(f, f, dim="x")


def test_mismatched_shapes_raise():
    f = xr.DataArray(np.zeros((2, 3)), dims=["time", "x"])
    with pytest.raises(ValueError, match="do not align"):
        metrics.rmse(f, xr.DataArray(np.zeros((2, 4)), dims=["time", "x"]))
    g = f.assign_coords(x=[0, 1, 2])
    with pytest.raises(ValueError, match="do not align"):
        metrics.mae(g, g.assign_coords(x=[1, 2, 3]))
    with pytest.raises(ValueError, match="do not align"):
        metrics.crps_ensemble(f.rename(time="member"), xr.DataArray(np.zeros(5), dims="x"))


def test_non_xarray_input_raises_type_error():
    with pytest.raises(TypeError, match="forecast"):
        metrics.rmse(np.zeros(3), xr.DataArray(np.zeros(3), dims="x"))


# ---------------------------------------------------------------- ensembles: size, mean, summaries


@pytest.mark.parametrize("n_members", [0, 1])
def test_spread_scores_need_two_members(n_members):
    ens = xr.DataArray(np.zeros((3, n_members)), dims=["time", "member"])
    truth = xr.DataArray(np.zeros(3), dims="time")
    for call in (lambda: metrics.spread(ens), lambda: metrics.spread_skill_ratio(ens, truth),
                 lambda: metrics.crps_ensemble(ens, truth, fair=True)):
        with pytest.raises(ValueError, match=f"at least 2 members along 'member', got {n_members}"):
            call()


def test_crps_needs_one_member():
    ens = xr.DataArray(np.zeros((3, 0)), dims=["time", "member"])
    with pytest.raises(ValueError, match="at least 1 member along 'member', got 0"):
        metrics.crps_ensemble(ens, xr.DataArray(np.zeros(3), dims="time"))


def test_rmse_scores_the_ensemble_mean():
    rng = np.random.default_rng(3)
    truth = xr.DataArray(rng.standard_normal((50, 4)), dims=["time", "k"], attrs={"units": "m"})
    noise = rng.standard_normal((50, 4, 30))
    ens = truth + xr.DataArray(noise - noise.mean(-1, keepdims=True) + 0.5,
                               dims=["time", "k", "member"])
    # members sit about 1 from the truth; their mean exactly 0.5 from it
    assert float(metrics.rmse(ens, truth)) == pytest.approx(0.5, abs=1e-12)
    pooled = float(metrics.rmse(ens, truth, member_dim=None))
    assert pooled == pytest.approx(np.sqrt(0.25 + noise.var(-1).mean()), rel=1e-10)
    assert "ensemble mean" in metrics.rmse(ens, truth).attrs["long_name"]
    with pytest.raises(ValueError, match="member_dim=None"):
        metrics.rmse(ens, truth, dim=["time", "member"])
    # a truth with the member dim (members against members) is compared member by member
    assert float(metrics.rmse(ens, ens + 2.0)) == pytest.approx(2.0)


def test_rmse_of_an_analysis_dataset_scores_the_state_variables():
    truth = xr.Dataset({"x": ("time", [0.0, 0.0]), "y": ("time", [1.0, 1.0])})
    analysis = xr.Dataset({"x": ("time", [1.0, 1.0]), "y": ("time", [1.0, 3.0]),
                           "x_std": ("time", [0.5, 0.5]), "spread": ("time", [0.5, 0.5]),
                           "n_assimilated": ("time", [3, 3])})
    out = metrics.rmse(analysis, truth)
    assert list(out.data_vars) == ["x", "y"]
    assert float(out["x"]) == 1.0 and float(out["y"]) == pytest.approx(np.sqrt(2.0))
    with pytest.raises(ValueError, match="share no data variable"):
        metrics.rmse(analysis[["spread"]], truth)


def test_relative_errors_hand_computed_and_per_variable():
    y = xr.DataArray([[1.0, -2.0], [2.0, 1.0]], dims=("time", "x"))
    mu = y + xr.DataArray([[0.5, 0.0], [-0.5, 1.0]], dims=("time", "x"))
    assert float(metrics.relative_l1(mu, y)) == pytest.approx(2.0 / 6.0)
    assert float(metrics.relative_l2(mu, y)) == pytest.approx(np.sqrt(1.5 / 10.0))
    per_time = metrics.relative_l2(mu, y, dim="x")
    np.testing.assert_allclose(per_time, [np.sqrt(0.25 / 5), np.sqrt(1.25 / 5)])
    ds = xr.Dataset({"a": y, "b": 2 * y})
    out = metrics.relative_l1(ds + 0.1, ds)
    assert set(out.data_vars) == {"a", "b"} and out.a.attrs["units"] == "1"


def test_relative_errors_nan_forecast_is_nan_and_missing_truth_is_skipped():
    # xarray's sums skip NaN: a forecast that diverged to NaN used to score 0, the best
    y = xr.DataArray([[1.0, -2.0], [2.0, 1.0]], dims=("time", "x"))
    mu = y + xr.DataArray([[0.5, 0.0], [-0.5, 1.0]], dims=("time", "x"))
    for score in (metrics.relative_l1, metrics.relative_l2):
        assert np.isnan(float(score(mu * np.nan, y)))
        per_time = score(mu.where(mu.time == 1), y, dim="x")  # NaN at time 0 only
        assert np.isnan(per_time[0]) and float(per_time[1]) == float(score(mu, y, dim="x")[1])
        # a point without a truth leaves both sums: the score of the other points
        gap = y.where(~((y.time == 0) & (y.x == 0)))
        both = score(mu, gap, dim="x")
        assert float(both[1]) == pytest.approx(float(score(mu[1], y[1])))
        assert float(both[0]) == pytest.approx(float(score(mu[0, 1:], y[0, 1:])))


def test_picp_calibrated_gaussian_and_errors():
    rng = np.random.RandomState(0)
    sigma = xr.DataArray(rng.uniform(0.5, 2.0, 20000), dims="n")
    truth = sigma * xr.DataArray(rng.normal(size=20000), dims="n")
    mean = xr.zeros_like(truth)
    assert float(metrics.picp(mean, sigma, truth)) == pytest.approx(0.6827, abs=0.01)
    assert float(metrics.picp(mean, sigma, truth, k=2)) == pytest.approx(0.9545, abs=0.005)
    # an over-confident forecast (half the spread) under-covers
    assert float(metrics.picp(mean, sigma / 2, truth)) < 0.45
    with pytest.raises(ValueError, match="k must be"):
        metrics.picp(mean, sigma, truth, k=0)


@pytest.mark.parametrize("n_members", [20, 50])
def test_interval_coverage_of_a_calibrated_ensemble_is_its_level(n_members):
    # members at Weibull's positions i / (m + 1): a calibrated ensemble covers `level`.
    # Linear interpolation (numpy's default) covered 0.82 at 20 members and 0.87 at 50
    rng = np.random.RandomState(1)
    ens = xr.DataArray(rng.normal(size=(20000, n_members)), dims=("n", "member"))
    truth = xr.DataArray(rng.normal(size=20000), dims="n")
    for level in (0.5, 0.8, 0.9):
        assert abs(float(metrics.interval_coverage(ens, truth, level=level)) - level) < 0.012


def test_interval_coverage_calibrated_ensemble():
    rng = np.random.RandomState(1)
    ens = xr.DataArray(rng.normal(size=(4000, 50)), dims=("n", "member"))
    truth = xr.DataArray(rng.normal(size=4000), dims="n")
    cov = float(metrics.interval_coverage(ens, truth, level=0.9))
    assert 0.88 < cov < 0.92
    # 10 members cannot bracket 90%: their range covers 9/11 when calibrated, and it says so
    with pytest.warns(UserWarning, match="needs at least 19 members; with 10 it is the "):
        few = float(metrics.interval_coverage(ens.isel(member=slice(10)), truth, level=0.9))
    assert abs(few - 9 / 11) < 0.02
    narrow = float(metrics.interval_coverage(0.3 * ens, truth, level=0.9))
    assert narrow < 0.5
    with pytest.raises(ValueError, match="level"):
        metrics.interval_coverage(ens, truth, level=1.5)
    with pytest.raises(ValueError, match="member"):
        metrics.interval_coverage(ens.isel(member=0), truth)


def test_interval_coverage_matches_the_per_point_quantiles_and_a_failed_member_is_nan():
    rng = np.random.RandomState(2)
    ens = xr.DataArray(rng.normal(size=(300, 30)), dims=("n", "member"))
    truth = xr.DataArray(rng.normal(size=300), dims="n")
    lo, hi = np.quantile(ens.values, [0.05, 0.95], axis=1, method="weibull")
    expected = np.mean((truth.values >= lo) & (truth.values <= hi))
    assert float(metrics.interval_coverage(ens, truth, level=0.9)) == expected
    assert float(metrics.interval_coverage(ens.chunk(n=100), truth, level=0.9)) == expected
    # a missing member at a point with a truth: NaN, as the other ensemble scores (its
    # interval once came from the other members, scored as the ensemble's)
    gappy = ens.copy(data=ens.values.copy())
    gappy[0, 3] = np.nan
    assert np.isnan(float(metrics.interval_coverage(gappy, truth, level=0.9)))
    assert np.isnan(float(metrics.interval_coverage(gappy.chunk(n=100), truth, level=0.9)))
    # ... scored where the failed point is not averaged over, and left out without a truth
    per_point = metrics.interval_coverage(gappy, truth, level=0.9, dim=[])
    assert np.isnan(float(per_point[0])) and np.isfinite(per_point[1:]).all()
    inside = (truth.values >= lo) & (truth.values <= hi)
    assert float(metrics.interval_coverage(gappy, truth.where(truth.n > 0), level=0.9)
                 ) == np.mean(inside[1:])


def test_an_assimilator_that_failed_part_way_scores_nan():
    # with raise_on_divergence=False the cycle fills the analysis with NaN from a failure
    # on; the time mean used to skip those times and score only the ones before
    t = np.arange(6.0)
    truth = xr.Dataset({"x": (("time", "k"), np.zeros((6, 3)))}, coords={"time": t})
    analysis = truth + 0.5
    assert metrics.analysis_rmse(analysis, truth) == pytest.approx(0.5)
    assert np.isnan(metrics.analysis_rmse(analysis.where(analysis.time < 3), truth))
    # a filter blown up by its inflation: diverged at the first analysis, scored NaN (was
    # the RMSE of that one finite time, 1.7e85: finite, so a search could still rank it)
    system = Lorenz63()
    truth = system.simulate(n_steps=400, dt=0.01, save_every=10, burn_in=5, random_state=0)
    obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    enkf = EnKF(system, n_members=5, inflation=1e100, raise_on_divergence=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = enkf.fit(obs).predict(obs)
        score = enkf.score(obs, truth)
    assert out.attrs["diverged"] == 1 and np.isfinite(metrics.state_rmse(out, truth)[0])
    assert np.isnan(score)


def test_state_rmse_weighs_every_state_entry_alike():
    # two-scale Lorenz-96: x(k) 8 values, y(k, j) 256; x off by 1, y exact. to_array broadcast
    # x over j, so x weighed half the state: 0.707 instead of sqrt(8 / 264) = 0.174
    from xdyn.systems import TwoScaleLorenz96

    truth = TwoScaleLorenz96(K=8, J=32).simulate(n_steps=2, random_state=0)
    an = truth.copy(deep=True)
    an["x"] = an.x + 1.0
    np.testing.assert_allclose(metrics.state_rmse(an, truth).values, np.sqrt(8 / 264))
    # variables on the same dims: the plain RMSE over both
    t = xr.Dataset({"u": ("time", [0.0, 0.0]), "v": ("time", [0.0, 0.0])}, coords={"time": [0, 1]})
    a = t + xr.Dataset({"u": ("time", [3.0, 1.0]), "v": ("time", [4.0, 1.0])})
    np.testing.assert_allclose(metrics.state_rmse(a, t).values, [np.sqrt(12.5), 1.0])


def test_state_rmse_compares_the_same_grid_points_whatever_the_order():
    # flat states compared entry by entry: a truth on a transposed grid scored 0.94 / 1.13
    # and one on a reversed x 0.89 / 1.36 where every point was off by 0.1
    rng = np.random.default_rng(0)
    coords = {"time": [0.0, 1.0], "y": np.arange(3.0), "x": np.arange(4.0)}
    truth = xr.Dataset({"w": (("time", "y", "x"), rng.normal(size=(2, 3, 4))),
                        "s": ("time", [1.0, 2.0])}, coords=coords)
    an = truth + 0.1
    for other in (truth.transpose("time", "x", "y"), truth.isel(x=slice(None, None, -1)),
                  truth[["s", "w"]]):
        np.testing.assert_allclose(metrics.state_rmse(an, other).values, [0.1, 0.1])
        np.testing.assert_allclose(metrics.state_rmse(other + 0.1, truth).values, [0.1, 0.1])
    with pytest.raises(ValueError, match="do not align"):
        metrics.state_rmse(an, truth.assign_coords(x=truth.x + 0.5))
    # labels equal up to float32 rounding (a truth read back from a file) are the same
    rounded = truth.assign_coords(x=(truth.x + 0.1).astype("float32"))
    np.testing.assert_allclose(metrics.state_rmse(an.assign_coords(x=an.x + 0.1), rounded),
                               [0.1, 0.1])
    with pytest.raises(ValueError, match="truth variable 'w' has dims"):
        metrics.state_rmse(an, truth.assign(w=truth.w.isel(x=0)))


def test_acc_and_spread_skill_use_only_the_points_with_a_truth():
    rng = np.random.default_rng(0)
    coords = {"time": [0, 1], "lat": [-45.0, 0.0, 45.0], "lon": [0.0, 90.0, 180.0, 270.0]}
    truth = xr.DataArray(rng.normal(size=(2, 3, 4)), coords=coords, dims=list(coords))
    clim = xr.zeros_like(truth.isel(time=0, drop=True))
    gappy = truth.copy(data=truth.values.copy())
    gappy[0, 1, 2] = np.nan  # one missing observation: a perfect forecast scored 0.908
    assert float(metrics.weighted_acc(truth, gappy, clim)) == pytest.approx(1.0, abs=1e-12)
    # a calibrated ensemble at a quiet and a noisy site; the noisy site has no truth: its
    # spread entered the ratio while its error did not (7.1 instead of 1)
    T, m = 4000, 10
    sd = np.array([1.0, 10.0])
    ens = xr.DataArray(rng.normal(size=(T, 2, m)) * sd[None, :, None], dims=("time", "x", "member"))
    y = xr.DataArray(rng.normal(size=(T, 2)) * sd[None, :], dims=("time", "x"))
    quiet_only = float(metrics.spread_skill_ratio(ens.isel(x=[0]), y.isel(x=[0])))
    assert float(metrics.spread_skill_ratio(ens, y.where(y.x == 0))) == pytest.approx(quiet_only)
    assert quiet_only == pytest.approx(1.0, abs=0.05)


# ---------------------------------------------------------------- silent mismatches


def test_dims_that_differ_only_by_name_raise_instead_of_an_outer_product():
    # truth.rename(time="valid_time") against truth scored rmse 1.05 (not 0) over the
    # outer product of the two time axes; weighted_rmse gave one score per init_time
    field = _grid()
    truth = field()
    renamed = truth.rename(time="valid_time")
    clim = truth.mean("time")
    calls = [
        lambda: metrics.rmse(renamed, truth), lambda: metrics.mae(renamed, truth),
        lambda: metrics.bias(renamed, truth), lambda: metrics.weighted_rmse(renamed, truth),
        lambda: metrics.weighted_acc(renamed, truth, clim),
        lambda: metrics.relative_l1(renamed, truth), lambda: metrics.relative_l2(renamed, truth),
        lambda: metrics.picp(renamed, xr.ones_like(renamed), truth),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"\['valid_time'\] that truth lacks.*\['time'\]"):
            call()
    ens = xr.concat([renamed, renamed + 1.0], "member")
    with pytest.raises(ValueError, match="outer product"):
        metrics.crps_ensemble(ens, truth)
    with pytest.raises(ValueError, match="outer product"):
        metrics.spread_skill_ratio(ens, truth)
    with pytest.raises(ValueError, match="outer product"):
        metrics.interval_coverage(ens, truth)
    with pytest.raises(ValueError, match="outer product"):
        metrics.rmse(renamed.to_dataset(), truth.to_dataset())
    # extra dims on one side only stay allowed: a lead dim, a climatology without time
    leads = xr.concat([truth, truth + 1.0], "lead")
    np.testing.assert_allclose(metrics.rmse(leads, truth, dim=["time", "lat", "lon"]), [0, 1])
    assert float(metrics.weighted_acc(truth, truth, clim)) == pytest.approx(1.0)


def test_different_units_raise_per_variable():
    # a forecast in K against a truth in degC scored 273 "K"
    f = xr.DataArray([280.0, 281.0], dims="x", attrs={"units": "K"})
    t = xr.DataArray([7.0, 8.0], dims="x", attrs={"units": "degC"})
    for func in (metrics.rmse, metrics.mae, metrics.bias, metrics.relative_l2):
        with pytest.raises(ValueError, match="forecast is in 'K' but truth in 'degC'"):
            func(f, t)
    # either side without units is accepted
    assert float(metrics.rmse(f, t.drop_attrs() + 273.0)) == 0.0
    assert float(metrics.rmse(f.drop_attrs(), t + 273.0)) == 0.0
    # Datasets are compared per variable: each variable's units may differ from the others'
    fd = xr.Dataset({"T": f, "u": f.assign_attrs(units="m s-1")})
    td = xr.Dataset({"T": f, "u": f.assign_attrs(units="m s-1")})
    assert float(metrics.rmse(fd, td).u) == 0.0
    with pytest.raises(ValueError, match="variable 'u'"):
        metrics.rmse(fd, td.assign(u=td.u.assign_attrs(units="km h-1")))
    # the climatology of the ACC too
    field = _grid()
    truth = field()
    clim = truth.mean("time", keep_attrs=True).assign_attrs(units="J kg-1")
    with pytest.raises(ValueError, match="climatology in 'J kg-1'"):
        metrics.weighted_acc(truth, truth, clim)
    # and the state of an analysis, ensemble mean included
    ds = xr.Dataset({"x": ("time", [0.0, 1.0], {"units": "m"}),
                     "y": ("time", [1.0, 2.0], {"units": "K"})}, coords={"time": [0, 1]})
    wrong = ds.assign(y=ds.y.assign_attrs(units="degC"))
    with pytest.raises(ValueError, match="variable 'y'"):
        metrics.state_rmse(wrong, ds)
    with pytest.raises(ValueError, match="variable 'y'"):
        metrics.state_rmse(xr.concat([wrong, wrong], "member"), ds)


def test_state_rmse_raises_on_a_truth_state_variable_the_analysis_lacks():
    # an analysis whose z was named Z scored only x and y: 0.0 on a z off by 100
    truth = Lorenz63().simulate(n_steps=20, random_state=0)
    an = truth.copy()
    an["z"] = an.z + 100.0
    assert metrics.analysis_rmse(an, truth) == pytest.approx(100 / np.sqrt(3))
    with pytest.raises(ValueError, match=r"lacks the truth's state variables \['z'\] and has "
                                         r"state variables \['Z'\]"):
        metrics.analysis_rmse(an.rename(z="Z"), truth)
    # z merely left out (an analysis of part of the state): the shared x and y are scored
    assert metrics.analysis_rmse(an.drop_vars("z"), truth) == 0.0
    # the analysis' own diagnostics and per-trajectory parameters of the truth are not state
    extras = an.assign(spread=an.x * 0 + 1.0, x_std=an.x * 0 + 1.0)
    with_param = truth.assign(F=8.0, rho=xr.DataArray([28.0], dims="trajectory"))
    assert metrics.analysis_rmse(extras, with_param) == pytest.approx(100 / np.sqrt(3))


def test_state_rmse_kept_dims_of_each_side_are_broadcast():
    t = xr.Dataset({"x": (("seed", "time"), [[0.0, 0.0], [1.0, 1.0]])},
                   coords={"time": [0, 1], "seed": [0, 1]})
    an = xr.Dataset({"x": (("inflation", "time"), [[0.0, 0.0], [2.0, 2.0]])},
                    coords={"time": [0, 1], "inflation": [1.0, 1.1]})
    out = metrics.state_rmse(an, t, keep_dims=("seed", "inflation"))
    np.testing.assert_allclose(out.transpose("inflation", "seed", "time"),
                               [[[0, 0], [1, 1]], [[2, 2], [1, 1]]])


def test_units_spelled_otherwise_are_the_same_units():
    # ERA5 / cfgrib write "m s**-1", CF "m s-1": the same unit, refused before
    t = xr.DataArray(np.arange(4.0), dims="time", coords={"time": np.arange(4)})
    for a, b in [("m s-1", "m s**-1"), ("m s-1", "m/s"), ("m s-1", "m s^-1"), ("K", "kelvin"),
                 ("degC", "degree_Celsius"), ("1", "dimensionless"), ("kg m-2 s-1", "kg/m2/s")]:
        f, tr = (t + 1).assign_attrs(units=a), t.assign_attrs(units=b)
        assert float(metrics.rmse(f, tr)) == 1.0, (a, b)
        assert float(metrics.rmse(tr, f)) == 1.0, (b, a)
    an = xr.Dataset({"u": ("time", [1.0, 1.0], {"units": "m s-1"})}, coords={"time": [0, 1]})
    truth = an.assign(u=an.u.assign_attrs(units="m s**-1") - 1.0)
    assert metrics.state_rmse(an, truth).values.tolist() == [1.0, 1.0]
    # other units still raise: another scale, another zero
    for a, b in [("K", "degC"), ("m", "km"), ("m s-1", "km h-1"), ("1", "m")]:
        with pytest.raises(ValueError, match=f"forecast is in '{a}' but truth in '{b}'"):
            metrics.rmse(t.assign_attrs(units=a), t.assign_attrs(units=b))


def test_state_rmse_scores_the_variables_an_analysis_of_part_of_the_state_has():
    # model error twin: a one-scale model's analysis of x against a two-scale truth (x, y)
    from xdyn.systems import TwoScaleLorenz96

    truth = TwoScaleLorenz96(K=8, J=4).simulate(n_steps=20, random_state=0)
    analysis = truth[["x"]] + 0.5
    np.testing.assert_allclose(metrics.state_rmse(analysis, truth), 0.5)
    assert metrics.analysis_rmse(analysis, truth) == pytest.approx(0.5)
    # with an assimilator's diagnostics (x_std, spread, x_background, lost ...) as well
    diag = analysis.assign(x_std=analysis.x * 0, spread=analysis.x.mean("k") * 0,
                           x_background=analysis.x, x_background_std=analysis.x * 0,
                           spread_background=analysis.x.mean("k") * 0,
                           lost=analysis.x.mean("k") > 1e9,
                           n_assimilated=analysis.x.mean("k") * 0 + 8)
    assert metrics.analysis_rmse(diag, truth) == pytest.approx(0.5)
    # a scored variable's diagnostic on a missing one's dims is no rename (u_std, truth u, v)
    uv = truth[["x"]].assign(v=truth.x * 2)
    assert metrics.state_rmse(uv[["x"]].assign(x_std=uv.x * 0), uv).values.max() == 0.0
    # a renamed state variable still raises, naming both sides
    with pytest.raises(ValueError, match=r"state variables \['y'\] and has state variables "
                                         r"\['Y'\]"):
        metrics.state_rmse((truth + 0.5).rename(y="Y"), truth)
    with pytest.raises(ValueError, match=r"\['X'\]"):
        metrics.state_rmse(truth[["x"]].rename(x="X"), truth[["x"]])
    # on x's dims: a renamed x, whatever the name
    with pytest.raises(ValueError, match=r"\['x_std'\]"):
        metrics.state_rmse(truth[["x"]].rename(x="x_std"), truth[["x"]])
    with pytest.raises(ValueError, match="share no state variable"):
        metrics.state_rmse(truth[["x"]].rename(x="X").mean("k"), truth[["x"]])


def _persistence_forecast():
    from xdyn.forecast import Persistence

    t = np.arange(50.0)
    ds = xr.Dataset({"T": ("time", np.sin(t / 5), {"units": "K"})}, coords={"time": t})
    return ds, Persistence().fit(ds).predict(ds, lead_times=[5.0, 10.0])


def test_a_forecast_against_the_truth_at_its_initialisation_times_raises():
    # the truth broadcast over lead_time: persistence scored a perfect 0 at every lead
    ds, fc = _persistence_forecast()
    for func in (metrics.rmse, metrics.mae, metrics.bias):
        with pytest.raises(ValueError, match="forecast has a 'lead_time' coordinate and truth "
                                             "has not, but shares its 'time' dim.*"
                                             "lead_aligned_truth"):
            func(fc.T, ds.T, dim="time")
    with pytest.raises(ValueError, match="truth has a 'lead_time' coordinate and forecast has not"):
        metrics.rmse(ds.T, fc.T, dim="time")
    with pytest.raises(ValueError, match="ensemble has a 'lead_time' coordinate"):
        metrics.crps_ensemble(fc.T.expand_dims(member=2), ds.T, dim="time")
    # the lead-aligned truth is scored; a truth without time (a fixed state) broadcasts
    from xdyn.forecast import lead_aligned_truth

    np.testing.assert_allclose(metrics.rmse(fc.T, lead_aligned_truth(ds, fc).T, dim="time"),
                               [0.6633, 1.1190], atol=1e-4)
    fixed = ds.T.mean("time", keep_attrs=True)
    assert metrics.rmse(fc.T, fixed, dim="time").dims == ("lead_time",)
    # a sample dim other than time is found through the forecast's valid_time
    init = fc.rename(time="init")
    with pytest.raises(ValueError, match="shares its 'init' dim"):
        metrics.rmse(init.T, ds.T.rename(time="init"), dim="init")
    # ... and without a valid_time, through its dates or CF time attributes
    import pandas as pd

    dates = pd.date_range("2000-01-01", periods=50, freq="h")
    on_dates = init.drop_vars("valid_time").assign_coords(init=dates)
    with pytest.raises(ValueError, match="shares its 'init' dim"):
        metrics.rmse(on_dates.T, ds.T.rename(time="init").assign_coords(init=dates), dim="init")
    cf = init.drop_vars("valid_time").assign_coords(init=init.init.assign_attrs(axis="T"))
    with pytest.raises(ValueError, match="shares its 'init' dim"):
        metrics.rmse(cf.T, ds.T.rename(time="init"), dim="init")
    # one lead selected is still a forecast (it scored a perfect 0 against the series)
    with pytest.raises(ValueError, match="forecast has a 'lead_time' coordinate"):
        metrics.rmse(fc.T.sel(lead_time=5.0), ds.T)
    assert float(metrics.rmse(fc.T.sel(lead_time=5.0),
                              lead_aligned_truth(ds, fc).T.sel(lead_time=5.0))) > 0.5
    # the lead-aligned truth at one lead against the forecast at it, the lead dropped on
    # either side: both state the same valid times (this was refused, the roles reversed)
    aligned = lead_aligned_truth(ds, fc).T.sel(lead_time=5.0)
    expected = float(metrics.rmse(fc.T.sel(lead_time=5.0), aligned))
    assert float(metrics.rmse(fc.T.sel(lead_time=5.0, drop=True), aligned)) == expected
    assert float(metrics.rmse(fc.T.sel(lead_time=5.0), aligned.drop_vars("lead_time"))) \
        == expected
    shifted = aligned.drop_vars("lead_time").assign_coords(
        valid_time=("time", aligned.valid_time.values + 1))
    with pytest.raises(ValueError, match="forecast has a 'lead_time' coordinate"):
        metrics.rmse(fc.T.sel(lead_time=5.0), shifted)
    # cfgrib's layout: the lead is 'step' (timedelta), valid_time 2-D, no lead_time
    dates = pd.date_range("2000-01-01", periods=50, freq="h")
    grib = fc.rename(lead_time="step").assign_coords(
        time=dates, step=pd.to_timedelta([5, 10], "h"))
    grib = grib.assign_coords(valid_time=grib.time + grib.step)
    with pytest.raises(ValueError, match="forecast has a 'step' coordinate"):
        metrics.rmse(grib.T, ds.T.assign_coords(time=dates), dim="time")
    # ... and against an analysis read by cfgrib, whose step is 0 (it skipped the check)
    analysis = ds.T.assign_coords(time=dates, step=pd.Timedelta(0))
    with pytest.raises(ValueError, match="forecast has a 'step' coordinate"):
        metrics.rmse(grib.T, analysis, dim="time")
    # a lead per sample along time (iris's forecast_period): indexed by its valid times
    per_sample = ds.T.assign_coords(forecast_period=("time", 5.0 * np.arange(1, 51),
                                                     {"standard_name": "forecast_period"}))
    assert float(metrics.rmse(per_sample, ds.T)) == 0.0
    # ... but one lead picked per initialisation is still indexed by initialisation: a
    # valid_time off its times, or the same lead everywhere, says so (persistence scored 0)
    picked = fc.T.isel(lead_time=xr.DataArray(np.zeros(50, int), dims="time"))
    assert picked.lead_time.dims == ("time",)
    for one_lead in (picked, picked.drop_vars("valid_time")):
        with pytest.raises(ValueError, match="forecast has a 'lead_time' coordinate"):
            metrics.rmse(one_lead, ds.T)
    # a forecast indexed by its valid times is compared at them
    by_valid = xr.DataArray([[1.0, 2.0], [3.0, 4.0]], dims=("valid_time", "lead_time"),
                            coords={"valid_time": [10.0, 11.0], "lead_time": [1.0, 2.0]})
    truth = xr.DataArray([1.0, 3.0], dims="valid_time", coords={"valid_time": [10.0, 11.0]})
    np.testing.assert_allclose(metrics.rmse(by_valid, truth, dim="valid_time"), [0.0, 1.0])


def test_units_of_shared_coordinates_are_compared():
    # a series on model time in hours against one in days, with the same numbers
    th = np.arange(48.0)
    hours = xr.DataArray(np.sin(th), dims="time", coords={"time": ("time", th, {"units": "hours"})},
                         attrs={"units": "K"})
    days = hours.assign_coords(time=hours.time.assign_attrs(units="days"))
    with pytest.raises(ValueError, match="forecast's 'time' coordinate is in 'hours' but "
                                         "truth's in 'days'"):
        metrics.rmse(hours, days)
    with pytest.raises(ValueError, match="'time' coordinate"):
        metrics.state_rmse(hours.to_dataset(name="x"), days.to_dataset(name="x"))
    # spellings of one unit, or units on one side only, are accepted
    in_h = hours.assign_coords(time=hours.time.assign_attrs(units="h"))
    assert float(metrics.rmse(hours, in_h)) == 0.0
    assert float(metrics.rmse(hours, hours.assign_coords(time=th))) == 0.0
    lat = xr.DataArray([0.0, 1.0], dims="lat", coords={"lat": ("lat", [0.0, 10.0], {"units": "m"})})
    with pytest.raises(ValueError, match="'lat' coordinate is in 'm' but truth's in 'km'"):
        metrics.mae(lat, lat.assign_coords(lat=lat.lat.assign_attrs(units="km")))


def test_vorticity_in_canonical_units_scores_against_a_reference_in_s_1():
    # vorticity_from_velocity wrote "(m s-1) m-1" for u in m s-1 on a grid in m
    from xdyn.datasets import vorticity_from_velocity

    n, L = 16, 2 * np.pi
    x = np.arange(n) * L / n
    X, Y = np.meshgrid(x, x)
    ds = xr.Dataset({"u": (("y", "x"), np.sin(Y), {"units": "m s-1"}),
                     "v": (("y", "x"), np.sin(X), {"units": "m s-1"})},
                    coords={"x": ("x", x, {"units": "m"}), "y": ("y", x, {"units": "m"})})
    w = vorticity_from_velocity(ds)
    assert w.attrs["units"] == "s-1"
    ref = xr.DataArray(np.cos(X) - np.cos(Y), dims=("y", "x"), coords=w.coords,
                       attrs={"units": "s-1"})
    assert float(metrics.rmse(w, ref)) < 1e-12
    km = ds.assign_coords(x=ds.x.assign_attrs(units="km"), y=ds.y.assign_attrs(units="km"))
    assert vorticity_from_velocity(km).attrs["units"] == "km-1 m s-1"
    with pytest.raises(ValueError, match="but truth in 's-1'"):
        metrics.rmse(vorticity_from_velocity(km), ref.assign_coords(x=km.x, y=km.y))
