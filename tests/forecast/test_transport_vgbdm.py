"""VGB-DM with transport physics: exact transport, flow matching, verification, clone/pickle."""

import pickle

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.base import clone

from xdyn.forecast import Persistence, TransportVGBDM
from xdyn.nn.transport import TransportSourceField

from .test_climode import _wave


def test_field_with_a_known_velocity_transports_by_the_exact_shift():
    nx, speed = 32, 0.5                      # 8 steps at 0.5 cells/step: a 4-cell shift
    field = TransportSourceField(1, (4, nx), hidden=4, periodic=(False, True), z_dim=0,
                                 max_speed=2.0, step_size=0.5).double()
    last = field.field[-1]
    with torch.no_grad():
        field.log_rate.fill_(-60.0)          # no relaxation to the (zero) climatology
        last.bias[1] = 2.0 * np.arctanh(speed / 2.0)   # v_x = max_speed tanh(b / max_speed)
    u0 = torch.as_tensor(np.sin(2 * np.pi * np.arange(nx) / nx)).expand(1, 1, 4, nx)
    with torch.no_grad():
        traj = field.rollout(u0, torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, 0),
                             torch.tensor([0.0, 8.0], dtype=torch.float64))
    end = traj[-1, 0, 0].numpy()
    exact = np.roll(u0[0, 0].numpy(), 4, axis=-1)
    # 2nd-order central differences on 32 cells: phase error ~ (k dx)^2 / 6 per cell moved
    assert np.abs(end - exact).max() < 0.02
    assert np.abs(end - np.roll(u0[0, 0].numpy(), -4, axis=-1)).max() > 1.0


def test_cubic_target_is_the_time_derivative_of_a_cubic_path():
    field = TransportSourceField(1, (3, 8), hidden=4, z_dim=0, len_episode=2,
                                 interpolant="cubic").eval()   # eval: known points s
    times = torch.arange(-1.0, 3.0)                # samples at -1, 0 (the start), 1, 2
    a = torch.randn(4, 1, 1, 3, 8)
    window = a[0] + a[1] * times.view(1, 4, 1, 1, 1) + a[2] * times.view(1, 4, 1, 1, 1) ** 2 \
        + a[3] * times.view(1, 4, 1, 1, 1) ** 3
    with torch.no_grad():
        _, target, *_ = field(window.expand(5, -1, -1, -1, -1), torch.zeros(5, 2))
    s = (torch.arange(5.0) * 0.618034) % 1.0
    exact = a[1] + 2 * a[2] * s.view(5, 1, 1, 1) + 3 * a[3] * s.view(5, 1, 1, 1) ** 2
    assert torch.allclose(target, exact, atol=1e-4)


def test_flow_matching_target_is_the_chord_and_the_kl_is_zero_at_the_prior():
    field = TransportSourceField(1, (3, 8), hidden=4, z_dim=2, len_episode=2)
    window = torch.randn(6, 3, 1, 3, 8)
    pred, target, kl_p, kl_z, _ = field(window, torch.zeros(6, 2))
    assert torch.equal(target, window[:, 2] - window[:, 1])
    assert float(kl_p.abs().max()) == 0.0 and bool((kl_z >= 0).all())
    with torch.no_grad():  # an encoder that returns the prior exactly has no KL
        enc = field.encoder[-1]
        enc.weight.zero_()
        enc.bias.zero_()
        assert float(field(window, torch.zeros(6, 2))[3].abs().max()) == 0.0


@pytest.fixture(scope="module")
def fitted():
    ds = _wave()
    model = TransportVGBDM(hidden=8, z_dim=2, len_episode=2, max_epochs=15, lr=5e-3,
                           batch_size=16, n_members=4, random_state=0,
                           device="cpu").fit(ds.isel(time=slice(0, 30)))
    return ds, model


def test_loss_falls_and_forecast_beats_persistence(fitted):
    ds, model = fitted
    fm = model.net_.history[:, "fm_loss"]
    # in units of the typical change per sample: an untrained field (no motion) scores ~1
    assert fm[0] > 0.5 and fm[-1] < 0.1 * fm[0]
    test = ds.isel(time=slice(28, None))
    assert model.periodic_ == (True, True)   # y and x by name (docs/data_model.rst)
    # measured -0.058 / -0.065 / -0.081 (seeds 0-2) against persistence's -0.386 at 2 steps
    assert model.score(test, [2.0]) > 3 * Persistence().fit(ds).score(test, [2.0])


def test_predict_layout_members_and_nan_before_an_episode(fitted):
    ds, model = fitted
    fc = model.predict(ds.isel(time=slice(30, 36)), [1.0, 3.0])
    assert fc["u"].dims == ("time", "lead_time", "member", "y", "x")
    assert np.isnan(fc["u"].values[0]).all() and np.isfinite(fc["u"].values[1:]).all()
    with pytest.raises(ValueError, match="lead_times > 0"):
        model.predict(ds, [0.0])


def test_clone_and_pickle(fitted):
    ds, model = fitted
    test = ds.isel(time=slice(30, 36))
    again = pickle.loads(pickle.dumps(model))
    xr.testing.assert_allclose(again.predict(test, [1.0]), model.predict(test, [1.0]))
    params = clone(model).get_params()
    assert params["z_dim"] == 2 and not hasattr(clone(model), "net_")


def test_predict_refuses_data_at_another_spacing(fitted):
    # consecutive samples are read as one fitted step apart: every other sample would be read
    # as a step of 1.0 while 2.0 apart (a wrong forecast, no error before)
    ds, model = fitted
    with pytest.raises(ValueError, match="TransportVGBDM reads consecutive samples as one fitted "
                       "step 1 apart.* include 2"):
        model.predict(ds.isel(time=slice(0, None, 2)), [1.0])


def test_errors_before_training():
    ds = _wave(n_time=10)
    with pytest.raises(ValueError, match="TransportVGBDM needs 2 spatial dims"):
        TransportVGBDM(max_epochs=0).fit(ds.isel(y=0))
    with pytest.raises(ValueError, match="evenly spaced"):
        TransportVGBDM(max_epochs=0).fit(ds.isel(time=[0, 1, 2, 4, 5, 6, 7, 8]))
    with pytest.raises(ValueError, match="at least 14 samples"):
        TransportVGBDM(len_episode=12, max_epochs=0).fit(ds)
    with pytest.raises(ValueError, match="len_episode >= 2"):
        TransportVGBDM(len_episode=1, max_epochs=0).fit(ds)
    with pytest.raises(ValueError, match="periodic"):
        TransportVGBDM(periodic=(True,), max_epochs=0).fit(ds)


def test_early_stopping_holds_out_the_end_without_overlap_and_keeps_the_best_epoch():
    ds = _wave(n_time=60)
    model = TransportVGBDM(hidden=8, z_dim=2, len_episode=3, max_epochs=12, lr=5e-2,
                           batch_size=8, n_members=2, early_stopping=True,
                           validation_fraction=0.2, n_iter_no_change=2, random_state=0,
                           device="cpu").fit(ds)
    history = model.net_.history
    valid = np.asarray(history[:, "valid_loss"])
    assert model.best_validation_loss_ == valid.min() == valid[model.n_epochs_ - 1]
    # 56 windows of 5 samples (the episode of 3, then 2: the cubic), starts 0..55; the last
    # 11 held out (starts 45..55, samples 45..59); training windows end before sample 45:
    # starts 0..40, 41 of them
    batches = history[-1, "batches"]
    assert sum(b.get("train_batch_size", 0) for b in batches) == 41
    assert sum(b.get("valid_batch_size", 0) for b in batches) == 11
    untrained = TransportVGBDM(early_stopping=True, max_epochs=0, device="cpu").fit(ds)
    assert untrained.n_epochs_ == 0 and np.isnan(untrained.best_validation_loss_)
    untrained.set_params(early_stopping=False).fit(ds)  # a refit without it: no stale epoch
    assert not hasattr(untrained, "n_epochs_")
    with pytest.raises(ValueError, match="leaves no training pair"):
        TransportVGBDM(len_episode=3, early_stopping=True, validation_fraction=0.9,
                       max_epochs=1, device="cpu").fit(ds.isel(time=slice(0, 8)))


def test_in_a_pipeline_after_a_scaler_forecasts_in_scaled_units(fitted):
    from sklearn.pipeline import Pipeline

    from xdyn.preprocessing import StandardScaler

    ds, model = fitted
    pipe = Pipeline([("scale", StandardScaler()),
                     ("vgbdm", clone(model).set_params(max_epochs=2))])
    fc = pipe.fit(ds.isel(time=slice(0, 30))).predict(ds.isel(time=slice(30, 36)),
                                                      lead_times=[1.0])
    assert fc["u"].dims == ("time", "lead_time", "member", "y", "x")
    assert np.isfinite(fc["u"].values[1:]).all()
    # the wave is 3 +- 1.5 m; standardised it is centred and of unit spread
    assert abs(float(fc["u"].isel(time=slice(1, None)).mean())) < 1.0
    # the leads positionally: Pipeline.score drops keyword arguments (BaseForecaster.score)
    assert np.isfinite(pipe.score(ds.isel(time=slice(30, 40)), [1.0]))


def test_held_out_loss_weighs_the_kl_fully_while_the_training_loss_ramps_it():
    # early stopping compares the held-out loss across epochs: with the ramp in it, it grew
    # with the KL weight and kept the ramp's first epochs
    ds = _wave(n_time=40)
    model = TransportVGBDM(hidden=8, z_dim=2, len_episode=3, max_epochs=2, batch_size=8,
                           n_members=2, anneal_epochs=10, early_stopping=True,
                           random_state=0, device="cpu").fit(ds)
    net = model.net_
    fm, kl = torch.tensor(0.5), torch.tensor([2.0, 4.0])
    pred = (fm * net.module_.v_scale).expand(2, -1, 3, 3)  # fm per field's typical change
    y_pred = (pred, torch.zeros_like(pred), torch.zeros(2), kl, torch.tensor(0.25))
    full = float(fm ** 2) + net.beta_z * 3.0 + net.correction_penalty * 0.25
    ramped = float(fm ** 2) + 0.2 * net.beta_z * 3.0 + net.correction_penalty * 0.25
    assert len(net.history) == 2  # the ramp is at 2 / 10
    assert float(net.get_loss(y_pred, None, training=False)) == pytest.approx(full, rel=1e-6)
    assert float(net.get_loss(y_pred, None, training=True)) == pytest.approx(ramped, rel=1e-6)


def test_an_unknown_solver_is_refused_at_fit():
    # training never integrates: an unknown method would first fail at predict
    with pytest.raises(ValueError, match="method"):
        TransportVGBDM(method="rk45", max_epochs=0).fit(_wave(n_time=10))
    with pytest.raises(ValueError, match="method"):   # torchdiffeq's diverges
        TransportVGBDM(method="explicit_adams", max_epochs=0).fit(_wave(n_time=10))
