"""The ``.xdyn`` accessor: thin, stateless forwarding to the public functions."""

import pickle

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

import xdyn  # noqa: F401  (registers the accessor)
from xdyn.accessor import XdynAccessor
from xdyn.metrics import crps_ensemble, energy_spectrum, isotropic_spectrum, rmse
from xdyn.observe import observe
from xdyn.systems import Lorenz63, Lorenz96


@pytest.fixture(scope="module")
def l96():
    return Lorenz96(n=40).simulate(n_steps=150, burn_in=5.0, random_state=0)


def _line(n_time=4, n=32):
    """KS-like periodic line u(time, x)."""
    x = np.linspace(0, 22.0, n, endpoint=False)
    t = np.arange(n_time)
    u = np.cos(2 * np.pi * 3 * x / 22.0)[None] * (1 + t[:, None])
    return xr.Dataset({"u": (("time", "x"), u, {"units": "1"})}, coords={"time": t * 1.0, "x": x})


def _field(n_time=3, n=16):
    g = np.linspace(0, 2 * np.pi, n, endpoint=False)
    w = np.cos(3 * g[None, :] + 4 * g[:, None])
    w = np.broadcast_to(w, (n_time, n, n)).copy()
    return xr.Dataset({"w": (("time", "y", "x"), w, {"units": "s-1"})},
                      coords={"time": np.arange(n_time) * 1.0, "y": g, "x": g})


def test_import_registers_accessor_on_dataset_and_dataarray():
    ds = xr.Dataset({"a": ("time", np.zeros(3))})
    assert isinstance(ds.xdyn, XdynAccessor)
    assert isinstance(ds.a.xdyn, XdynAccessor)
    assert isinstance(xr.DataArray(1.0).xdyn, XdynAccessor)
    assert xr.Dataset.xdyn is XdynAccessor and xr.DataArray.xdyn is XdynAccessor  # on the classes


def test_observe_via_accessor_equals_observe(l96):
    kwargs = dict(every=3, missing_fraction=0.1, random_state=5)
    xr.testing.assert_identical(l96.xdyn.observe("every4", 0.5, **kwargs),
                                observe(l96, "every4", 0.5, **kwargs))
    xr.testing.assert_identical(l96.xdyn.observe(random_state=0), observe(l96, random_state=0))
    # a named DataArray is observed as a one-variable Dataset
    from_da = l96.x.xdyn.observe("every4", 0.5, **kwargs)
    xr.testing.assert_identical(from_da, observe(l96.x.to_dataset(), "every4", 0.5, **kwargs))
    # same observations as from the Dataset (only the Dataset-level attrs are not on the array)
    xr.testing.assert_identical(from_da.drop_attrs(deep=False),
                                observe(l96, "every4", 0.5, **kwargs).drop_attrs(deep=False))


def test_rmse_via_accessor_equals_metrics(l96):
    other = l96 + 0.3 * np.sin(l96.k)
    xr.testing.assert_identical(other.xdyn.rmse(l96), rmse(other, l96))
    xr.testing.assert_identical(other.xdyn.rmse(l96, dim="k"), rmse(other, l96, dim="k"))
    xr.testing.assert_identical(other.x.xdyn.rmse(l96.x, dim="time"), rmse(other.x, l96.x, dim="time"))
    assert float(l96.xdyn.rmse(l96)["x"]) == 0.0
    assert float((l96 + 2.0).x.xdyn.rmse(l96.x)) == pytest.approx(2.0)


def test_crps_via_accessor_on_ensemble(l96):
    truth = l96.isel(time=slice(0, 10))
    rng = np.random.RandomState(0)
    ens = truth + xr.DataArray(rng.standard_normal((8, 10, 40)), dims=("member", "time", "k"))
    xr.testing.assert_identical(ens.xdyn.crps(truth), crps_ensemble(ens, truth))
    xr.testing.assert_identical(ens.x.xdyn.crps(truth.x, dim="time", fair=True),
                                crps_ensemble(ens.x, truth.x, dim="time", fair=True))
    # a sharp ensemble on the truth scores zero; a wider one scores worse
    sharp = truth.expand_dims(member=4)
    assert float(sharp.x.xdyn.crps(truth.x).max()) == 0.0
    wide = truth + 3 * (ens - truth)
    assert float(wide.x.xdyn.crps(truth.x).mean()) > float(ens.x.xdyn.crps(truth.x).mean())
    renamed = ens.rename(member="ens")
    xr.testing.assert_identical(renamed.xdyn.crps(truth, member_dim="ens"),
                                crps_ensemble(ens, truth))
    with pytest.raises(ValueError, match="member"):
        truth.xdyn.crps(truth)


def test_spectrum_picks_the_right_dim(l96):
    # Lorenz-96: the site dim k
    spec = l96.x.xdyn.spectrum()
    assert spec.dims == ("time", "wavenumber") and spec.sizes["wavenumber"] == 21
    xr.testing.assert_identical(spec, energy_spectrum(l96.x, dim="k"))
    xr.testing.assert_identical(l96.xdyn.spectrum(), energy_spectrum(l96, dim="k"))
    # KS-like line: x
    line = _line()
    spec = line.xdyn.spectrum()
    xr.testing.assert_identical(spec, energy_spectrum(line, dim="x"))
    assert int(spec.u.isel(time=0).idxmax()) == 3
    xr.testing.assert_identical(line.u.xdyn.spectrum(length=22.0),
                                energy_spectrum(line.u, dim="x", length=22.0))
    # (y, x) field: isotropic
    field = _field()
    spec = field.w.xdyn.spectrum()
    xr.testing.assert_identical(spec, isotropic_spectrum(field.w))
    assert int(spec.isel(time=0).idxmax()) == 5  # |(4, 3)| = 5
    # an explicit dim wins over the isotropic default
    xr.testing.assert_identical(field.w.xdyn.spectrum(dim="x"), energy_spectrum(field.w, dim="x"))


def test_spectrum_without_spatial_dim_raises():
    l63 = xr.Dataset({n: ("time", np.arange(4.0)) for n in "xyz"}, coords={"time": np.arange(4.0)})
    with pytest.raises(ValueError, match="spatial dim"):
        l63.xdyn.spectrum()
    with pytest.raises(ValueError, match="spatial dim"):
        l63.x.xdyn.spectrum()
    with pytest.raises(ValueError, match="'q'"):
        _line().xdyn.spectrum(dim="q")


def test_plot_returns_figure(l96):
    assert isinstance(l96.isel(time=slice(0, 20)).xdyn.plot(), Figure)
    assert isinstance(l96.x.isel(time=slice(0, 20)).xdyn.plot(), Figure)
    assert isinstance(_field().xdyn.plot(time=1.0), Figure)


def test_assimilate_enkf_on_lorenz96(l96):
    obs = l96.xdyn.observe("identity", noise_std=1.0, random_state=1)
    x0 = l96.x.isel(time=0).values + 0.5 * np.random.RandomState(2).standard_normal(40)
    analysis = obs.xdyn.assimilate("enkf", n_members=20, inflation=1.05, random_state=0,
                                   initial_state=x0, initial_spread=0.5)
    assert analysis.x.dims == ("time", "member", "k")
    assert dict(analysis.sizes) == {"time": 151, "member": 20, "k": 40}
    np.testing.assert_array_equal(analysis.time, obs.time)
    assert analysis.attrs["method"] == "EnKF"
    late = slice(20, None)
    err_analysis = float(analysis.x.mean("member").isel(time=late).xdyn.rmse(l96.x.isel(time=late)))
    err_obs = float(rmse(obs.observation.isel(time=late),
                         obs.observation_clean.isel(time=late)))
    assert err_obs == pytest.approx(1.0, rel=0.05)
    assert err_analysis < 0.5 * err_obs
    # the accessor is the same as the estimator
    from xdyn.assimilation import EnKF

    est = EnKF(n_members=20, inflation=1.05, random_state=0, initial_state=x0, initial_spread=0.5)
    xr.testing.assert_allclose(est.fit(obs).predict(obs).drop_attrs(),
                               analysis.drop_attrs())


def test_assimilate_unknown_method_raises(l96):
    obs = l96.isel(time=slice(0, 5)).xdyn.observe("identity", random_state=0)
    with pytest.raises(ValueError, match="no-such-filter"):
        obs.xdyn.assimilate("no-such-filter")


def test_accessor_holds_no_state(l96):
    ds = l96.isel(time=slice(0, 5))
    acc = ds.xdyn
    assert vars(acc) == {"_obj": ds} and acc._obj is ds
    assert "__getattr__" not in vars(XdynAccessor)
    with pytest.raises(AttributeError):
        acc.no_such_method  # noqa: B018
    copy = ds.copy()
    assert copy.xdyn is not acc and copy.xdyn._obj is copy
    # a changed copy is seen by its own accessor, not by the original's
    copy["x"] = copy.x + 1.0
    assert float(copy.xdyn.rmse(ds)["x"]) == pytest.approx(1.0)
    assert float(ds.xdyn.rmse(ds)["x"]) == 0.0
    # an operation that returns a new object gives a fresh accessor
    assert (ds + 0).xdyn._obj is not ds


def test_pickle_after_using_accessor(l96):
    ds = l96.isel(time=slice(0, 5))
    ds.xdyn.rmse(ds)
    ds.xdyn.spectrum()
    ds.x.xdyn.spectrum()
    back = pickle.loads(pickle.dumps(ds))
    xr.testing.assert_identical(back, ds)
    assert back.xdyn._obj is back
    da = ds.x
    da.xdyn.rmse(da)
    xr.testing.assert_identical(pickle.loads(pickle.dumps(da)), da)


def test_lorenz63_through_the_accessor():
    truth = Lorenz63().simulate(n_steps=30, random_state=0)
    obs = truth.xdyn.observe(["x", "y"], noise_std=0.0, every=10, random_state=0)
    assert dict(obs.sizes) == {"time": 4, "obs": 2}
    np.testing.assert_allclose(obs.observation.isel(obs=1), truth.y.isel(time=slice(None, None, 10)))
