"""AmortizedAssimilator: gradients through the model, learning, sklearn round trips, errors."""

import copy
import io
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold

from xdyn.assimilation import AmortizedAssimilator, LostTrackWarning, make_assimilator
import xdyn.assimilation._saving
from xdyn.assimilation.amortized import ClampWarning, WarmupHalving
from xdyn.metrics import analysis_rmse
from xdyn.model_selection import samples
from xdyn.nn import EnsembleRollout, LRScheduler
from xdyn.nn import update_nets
from xdyn.nn.update_nets import banded_covariance
from xdyn.observe import Arctan, Squared, observe
from xdyn.systems import Lorenz63, Lorenz96
from xdyn.systems.climatology import climatological_sample

N_SITES = 20  # Lorenz-96 is chaotic with 20 sites; half the cost of 40


def _twin(seed, n_trajectories=1, n_times=200, noise_std=1.0):
    truth = Lorenz96(n=N_SITES).simulate(n_trajectories=n_trajectories, n_steps=2 * (n_times - 1),
                                         dt=0.05, save_every=2, burn_in=10.0, random_state=seed)
    return truth, observe(truth, "identity", noise_std=noise_std, random_state=seed + 100)


def _small(**params):
    base = dict(n_members=6, hidden_size=16, seq_len=10, n_sequences=64, batch_size=16,
                max_epochs=3, lr=3e-3, warmup_epochs=0, device="cpu", random_state=0,
                raise_on_divergence=False, burn_in=2.0)
    base.update(params)
    return AmortizedAssimilator(**base)


@pytest.fixture(scope="module")
def trained():
    truth, obs = _twin(0, n_trajectories=4, n_times=100)
    est = _small(max_epochs=4).fit(obs)
    return est, truth, obs


def _quiet_predict(est, obs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LostTrackWarning)
        return est.predict(obs)


def _free_ensemble_rmse(truth, n_members, seed):
    """Time mean RMSE of the mean of a climatological ensemble run without analysis."""
    system = Lorenz96(n=N_SITES)
    E = torch.as_tensor(climatological_sample(system, n_members, 0.05, seed))
    x = system.to_state(truth).numpy()
    errs = []
    for k in range(x.shape[0]):
        if k:
            E = system.forecast(E, 0.05, 2)
        errs.append(np.sqrt(np.mean((E.mean(0).numpy() - x[k]) ** 2)))
    return float(np.mean(errs[20:]))


def test_gradient_through_the_differentiable_model_and_network():
    """gradcheck (float64) of the background and analysis means of a 3-time rollout with
    respect to the initial ensemble and the observations: RK4 forecasts of Lorenz-96 and the
    update network in between."""
    torch.manual_seed(0)
    rollout = EnsembleRollout(Lorenz96(n=6), dt=0.05, n_steps=2, n_state=6, architecture="conv",
                              hidden_size=3, mem_channels=2).double().eval()
    E0 = (8 + torch.randn(1, 3, 6, dtype=torch.float64)).requires_grad_()
    y = (8 + torch.randn(1, 3, 6, dtype=torch.float64)).requires_grad_()
    # every site observed: where one is not, the member's input is another member's forecast,
    # detached on purpose (as in the original), which finite differences would see
    mask = torch.ones(1, 3, 6, dtype=torch.float64)

    def f(E0, y):
        background, analysis = rollout(y, mask, E0)
        return background[:, 1:], analysis

    assert torch.autograd.gradcheck(f, (E0, y), eps=1e-6, atol=1e-5)
    ff = EnsembleRollout(Lorenz96(n=6), dt=0.05, n_steps=2, n_state=6, architecture="ff",
                         hidden_size=4).double().eval()
    assert torch.autograd.gradcheck(lambda E0: ff(y.detach(), mask, E0)[0][:, 1:], (E0,),
                                    eps=1e-6, atol=1e-5)


def test_banded_covariance_matches_the_sample_covariance():
    E = torch.randn(2, 7, 9, dtype=torch.float64)
    band = banded_covariance(E, 5)
    for b in range(2):
        C = torch.cov(E[b].T)
        for s in range(-2, 3):
            want = torch.stack([C[i, (i + s) % 9] for i in range(9)])
            assert torch.allclose(band[b, s + 2], want)


def test_schedule_is_the_originals():
    """x1.02 before each of the first 50 epochs, halved before epochs 199, 399 (1-based)."""
    f = WarmupHalving(50, 200)
    assert f(0) == pytest.approx(1.02)
    assert f(49) == pytest.approx(1.02**50) and f(100) == pytest.approx(1.02**50)
    # 0-based epoch 198 is the original's 1-based 199, (199 + 1) % 200 == 0
    assert f(198) == pytest.approx(1.02**50 / 2) and f(197) == pytest.approx(1.02**50)
    assert f(398) == pytest.approx(1.02**50 / 4)
    cb = LRScheduler(torch.optim.lr_scheduler.LambdaLR, lr_lambda=f)
    assert cb.simulate(steps=3, initial_lr=1.0).tolist() == pytest.approx([1.02, 1.02**2,
                                                                           1.02**3])


def test_learning_loss_falls_and_beats_the_free_ensemble(trained):
    """A few epochs on 4 x 100 observation times: the self-supervised forecast loss falls, and
    on three new truths (200 cycles each) the analysis is far better than the same-size
    climatological ensemble run without analysis."""
    est, _, _ = trained
    losses = [h["train_loss"] for h in est.history_]
    assert losses[-1] < 0.6 * losses[0]
    for seed in (11, 12, 13):
        truth, obs = _twin(seed)
        rmse = analysis_rmse(_quiet_predict(est, obs), truth, burn_in=2.0)
        free = _free_ensemble_rmse(truth, est.n_members, seed)
        assert rmse < 0.6 * free, (seed, rmse, free)


def test_validation_learning_curve_and_no_leak(trained):
    est, truth, obs = trained
    truth_v, obs_v = _twin(21, n_times=40)
    quick = dict(max_epochs=2, n_sequences=16)
    with_valid = clone(est).set_params(**quick).fit(obs, validation=(obs_v, truth_v))
    without = clone(est).set_params(**quick).fit(obs)
    assert [np.isfinite(h["valid_rmse"]) for h in with_valid.history_] == [True, True]
    for a, b in zip(with_valid.net_.module_.parameters(), without.net_.module_.parameters()):
        assert torch.equal(a, b)  # the held-out data only monitor
    assert dict(with_valid.net_.callbacks_)["valid_rmse"].score is None  # and are not kept


def test_clone_pickle_save_params_and_new_trajectory(trained):
    est, _, _ = trained
    truth, obs = _twin(31, n_times=50)
    before = [p.detach().clone() for p in est.net_.module_.parameters()]
    a = _quiet_predict(est, obs)  # a new trajectory, no refit
    assert dict(a["x"].sizes) == {"time": 50, "k": N_SITES}
    assert all(torch.equal(p, q) for p, q in zip(before, est.net_.module_.parameters()))
    b = _quiet_predict(pickle.loads(pickle.dumps(est)), obs)
    np.testing.assert_array_equal(a["x"].values, b["x"].values)
    buf = io.BytesIO()
    est.save_params(buf)
    buf.seek(0)
    loaded = clone(est).load_params(buf)
    np.testing.assert_array_equal(_quiet_predict(loaded, obs)["x"].values, a["x"].values)
    copy = clone(est)
    assert copy.get_params() == est.get_params() and not hasattr(copy, "net_")


def test_save_params_is_atomic_and_a_failed_load_changes_nothing(trained, tmp_path,
                                                                 monkeypatch):
    est, _, _ = trained
    _, obs = _twin(31, n_times=20)
    path = tmp_path / "amortized.pt"
    est.save_params(path)
    good = path.read_bytes()

    real_save = torch.save

    def cut_save(blob, f):  # Ctrl-C halfway through writing the file (the net's buffer: kept)
        if isinstance(f, io.BytesIO):
            return real_save(blob, f)
        with open(f, "wb") as out:
            out.write(good[:300])
        raise KeyboardInterrupt

    monkeypatch.setattr(xdyn.assimilation._saving.torch, "save", cut_save)
    with pytest.raises(KeyboardInterrupt):
        est.save_params(path)
    monkeypatch.undo()
    assert path.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good[:300])
    with pytest.raises(ValueError, match=f"cannot read {cut}: not a complete save_params"):
        clone(est).load_params(cut)
    other = clone(est).set_params(hidden_size=2 * (est.hidden_size or 8))
    with pytest.raises(ValueError, match="does not match this estimator's parameters"):
        other.load_params(path)
    assert not hasattr(other, "net_") and not hasattr(other, "system_")  # not fitted-looking
    with pytest.raises(NotFittedError):
        other.predict(obs)


def test_grid_search_over_hidden_size():
    truth, obs = _twin(41, n_trajectories=4, n_times=40)
    search = GridSearchCV(_small(max_epochs=1, n_sequences=16, burn_in=0.5),
                          {"hidden_size": [4, 8]}, cv=KFold(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LostTrackWarning)
        search.fit(samples(obs, "trajectory"), samples(truth, "trajectory"))
    assert search.best_params_["hidden_size"] in (4, 8)
    first_conv = search.best_estimator_.net_.module_.update.scale_up[0]
    assert first_conv.out_channels == search.best_params_["hidden_size"]


def test_feed_forward_variant_and_accessor():
    truth, obs = _twin(51, n_trajectories=2, n_times=40)
    an = obs.xdyn.assimilate(method="amortized", architecture="ff", n_members=4, hidden_size=8,
                             seq_len=5, max_epochs=1, device="cpu", random_state=0,
                             raise_on_divergence=False)
    assert an.attrs["method"] == "AmortizedAssimilator"
    assert np.isfinite(an["x"].values).all()
    assert type(make_assimilator("amortized")) is AmortizedAssimilator


def test_every_fourth_site_masked_input_trains():
    """Missing observations (NaN) at three sites in four, the observed set changing with time."""
    truth, obs = _twin(61, n_trajectories=2, n_times=40)
    rng = np.random.RandomState(0)
    offsets = rng.randint(4, size=obs.sizes["time"])
    hide = (np.arange(N_SITES)[None, :] % 4) != offsets[:, None]
    obs["observation"] = obs["observation"].where(~hide[:, None, :] if
                                                  obs["observation"].dims[1] == "trajectory"
                                                  else ~hide)
    est = _small(seq_len=8, max_epochs=1).fit(obs)
    assert np.isfinite(est.history_[0]["train_loss"])
    assert _quiet_predict(est, obs)["n_assimilated"].max() == N_SITES // 4


@pytest.mark.parametrize("case, match", [
    ("variable", "'observation' variable"),
    ("dims", "need dims"),
    ("mask", "mask hides every site"),
    ("arctan", "selects state sites"),
    ("operator", "selects state sites"),
    ("seq_len", "seq_len=500"),
    ("clean", "clean_analysis"),
    ("conv_l63", "one state variable on a periodic 1-D grid"),
])
def test_bad_observations_clear_errors(case, match):
    truth, obs = _twin(71, n_times=30)
    est = _small()
    if case == "variable":
        obs = obs.rename(observation="y")
    elif case == "dims":
        obs = obs.rename(obs="site")
    elif case == "mask":
        obs["observation"] = obs["observation"] * np.nan
    elif case == "operator":
        obs = observe(truth, Squared(), noise_std=1.0, random_state=0)
    elif case == "arctan":  # its Jacobian at 0 is a selection: it used to pass
        obs = observe(truth, Arctan(), noise_std=0.1, random_state=0)
    elif case == "seq_len":
        est = _small(seq_len=500)
    elif case == "clean":
        est = _small(loss="clean_analysis")
    elif case == "conv_l63":
        truth = Lorenz63().simulate(n_steps=30, random_state=0)
        obs = observe(truth, "identity", noise_std=1.0, random_state=0)
    with pytest.raises(ValueError, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        est.fit(obs)


def test_not_fitted():
    from sklearn.exceptions import NotFittedError
    _, obs = _twin(81, n_times=10)
    with pytest.raises(NotFittedError):
        AmortizedAssimilator().predict(obs)


def test_prediction_clamps_like_training_and_reports_it(trained):
    """A network whose update adds 30 per cycle (a barely trained one gone wrong): unclamped,
    its analysis overflowed to NaN at the third time; predict clamps forecasts and analyses
    as training does, so the output stays bounded, is flagged lost, and says where the
    clamp acted. A healthy network never reaches the clamp: same analysis as with none."""
    est, _, _ = trained
    truth, obs = _twin(91, n_times=60)
    healthy = _quiet_predict(est, obs)
    assert healthy.attrs["clamped_cycles"] == 0 and np.isnan(healthy.attrs["clamped_first_time"])
    unclamped = _quiet_predict(clone(est).set_params(clamp=None).load_params(_saved(est)), obs)
    np.testing.assert_array_equal(healthy["x"].values, unclamped["x"].values)

    broken = copy.deepcopy(est)
    with torch.no_grad():
        broken.net_.module_.update.readout[1].bias[0] += 30.0  # the state's additive update
    with pytest.warns(ClampWarning, match=r"clamp \[-20, 20\] in 60 of 60 cycles"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", LostTrackWarning)
        out = broken.predict(obs)
    x = out["x"].values
    assert np.isfinite(x).all() and np.abs(x).max() <= est.clamp
    assert out.attrs["clamped_cycles"] == 60 and out.attrs["clamped_first_time"] == 0.0
    assert out.attrs["diverged"] == 0 and out.attrs["lost_track"] == 1
    assert bool(out["lost"][-1])


def _saved(est):
    buf = io.BytesIO()
    est.save_params(buf)
    buf.seek(0)
    return buf


def test_test_time_convolutions_match_the_modules():
    """The update network runs its layers functionally (and small test-time convolutions off
    oneDNN): training is bit-identical to calling the modules (same dropout draws), the
    test-time update equal to round-off, and the oneDNN setting is restored."""
    torch.manual_seed(0)
    net = update_nets.ConvEnsembleUpdate(n_state=40, hidden_size=16)
    E, y, mask = 8 + 3 * torch.randn(1, 10, 40), torch.randn(1, 40), torch.ones(40)
    memory, tendency = torch.randn(1, 10, 6, 40), torch.randn(1, 10, 40)
    z = torch.randn(10, 16, 40)
    for block in (net.block1, net.readout):
        torch.manual_seed(1)
        want = block(z)
        torch.manual_seed(1)
        assert torch.equal(update_nets._run(block, z), want)

    def by_modules(E):  # the forward written with the modules, as before
        B, m, n = E.shape
        obs = update_nets.fill_unobserved(E, y, mask.expand(B, n))
        cov = banded_covariance(E, 3).unsqueeze(1).expand(B, m, 3, n)
        feats = torch.cat([E.unsqueeze(2), obs.unsqueeze(2), mask.expand(B, m, 1, n),
                           tendency.unsqueeze(2), cov, memory], 2).reshape(B * m, -1, n)
        h = net.scale_up(feats)
        h = net.block1(h) + h
        h = net.block2(h) + h
        adj, _, gate, _ = net.readout(h).reshape(B, m, -1, n).split([1, 6, 1, 6], 2)
        return torch.sigmoid(gate[:, :, 0]) * E + adj[:, :, 0]

    net.eval()
    before = torch.backends.mkldnn.enabled
    with torch.no_grad():
        assert net._small(10) and not net._small(1000)
        Ea, _ = net(E, y, mask, memory, tendency)
        torch.testing.assert_close(Ea, by_modules(E), rtol=1e-5, atol=1e-5)
    assert torch.backends.mkldnn.enabled == before


def test_early_stopping_keeps_the_epoch_with_the_best_validation_rmse(trained, monkeypatch):
    """With early_stopping, training stops n_iter_no_change epochs after the best validation
    RMSE and the fitted weights are exactly those after the best epoch (a scripted curve
    makes the best epoch the second of five)."""
    from xdyn.assimilation import _amortized_training

    est, truth, obs = trained
    truth_v, obs_v = _twin(21, n_times=40)
    curve = iter([5.0, 2.0, 4.0, 4.5, 4.6, 1.0])
    monkeypatch.setattr(_amortized_training._ValidationScore, "__call__",
                        lambda self: next(curve))
    quick = dict(max_epochs=8, n_sequences=16)
    stopped = clone(est).set_params(early_stopping=True, n_iter_no_change=3, **quick).fit(
        obs, validation=(obs_v, truth_v))
    assert [h["valid_rmse"] for h in stopped.history_] == [5.0, 2.0, 4.0, 4.5, 4.6]
    assert stopped.n_epochs_ == 2 and stopped.best_validation_rmse_ == 2.0
    two = clone(est).set_params(**{**quick, "max_epochs": 2}).fit(obs)
    last = clone(est).set_params(**{**quick, "max_epochs": 5}).fit(obs)
    for a, b, c in zip(stopped.net_.module_.parameters(), two.net_.module_.parameters(),
                       last.net_.module_.parameters()):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, c) for a, c in zip(stopped.net_.module_.parameters(),
                                                    last.net_.module_.parameters()))
    stopped.set_params(early_stopping=False).fit(obs)  # a refit without it keeps no stale epoch
    assert not hasattr(stopped, "n_epochs_") and not hasattr(stopped, "best_validation_rmse_")


def test_early_stopping_needs_validation_data(trained):
    _, _, obs = trained
    with pytest.raises(ValueError, match="validation"):
        _small(early_stopping=True).fit(obs)


def test_redrawn_sequences_are_new_every_epoch_and_the_first_is_the_same(trained, monkeypatch):
    """redraw_sequences (the default) trains the first epoch on exactly the sequences
    drawn once without it, then draws new offsets and starting ensembles before every epoch; the fit
    is reproducible and the fitted estimator still pickles."""
    est, _, obs = trained
    draws = []
    original = AmortizedAssimilator._sequences

    def recorded(self, *args):
        X, y = original(self, *args)
        draws.append(X["y"].copy())
        return X, y

    monkeypatch.setattr(AmortizedAssimilator, "_sequences", recorded)
    quick = dict(max_epochs=3, n_sequences=16)
    once = clone(est).set_params(redraw_sequences=False, **quick).fit(obs)
    assert len(draws) == 1
    redrawn = clone(est).set_params(redraw_sequences=True, **quick).fit(obs)
    assert len(draws) == 4
    np.testing.assert_array_equal(draws[1], draws[0])
    assert not np.array_equal(draws[2], draws[1]) and not np.array_equal(draws[3], draws[2])
    losses = [[h["train_loss"] for h in e.history_] for e in (once, redrawn)]
    assert losses[1][0] == pytest.approx(losses[0][0], rel=1e-6)
    assert losses[1][1:] != pytest.approx(losses[0][1:], rel=1e-6)
    again = clone(redrawn).fit(obs)
    assert [h["train_loss"] for h in again.history_] == losses[1]
    assert pickle.loads(pickle.dumps(redrawn)).redraw_sequences is True


def test_network_without_the_tendency_never_evaluates_the_model(monkeypatch):
    """``tendency=False`` (the original's Kuramoto-Sivashinsky network): one input channel
    fewer, the model's right-hand side is never called in the update, and the estimator
    trains and predicts; the default network reads the tendency."""
    truth, obs = _twin(3, n_trajectories=2, n_times=60)
    with_t = _small(max_epochs=1).fit(obs)
    without = _small(max_epochs=1, tendency=False).fit(obs)
    first = {est: est.net_.module_.update.scale_up[0].in_channels for est in (with_t, without)}
    assert first[with_t] - first[without] == 1
    calls = []
    monkeypatch.setattr(Lorenz96, "rhs", lambda self, t, x: calls.append(1) or x)
    E, y, mask = 8 + torch.randn(2, 6, N_SITES), torch.randn(2, N_SITES), torch.ones(N_SITES)
    rollout = without.net_.module_
    Ea, _ = rollout.analysis(E, y, mask, rollout.initial_memory(E))
    assert not calls and torch.isfinite(Ea).all()
    with_t.net_.module_.analysis(E, y, mask, with_t.net_.module_.initial_memory(E))
    assert calls
    monkeypatch.undo()
    an = _quiet_predict(without, obs)
    assert np.isfinite(an["x"].values).all()
    assert clone(without).get_params()["tendency"] is False


def test_ensemble_dropout_keeps_the_members_apart_reproducibly(trained):
    """Test-time dropout (the original's test loop): a draw per member and cycle from
    random_state, so the members differ and a repeated predict is identical; the global torch
    stream and the layers' modes are left as they were. Without it the update is
    deterministic: two members that start equal stay equal."""
    est, _, _ = trained
    truth, obs = _twin(41, n_times=40)
    start = np.repeat(est.system_.to_state(truth.isel(time=0)).numpy()[None], 6, 0)
    rollout = est.net_.module_
    layers = [m for m in rollout.modules() if isinstance(m, torch.nn.Dropout1d)]
    was = rollout.training
    kept = est.get_params()
    outs = {}
    try:
        for flag in (True, False):
            est.set_params(ensemble_dropout=flag, initial_ensemble=start, return_ensemble=True)
            torch.manual_seed(123)
            before = torch.rand(1)
            torch.manual_seed(123)
            a = _quiet_predict(est, obs)
            assert torch.equal(torch.rand(1), before)  # predict drew from its own stream
            assert layers and all(m.training == was for m in layers)
            outs[flag] = (a, _quiet_predict(est, obs))
    finally:
        est.set_params(**kept)
    a, b = outs[True]
    np.testing.assert_array_equal(a["x"].values, b["x"].values)
    assert float(a["x"].std("member").isel(time=slice(1, None)).min()) > 0
    c, _ = outs[False]
    np.testing.assert_allclose(c["x"].std("member").values, 0.0, atol=1e-5)


def test_observations_at_another_interval_than_trained_are_refused(trained):
    # trained on observations 2 model steps apart; 6 steps apart ran without a word
    est, truth, obs = trained
    sparse = obs.isel(time=slice(0, None, 3))
    with pytest.raises(ValueError, match=r"trained on observations 2 model steps of dt=0.05 "
                       r"apart; these are \[6\] steps"):
        est.predict(sparse)


@pytest.mark.parametrize("loss_kind", ["ss_forecast", "ss_analysis", "clean_analysis"])
def test_losses_leave_out_the_first_time_as_the_original(loss_kind):
    # the first analysis is of the starting ensemble, not of a learned correction: the
    # original scores times 1.. only (its analysis losses once included time 0 here)
    import torch

    from xdyn.assimilation._amortized_training import _AmortizedNet

    net = _AmortizedNet(torch.nn.Identity, loss_kind=loss_kind)
    g = torch.Generator().manual_seed(0)
    y, truth = torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    X = {"y": y, "mask": torch.ones(2, 5, 4)}
    background, analysis = torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    moved_b, moved_a = background.clone(), analysis.clone()
    moved_b[:, 0] += 10.0
    moved_a[:, 0] += 10.0
    base = float(net.get_loss((background, analysis), truth, X=X))
    assert float(net.get_loss((moved_b, moved_a), truth, X=X)) == pytest.approx(base)
    later = analysis.clone()
    later[:, 1] += 1.0
    moved = float(net.get_loss((background if loss_kind != "ss_forecast" else later, later),
                               truth, X=X))
    assert moved != pytest.approx(base)


def test_validation_leaves_the_fit_from_a_random_state_instance_unchanged():
    # the validation cycles draw from their own generator, not the training's (whose
    # redrawn sequences come between them)
    truth, obs = _twin(0, n_trajectories=2, n_times=40)
    truth_v, obs_v = _twin(21, n_times=30)
    fits = [_small(max_epochs=2, n_sequences=16, random_state=np.random.RandomState(0)).fit(
        obs, validation=v) for v in (None, (obs_v, truth_v))]
    for a, b in zip(*(f.net_.module_.parameters() for f in fits)):
        assert torch.equal(a, b)
    assert np.isfinite(fits[1].history_[-1]["valid_rmse"])


def test_clean_analysis_pairs_the_truth_by_trajectory_label():
    truth, obs = _twin(0, n_trajectories=3, n_times=40)
    fits = [_small(loss="clean_analysis", max_epochs=1, n_sequences=16).fit(obs, t)
            for t in (truth, truth.isel(trajectory=[2, 0, 1]))]
    for a, b in zip(*(f.net_.module_.parameters() for f in fits)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="'trajectory' labels"):
        _small(loss="clean_analysis").fit(obs, truth.assign_coords(trajectory=[5, 6, 7]))


def test_observations_at_another_noise_than_trained_are_refused(trained):
    # trained self-supervised at noise 1: 3x noisier observations ran without a word
    est, _, _ = trained
    _, noisy = _twin(31, n_times=20, noise_std=3.0)
    with pytest.raises(ValueError, match=r"trained on observations with error std \[1.0\]; "
                       r"these observations' are \[3.0\].*refit"):
        est.predict(noisy)
    _, same = _twin(31, n_times=20)
    assert np.isfinite(_quiet_predict(est, same)["x"].values).all()


@pytest.mark.parametrize("case, match", [
    ("interval", r"validation observations are \[4\] model steps of dt=0.05 apart, the "
                 r"training ones 2"),
    ("noise", r"validation observations have error std \[3.0\], the training ones \[1.0\]"),
    ("no_truth", r"validation=\(obs_valid, None\)"),
    ("grid", "validation truth does not match"),
    ("dims", "the validation observations: observations need dims"),
], ids=["interval", "noise", "no_truth", "grid", "dims"])
def test_validation_data_are_checked_before_training(case, match):
    # they were found bad after a full epoch, in messages without 'validation' (truth None:
    # a bare AttributeError), and the failed fit had kept its 1-epoch net_
    _, obs = _twin(0, n_trajectories=2, n_times=40)
    truth_v, obs_v = _twin(21, n_times=30, noise_std=3.0 if case == "noise" else 1.0)
    if case == "interval":
        obs_v = obs_v.isel(time=slice(0, None, 2))
    elif case == "no_truth":
        truth_v = None
    elif case == "grid":
        truth_v = truth_v.isel(k=slice(0, 10))
    elif case == "dims":
        obs_v = obs_v.rename(obs="site")
    est = _small(max_epochs=1, n_sequences=16)
    with pytest.raises(ValueError, match=match):
        est.fit(obs, validation=(obs_v, truth_v))
    assert not hasattr(est, "net_") and not hasattr(est, "system_")


def test_a_failed_refit_leaves_the_earlier_fit(trained, monkeypatch):
    # a refit that raised after its first epoch (out of memory ...) left that 1-epoch net_
    # beside the earlier history_, and predict ran on it
    from xdyn.assimilation._amortized_training import _RedrawEachEpoch

    est, _, obs = trained
    est = copy.deepcopy(est)
    _, new = _twin(31, n_times=20)
    before = _quiet_predict(est, new)
    net, history, fitted = est.net_, est.history_, dict(vars(est))

    def interrupt(self, net, **kwargs):
        if len(net.history) > 1:  # once an epoch is trained
            raise RuntimeError("out of memory")

    monkeypatch.setattr(_RedrawEachEpoch, "on_epoch_begin", interrupt)
    with pytest.raises(RuntimeError, match="out of memory"):
        est.set_params(n_sequences=16).fit(obs)
    assert est.net_ is net and est.history_ is history and len(net.history) == len(history)
    assert vars(est).keys() == fitted.keys()
    np.testing.assert_array_equal(_quiet_predict(est, new)["x"].values, before["x"].values)


def test_bound_lets_a_nan_through_without_recording_a_clamp():
    # a NaN made aminmax NaN: the cycle was recorded as clamped (ClampWarning, wrong cause)
    from types import SimpleNamespace

    from xdyn.assimilation._amortized_cycle import bound
    ctx = SimpleNamespace(scratch={}, k=7)
    E = torch.tensor([[1.0, float("nan"), -2.0]])
    out = bound(E, 5.0, ctx)
    assert out is E and "clamped" not in ctx.scratch
    out = bound(torch.tensor([[9.0, float("nan"), -float("inf"), 1.0]]), 5.0, ctx)
    torch.testing.assert_close(out, torch.tensor([[5.0, float("nan"), -5.0, 1.0]]),
                               equal_nan=True)
    assert ctx.scratch["clamped"] == {7}
