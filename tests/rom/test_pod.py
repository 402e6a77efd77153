"""POD and POD + linear dynamics: exact on low-rank data, unseen data, labels, errors."""

import pickle

import numpy as np
import pytest
import xarray as xr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from xdyn.rom import POD, PODLinearDynamics


def _rank_k(k=3, n_traj=2, n_time=30, seed=0):
    rng = np.random.default_rng(seed)
    modes = rng.normal(size=(k, 2, 8, 6))
    coef = rng.normal(size=(n_traj, n_time, k))
    fields = np.einsum("btk,kcyx->cbtyx", coef, modes) + 0.5
    coords = {"trajectory": np.arange(n_traj), "time": ("time", 0.1 * np.arange(n_time),
                                                        {"units": "1"}),
              "y": np.arange(8.0), "x": np.arange(6.0)}
    return xr.Dataset({"u": (("trajectory", "time", "y", "x"), fields[0], {"units": "m s-1"}),
                       "v": (("trajectory", "time", "y", "x"), fields[1], {"units": "m s-1"})},
                      coords=coords, attrs={"system": "toy"})


def test_exact_round_trip_on_rank_k_and_unseen_data():
    train, unseen = _rank_k(seed=0), _rank_k(seed=0, n_traj=1, n_time=7)
    # unseen: new coefficients on the same modes
    rng = np.random.default_rng(5)
    modes = np.random.default_rng(0).normal(size=(3, 2, 8, 6))
    coef = rng.normal(size=(1, 7, 3))
    f = np.einsum("btk,kcyx->cbtyx", coef, modes) + 0.5
    unseen = unseen.copy(data={"u": f[0], "v": f[1]})
    pod = POD(n_modes=3).fit(train)
    z = pod.transform(unseen)
    assert z.z.dims == ("trajectory", "time", "latent") and z.sizes["latent"] == 3
    back = pod.inverse_transform(z)
    xr.testing.assert_allclose(back, unseen[["u", "v"]].transpose(*back.u.dims), atol=1e-10)
    # coefficients are read in label order (reordered ones decoded to other fields)
    xr.testing.assert_allclose(pod.inverse_transform(z.isel(latent=[2, 0, 1])), back)
    with pytest.raises(ValueError, match="'latent' labels"):
        pod.inverse_transform(z.isel(latent=[0, 2]))
    assert back.u.attrs == {"units": "m s-1"} and back.attrs["system"] == "toy"
    np.testing.assert_allclose(pod.components_ @ pod.components_.T, np.eye(3), atol=1e-12)
    assert pod.explained_variance_ratio_.sum() == pytest.approx(1.0)
    # fewer modes: the error is the discarded variance
    pod2 = POD(n_modes=2).fit(train)
    residual = train - pod2.inverse_transform(pod2.transform(train))
    assert float((residual.u**2).sum() + (residual.v**2).sum()) == pytest.approx(
        float(POD(n_modes=3).fit(train).singular_values_[2] ** 2), rel=1e-8)


@pytest.mark.parametrize("n_samples", [300, 40], ids=["more-samples", "more-features"])
def test_large_matrices_give_the_svd_modes_through_the_smaller_gram(monkeypatch, n_samples):
    """Above the size threshold the modes come from the top eigenpairs of the smaller Gram
    matrix (A^T A, or A A^T: the method of snapshots): the thin SVD's, up to sign."""
    from xdyn.rom import pod as pod_module

    rng = np.random.default_rng(3)
    X = rng.normal(size=(n_samples, 5)) * [10, 5, 3, 2, 1] @ rng.normal(size=(5, 120))
    X = X + 0.01 * rng.normal(size=X.shape)
    exact = POD(n_modes=4).fit(X)
    monkeypatch.setattr(pod_module, "_GRAM_ABOVE", 10)
    monkeypatch.setattr(pod_module, "_ROW_CHUNK", 64)  # the Gram matrix summed over chunks
    gram = POD(n_modes=4).fit(X)
    np.testing.assert_allclose(gram.singular_values_, exact.singular_values_, rtol=1e-10)
    np.testing.assert_allclose(gram.explained_variance_ratio_, exact.explained_variance_ratio_,
                               rtol=1e-10)
    signs = np.sign((gram.components_ * exact.components_).sum(1))
    np.testing.assert_allclose(gram.components_ * signs[:, None], exact.components_, atol=1e-8)
    np.testing.assert_allclose(gram.components_ @ gram.components_.T, np.eye(4), atol=1e-10)


def test_numpy_and_dataarray_paths():
    train = _rank_k()
    matrix = train.u.isel(trajectory=0).values.reshape(30, -1)
    pod = POD(n_modes=3).fit(matrix)
    z = pod.transform(matrix)
    assert isinstance(z, np.ndarray) and z.shape == (30, 3)
    np.testing.assert_allclose(pod.inverse_transform(z), matrix, atol=1e-10)
    da = train.u.isel(trajectory=0)
    zd = POD(n_modes=3).fit(da).transform(da)
    assert isinstance(zd, xr.DataArray) and zd.dims == ("time", "latent")


def test_linear_dynamics_recovers_a_linear_system():
    rng = np.random.default_rng(1)
    theta = 0.3
    A = 0.99 * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    z = np.empty((3, 80, 2))
    z[:, 0] = rng.normal(size=(3, 2))
    for t in range(79):
        z[:, t + 1] = z[:, t] @ A.T
    modes = np.linalg.qr(rng.normal(size=(40, 2)))[0].T
    fields = z @ modes
    ds = xr.Dataset({"w": (("trajectory", "time", "k"), fields)},
                    coords={"time": np.arange(80.0)})
    model = PODLinearDynamics(n_modes=2).fit(ds.isel(time=slice(0, 60)))
    np.testing.assert_allclose(np.sort(np.abs(np.linalg.eigvals(model.A_))), [0.99, 0.99],
                               atol=1e-6)
    forecast = model.predict(ds.isel(time=slice(0, 60)), n_steps=20)
    assert forecast.time.values.tolist() == list(np.arange(60.0, 80.0))
    truth = ds.w.isel(time=slice(60, 80))
    np.testing.assert_allclose(forecast.w, truth, atol=1e-6)  # ridge 1e-8: tiny bias


def test_clone_pickle_and_errors():
    train = _rank_k()
    pod = PODLinearDynamics(n_modes=2).fit(train)
    again = pickle.loads(pickle.dumps(pod))
    np.testing.assert_allclose(again.A_, pod.A_)
    assert clone(pod).get_params() == pod.get_params()
    with pytest.raises(NotFittedError):
        POD().transform(train)
    with pytest.raises(ValueError, match="n_modes"):
        POD(n_modes=0).fit(train)
    with pytest.raises(ValueError, match="n_modes=500"):
        POD(n_modes=500).fit(train)
    with pytest.raises(ValueError, match="sample dim 'step'"):
        POD(sample_dim="step").fit(train)
    bad = train.copy(deep=True)
    bad.u[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        POD(n_modes=2).fit(bad)
    with pytest.raises(ValueError, match="n_steps"):
        pod.predict(train, n_steps=0)
    with pytest.raises(ValueError):
        pod.transform(train.isel(x=slice(0, 3)))
    with pytest.raises(ValueError, match="latent"):
        pod.inverse_transform(np.zeros((4, 5)))


def _wave(times):
    x = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    t = 0.1 * np.arange(len(times))
    return xr.Dataset({"u": (("time", "x"), np.sin(x[None] - t[:, None]))},
                      coords={"time": ("time", times, {"units": "h"})})


def test_rollout_is_labelled_with_the_training_step():
    ds = _wave(0.1 * np.arange(80))
    model = PODLinearDynamics(n_modes=2).fit(ds.isel(time=slice(0, 40)))
    assert model.time_step_ == pytest.approx(0.1, rel=1e-12)
    # a single snapshot starts a rollout too: its labels come from the training step
    one = model.predict(ds.isel(time=[39]), n_steps=4)
    np.testing.assert_allclose(one.time, [4.0, 4.1, 4.2, 4.3], rtol=1e-12)
    assert one.time.attrs == {"units": "h"}
    np.testing.assert_allclose(one.u, ds.u.isel(time=slice(40, 44)), atol=1e-6)
    # a context sampled every 0.2: the model still steps 0.1, so refuse it
    with pytest.raises(ValueError, match=r"time step 0\.2 differs from the training time step "
                                         r"0\.1"):
        model.predict(ds.isel(time=slice(0, 40, 2)), n_steps=4)
    with pytest.raises(ValueError, match="unevenly spaced"):
        PODLinearDynamics(n_modes=2).fit(ds.isel(time=[0, 1, 2, 4, 5]))
    # float32 times far from zero: their rounding is no other step
    far = ds.assign_coords(time=(1000 + 0.1 * np.arange(80)).astype(np.float32))
    fitted = PODLinearDynamics(n_modes=2).fit(far.isel(time=slice(0, 40)))
    assert fitted.predict(far.isel(time=slice(30, 40)), n_steps=2).sizes["time"] == 2


def test_rollout_keeps_datetime_times():
    times = np.datetime64("2000-01-01") + np.arange(60) * np.timedelta64(6, "h")
    ds = _wave(times)
    model = PODLinearDynamics(n_modes=2).fit(ds.isel(time=slice(0, 40)))
    assert model.time_step_ == np.timedelta64(6, "h")
    forecast = model.predict(ds.isel(time=slice(0, 40)), n_steps=3)
    np.testing.assert_array_equal(forecast.time.values, times[40:43])
    np.testing.assert_allclose(forecast.u, ds.u.isel(time=slice(40, 43)), atol=1e-6)
    np.testing.assert_array_equal(model.predict(ds.isel(time=[39]), n_steps=1).time.values,
                                  times[40:41])
    with pytest.raises(ValueError, match="time step 0 days 12:00:00 differs from the training "
                                         "time step 0 days 06:00:00"):
        model.predict(ds.isel(time=slice(0, 40, 2)), n_steps=1)
    with pytest.raises(ValueError, match="fitted on datetime times"):
        model.predict(ds.assign_coords(time=np.arange(60.0)), n_steps=1)


def test_rollout_refuses_a_context_in_other_time_units():
    # fitted on steps of 1 hour, a context in days was rolled out and labelled 1 day a step
    ds = _wave(np.arange(60.0)).assign_coords(time=("time", np.arange(60.0), {"units": "hours"}))
    model = PODLinearDynamics(n_modes=2).fit(ds.isel(time=slice(0, 40)))
    days = ds.assign_coords(time=ds.time.assign_attrs(units="days"))
    with pytest.raises(ValueError, match="PODLinearDynamics was fitted on 'time' in units "
                                         "'hours'; X's 'time' is in 'days'"):
        model.predict(days.isel(time=slice(30, 40)), n_steps=2)
    assert model.time_units_ == "hours"
    # spellings of one unit, and a context without units, are accepted
    for attrs in ({"units": "h"}, {"units": "Hours "}, {"units": ""}, {}):
        context = ds.isel(time=slice(30, 40)).assign_coords(
            time=("time", np.arange(30.0, 40.0), attrs))
        np.testing.assert_array_equal(model.predict(context, n_steps=2).time, [40.0, 41.0])
    # fitted without units, or unpickled from before time_units_: nothing to compare
    bare = PODLinearDynamics(n_modes=2).fit(ds.isel(time=slice(0, 40)).assign_coords(
        time=np.arange(40.0)))
    assert bare.time_units_ is None
    assert bare.predict(days.isel(time=slice(30, 40)), n_steps=1).sizes["time"] == 1
    del model.time_units_
    assert model.predict(days.isel(time=slice(30, 40)), n_steps=1).sizes["time"] == 1


def test_coefficients_carry_the_fields_units():
    # they were labelled '1', though the field in cm gives coefficients 100x those in m
    train = _rank_k(n_traj=1, n_time=10)
    assert POD(2).fit(train).transform(train).z.attrs["units"] == "m s-1"
    other = train.assign(v=train.v.assign_attrs(units="K"))
    assert POD(2).fit(other).transform(other).z.attrs["units"] == "mixed"
    bare = train.assign(u=train.u.drop_attrs(), v=train.v.drop_attrs())
    assert "units" not in POD(2).fit(bare).transform(bare).z.attrs


@pytest.mark.parametrize("trajectories", [True, False])
def test_inverse_transform_keeps_a_member_dim(trajectories):
    # latents with a member dim raised xarray's "must be a permuted list" error
    train = _rank_k(n_traj=2, n_time=10)
    train = train if trajectories else train.isel(trajectory=0, drop=True)
    pod = POD(3).fit(train)
    z = pod.transform(train)
    zm = xr.concat([z, z + 0.1], "member").assign_coords(member=["a", "b"])
    back = pod.inverse_transform(zm.transpose("time", ..., "member"))
    lead = ("member", "trajectory") if trajectories else ("member",)
    assert back.u.dims == lead + ("time", "y", "x")
    assert back.member.values.tolist() == ["a", "b"]
    xr.testing.assert_allclose(back.sel(member="a", drop=True), pod.inverse_transform(z))
    xr.testing.assert_allclose(back.sel(member="b", drop=True), pod.inverse_transform(z + 0.1))


def test_scores_are_minus_the_relative_rmse():
    # POD and PODLinearDynamics had no score: a search scored them NaN
    rng = np.random.default_rng(0)
    ds = _rank_k(n_traj=1, n_time=20) + 0.1 * rng.normal(size=(1, 20, 8, 6))

    def rel(pred, truth):  # by position: the forecast times are sums of steps
        num = sum(float(((pred[v].transpose(*truth[v].dims).values - truth[v].values) ** 2)
                        .sum()) for v in ("u", "v"))
        return np.sqrt(num / sum(float((truth[v] ** 2).sum()) for v in ("u", "v")))

    pod = POD(2).fit(ds)
    assert pod.score(ds) == pytest.approx(-rel(pod.inverse_transform(pod.transform(ds)), ds))
    model = PODLinearDynamics(2).fit(ds)
    one_step = xr.concat([model.predict(ds.isel(time=slice(0, k)), n_steps=1)
                          for k in range(1, 20)], "time")
    assert model.score(ds) == pytest.approx(-rel(one_step, ds.isel(time=slice(1, None))))
    with pytest.raises(ValueError, match="at least 2 snapshots"):
        model.score(ds.isel(time=[0]))
    # and a search ranks them (it picked the first of [nan nan])
    from xdyn.model_selection import GridSearchCV
    search = GridSearchCV(POD(2), {"n_modes": [1, 4]}, cv=2).fit(ds.isel(trajectory=0))
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_ == {"n_modes": 4}


def test_an_exact_reconstruction_of_zeros_scores_zero():
    """The relative error of all-zero data rebuilt exactly is 0, not 0 / 0 (NaN)."""
    zeros = xr.Dataset({"u": (("time", "x"), np.zeros((10, 4)))}, coords={"time": np.arange(10.0)})
    assert POD(2).fit(zeros).score(zeros) == 0.0


def _ensemble(train, n_members=3, seed=7):
    """Members: the training fields plus their own noise, with a labelled member coordinate."""
    rng = np.random.default_rng(seed)
    noise = [0.1 * rng.normal(size=train.u.shape) for _ in range(n_members)]
    members = [train + xr.DataArray(n, dims=train.u.dims) for n in noise]
    return xr.concat(members, "member").assign_coords(member=[f"m{i}" for i in
                                                              range(n_members)])


@pytest.mark.parametrize("trajectories", [True, False])
def test_transform_keeps_a_member_dim_member_by_member(trajectories):
    # an ensemble's member dim was read as a feature dim of the fitted layout and refused
    train = _rank_k(n_traj=2, n_time=12)
    train = train if trajectories else train.isel(trajectory=0, drop=True)
    ens = _ensemble(train).transpose("time", ..., "member")  # any storage order
    pod = POD(3).fit(train)
    z = pod.transform(ens)
    lead = ("member", "trajectory") if trajectories else ("member",)
    assert z.z.dims == lead + ("time", "latent")
    assert z.member.values.tolist() == ["m0", "m1", "m2"] and z.z.attrs["units"] == "m s-1"
    for m in z.member.values:
        xr.testing.assert_allclose(z.sel(member=m, drop=True),
                                   pod.transform(ens.sel(member=m, drop=True)), atol=1e-12)
    # at full rank the round trip gives the ensemble back, member coordinate included
    rich = _rank_k(n_traj=2, n_time=60)  # 120 snapshots of 96 features, all of them spanned
    rich = rich + 0.1 * np.random.default_rng(1).normal(size=rich.u.shape)
    rich = rich if trajectories else rich.stack(s=("trajectory", "time")).drop_vars(
        ["s", "trajectory", "time"]).rename(s="time").transpose("time", ...)
    full = POD(2 * 8 * 6).fit(rich)
    back = full.inverse_transform(full.transform(ens))
    assert back.u.dims == lead + ("time", "y", "x") and back.member.equals(ens.member)
    xr.testing.assert_allclose(back, ens.transpose(*back.u.dims), atol=1e-9)
    # score reads members as trajectories: the score of the members' snapshots side by side
    side = xr.concat([ens.sel(member=m, drop=True) for m in ens.member.values],
                     "trajectory" if trajectories else "time")
    if not trajectories:
        side = side.assign_coords(time=np.arange(side.sizes["time"]))
    assert pod.score(ens) == pytest.approx(pod.score(side), rel=1e-12)
    # only 'member' is an ensemble's dim: another unknown dim is still refused, named
    with pytest.raises(ValueError, match="'realization': 3"):
        pod.transform(ens.rename(member="realization"))
    # a DataArray too
    zd = POD(3).fit(train.u).transform(ens.u)
    assert isinstance(zd, xr.DataArray) and zd.dims == lead + ("time", "latent")


def test_fit_refuses_a_member_dim_and_says_how_to_fit_on_members():
    # fit read an ensemble's member dim as a feature (joint modes of the members) while
    # transform read it as members: the fitted POD refused one member. Refused at fit now
    train = _rank_k(n_traj=2, n_time=12)
    ens = _ensemble(train)
    for X, kw in [(ens, {}), (ens.isel(trajectory=0, drop=True), {}),
                  (ens.isel(trajectory=0, drop=True), {"trajectory_dim": None})]:
        with pytest.raises(ValueError, match="X has a 'member' dim .* make them trajectories"):
            POD(3, **kw).fit(X)
        with pytest.raises(ValueError, match="X has a 'member' dim"):
            PODLinearDynamics(3, **kw).fit(X)
    # the message's recipe: members as trajectories; then transform reads members as members
    runs = xr.concat([ens.sel(member=m, drop=True) for m in ens.member.values], "trajectory")
    pod = POD(3).fit(runs)
    assert pod.n_features_in_ == 2 * 8 * 6
    xr.testing.assert_allclose(pod.transform(ens).sel(member="m1", drop=True),
                               pod.transform(ens.sel(member="m1", drop=True)))
    # members as features: by another name, as the message says
    joint = POD(3).fit(ens.isel(trajectory=0, drop=True).rename(member="realization"))
    assert joint.n_features_in_ == 3 * 2 * 8 * 6


def test_a_member_feature_dim_of_an_older_fit_stays_a_feature():
    # a model fitted before fit refused 'member' may have it among its features: still read so
    import dataclasses

    train = _ensemble(_rank_k(n_traj=1, n_time=12).isel(trajectory=0, drop=True))
    pod = POD(3).fit(train.rename(member="realization"))
    info = pod.layout_.info

    def swap(dims):
        return tuple("member" if d == "realization" else d for d in dims)

    pod.layout_.info = dataclasses.replace(info, variables=tuple(
        dataclasses.replace(v, dims=swap(v.dims), feature_dims=swap(v.feature_dims))
        for v in info.variables), coords=info.coords.rename(realization="member"))
    assert pod.transform(train).z.dims == ("time", "latent")


@pytest.mark.parametrize("model", [POD(3), PODLinearDynamics(3)], ids=type)
def test_trajectory_dim_member_is_refused(model):
    # trajectory_dim='member' was accepted: forecasts came back with the runs on 'member',
    # which xdyn.metrics read as one ensemble. Refused, as the forecasters refuse it
    train = _rank_k(n_traj=2, n_time=12)
    model = clone(model).set_params(trajectory_dim="member")
    with pytest.raises(ValueError, match="trajectory_dim='member' names a dim that the ROMs"):
        model.fit(train.rename(trajectory="member"))
    with pytest.raises(ValueError, match="trajectory_dim='member'"):
        model.fit(train.u.isel(trajectory=0).values.reshape(12, -1))  # an array too
    fitted = POD(3).fit(train).set_params(trajectory_dim="member")
    with pytest.raises(ValueError, match="trajectory_dim='member'"):
        fitted.inverse_transform(POD(3).fit(train).transform(train))


@pytest.mark.parametrize("lazy", [False, True])
def test_coordinates_along_member_are_kept(lazy):
    # non-index coordinates along 'member' (a seed per member) were dropped by transform,
    # inverse_transform and predict
    train = _rank_k(n_traj=2, n_time=12)
    ens = _ensemble(train).assign_coords(seed=("member", [7, 8, 9], {"units": "1"}))
    model = PODLinearDynamics(3).fit(train)
    X = ens.chunk({"time": 4}) if lazy else ens
    z = model.transform(X)
    back = model.inverse_transform(z)
    forecast = model.predict(X, n_steps=2)
    for out in (z, back, forecast):
        assert out.seed.dims == ("member",) and out.seed.values.tolist() == [7, 8, 9]
        assert out.seed.attrs == {"units": "1"}
        assert out.member.values.tolist() == ["m0", "m1", "m2"]


@pytest.mark.parametrize("lazy", [False, True])
def test_coordinates_along_trajectory_and_time_are_kept(lazy):
    # a seed(trajectory) was dropped by transform and inverse_transform (kept by predict), a
    # valid_hour(time) by both, although their times are the input's own
    train = _rank_k(n_traj=2, n_time=12)
    X = train.assign_coords(seed=("trajectory", [3, 4], {"units": "1"}),
                            valid_hour=("time", 6 * np.arange(12)))
    model = PODLinearDynamics(3).fit(train)
    z = model.transform(X.chunk({"time": 4}) if lazy else X)
    back = model.inverse_transform(z)
    forecast = model.predict(X, n_steps=2)
    for out in (z, back, forecast):
        assert out.seed.dims == ("trajectory",) and out.seed.values.tolist() == [3, 4]
        assert out.seed.attrs == {"units": "1"}
    for out in (z, back):
        xr.testing.assert_identical(out.valid_hour, X.valid_hour)
    assert "valid_hour" not in forecast.coords  # new times: their hours are not known
    xr.testing.assert_allclose(back.u, X.u, atol=1e-8)


def test_a_variable_without_the_trajectory_or_member_dim_is_shared():
    # a forcing on (time, y, x) only is the same in every trajectory and member, as before
    train = _rank_k(n_traj=2, n_time=12)
    shared = train.assign(v=train.v.isel(trajectory=0, drop=True))
    pod = POD(3).fit(shared)
    assert pod.transform(shared).z.dims == ("trajectory", "time", "latent")
    ens = _ensemble(train).assign(v=train.v.isel(trajectory=0, drop=True))
    full = ens.assign(v=ens.v.broadcast_like(ens.u))
    xr.testing.assert_allclose(pod.transform(ens), pod.transform(full))


def test_the_lazy_graph_grows_with_the_chunks_not_the_members():
    # members x trajectories were stacked one part at a time: 7,113 tasks for 10 chunks of a
    # 100-member ensemble; one flatten_variables of them all keeps it to a few per chunk
    train = _rank_k(n_traj=4, n_time=10)
    ens = xr.concat([train + k for k in range(40)], "member")
    pod = POD(3).fit(train)
    z = pod.transform(ens.chunk({"member": 10}))
    assert len(dict(z.z.data.__dask_graph__())) < 150  # 59 for 4 chunks; 2,331 before
    xr.testing.assert_allclose(z.compute(), pod.transform(ens), atol=1e-10)
    back = pod.inverse_transform(z)  # unstacked at once too
    assert len(dict(back.u.data.__dask_graph__())) < 250  # 93
    xr.testing.assert_allclose(back.compute(), pod.inverse_transform(pod.transform(ens)))


def test_linear_dynamics_steps_each_member_as_a_trajectory():
    train = _rank_k(n_traj=2, n_time=20)
    ens = _ensemble(train)
    model = PODLinearDynamics(3).fit(train)
    forecast = model.predict(ens, n_steps=4)
    assert forecast.u.dims == ("member", "trajectory", "time", "y", "x")
    assert forecast.member.values.tolist() == ["m0", "m1", "m2"]
    for m in ens.member.values:
        xr.testing.assert_allclose(forecast.sel(member=m, drop=True),
                                   model.predict(ens.sel(member=m, drop=True), n_steps=4))
    side = xr.concat([ens.sel(member=m, drop=True) for m in ens.member.values], "trajectory")
    assert model.score(ens) == pytest.approx(model.score(side), rel=1e-12)


def _no_compute(dsk, keys, **kwargs):
    raise AssertionError("dask computed where nothing should be computed")


@pytest.mark.parametrize("kind", ["Dataset", "DataArray", "array"])
def test_transform_and_inverse_transform_stay_lazy(kind):
    # to_trajectories read the whole record with .values: a long record did not stream
    import dask
    import dask.array as dsa

    train = _rank_k(n_traj=2, n_time=40)
    if kind == "array":
        train = train.u.isel(trajectory=0).values.reshape(40, -1)
        lazy = dsa.from_array(train, chunks=(10, 48))
    else:
        train = train if kind == "Dataset" else train.u
        lazy = train.chunk({"time": 10, "x": 3})
    pod = PODLinearDynamics(3).fit(train)
    with dask.config.set(scheduler=_no_compute):
        z = pod.transform(lazy)
        back = pod.inverse_transform(z)
    data = (lambda a: a) if kind == "array" else (lambda a: (a.z if kind == "Dataset" else a).data)
    assert isinstance(data(z), dsa.Array)
    assert isinstance(back if kind == "array" else (back.u if kind == "Dataset" else back).data,
                      dsa.Array)
    if kind == "array":
        np.testing.assert_allclose(z.compute(), pod.transform(train), atol=1e-12)
        np.testing.assert_allclose(back.compute(), pod.inverse_transform(pod.transform(train)),
                                   atol=1e-12)
        return
    assert z.time.attrs == {"units": "1"}
    assert data(z).chunks[-2] == (10, 10, 10, 10)  # chunk by chunk along time
    eager = pod.transform(train)
    xr.testing.assert_allclose(z.compute(), eager, rtol=1e-12, atol=1e-12)
    assert data(z).shape == data(eager).shape and \
        (z.z if kind == "Dataset" else z).attrs == (eager.z if kind == "Dataset" else eager).attrs
    xr.testing.assert_allclose(back.compute(), pod.inverse_transform(pod.transform(train)),
                               atol=1e-12)
    assert (back if kind == "DataArray" else back.u).attrs == {"units": "m s-1"}


def test_lazy_transform_refuses_nan_when_computed():
    train = _rank_k(n_traj=1, n_time=20)
    pod = POD(2).fit(train)
    bad = train.copy(deep=True)
    bad.v[0, 13, 0, 0] = np.nan
    z = pod.transform(bad.chunk({"time": 5}))
    with pytest.raises(ValueError, match=r"NaN or infinite values \(variable\(s\) \['v'\]\)"):
        z.compute()
    with pytest.raises(ValueError, match=r"NaN or infinite values \(variable\(s\) \['v'\]\)"):
        pod.transform(bad)  # numpy: at once, as before
