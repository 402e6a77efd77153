"""Closures learn a known conditional law y | x = f(x) + s(x) eps (see conftest).

Each closure is fitted on one sample and scored on a held-out one: the error
of its mean against the known conditional mean, relative to the known noise
level, and the coverage of its +-1 std band over the noisy truth (68% when
calibrated). The tolerances leave room for small training runs and fail for a
closure that predicts the climatological mean (mean error ~ 4 std) or has no
or a constant spread.
"""

import pickle
import warnings

import numpy as np
import pytest
import xarray as xr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from xdyn.closure import DiffusionClosure, GPClosure, VAEClosure
from xdyn.metrics import picp

FAST = {
    "gp": lambda: GPClosure(2, 2, max_epochs=40, random_state=0),
    "vae": lambda: VAEClosure(2, 2, hidden=64, max_epochs=50, lr=3e-3, random_state=0),
    "diffusion": lambda: DiffusionClosure(2, 2, hidden=64, n_diffusion_steps=50, max_epochs=100,
                                          lr=3e-3, random_state=0),
}
N_TRAIN = {"gp": 200, "vae": 1500, "diffusion": 1500}


def _scores(closure, data, n_train, heteroscedastic):
    X, Y, _, _ = data(n_train, 0, heteroscedastic)
    Xt, Yt, mean_t, std_t = data(400, 1, heteroscedastic)
    mean, std = closure.fit(X, Y).predict(Xt, return_std=True)
    climatology_err = np.sqrt(((Y.mean(0) - mean_t) ** 2).mean())
    err = np.sqrt(((mean - mean_t) ** 2).mean())
    coverage = float(np.mean(np.abs(Yt - mean) <= std))
    return err / np.sqrt((std_t ** 2).mean()), err / climatology_err, coverage, std / std_t


@pytest.mark.parametrize("name", ["vae", pytest.param("diffusion", marks=pytest.mark.slow)])
def test_generative_closure_learns_heteroscedastic_law(closure_data, name):
    rel_err, skill, coverage, std_ratio = _scores(FAST[name](), closure_data, N_TRAIN[name], True)
    # the diffusion model's mean is a 64-draw Monte Carlo estimate of a less trained model
    assert skill < (0.2 if name == "vae" else 0.3), f"{name}: mean error {skill:.2f} of climatology's"
    assert rel_err < (0.6 if name == "vae" else 0.7), f"{name}: mean error {rel_err:.2f} noise std"
    assert 0.58 < coverage < 0.78, f"{name}: +-1 std coverage {coverage:.3f}"
    # the spread follows the noise level: larger where the truth's is larger
    assert 0.6 < np.median(std_ratio) < 1.6


@pytest.mark.slow
def test_diffusion_learns_short_run(closure_data):
    """A shorter diffusion run: better than climatology, a spread of the right size."""
    closure = FAST["diffusion"]().set_params(max_epochs=60)
    rel_err, skill, coverage, std_ratio = _scores(closure, closure_data, 1500, True)
    assert skill < 0.5, f"mean error {skill:.2f} of the climatology's"
    assert 0.45 < coverage < 0.9
    assert 0.5 < np.median(std_ratio) < 2.0


def test_gp_recovers_known_function_and_noise(closure_data):
    rel_err, skill, coverage, std_ratio = _scores(FAST["gp"](), closure_data, N_TRAIN["gp"], False)
    assert skill < 0.15 and rel_err < 0.5
    assert 0.6 < coverage < 0.76
    assert np.allclose(np.median(std_ratio), 1.0, atol=0.15)


def test_sparse_gp_above_threshold(closure_data):
    X, Y, _, _ = closure_data(600, 0, False)
    Xt, Yt, mean_t, std_t = closure_data(300, 1, False)
    gp = GPClosure(2, 2, exact_max_samples=100, n_inducing=32, max_epochs=15, batch_size=200,
                   random_state=0).fit(X, Y)
    assert gp.sparse_
    mean, std = gp.predict(Xt, return_std=True)
    err = np.sqrt(((mean - mean_t) ** 2).mean())
    climatology_err = np.sqrt(((Y.mean(0) - mean_t) ** 2).mean())
    assert err < 0.3 * climatology_err
    assert err < 0.9 * np.sqrt((std_t ** 2).mean())
    assert 0.55 < np.mean(np.abs(Yt - mean) <= std) < 0.85


def test_dataset_in_dataset_out_and_samples(closure_data):
    X, Y, _, _ = closure_data(150, 0, False, as_dataset=True)
    Xt, Yt, _, _ = closure_data(20, 1, False, as_dataset=True)
    gp = GPClosure(2, 2, max_epochs=20, random_state=0).fit(X, Y)
    mean, std = gp.predict(Xt, return_std=True)
    assert isinstance(mean, xr.Dataset) and mean.w.dims == ("time", "x")
    np.testing.assert_array_equal(mean.x, Y.x)
    np.testing.assert_array_equal(mean.time, Xt.time)
    assert mean.w.attrs["units"] == "s-1"
    samples = gp.sample(Xt, n_samples=200, random_state=1)
    assert samples.w.dims == ("member", "time", "x") and samples.sizes["member"] == 200
    # sample moments agree with predict's (Gaussian predictive)
    np.testing.assert_allclose(samples.w.mean("member"), mean.w, atol=4 * float(std.w.max()) / 14)
    np.testing.assert_allclose(samples.w.std("member"), std.w, rtol=0.25)
    # same seed, same draws
    again = gp.sample(Xt, n_samples=200, random_state=1)
    xr.testing.assert_identical(samples, again)
    assert float(picp(mean.w, std.w, Yt.w)) > 0.4


def test_residual_outside_basis_enters_the_spread(closure_data):
    # one output mode of a two-mode field: the second mode's variance is the residual's
    X, Y, _, _ = closure_data(200, 0, False)
    Xt, Yt, _, _ = closure_data(200, 1, False)
    kept = GPClosure(2, 1, max_epochs=30, random_state=0).fit(X, Y)
    dropped = clone(kept).set_params(residual="none").fit(X, Y)
    mean, std = kept.predict(Xt, return_std=True)
    _, std_none = dropped.predict(Xt, return_std=True)
    assert (std > std_none).all()
    assert 0.6 < np.mean(np.abs(Yt - mean) <= std) < 0.78
    assert np.mean(np.abs(Yt - mean) <= std_none) < 0.6


def test_spread_scale_widens_the_spread_and_keeps_the_mean(closure_data):
    X, Y, _, _ = closure_data(200, 0, True)
    Xt, Yt, _, _ = closure_data(400, 1, True)
    Xc, Yc, _, _ = closure_data(400, 2, True)
    gp = GPClosure(2, 1, max_epochs=30, random_state=0).fit(X, Y)
    wide = clone(gp).set_params(spread_scale=2.5).fit(X, Y)
    mean, std = gp.predict(Xt, return_std=True)
    mean_w, std_w = wide.predict(Xt, return_std=True)
    np.testing.assert_allclose(mean_w, mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(std_w, 2.5 * std, rtol=1e-6)
    # every draw (residual outside the one-mode basis included) moves 2.5x as far
    draws, draws_w = (c.sample(Xt[:20], 4, random_state=3) for c in (gp, wide))
    np.testing.assert_allclose(draws_w - mean[:20], 2.5 * (draws - mean[:20]), rtol=1e-5,
                               atol=1e-6)
    # split-conformal: a scale from one held-out set calibrates the +-1 std band on another
    narrow = clone(gp).set_params(spread_scale=0.3).fit(X, Y)
    m, s = narrow.predict(Xc, return_std=True)
    assert np.mean(np.abs(Yt - narrow.predict(Xt)) <= narrow.predict(Xt, True)[1]) < 0.35
    scale = np.quantile(np.abs(Yc - m) / s, 0.6827)
    narrow.set_params(spread_scale=0.3 * scale)
    m, s = narrow.predict(Xt, return_std=True)
    assert 0.63 < np.mean(np.abs(Yt - m) <= s) < 0.73
    vae = VAEClosure(2, 2, hidden=16, max_epochs=3, spread_scale=2.0, random_state=0).fit(X, Y)
    center = vae.predict(Xt[:5])
    draws = vae.sample(Xt[:5], 3, random_state=0)
    unscaled = clone(vae).set_params(spread_scale=1.0).fit(X, Y).sample(Xt[:5], 3,
                                                                     random_state=0)
    assert np.abs(draws - center).mean() > 1.5 * np.abs(unscaled - center).mean()
    with pytest.raises(ValueError, match="spread_scale"):
        GPClosure(spread_scale=0).fit(X, Y)


@pytest.mark.parametrize("name", sorted(FAST))
def test_clone_pickle_and_seed(closure_data, name):
    X, Y, _, _ = closure_data(120, 0, True)
    closure = FAST[name]().set_params(max_epochs=3)
    assert clone(closure).get_params() == closure.get_params()
    with pytest.raises(NotFittedError):
        closure.predict(X)
    closure.fit(X, Y)
    restored = pickle.loads(pickle.dumps(closure))
    np.testing.assert_allclose(restored.sample(X[:5], 3, random_state=2),
                               closure.sample(X[:5], 3, random_state=2), rtol=1e-5, atol=1e-6)
    other = clone(closure).fit(X, Y)
    np.testing.assert_allclose(other.predict(X[:5]), closure.predict(X[:5]), rtol=1e-4,
                               atol=1e-5)


def test_bad_input(closure_data):
    X, Y, _, _ = closure_data(60, 0, False)
    gp = GPClosure(2, 2, max_epochs=2)
    with pytest.raises(ValueError, match="same number of samples"):
        gp.fit(X, Y[:-1])
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        gp.fit(bad, Y)
    with pytest.raises(ValueError, match="n_output_modes=40"):
        GPClosure(2, 40).fit(X, Y)
    with pytest.raises(ValueError, match="n_input_modes"):
        GPClosure(n_input_modes=0).fit(X, Y)
    gp.fit(X, Y)
    with pytest.raises(ValueError, match="24"):
        gp.predict(X[:, :5])
    with pytest.raises(ValueError, match="n_samples"):
        gp.sample(X, n_samples=0)
    Xd, Yd, _, _ = closure_data(60, 0, False, as_dataset=True)
    with pytest.raises(ValueError, match="sample dim 'step'"):
        GPClosure(2, 2, sample_dim="step").fit(Xd, Yd)
    gp_ds = GPClosure(2, 2, max_epochs=2).fit(Xd, Yd)
    with pytest.raises(ValueError, match="w"):
        gp_ds.predict(Xd.rename(w="q"))


def test_float32_training_fields_give_the_float64_fit(closure_data):
    """A float32 training set stays float32 (memory) and fits what its float64 copy fits;
    the truncation residual's moments, accumulated in row chunks, are the whole set's."""
    X, Y, _, _ = closure_data(300, 0, True)
    Y = Y + 0.05 * np.random.RandomState(1).normal(size=Y.shape)  # a residual outside 2 modes
    closures = [GPClosure(2, 2, max_epochs=5, random_state=0).fit(X.astype(dtype),
                                                                  Y.astype(dtype))
                for dtype in (np.float64, np.float32)]
    full, single = closures
    assert single.output_pca_.components_.dtype == np.float32  # never copied to float64
    resid = Y - full.output_pca_.inverse_transform(full.output_pca_.transform(Y))
    np.testing.assert_allclose(full.residual_var_, (resid ** 2).mean(0), rtol=1e-10)
    chunked = full._residual_stats(Y, full.output_pca_.transform(Y), np.array([0, 7, 299]),
                                   chunk=7)
    np.testing.assert_allclose(chunked[0], full.residual_var_, rtol=1e-10)
    np.testing.assert_allclose(chunked[1], resid[[0, 7, 299]], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(single.residual_var_, full.residual_var_, rtol=1e-3)
    mean64, std64 = full.predict(X[:20], return_std=True)
    mean32, std32 = single.predict(X[:20].astype(np.float32), return_std=True)
    assert mean32.dtype == np.float64
    np.testing.assert_allclose(mean32, mean64, atol=1e-3 * np.abs(mean64).max())
    np.testing.assert_allclose(std32, std64, rtol=1e-3)


def test_labelled_y_is_paired_with_x_by_label(closure_data):
    """Y stored in another time order fits what Y in X's order fits; other times raise."""
    X, Y, _, _ = closure_data(80, 0, False, as_dataset=True)
    gp = GPClosure(2, 2, max_epochs=5, random_state=0, residual="none")
    ref = clone(gp).fit(X, Y).predict(X)
    rev = clone(gp).fit(X, Y.isel(time=slice(None, None, -1))).predict(X)
    np.testing.assert_allclose(rev.w, ref.w, rtol=1e-6, atol=1e-6)
    shuffled = Y.isel(time=np.random.RandomState(0).permutation(80))
    np.testing.assert_allclose(clone(gp).fit(X, shuffled).predict(X).w, ref.w, rtol=1e-6,
                               atol=1e-6)
    with pytest.raises(ValueError, match="same 'time' labels"):
        clone(gp).fit(X, Y.assign_coords(time=Y.time + 0.05))
    with pytest.raises(ValueError, match="same 'time' labels"):  # right count, one label off
        clone(gp).fit(X, Y.assign_coords(time=np.r_[Y.time.values[:-1], 99.0]))
    # trajectories: paired by (trajectory, time) labels, stored in any order
    Xt = xr.concat([X, X + 1], "trajectory").assign_coords(trajectory=[3, 7])
    Yt = xr.concat([Y, 2 * Y], "trajectory").assign_coords(trajectory=[3, 7])
    ref_t = clone(gp).fit(Xt, Yt).predict(Xt)
    flipped = Yt.isel(trajectory=[1, 0], time=slice(None, None, -1)).transpose("time", ...)
    np.testing.assert_allclose(clone(gp).fit(Xt, flipped).predict(Xt).w, ref_t.w, rtol=1e-6,
                               atol=1e-6)
    with pytest.raises(ValueError, match="same 'trajectory' labels"):
        clone(gp).fit(Xt, Yt.assign_coords(trajectory=[3, 8]))


def test_score_pairs_y_with_x_by_label_as_fit_does(closure_data):
    """score refused Y holding X's times in another order (exact alignment), and a Y with a
    trajectory dim that X lacks was broadcast against the prediction and scored silently;
    fit pairs by label and refuses the latter."""
    X, Y, _, _ = closure_data(60, 0, False, as_dataset=True)
    gp = GPClosure(2, 2, max_epochs=3, random_state=0).fit(X, Y)
    ref = gp.score(X, Y)
    shuffled = Y.isel(time=np.random.RandomState(0).permutation(60))
    assert gp.score(X, shuffled) == pytest.approx(ref, rel=1e-12)
    gp_da = GPClosure(2, 2, max_epochs=3, random_state=0).fit(X.w, Y.w)
    assert gp_da.score(X.w, shuffled.w) == pytest.approx(gp_da.score(X.w, Y.w), rel=1e-12)
    with pytest.raises(ValueError, match=r"same 'time' labels.* and has \[99.0\]"):
        gp.score(X, Y.assign_coords(time=np.r_[Y.time.values[:-1], 99.0]))
    Xt = xr.concat([X, X + 1], "trajectory").assign_coords(trajectory=[3, 7])
    Yt = xr.concat([Y, 2 * Y], "trajectory").assign_coords(trajectory=[3, 7])
    gp_t = GPClosure(2, 2, max_epochs=3, random_state=0).fit(Xt, Yt)
    flipped = Yt.isel(trajectory=[1, 0], time=slice(None, None, -1))
    assert gp_t.score(Xt, flipped) == pytest.approx(gp_t.score(Xt, Yt), rel=1e-12)
    with pytest.raises(ValueError, match="same 'trajectory' labels"):
        gp_t.score(Xt, Yt.assign_coords(trajectory=[3, 8]))
    with pytest.raises(ValueError, match=r"'trajectory' \(trajectory_dim\) and X has not"):
        gp_t.score(X, Yt)


def test_sparse_gp_seeded_by_a_random_state_instance_is_reproducible(closure_data):
    X, Y, _, _ = closure_data(120, 0, False)
    fits = [GPClosure(2, 2, exact_max_samples=50, n_inducing=8, max_epochs=2, batch_size=60,
                      random_state=np.random.RandomState(0)).fit(X, Y) for _ in range(2)]
    assert fits[0].sparse_
    np.testing.assert_array_equal(fits[0].predict(X[:10]), fits[1].predict(X[:10]))


def test_model_selection_sample_views_are_taken_as_their_data(closure_data):
    from xdyn.model_selection import samples

    X, Y, _, _ = closure_data(40, 0, False, as_dataset=True)
    gp = GPClosure(2, 2, max_epochs=2, random_state=0)
    ref = clone(gp).fit(X, Y)
    fitted = clone(gp).fit(samples(X), samples(Y))
    xr.testing.assert_allclose(fitted.predict(samples(X)), ref.predict(X))
    xr.testing.assert_allclose(fitted.sample(samples(X), 2), ref.sample(X, 2))


def test_trajectory_outputs_keep_the_coordinate_attrs(closure_data):
    X, Y, _, _ = closure_data(30, 0, False, as_dataset=True)
    X.time.attrs["units"] = "hours"
    Xt = xr.concat([X, X + 1], "trajectory").assign_coords(trajectory=[3, 7])
    Xt.trajectory.attrs["long_name"] = "run"
    Yt = xr.concat([Y, 2 * Y], "trajectory").assign_coords(trajectory=Xt.trajectory)
    gp = GPClosure(2, 2, max_epochs=2, random_state=0).fit(Xt, Yt)
    mean, std = gp.predict(Xt, return_std=True)
    for out in (mean, std, gp.sample(Xt, 2)):
        assert out.time.attrs == {"units": "hours"}
        assert out.trajectory.attrs == {"long_name": "run"}


def test_score_is_minus_the_relative_l2_error_of_the_mean():
    """Closures had no score: sklearn's cross_val_score refused them, and a model search had
    nothing to rank them by."""
    from sklearn.model_selection import cross_val_score

    from xdyn.closure import GPClosure
    from xdyn.metrics import relative_l2

    rng = np.random.RandomState(0)
    X = xr.Dataset({"u": (("time", "x"), rng.normal(size=(40, 4)))},
                   coords={"time": np.arange(40.0)})
    Y = X**2
    closure = GPClosure(2, 2, max_epochs=3, random_state=0).fit(X, Y)
    expected = -float(relative_l2(closure.predict(X).u, Y.u))
    assert closure.score(X, Y) == pytest.approx(expected)
    assert -1.0 < expected < 0.0
    on_arrays = GPClosure(2, 2, max_epochs=3, random_state=0).fit(X.u.values, Y.u.values)
    assert on_arrays.score(X.u.values, Y.u.values) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match=r"Y lacks the variable\(s\) \['u'\]"):
        closure.score(X, Y.rename(u="w"))
    assert np.isfinite(cross_val_score(GPClosure(2, 2, max_epochs=2, random_state=0),
                                       X.u.values, Y.u.values, cv=2)).all()


def test_fitted_on_trajectories_one_trajectory_comes_back_in_y_order(closure_data):
    # the merged (trajectory, time) sample dim was stacked last: a closure fitted on
    # trajectories gave (x, time) for X without one, so .values came back transposed
    X, Y, _, _ = closure_data(60, 0, False, as_dataset=True)
    def halves(d):
        return xr.concat([d.isel(time=slice(i, i + 30)).assign_coords(time=X.time[:30])
                          for i in (0, 30)], "trajectory")

    Xt, Yt = halves(X), halves(Y)
    gp = GPClosure(2, 2, max_epochs=2, random_state=0).fit(Xt, Yt)
    one = Xt.isel(trajectory=0)
    mean, std = gp.predict(one, return_std=True)
    assert mean.w.dims == std.w.dims == ("time", "x")
    assert gp.sample(one, 2).w.dims == ("member", "time", "x")
    xr.testing.assert_allclose(mean, gp.predict(Xt).isel(trajectory=0, drop=True))


def test_gp_predictions_on_the_training_states_do_not_warn(closure_data):
    # gpytorch's "did you forget to call model.train()?" met every training score
    X, Y, _, _ = closure_data(40, 0)
    gp = GPClosure(2, 2, max_epochs=2, random_state=0).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gp.predict(X, return_std=True)
        gp.score(X, Y)
