"""LDNet: learning (reconstruction error falls, beats the mean field on unseen
parameters), the labelled round trip, clone/pickle and bad input."""

import pickle

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.base import clone

from xdyn.rom import LDNet

SMALL = dict(n_latent=2, n_points=16, batch_size=8, device="cpu", random_state=0,
             module__reconstruction_hidden=32, module__reconstruction_layers=2,
             module__dynamics_hidden=16, module__n_fourier=2)


def growing_mode(a, n_steps=12, n_x=16):
    """u(x, t; a) = cos(2 pi x) + a t sin(2 pi x) / n_steps: one shared start."""
    t, x = np.arange(float(n_steps)), np.arange(n_x) / n_x
    u = (np.cos(2 * np.pi * x)[None, None]
         + a[:, None, None] * t[None, :, None] / n_steps * np.sin(2 * np.pi * x)[None, None])
    return xr.Dataset({"u": (("trajectory", "time", "x"), u, {"units": "1"}),
                       "a": ("trajectory", a, {"units": "1"})},
                      coords={"time": t, "x": x})


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    return growing_mode(rng.uniform(-2, 2, 24)), growing_mode(rng.uniform(-2, 2, 8))


@pytest.fixture(scope="module")
def fitted(data):
    return LDNet(max_epochs=60, lr=1e-2, **SMALL).fit(data[0])


def test_reconstruction_error_falls_and_beats_the_mean_field(data, fitted):
    train, test = data
    assert fitted.history_[-1] < 0.05 * fitted.history_[0]
    untrained = LDNet(max_epochs=0, **SMALL).fit(train)
    err = fitted.relative_rmse(test)
    mean_field = train["u"].mean(("trajectory", "time"))
    baseline = float(np.sqrt(((test["u"] - mean_field) ** 2).mean() / (test["u"] ** 2).mean()))
    # unseen parameters: the latent ODE must have learned how a drives the field
    assert err < 0.3 * baseline, (err, baseline)
    assert err < 0.3 * untrained.relative_rmse(test)
    assert fitted.score(test) == pytest.approx(-err)


def test_round_trip_keeps_coords_and_evaluates_anywhere(data, fitted):
    _, test = data
    z = fitted.transform(test)
    assert dict(z["latent_state"].sizes) == {"trajectory": 8, "time": 12, "latent": 2}
    # the shared initial field: one step from the zero latent state, whatever a is
    first = fitted.inverse_transform(z.isel(time=[0]))["u"]
    assert float(np.abs(first - test["u"].isel(time=[0])).max()) < 0.15
    rec = fitted.inverse_transform(z)
    assert rec["u"].dims == ("trajectory", "time", "x")
    np.testing.assert_allclose(rec["x"], test["x"])
    xr.testing.assert_allclose(rec, fitted.predict(test))
    # the decoder evaluates between grid points (periodic Fourier features)
    fine = fitted.inverse_transform(z, grid={"x": np.arange(32) / 32})
    np.testing.assert_allclose(fine["u"].values[..., ::2], rec["u"].values, atol=1e-5)
    # and at scattered points, differentiably (LD-EnSF's joint likelihood)
    s = torch.as_tensor(z["latent_state"].values[:2, 5], dtype=torch.float32).requires_grad_(True)
    at = fitted.decode_points(s, {"x": np.array([0.5, 0.125, 0.5])})
    np.testing.assert_allclose(at[..., 0].detach().numpy(),
                               rec["u"].values[:2, 5][:, [8, 2, 8]], atol=1e-5)
    (grad,) = torch.autograd.grad(at.sum(), s)
    assert grad.shape == s.shape and bool(grad.abs().sum() > 0)
    with pytest.raises(ValueError, match="lack the coordinate"):
        fitted.decode_points(s, {"y": np.zeros(3)})


def test_clone_pickle_and_seed(data, fitted):
    train, test = data
    again = pickle.loads(pickle.dumps(fitted))
    xr.testing.assert_allclose(again.predict(test), fitted.predict(test))
    params = clone(fitted).get_params()
    assert params["module__reconstruction_hidden"] == 32 and "net_" not in vars(clone(fitted))
    # on one thread: with more, the BLAS may use fewer of them while the machine is busy
    # (so another order of a sum), and two fits of the same seed differ in the last bits
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = LDNet(max_epochs=2, **SMALL).fit(train).predict(test)
        b = LDNet(max_epochs=2, **SMALL).fit(train).predict(test)
    finally:
        torch.set_num_threads(before)
    xr.testing.assert_equal(a, b)


def test_bad_input(data, fitted):
    train, _ = data
    with pytest.raises(TypeError, match="Dataset"):
        LDNet(**SMALL).fit(train["u"].values)
    with pytest.raises(ValueError, match="NaN"):
        LDNet(**SMALL).fit(train.assign(u=train["u"].where(train["time"] != 3)))
    with pytest.raises(ValueError, match="'trajectory'"):
        LDNet(**SMALL).fit(train.rename(trajectory="run"))
    with pytest.raises(ValueError, match="lacks the parameter"):
        fitted.transform(train.drop_vars("a"))
    with pytest.raises(ValueError, match="n_latent"):
        LDNet(n_latent=0).fit(train)
    with pytest.raises(TypeError, match="unexpected parameter"):
        LDNet(hidden=3)
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        LDNet().transform(train)


@pytest.mark.parametrize("kind", ["fourier", "residual"])
@pytest.mark.parametrize("m", [3, 40])  # fewer and more drawn points than the 16 grid points
def test_decoding_at_grid_points_equals_decoding_their_coordinates(kind, m):
    from xdyn.nn.ldnet_modules import LDNetModule

    torch.manual_seed(0)
    net = LDNetModule(3, 1, 2, 2, coords=torch.rand(16, 2), reconstruction=kind, n_fourier=3,
                      reconstruction_hidden=8, dynamics_hidden=8)
    s = torch.randn(2, 5, 3, requires_grad=True)
    idx = torch.randint(16, (2, 5, m))
    fast = net.reconstruct_at(s, idx)
    plain = net.reconstruct(s.unsqueeze(-2).expand(2, 5, m, 3), net.coords[idx])
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)
    # and so are the gradients the training step takes
    g_fast = torch.autograd.grad(fast.square().sum(), [s, net.reconstruction.inp.weight])
    g_plain = torch.autograd.grad(plain.square().sum(), [s, net.reconstruction.inp.weight])
    for a, b in zip(g_fast, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # every latent at every grid point (decoding, LD-EnSF's members), and its forward mode
    every = net.reconstruct_points(s, net.coords)
    torch.testing.assert_close(
        every, net.reconstruct(s.unsqueeze(-2).expand(2, 5, 16, 3), net.coords),
        rtol=1e-5, atol=1e-6)
    ds = torch.randn_like(s)
    _, jvp = torch.func.jvp(lambda v: net.reconstruct_points(v, net.coords), (s,), (ds,))
    eps = 1e-3
    fd = (net.reconstruct_points(s + eps * ds, net.coords)
          - net.reconstruct_points(s - eps * ds, net.coords)) / (2 * eps)
    torch.testing.assert_close(jvp, fd, rtol=1e-2, atol=1e-3)


def test_decoder_jacobian_in_chunks_equals_forward_mode(fitted, monkeypatch):
    import xdyn.rom.ldnet as ldnet_module

    at = {"x": np.linspace(0.0, 0.9, 7)}
    s = torch.randn(3, 4, fitted.n_latent)
    f, jac = fitted.decode_points_jacobian(s, at)
    ref = torch.func.vmap(torch.func.vmap(torch.func.jacfwd(
        lambda v: fitted.decode_points(v, at))))(s)
    torch.testing.assert_close(f, fitted.decode_points(s, at), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(jac, ref, rtol=1e-4, atol=1e-6)
    monkeypatch.setattr(ldnet_module, "_DECODE_PAIRS", 4 * 7 * 5)  # 5 latents a chunk
    f_chunked, jac_chunked = fitted.decode_points_jacobian(s, at)
    torch.testing.assert_close(f_chunked, f)
    torch.testing.assert_close(jac_chunked, jac)


def test_predict_on_a_late_window_is_the_free_forecast_at_its_times(data, fitted):
    _, test = data
    full = fitted.predict(test)
    late = fitted.predict(test.isel(time=slice(3, 6)))
    np.testing.assert_array_equal(late["time"], [3.0, 4.0, 5.0])
    # before: steps 0..2 of the rollout, labelled 3..5
    np.testing.assert_allclose(late["u"], full["u"].isel(time=slice(3, 6)), rtol=1e-6)
    picked = fitted.predict(test.isel(time=[7, 2]))
    np.testing.assert_allclose(picked["u"], full["u"].isel(time=[7, 2]), rtol=1e-6)
    with pytest.raises(ValueError, match=r"not on the training time grid 0 \+ k \* 1"):
        fitted.predict(test.assign_coords(time=test["time"] / 2))
    with pytest.raises(ValueError, match="not on the training time grid"):
        fitted.transform(test.assign_coords(time=test["time"] - 1))
    # the late window's score compares the forecast at t = 3..5 with the truth there
    window = test.isel(time=slice(3, 6))
    err = float(np.sqrt(((full["u"].isel(time=slice(3, 6)) - window["u"]) ** 2).sum()
                        / (window["u"] ** 2).sum()))
    assert fitted.score(window) == pytest.approx(-err, rel=1e-5)


def test_score_matches_the_fields_by_coordinate(data, fitted):
    _, test = data
    flipped = test.isel(x=slice(None, None, -1))   # the same labelled data, x descending
    assert fitted.score(flipped) == pytest.approx(fitted.score(test), rel=1e-6)
    with pytest.raises(ValueError, match="'x' coordinate .* is not the training grid"):
        fitted.score(test.assign_coords(x=test["x"] + 0.3))
    with pytest.raises(ValueError, match="'x' coordinate .* is not the training grid"):
        fitted.score(test.isel(x=slice(0, 8)))


def test_decoded_fields_keep_the_fields_attrs():
    ds = growing_mode(np.array([-1.0, 0.0, 1.0]), n_steps=4, n_x=8)
    ds["u"] = 280 + 10 * ds["u"]
    ds["u"].attrs = {"units": "K", "long_name": "temperature"}
    rom = LDNet(max_epochs=1, **SMALL).fit(ds)
    assert rom.predict(ds)["u"].attrs == {"units": "K", "long_name": "temperature"}
    assert float(rom.predict(ds)["u"].mean()) > 200   # in kelvin, as labelled


def test_times_in_other_units_than_the_training_times_raise(data):
    # fitted on time in hours, times in days were read as the same steps
    train, test = data
    train = train.assign_coords(time=train.time.assign_attrs(units="hours"))
    model = LDNet(max_epochs=1, **SMALL).fit(train)
    days = test.assign_coords(time=test.time.assign_attrs(units="days"))
    with pytest.raises(ValueError, match="LDNet was fitted on 'time' in units 'hours'; X's "
                                         "'time' is in 'days'"):
        model.predict(days)
    with pytest.raises(ValueError, match="in units 'hours'"):
        model.transform(days)
    assert model.time_units_ == "hours"
    in_h = test.assign_coords(time=test.time.assign_attrs(units="h"))
    xr.testing.assert_allclose(model.predict(in_h).drop_vars("time"),
                               model.predict(test).drop_vars("time"))
    del model.time_units_  # unpickled from before it was recorded: not checked
    assert model.predict(days)["u"].shape == test["u"].shape


def test_a_grid_without_a_spatial_dim_raises_naming_it():
    # a grid lacking (or misspelling) a spatial dim raised a bare KeyError 'x'
    train = growing_mode(np.array([-1.0, 1.0]), n_steps=3, n_x=4)
    rom = LDNet(max_epochs=1, **SMALL).fit(train)
    z = rom.transform(train)
    for grid in ({"X": np.arange(8) / 8}, {"y": np.zeros(2)}):
        with pytest.raises(ValueError, match=r"lacks the spatial dim\(s\) \['x'\].*got keys"):
            rom.inverse_transform(z, grid=grid)
    assert rom.inverse_transform(z, grid={"x": np.arange(8) / 8})["u"].sizes["x"] == 8


def test_fourier_decoder_refuses_an_uneven_grid(data):
    """Its features have the period of an even grid: on an uneven one points wrap onto others."""
    uneven = data[0].isel(x=slice(0, 7)).assign_coords(x=[0.0, 1, 2, 3, 4, 5, 7])
    with pytest.raises(ValueError, match="reconstruction='fourier' needs an evenly spaced 'x'.*"
                                         "reconstruction='residual'"):
        LDNet(max_epochs=0, **SMALL).fit(uneven)
    LDNet(reconstruction="residual", max_epochs=1, **SMALL).fit(uneven)


def test_a_failed_refit_leaves_the_ldnet_unfitted_not_half_updated():
    # the refit set the new grid before it found the NaN: the old net was then
    # decoded on the failed fit's grid, silently
    from sklearn.exceptions import NotFittedError
    rom = LDNet(max_epochs=1, **SMALL).fit(growing_mode(np.array([-1.0, 1.0]), 3, n_x=8))
    other = growing_mode(np.array([-1.0, 1.0]), 3, n_x=16)
    with pytest.raises(ValueError, match="hold NaN or inf"):
        rom.fit(other.assign(u=other["u"].where(other["time"] != 1)))
    with pytest.raises(NotFittedError):
        rom.predict(other)
    assert not hasattr(rom, "grid_") and not hasattr(rom, "net_")
    assert rom.fit(other).predict(other)["u"].sizes["x"] == 16  # and it can be fitted again


def test_decoded_fields_keep_the_training_coordinates_and_dataset_attrs():
    # an int site index came back as float, without its attrs, and the Dataset attrs were lost
    ds = growing_mode(np.array([-1.0, 1.0]), n_steps=3, n_x=8)
    k = xr.Variable("k", np.arange(8), {"units": "1", "long_name": "site index"})
    ds = ds.rename(x="k").assign_coords(k=k, lon=("k", 10.0 * np.arange(8), {"units": "deg"}))
    ds.attrs = {"system": "toy", "dt": 0.5}
    rom = LDNet(max_epochs=1, **SMALL).fit(ds)
    pred = rom.predict(ds)
    assert pred["k"].dtype == np.int64 and pred["k"].attrs == ds["k"].attrs
    np.testing.assert_array_equal(pred["k"], np.arange(8))
    assert pred["lon"].attrs == {"units": "deg"} and float(pred["lon"][-1]) == 70.0
    assert pred.attrs == {"system": "toy", "dt": 0.5}
    # elsewhere: the given values (floats), with the training coordinate's attrs
    off = rom.inverse_transform(rom.transform(ds), grid={"k": [0.5, 1.5]})
    np.testing.assert_array_equal(off["k"], [0.5, 1.5])
    assert off["k"].attrs == ds["k"].attrs and "lon" not in off.coords
    assert off.attrs == {"system": "toy", "dt": 0.5}


def test_fitted_on_a_single_time_it_predicts_at_that_time_only():
    # fitted on one snapshot it has no time step: it predicted at t = 3 on a made-up step of 1
    ds = growing_mode(np.array([-1.0, 1.0]), n_steps=4, n_x=8)
    rom = LDNet(max_epochs=1, **SMALL).fit(ds.isel(time=[0]))
    assert rom.time_step_ is None
    assert rom.predict(ds.isel(time=[0])).sizes["time"] == 1
    with pytest.raises(ValueError, match=r"fitted on a single time 0: it has no time step"):
        rom.predict(ds.isel(time=[0, 3]))
