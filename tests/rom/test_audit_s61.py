"""Audit s61 (R1-R7): POD, PODLinearDynamics, LatentTransformerROM and its transformer."""

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.exceptions import NotFittedError

import xdyn.rom.pod as pod_module
from xdyn.model_selection import GridSearchCV, TimeSeriesSplit, samples
from xdyn.nn import LatentTransformer
from xdyn.nn.transformer import LatentROMModule, LatentROMNet
from xdyn.rom import POD, LatentTransformerROM, PODLinearDynamics

TINY = dict(n_latent=2, seq_len=4, pred_horizon=2, hidden=8, d_model=8, n_heads=2,
            max_epochs=1, random_state=0)


def _wave(n_time=40, dt=0.2, name="u"):
    t, x = dt * np.arange(n_time), np.linspace(0, 2 * np.pi, 8, endpoint=False)
    return xr.Dataset({name: (("time", "x"), np.sin(x[None] - t[:, None]))},
                      coords={"time": t, "x": x})


def _uneven(ds):
    """``ds`` with its last time step longer than the others: a fit refuses it late."""
    t = ds.time.values
    return ds.assign_coords(time=np.r_[t[:-1], t[-1] + 0.5 * (t[1] - t[0])])


# ------------------------------------------------------------------ R1: failed refit
def test_pod_linear_dynamics_failed_refit_leaves_it_unfitted():
    # the old fit kept the new modes with the old A_: predict ran, relative error 1.0
    ds = _wave(60, 0.1)
    model = PODLinearDynamics(n_modes=2).fit(ds)
    with pytest.raises(ValueError, match="unevenly spaced"):
        model.fit(_uneven(ds.assign(u=np.cos(2 * ds.x + 3 * ds.time))))
    with pytest.raises(NotFittedError):
        model.predict(ds, n_steps=2)
    assert not hasattr(model, "components_")


def test_latent_transformer_failed_refit_leaves_it_unfitted():
    # the old fit kept the new layout (variable 'w') with the network trained on 'u'
    ds = _wave()
    rom = LatentTransformerROM(**TINY).fit(ds)
    with pytest.raises(ValueError, match="unevenly spaced"):
        rom.fit(_uneven(ds.rename(u="w")))
    for call in (lambda: rom.predict(ds, n_steps=2), lambda: rom.transform(ds)):
        with pytest.raises(NotFittedError):
            call()
    assert not hasattr(rom, "layout_") and not hasattr(rom, "net_")


# ---------------------------------------------------- R2: shift augmentation, no reducer
N = 8
GRID = 2 * np.pi * np.arange(N) / N


def _pattern(n_time):
    """A stationary pattern (one phase of it in the data) plus a small travelling wave."""
    t = 0.5 * np.arange(n_time)
    x, y, tt = GRID[None, None, :], GRID[None, :, None], t[:, None, None]
    u = 2 * np.cos(x) * np.cos(y) + 0.3 * np.sin(x - 0.6 * tt) * np.cos(y)
    return xr.Dataset({"u": (("time", "y", "x"), u)}, coords={"time": t, "y": GRID, "x": GRID})


def test_shift_augmentation_window_is_the_standardisation_of_the_rolled_fields(windows_made):
    # the old code rolled the standardised window, roll(x - mean_): 22.8 standardised units
    # from the ROM's own standardisation of the rolled fields, roll(x) - mean_
    ds = _pattern(20)
    rom = LatentTransformerROM(**{**TINY, "seq_len": 2, "pred_horizon": 1}, architecture="mlp",
                               shift_augmentation=True).fit(ds)
    window = windows_made[-1].frames[0, 0, :3]
    for shift in (1, 3):
        rolled = np.roll(ds.u.values, shift, axis=-1).reshape(1, 20, -1)
        np.testing.assert_allclose(torch.roll(window, shift, dims=-1).numpy(),
                                   rom._frames(rolled)[0, :3], atol=1e-5)


def test_shift_augmentation_reconstructs_rolled_fields_as_with_a_reducer():
    # the audit's setting (p17): rolled by 3 points the old code reconstructed at rel-L2
    # 0.29 (0.008 on the training phase); with reducer=POD(8) 0.024; now 0.067 (0.062)
    ds = _pattern(40)
    rolled = ds.copy(data={"u": np.roll(ds.u.values, 3, axis=-1)})
    kw = dict(n_latent=4, seq_len=2, pred_horizon=1, hidden=32, d_model=8, n_heads=2,
              architecture="mlp", max_epochs=40, lr=3e-3, shift_augmentation=True,
              random_state=0)

    def error(rom, data):
        back = rom.inverse_transform(rom.transform(data)).u.values
        return np.linalg.norm(back - data.u.values) / np.linalg.norm(data.u.values)

    rom = LatentTransformerROM(**kw).fit(ds)
    reduced = LatentTransformerROM(**kw, reducer=POD(8)).fit(ds)
    assert error(rom, rolled) < 4 * error(reduced, rolled)
    assert error(rom, rolled) < 1.5 * error(rom, ds)  # every phase learnt alike


# ------------------------------------------------------ R3: the predicted variance's bounds
@pytest.mark.parametrize("increment", [1.0, 1e-2, 1e-3])
def test_predicted_std_is_the_heads_in_increments_above_the_latent_floor(increment):
    # the head asks in increments; the bounds are in latent units, on purpose (a floor in
    # increments forecast the kolmogorov-closure ROM worse): std exp(-3.5) = 0.030 at least
    torch.manual_seed(0)
    net = LatentTransformer(n_latent=2, seq_len=4, pred_horizon=1, d_model=8, n_heads=2).eval()
    with torch.no_grad():
        net.head.bias[2:] = -4.0  # log-variance -4 increments squared: std exp(-2)
        _, logvar = net(increment * torch.arange(4.0)[None, :, None].repeat(1, 1, 2))
    std = torch.exp(0.5 * logvar).numpy()
    np.testing.assert_allclose(std, max(increment * np.exp(-2.0), np.exp(-3.5)), rtol=1e-4)


@pytest.mark.parametrize("unit", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("bias", [-30.0, 30.0])
def test_latent_nll_stays_finite_in_float32_at_the_variance_bounds(unit, bias):
    torch.manual_seed(0)
    net = LatentROMNet(LatentROMModule, beta=1.0)
    dynamics = LatentTransformer(n_latent=2, seq_len=4, pred_horizon=2, d_model=8, n_heads=2)
    with torch.no_grad():
        dynamics.head.bias[2:] = bias  # clamped to the bounds
    z = unit * torch.randn(3, 4, 2).cumsum(1)
    x = torch.zeros(3, 5)
    for error in (0.0, 1.0, 1e3):  # of the target from the mean, in units
        mean, logvar = dynamics(z)
        pred = {"recon": x, "mu": torch.zeros(3, 2), "logvar": torch.zeros(3, 2),
                "pred_mean": mean, "pred_logvar": logvar,
                "target": mean.detach() + error * unit}
        loss = net.get_loss(pred, None, X=x)
        grad, = torch.autograd.grad(loss, dynamics.head.weight)
        assert torch.isfinite(loss) and torch.all(torch.isfinite(grad))


# ------------------------------------------------------------------------- R4: score
def test_latent_transformer_score_is_minus_the_relative_error_of_its_block_forecasts():
    ds = _wave(30)
    for anchored in (False, True):
        rom = LatentTransformerROM(**TINY, anchored=anchored).fit(ds)
        error = norm = 0.0
        for start in range(30 - 4):  # every window of seq_len snapshots, one block ahead
            truth = ds.u.values[start + 4:start + 6]
            forecast = rom.predict(ds.isel(time=slice(start, start + 4)), n_steps=2).u.values
            error += ((forecast[:len(truth)] - truth) ** 2).sum()
            norm += (truth**2).sum()
        assert rom.score(ds) == pytest.approx(-np.sqrt(error / norm), rel=1e-6)  # float32
    with pytest.raises(ValueError, match="at least seq_len \\+ 1 = 5 snapshots"):
        rom.score(ds.isel(time=slice(0, 4)))


def test_latent_transformer_model_selection_needs_no_scorer():
    # no score: GridSearchCV gave every candidate a NaN, cross_val_score a TypeError
    from sklearn.model_selection import cross_val_score

    ds = _wave(60)
    cv = TimeSeriesSplit(n_splits=2)
    search = GridSearchCV(LatentTransformerROM(**TINY), {"n_latent": [1, 2]}, cv=cv).fit(ds)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_["n_latent"] in (1, 2)
    scores = cross_val_score(LatentTransformerROM(**TINY), samples(ds), cv=cv)
    assert scores.shape == (2,) and np.all(np.isfinite(scores)) and np.all(scores < 0)


# ------------------------------------------------------- R5: array vs xarray at predict
def test_kind_mismatch_names_both_kinds():
    # an AttributeError ('int' object has no attribute 'is_dataarray'), or a feature count
    # with a StackInfo repr
    ds = _wave(12)
    cases = [(POD(2).fit(ds.u.values), ds, "X is an xarray Dataset; the estimator was fitted "
                                           "on a bare array"),
             (POD(2).fit(ds), ds.u.values, "X is a bare array; the estimator was fitted on an "
                                           "xarray Dataset"),
             (POD(2).fit(ds.u), ds.u.values, "X is a bare array; the estimator was fitted on "
                                             "an xarray DataArray"),
             (POD(2).fit(ds.u.values), ds.u, "X is an xarray DataArray; the estimator was "
                                             "fitted on a bare array")]
    for est, X, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            est.transform(X)
        assert "StackInfo" not in str(info.value)
    with pytest.raises(ValueError, match="X is a bare array; the estimator was fitted on an"):
        PODLinearDynamics(2).fit(ds).predict(ds.u.values, n_steps=2)
    rom = LatentTransformerROM(**TINY).fit(_wave())
    with pytest.raises(ValueError, match="X is a bare array; the estimator was fitted on an"):
        rom.predict(ds.u.values, n_steps=2)
    with pytest.raises(ValueError, match="X has 3 features; the estimator was fitted on 8$"):
        POD(2).fit(ds.u.values).transform(np.zeros((4, 3)))


# ------------------------------------------- R6: more modes than the rank, large-data path
@pytest.mark.parametrize("gram_above", [None, 8])
def test_modes_beyond_the_rank_are_orthonormal_on_both_paths(gram_above, monkeypatch):
    # the Gram path (f > n, both above _GRAM_ABOVE) gave zero vectors past the rank, the SVD
    # path orthonormal ones
    if gram_above is not None:
        monkeypatch.setattr(pod_module, "_GRAM_ABOVE", gram_above)
    rng = np.random.RandomState(0)
    data = rng.normal(size=(20, 3)) @ rng.normal(size=(3, 30))  # rank 3 (centred: 3)
    pod = POD(6).fit(data)
    np.testing.assert_allclose(pod.components_ @ pod.components_.T, np.eye(6), atol=1e-10)
    assert np.all(pod.singular_values_[3:] < 1e-6 * pod.singular_values_[0])
    np.testing.assert_allclose(pod.inverse_transform(pod.transform(data)), data, atol=1e-10)
    reference = np.linalg.svd(data - data.mean(0), full_matrices=False)[2][:3]
    np.testing.assert_allclose(np.abs(pod.components_[:3] @ reference.T), np.eye(3), atol=1e-8)


# ------------------------------------------------------------------ R7: float64 inputs
def test_float64_rom_encodes_unrounded_frames():
    # the frames were rounded to float32 before the float64 network: z off by 4e-8
    ds = _wave(30)
    rom = LatentTransformerROM(**TINY, dtype="float64").fit(ds)
    frames = (ds.u.values - rom.mean_) / rom.scale_
    with torch.no_grad():
        reference = rom.net_.module_.vae.encode(torch.as_tensor(frames))[0].numpy()
    np.testing.assert_allclose(rom.transform(ds).z.values, reference, rtol=0, atol=1e-12)
