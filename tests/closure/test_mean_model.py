"""A closure around a mean model, and the convolutional field regressor that serves as one.

The unresolved field here is a local function of the resolved one (a discrete
Laplacian, different at every sample) plus noise, so a map between a few
global modes cannot carry it and a convolution can: the closure with a
:class:`ConvFieldRegressor` as its ``mean_model`` must find the conditional mean
far better than the same closure without, and its spread must cover the noise.
"""

import pickle

import numpy as np
import pytest
import xarray as xr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from xdyn.closure import ConvFieldRegressor, GPClosure, VAEClosure

N_GRID, NOISE = 12, 0.15


def _laplacian(a):
    return sum(np.roll(a, s, ax) for s in (1, -1) for ax in (-1, -2)) - 4 * a


def _fields(n, seed, as_dataset=True):
    """Smooth random periodic fields X (low wavenumbers) and Y = lap(X) + noise."""
    rng = np.random.RandomState(seed)
    k = np.fft.fftfreq(N_GRID, 1 / N_GRID)
    low = (np.abs(k)[:, None] <= 3) & (np.abs(k)[None, :] <= 3)
    spec = (rng.normal(size=(n, N_GRID, N_GRID)) + 1j * rng.normal(size=(n, N_GRID, N_GRID)))
    X = np.fft.ifft2(spec * low).real * 4
    mean = _laplacian(X)
    Y = mean + NOISE * rng.normal(size=X.shape)
    if not as_dataset:
        return X[:, None], Y[:, None], mean[:, None]
    coords = {"time": np.arange(n) * 0.5, "y": np.arange(N_GRID), "x": np.arange(N_GRID)}
    dims = ("time", "y", "x")
    return (xr.Dataset({"w": (dims, X, {"units": "s-1"})}, coords=coords),
            xr.Dataset({"w": (dims, Y, {"units": "s-1"})}, coords=coords),
            xr.Dataset({"w": (dims, mean)}, coords=coords))


def _regressor(**kw):
    params = dict(hidden=8, n_layers=2, kernel_size=3, max_epochs=30, lr=1e-2, random_state=0)
    return ConvFieldRegressor(**{**params, **kw})


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def test_regressor_learns_a_local_map_and_keeps_the_layout():
    X, Y, mean = _fields(300, 0)
    Xt, _, mean_t = _fields(50, 1)
    reg = _regressor().fit(X, Y)
    pred = reg.predict(Xt)
    assert isinstance(pred, xr.Dataset) and pred.w.dims == ("time", "y", "x")
    np.testing.assert_array_equal(pred.time, Xt.time)
    assert pred.w.attrs["units"] == "s-1"
    assert _rel(pred.w, mean_t.w) < 0.15
    # the training loss (standardised) falls to the noise's share of the output variance
    hist = reg.net_.history[:, "train_loss"]
    floor = NOISE ** 2 / float(Y.w.var())
    assert hist[-1] < 1.2 * floor < 0.5 * hist[0], (hist[0], hist[-1], floor)
    # arrays in, arrays out; the same fit
    Xa, Ya, _ = _fields(300, 0, as_dataset=False)
    out = _regressor().fit(Xa, Ya).predict(Xa[:5])
    np.testing.assert_allclose(out[:, 0], reg.predict(X.isel(time=slice(0, 5))).w, atol=1e-5)
    # a DataArray is one channel; the same fit again
    da = _regressor().fit(X.w, Y.w).predict(Xt.w)
    assert isinstance(da, xr.DataArray) and da.name == "w"
    np.testing.assert_allclose(da, pred.w, atol=1e-5)


def test_closure_with_mean_model_beats_the_closure_without():
    X, Y, _ = _fields(300, 0)
    Xt, Yt, mean_t = _fields(100, 1)
    plain = GPClosure(4, 4, max_epochs=30, random_state=0).fit(X, Y)
    closed = clone(plain).set_params(mean_model=_regressor()).fit(X, Y)
    err_plain = _rel(plain.predict(Xt).w, mean_t.w)
    mean, std = closed.predict(Xt, return_std=True)
    err = _rel(mean.w, mean_t.w)
    assert err_plain > 0.5 and err < 0.2, (err_plain, err)
    assert mean.w.attrs["units"] == "s-1"
    # the spread is the noise's: about 68% inside +-1 std
    assert 0.6 < float(np.mean(np.abs(Yt.w - mean.w) <= std.w)) < 0.78
    draws = closed.sample(Xt, n_samples=64, random_state=0)
    assert draws.w.dims == ("member", "time", "y", "x")
    assert _rel(draws.w.mean("member"), mean.w) < 0.1


def test_prefit_mean_model_is_used_as_is_and_must_be_fitted():
    X, Y, _ = _fields(200, 0)
    Xt, _, _ = _fields(20, 1)
    reg = _regressor().fit(X, Y)
    closure = VAEClosure(4, 4, hidden=16, max_epochs=5, random_state=0, mean_model=reg,
                         prefit_mean_model=True).fit(X, Y)
    assert closure.mean_model_ is reg
    again = pickle.loads(pickle.dumps(closure))
    xr.testing.assert_allclose(again.predict(Xt), closure.predict(Xt))
    # a clone keeps the prefit mean model, so that GridSearchCV and cross-validation (which
    # fit clones) work; it used to be cloned unfitted, and fit raised NotFittedError
    kept = clone(closure)
    assert kept.mean_model is reg
    xr.testing.assert_allclose(kept.fit(X, Y).predict(Xt), closure.predict(Xt))
    with pytest.raises(NotFittedError, match="prefit_mean_model=True"):
        clone(closure).set_params(mean_model=_regressor()).fit(X, Y)
    # the mean model's prediction given: the same fit without evaluating it
    given = clone(closure).set_params(mean_model=reg).fit(X, Y, Y_mean=reg.predict(X))
    xr.testing.assert_allclose(given.predict(Xt), closure.predict(Xt))
    with pytest.raises(ValueError, match="layout"):
        given.fit(X, Y, Y_mean=reg.predict(X.isel(time=slice(1, None))))
    with pytest.raises(ValueError, match="prefit_mean_model=True"):
        clone(closure).set_params(prefit_mean_model=False).fit(X, Y, Y_mean=Y)


def test_regressor_bad_input():
    X, Y, _ = _fields(40, 0)
    with pytest.raises(NotFittedError):
        _regressor().predict(X)
    with pytest.raises(ValueError, match="grid dims"):
        _regressor(grid_dims=("lat", "lon")).fit(X, Y)
    with pytest.raises(TypeError, match="both be Datasets, both DataArrays"):
        _regressor().fit(X, Y.w.values[:, None])
    with pytest.raises(ValueError, match="NaN"):
        _regressor().fit(X.where(X.time > 0), Y)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        _regressor(kernel_size=4).fit(X, Y)
    reg = _regressor(max_epochs=1).fit(X, Y)
    with pytest.raises(ValueError, match="variables"):
        reg.predict(X.rename(w="q"))
    with pytest.raises(TypeError, match="fitted on a Dataset"):
        reg.predict(X.w.values[:, None])


def test_regressor_pairs_samples_and_grid_by_name_and_label():
    """Y with its dims in another order, or its labels stored in another order, fits what
    Y laid out as X fits; other labels raise, naming the dim."""
    X, Y, _ = _fields(24, 0)
    Xt = xr.concat([X, -X], "trajectory").assign_coords(trajectory=[0, 1])
    Yt = xr.concat([Y, -Y], "trajectory").assign_coords(trajectory=[0, 1])
    reg = _regressor(max_epochs=2)
    ref = clone(reg).fit(Xt, Yt).predict(Xt)
    other = Yt.transpose("time", "trajectory", "x", "y").isel(time=slice(None, None, -1),
                                                              trajectory=[1, 0])
    xr.testing.assert_allclose(clone(reg).fit(Xt, other).predict(Xt), ref, atol=1e-6)
    with pytest.raises(ValueError, match="same 'time' labels"):
        clone(reg).fit(Xt, Yt.assign_coords(time=Yt.time + 100))
    with pytest.raises(ValueError, match="same 'x' labels"):
        clone(reg).fit(Xt, Yt.assign_coords(x=Yt.x + 0.5))
    with pytest.raises(ValueError, match="same sample dims"):
        clone(reg).fit(Xt, Yt.isel(trajectory=0))


def test_regressor_predicts_on_its_fitted_grid_or_refuses():
    # a descending x was convolved as stored (a forward difference came out backward: error
    # 0.98 instead of 0.16); a 4 x 4 grid was accepted from an 8 x 8 fit
    rng = np.random.RandomState(0)
    n, N = 64, 8
    X = rng.normal(size=(n, N, N))
    coords = {"time": np.arange(n) * 1.0, "y": np.arange(N) * 1.0, "x": np.arange(N) * 1.0}
    dims = ("time", "y", "x")
    dsX = xr.Dataset({"w": (dims, X)}, coords=coords)
    dsY = xr.Dataset({"w": (dims, np.roll(X, -1, -1) - X)}, coords=coords)
    reg = ConvFieldRegressor(hidden=8, n_layers=2, kernel_size=3, max_epochs=2,
                             random_state=0, device="cpu").fit(dsX, dsY)
    ref = reg.predict(dsX)
    xr.testing.assert_allclose(reg.predict(dsX.isel(x=slice(None, None, -1))).sortby("x"), ref)
    # a shifted grid of the same spacing is the same periodic problem
    np.testing.assert_allclose(reg.predict(dsX.assign_coords(x=dsX.x + 3.0)).w, ref.w)
    with pytest.raises(ValueError, match=r"on a \(4, 4\) grid.*fitted on \(8, 8\)"):
        reg.predict(dsX.isel(x=slice(0, None, 2), y=slice(0, None, 2)))
    with pytest.raises(ValueError, match="not the fitted grid's"):
        reg.predict(dsX.assign_coords(x=dsX.x * 2.0))


def test_mean_model_on_arrays_and_dataarrays():
    """A mean model's output is subtracted and added back for every kind fit takes (it
    needed Datasets: AttributeError 'data_vars' on arrays and DataArrays)."""
    from sklearn.linear_model import LinearRegression

    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    Y = X @ rng.normal(size=(3, 4))
    gp = GPClosure(2, 2, max_epochs=2, random_state=0, mean_model=LinearRegression())
    fitted = gp.fit(X, Y)
    np.testing.assert_allclose(fitted.predict(X), Y, atol=1e-6)  # Y is linear in X
    assert fitted.sample(X, 2).shape == (2, 60, 4)
    X, Y, _ = _fields(24, 0)
    reg = _regressor(max_epochs=1)
    closure = GPClosure(2, 2, max_epochs=2, random_state=0, mean_model=reg).fit(X.w, Y.w)
    mean, draws = closure.predict(X.w), closure.sample(X.w, 2)
    assert isinstance(mean, xr.DataArray) and mean.name == "w" and mean.dims == X.w.dims
    assert draws.dims == ("member", *X.w.dims)


def test_regressor_takes_a_dataarray_as_one_channel_whatever_its_name():
    X, Y, _ = _fields(16, 0)
    reg = _regressor(max_epochs=1).fit(X.w, Y.w)
    ref = reg.predict(X.w)
    xr.testing.assert_allclose(reg.predict(X.w.rename("vorticity")), ref)
    xr.testing.assert_allclose(reg.predict(X.w.rename(None)), ref)


def test_regressor_takes_model_selection_sample_views():
    from xdyn.model_selection import samples

    X, Y, _ = _fields(16, 0)
    reg = _regressor(max_epochs=1)
    ref = clone(reg).fit(X, Y).predict(X)
    xr.testing.assert_allclose(clone(reg).fit(samples(X), samples(Y)).predict(samples(X)), ref)


def test_regressor_score_is_r2_of_the_fields_paired_by_label():
    """ConvFieldRegressor's score was RegressorMixin's: a TypeError on Datasets and a
    ValueError on its (n, channels, y, x) arrays, so a model search over it (once it was
    no longer scored as a filter) had nothing to rank."""
    from sklearn.metrics import r2_score

    from xdyn.model_selection import GridSearchCV, samples

    X, Y, _ = _fields(24, 0)
    reg = _regressor(max_epochs=2).fit(X, Y)
    pred = reg.predict(X).w.values
    expected = r2_score(Y.w.values.reshape(24, -1), pred.reshape(24, -1))
    assert reg.score(X, Y) == pytest.approx(expected, rel=1e-5)
    assert reg.score(samples(X), samples(Y)) == pytest.approx(expected, rel=1e-5)
    other = Y.isel(time=slice(None, None, -1)).transpose("time", "x", "y")
    assert reg.score(X, other) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="same 'time' labels"):
        reg.score(X, Y.assign_coords(time=Y.time + 100))
    with pytest.raises(ValueError, match=r"lacks the variable\(s\) \['w'\]"):
        reg.score(X, Y.rename(w="u"))
    on_arrays = _regressor(max_epochs=2).fit(X.w.values[:, None], Y.w.values[:, None])
    assert on_arrays.score(X.w.values[:, None], Y.w.values[:, None]) == pytest.approx(
        expected, rel=1e-4)
    on_dataarrays = _regressor(max_epochs=2).fit(X.w, Y.w)
    assert on_dataarrays.score(X.w, Y.w.rename("other")) == pytest.approx(expected, rel=1e-4)
    search = GridSearchCV(_regressor(max_epochs=1), {"hidden": [4, 8]}, cv=2,
                          error_score="raise").fit(X, Y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
