"""NeuralVar3D: learning happens, no leakage, sklearn round trips, clear errors."""

import pickle

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from xdyn.assimilation import NeuralVar3D, Var3D
from xdyn.assimilation._neural_var_data import (aligned_truth, perturbed_backgrounds,
                                                wrong_wing_share)
from xdyn.assimilation.base import state_rmse
from xdyn.model_selection import samples
from xdyn.nn import GRUEncoder, LSTMEncoder, MLPEncoder, make_encoder
from xdyn.observe import observe
from xdyn.systems import Lorenz63

PRIOR = None


def _prior():
    global PRIOR
    if PRIOR is None:
        start = Lorenz63().simulate(n_steps=0, burn_in=20.0, random_state=0)
        PRIOR = Lorenz63().to_state(start.isel(time=0)).numpy()
    return PRIOR


def _trajectories(n, seed, n_steps=100):
    rng = np.random.RandomState(seed)
    x0 = _prior() + 2.0 * rng.standard_normal((n, 3))
    truth = Lorenz63().simulate(n_trajectories=n, n_steps=n_steps - 1, x0=x0)
    return truth, observe(truth, ["x", "y"], noise_std=0.5, random_state=seed + 1)


def _small(**params):
    base = dict(encoder="mlp", window=4, max_epochs=3, batch_size=256, device="cpu",
                initial_state=_prior(), initial_spread=2.0, random_state=0,
                raise_on_divergence=False, module__hidden_size=16)
    base.update(params)
    return NeuralVar3D(**base)


@pytest.fixture(scope="module")
def data():
    return _trajectories(12, 0), _trajectories(6, 10), _trajectories(6, 20)


def _mean_rmse(analysis, truth, burn_in=0.3):
    err = state_rmse(analysis, truth, keep_dims=("trajectory",))
    return float(err.where(err.time >= burn_in, drop=True).mean())


def _single_analysis_rmse(est, obs, truth):
    """RMSE of single analyses of forecasts of the perturbed truth, and of those forecasts."""
    ctx = est._context(obs, fitted=True)
    x_b = perturbed_backgrounds(ctx.system, aligned_truth(truth, ctx), ctx.dt, 10,
                                np.random.RandomState(5))
    background = ctx.system.from_state(x_b, dims=("time", "trajectory"),
                                       coords={"time": truth.time})
    single = est.analyze(obs, background)
    return _mean_rmse(single, truth, burn_in=0.0), _mean_rmse(background, truth, burn_in=0.0)


def _x_trajectories(n, seed, noise_std):
    """Runs from the prior plus N(0, 2^2 I), observed as x only."""
    rng = np.random.RandomState(seed)
    truth = Lorenz63().simulate(n_trajectories=n, n_steps=99,
                                x0=_prior() + 2.0 * rng.standard_normal((n, 3)))
    return truth, observe(truth, "x", noise_std=noise_std, random_state=seed + 1)


def test_learning_beats_the_background_and_3dvar():
    """On 40 trajectories the training loss falls; on 20 test trajectories a single
    analysis beats its background (a forecast of the perturbed truth, errors independent
    of the observations), and the cycled analysis beats 3D-Var on the same observations.

    Reference: 3D-Var (B_scale 0.01) reaches 0.40 on these 20 trajectories (DAPPER,
    long run: 0.33). With the cosine decay of the learning rate the network measured
    0.112 cycled and single analyses 0.269 against a background of 0.332. At a constant
    rate it measured 0.24 cycled (0.34-0.44 with batch size 128 instead of 256: the last
    weights were a noisy draw), so this asserted only "not worse than 3D-Var by 25%".
    """
    train, obs = _trajectories(40, 1)
    test, obs_test = _trajectories(20, 2)
    est = _small(window=8, max_epochs=8, module__hidden_size=32).fit(obs, train)
    losses = est.net_.history[:, "train_loss"]
    assert losses[-1] < 0.8 * losses[0]
    a1, b1 = _single_analysis_rmse(est, obs_test, test)
    cycled = est.predict(obs_test)
    var = Var3D(B_scale=0.01, initial_state=_prior(), initial_spread=2.0,
                raise_on_divergence=False).fit(obs, train).predict(obs_test)
    a, v = _mean_rmse(cycled, test), _mean_rmse(var, test)
    print("single analysis, its background; cycled analysis, 3D-Var:", a1, b1, a, v)
    assert a1 < 0.97 * b1
    assert a < v


def test_training_through_the_cycle_recovers_from_a_far_start():
    """Observed as x only (noise 1), the cycle from the prior must first find the
    attractor's wing and then follow it. Trained on single analyses (seq_len=1) the
    network does not (measured 1.8-3.4 over three seeds, 3D-Var 0.37-0.44); trained
    through cycles of 10 analyses with the forecast differentiated, it measured
    0.40-0.50. With the cosine decay, means over the seeds: 1.43 single, 0.41 cycles,
    3D-Var 0.40. Asserted over the three seeds: its loss falls, it is less than half the
    single-analysis network's error and within 30% of 3D-Var's (measured 4% above)."""
    rmse = {1: [], 10: [], "var": []}
    for seed in (0, 1, 2):
        train, obs = _x_trajectories(40, 1 + 10 * seed, noise_std=1.0)
        test, obs_test = _x_trajectories(20, 2 + 10 * seed, noise_std=1.0)
        var = Var3D(B_scale=0.003, initial_state=_prior(), initial_spread=2.0,
                    raise_on_divergence=False).fit(obs, train)
        rmse["var"].append(_mean_rmse(var.predict(obs_test), test))
        for L in (1, 10):
            est = _small(window=8, max_epochs=8, module__hidden_size=32, seq_len=L,
                         batch_size=512 // L, random_state=seed).fit(obs, train)
            rmse[L].append(_mean_rmse(est.predict(obs_test), test))
            if L == 10:
                losses = est.net_.history[:, "train_loss"]
                assert losses[-1] < 0.9 * losses[0]
    mean = {k: float(np.mean(v)) for k, v in rmse.items()}
    print("cycled RMSE, mean over seeds:", mean)
    assert mean[10] < 0.5 * mean[1]
    assert mean[10] < 1.3 * mean["var"]


def test_cycle_training_keeps_single_analyses_better_than_the_background():
    """Trained through cycles, the network's *single* analyses of independent backgrounds
    (forecasts of the perturbed truth) must still beat those backgrounds. With the plain
    squared error of every analysis they once did not (x observed, noise 0.5:
    analysis/background 1.076, 1.016, 0.981 over three seeds), which the first analysis's
    single-analysis loss (weight 0.05) mended (0.964, 0.953, 0.948). Since the window's
    innovations follow the background's trajectory, both do: measured 0.809, 0.808, 0.818
    without the weight and 0.837, 0.853, 0.864 with it (0.819, 0.811, 0.828 and 0.847,
    0.852, 0.860 with the cosine decay). Asserted: below 0.95 at every seed, with and
    without the weight."""
    ratio = {0.0: [], 0.05: []}
    for seed in (0, 1, 2):
        train, obs = _x_trajectories(40, 1 + 10 * seed, noise_std=0.5)
        test, obs_test = _x_trajectories(20, 2 + 10 * seed, noise_std=0.5)
        for weight in ratio:
            est = _small(window=8, max_epochs=8, module__hidden_size=32, seq_len=10,
                         batch_size=51, random_state=seed,
                         single_analysis_weight=weight).fit(obs, train)
            analysis_rmse, background_rmse = _single_analysis_rmse(est, obs_test, test)
            ratio[weight].append(analysis_rmse / background_rmse)
    print("single analysis / background by weight:", ratio)
    assert max(ratio[0.0]) < 0.95 and max(ratio[0.05]) < 0.95


def test_a_training_cycle_is_analysis_then_forecast(data):
    """The module's sequence forward equals its single analyses chained by the model."""
    (train, obs), _, _ = data
    est = _small(seq_len=5, max_epochs=1).fit(obs, train)
    module = est.net_.module_.eval()
    w, p = 4, 2
    g = torch.Generator().manual_seed(0)
    window = torch.randn(3, 5, w, 2 * p, generator=g)
    window[..., p:] = 1.0
    x0 = 5.0 * torch.randn(3, 3, generator=g)
    y, m = window[:, :, -1, :p], window[:, :, -1, p:]
    with torch.no_grad():
        seq = module(window, x0, y, m)
        x, manual = x0, []
        for k in range(5):
            x = module(window[:, k], x, y[:, k], m[:, k])
            manual.append(x)
            x = Lorenz63().forecast(x, 0.01, 1)
    assert seq.shape == (3, 5, 3)
    torch.testing.assert_close(seq, torch.stack(manual, 1))
    assert est.forecast_interval_ == (0.01, 1)


def test_window_innovations_are_against_the_backgrounds_trajectory(data):
    """Each past observation of the window is compared with the background's own trajectory
    at that time (the model run backwards), not with the background itself. With the truth
    as background and noise-free observations of it, every innovation vanishes, so the
    analysis is the truth whatever the network's weights (here random); compared with the
    background itself, the past rows would differ by the flow's motion (about 1 per step)."""
    (train, obs), _, _ = data
    est = _small(max_epochs=1).fit(obs, train)
    module = est.net_.module_.eval()
    with torch.no_grad():
        for layer in module.head:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(1))
    w = 4
    x0 = _prior() + np.arange(5.0)[:, None]
    truth = Lorenz63().simulate(n_trajectories=5, n_steps=w - 1, x0=x0)
    states = torch.as_tensor(np.stack([truth[v].transpose("trajectory", "time").values
                                       for v in ("x", "y", "z")], -1), dtype=torch.float32)
    y = states[..., :2]
    window = torch.cat([y, torch.ones_like(y)], -1)
    x_t = states[:, -1]
    with torch.no_grad():
        back = module.backcast(x_t, w)
        analysis = module(window, x_t, y[:, -1], torch.ones_like(y[:, -1]))
        shifted = module(window, x_t + 0.3, y[:, -1], torch.ones_like(y[:, -1]))
    torch.testing.assert_close(back, states, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(analysis, x_t, atol=1e-3, rtol=1e-5)
    assert (shifted - x_t).abs().max() > 1e-2  # the network does act on nonzero innovations


def test_relative_cycle_loss_learns_the_small_gain_of_little_noise():
    """Observed as x and y with noise 0.05, the cycle settles at errors well below the
    noise, and the analysis must then move the background only a little. Trained through
    cycles with the plain squared error, which the first, large errors of each training
    cycle rule, the network kept a larger gain; with the error of every analysis relative
    to its own background added (``cycle_loss="relative"``) it learned the small one.
    Both with ``B_scale=1e-5`` (the tuned Var3D's here). Measured over three seeds (40
    training trajectories), cycled RMSE: with a constant learning rate, absolute 0.031 /
    0.042 / 0.043 and relative 0.015 / 0.013 / 0.015; with the default cosine decay,
    absolute 0.0171 / 0.0174 / 0.0157 and relative 0.0150 / 0.0148 / 0.0151, its analysis
    over its own background 0.987 / 0.993 / 0.996; Var3D with that B_scale 0.0160 /
    0.0152 / 0.0157. Asserted: the relative loss lowers the cycled error by 5% on
    average (11% measured) and beats Var3D on average, and its analysis beats its own
    background on average (and is not worse by 1% at any seed)."""
    rmse, ratio = {"absolute": [], "relative": [], "var3d": []}, []
    for seed in (0, 1, 2):
        rng = np.random.RandomState(seed)
        cases = []
        for n, offset in ((40, 1), (20, 2)):
            x0 = _prior() + 2.0 * rng.standard_normal((n, 3))
            truth = Lorenz63().simulate(n_trajectories=n, n_steps=149, x0=x0)
            cases.append((truth, observe(truth, ["x", "y"], noise_std=0.05,
                                         random_state=10 * seed + offset)))
        (train, obs), (test, obs_test) = cases
        var = Var3D(B_scale=1e-5, initial_state=_prior(), initial_spread=2.0,
                    raise_on_divergence=False).fit(obs, train)
        rmse["var3d"].append(_mean_rmse(var.predict(obs_test), test, burn_in=0.5))
        for loss in ("absolute", "relative"):
            est = _small(window=8, max_epochs=8, module__hidden_size=32, seq_len=10,
                         batch_size=128, random_state=seed, cycle_loss=loss,
                         B_scale=1e-5, return_background=True).fit(obs, train)
            cycled = est.predict(obs_test)
            rmse[loss].append(_mean_rmse(cycled, test, burn_in=0.5))
            if loss == "relative":
                background = cycled[[f"{v}_background" for v in ("x", "y", "z")]]
                background = background.rename({f"{v}_background": v for v in ("x", "y", "z")})
                ratio.append(rmse[loss][-1] / _mean_rmse(background, test, burn_in=0.5))
    print("cycled RMSE:", rmse, "relative: analysis / background:", ratio)
    mean = {k: float(np.mean(v)) for k, v in rmse.items()}
    assert mean["relative"] < 0.95 * mean["absolute"]
    assert mean["relative"] < mean["var3d"]
    assert np.mean(ratio) < 1.0 and max(ratio) < 1.01


def test_no_leakage_from_validation(data):
    (train, obs), (valid, obs_v), _ = data
    plain = _small().fit(obs, train)
    with_valid = _small().fit(obs, train, validation=(obs_v, valid))
    perm = np.random.RandomState(0).permutation(valid.sizes["trajectory"])
    shuffled = _small().fit(obs, train, validation=(obs_v.isel(trajectory=perm),
                                                   valid.isel(trajectory=perm)))
    ref = plain.net_.module_.state_dict()
    for other in (with_valid, shuffled):
        for k, v in other.net_.module_.state_dict().items():
            assert torch.equal(v, ref[k]), k
        for k, v in plain.statistics_.items():
            np.testing.assert_array_equal(other.statistics_[k], v)
    assert np.isnan(plain.history_[0]["valid_loss"])
    assert np.isfinite(with_valid.history_[0]["valid_loss"])


def test_clone_pickle_save_load_and_new_trajectory(data, tmp_path):
    (train, obs), _, (test, obs_t) = data
    est = _small(encoder="gru").fit(obs, train)
    a = est.predict(obs_t)
    again = pickle.loads(pickle.dumps(est)).predict(obs_t)
    np.testing.assert_array_equal(a.x.values, again.x.values)
    path = tmp_path / "nv.pt"
    est.save_params(path)
    loaded = _small(encoder="gru").load_params(path)
    np.testing.assert_array_equal(a.z.values, loaded.predict(obs_t).z.values)
    # a file that does not fit the parameters leaves the estimator as it was, not fitted
    # with an untrained network; a file cut short is named
    other = _small(encoder="gru", module__hidden_size=8)
    with pytest.raises(ValueError, match="does not match this estimator's parameters"):
        other.load_params(path)
    assert not hasattr(other, "net_") and not hasattr(other, "statistics_")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="cannot read .*cut.pt: not a complete save_params"):
        loaded.load_params(tmp_path / "cut.pt")
    np.testing.assert_array_equal(a.z.values, loaded.predict(obs_t).z.values)
    # one trajectory alone (no trajectory dim), never seen in training
    one = loaded.predict(obs_t.isel(trajectory=0))
    np.testing.assert_allclose(one.x.values, a.x.isel(trajectory=0).values, rtol=1e-5, atol=1e-5)
    copy = clone(est)
    assert copy.get_params()["module__hidden_size"] == 16
    assert not hasattr(copy, "net_")


def test_grid_search_over_module_hidden_size(data):
    (train, obs), _, _ = data
    search = GridSearchCV(_small(max_epochs=1), {"module__hidden_size": [8, 16]},
                          cv=KFold(2))
    search.fit(samples(obs, "trajectory"), samples(train, "trajectory"))
    assert search.best_params_["module__hidden_size"] in (8, 16)
    assert search.best_estimator_.net_.module_.encoder.out_features \
        == search.best_params_["module__hidden_size"]


def test_cosine_schedule_decays_the_rate_and_constant_keeps_it(data):
    """``lr_schedule="cosine"`` (the default) takes the rate from ``lr`` down along a half
    cosine over the epochs; ``"constant"`` leaves it at ``lr``."""
    (train, obs), _, _ = data
    cosine = _small(max_epochs=4, lr=1e-3).fit(obs, train)
    rates = cosine.net_.history[:, "event_lr"]
    np.testing.assert_allclose(rates, 1e-5 + (1e-3 - 1e-5) * (1 + np.cos(np.pi * np.arange(4)
                                                                        / 4)) / 2, rtol=1e-6)
    constant = _small(max_epochs=4, lr=1e-3, lr_schedule="constant").fit(obs, train)
    assert "event_lr" not in constant.net_.history[-1]
    assert constant.net_.optimizer_.param_groups[0]["lr"] == 1e-3
    with pytest.raises(ValueError, match="lr_schedule"):
        _small(lr_schedule="step").fit(obs, train)


def test_accessor_and_lstm(data):
    (train, obs), _, _ = data
    an = obs.xdyn.assimilate(method="neural-var", truth=train, encoder="lstm", window=4,
                             max_epochs=1, device="cpu", initial_state=_prior(),
                             random_state=0, raise_on_divergence=False, module__hidden_size=8)
    assert an.attrs["method"] == "NeuralVar3D"
    assert np.isfinite(an.x.values).all()


def test_var_loss_without_truth(data):
    (train, obs), _, _ = data
    est = _small(loss="var", max_epochs=2).fit(obs)
    losses = est.net_.history[:, "train_loss"]
    assert np.isfinite(losses).all()
    np.testing.assert_array_equal(est.statistics_["bias"], 0.0)


@pytest.mark.parametrize("case, match", [
    ("variable", "'observation' variable"),
    ("dims", "dims"),
    ("window", "window=8 is longer"),
    ("nan_window", "all NaN over a whole window"),
    ("no_truth", "needs the truth"),
    ("no_valid_truth", "validation=\\(obs_valid, truth_valid\\)"),
    ("encoder", "encoder"),
    ("routed", "unexpected parameter"),
    ("seq_len_var", "seq_len > 1"),
    ("seq_len_long", "seq_len=500 is longer"),
    ("full_R", "a diagonal R"),  # was an AttributeError on None inside fit
    # a routed name fit sets itself: skorch's "got multiple values for keyword argument"
    # at the end of fit, naming neither the estimator's parameter nor the fix
    ("module_window", "use NeuralVar3D's own parameter 'window'"),
    ("module_n_state", "module__n_state itself .*set from the training data"),
])
def test_bad_input_is_refused_before_training(data, case, match):
    (train, obs), _, _ = data
    est = _small(max_epochs=50)
    truth = train
    if case == "variable":
        obs = obs.rename(observation="obs_value")
    elif case == "dims":
        obs = obs.rename(obs="channel")
    elif case == "window":
        obs, truth = obs.isel(time=slice(0, 5)), train.isel(time=slice(0, 5))
        est.set_params(window=8)
    elif case == "nan_window":
        obs = obs.copy(deep=True)
        obs["observation"][dict(time=slice(10, 14))] = np.nan
    elif case == "no_truth":
        truth = None
    elif case == "encoder":
        est.set_params(encoder="transformer")
    elif case == "seq_len_var":
        est.set_params(seq_len=4, loss="var")
    elif case == "seq_len_long":
        est.set_params(seq_len=500)
    elif case == "full_R":
        p = obs.sizes["obs"]
        est.set_params(R=np.eye(p) + 0.3 * (np.eye(p, k=1) + np.eye(p, k=-1)))
    elif case.startswith("module_"):
        est.set_params(**{case.replace("module_", "module__", 1): 3})
    if case == "routed":
        with pytest.raises(TypeError, match=match):
            NeuralVar3D(hidden_size=8)
        return
    fit_params = {"validation": (obs, None)} if case == "no_valid_truth" else {}
    with pytest.raises((ValueError, TypeError), match=match):
        est.fit(obs, truth, **fit_params)
    assert not hasattr(est, "net_")


def test_observations_at_another_interval_are_refused(data):
    """The window is run back by the fitted observation interval: observations at another
    interval, or unevenly spaced, would be compared with the wrong states."""
    (train, obs), _, _ = data
    with pytest.raises(ValueError, match="window > 1 needs evenly spaced"):
        _small(max_epochs=1).fit(obs.isel(time=[0, 1, 2, 4, 5, 6, 7, 8, 9, 10]),
                                 train.isel(time=[0, 1, 2, 4, 5, 6, 7, 8, 9, 10]))
    est = _small(max_epochs=1).fit(obs, train)
    every_other = obs.isel(time=slice(0, None, 2))
    with pytest.raises(ValueError, match="fitted on observations 1 model steps of 0.01"):
        est.predict(every_other)
    with pytest.raises(ValueError, match="runs its window back"):
        est.analyze(every_other, train.isel(time=slice(0, None, 2)))
    assert est.predict(obs.isel(time=slice(0, 30))).sizes["time"] == 30  # same interval


def test_cycle_trained_network_refuses_another_interval_at_predict(data):
    """With ``seq_len > 1`` the network learned the backgrounds of its own cycle at the
    fitted interval, window=1 too (nothing run back). Trained every 5 model steps and
    cycled on observations every 25 it ran silently (Lorenz-63, cycled RMSE 1.25 against
    0.64 for the network trained at 25). Single analyses of given backgrounds still run."""
    (train, obs), _, _ = data
    est = _small(window=1, seq_len=5, max_epochs=1, batch_size=64).fit(obs, train)
    every_other = obs.isel(time=slice(0, None, 2))
    with pytest.raises(ValueError, match=r"fitted on observations 1 model steps.*seq_len=5"):
        est.predict(every_other)
    single = est.analyze(every_other, train.isel(time=slice(0, None, 2)))
    assert single.sizes["time"] == every_other.sizes["time"]
    assert est.predict(obs.isel(time=slice(0, 30))).sizes["time"] == 30  # same interval


def test_a_missing_observation_time_is_refused_with_how_to_keep_it(data):
    # an outage (one observation time dropped: intervals [1, 2]) is refused with seq_len > 1;
    # the message said only "observe at the fitted interval, or refit", although the time
    # kept with NaN observations is cycled through (forecast across it, analyses before
    # it unchanged)
    (train, obs), _, _ = data
    est = _small(window=1, seq_len=5, max_epochs=1, batch_size=64).fit(obs, train)
    with pytest.raises(ValueError, match="keeping a missing time with NaN observations"):
        est.predict(obs.drop_isel(time=50))
    kept = obs.copy(deep=True)
    kept["observation"][dict(time=50)] = np.nan
    analysis, full = est.predict(kept), est.predict(obs)
    assert analysis.sizes["time"] == obs.sizes["time"]
    assert np.isfinite(analysis.to_array()).all()
    xr.testing.assert_allclose(analysis.isel(time=slice(0, 50)), full.isel(time=slice(0, 50)))
    with pytest.raises(ValueError, match="window=1 a time whose observations are all NaN"):
        _small(window=1, seq_len=5, max_epochs=1).fit(obs.drop_isel(time=50),
                                                      train.drop_isel(time=50))
    est = _small(window=3, seq_len=2, max_epochs=1)
    with pytest.raises(ValueError, match="keep each missing time, with NaN observations"):
        est.fit(obs.drop_isel(time=50), train.drop_isel(time=50))
    assert est.fit(kept, train).predict(kept).sizes["time"] == obs.sizes["time"]


@pytest.mark.parametrize("window, seq_len", [(2, 1), (1, 5)])
def test_validation_at_another_interval_is_refused(data, window, seq_len):
    # the window's backward run and the training cycles step by the training interval:
    # validation observed every 2 steps was scored against the wrong states, silently
    (train, obs), (valid, obs_v), _ = data
    est = _small(window=window, seq_len=seq_len, max_epochs=1)
    every_other = (obs_v.isel(time=slice(0, None, 2)), valid.isel(time=slice(0, None, 2)))
    with pytest.raises(ValueError, match="validate at the training interval"):
        est.fit(obs, train, validation=every_other)
    assert not hasattr(est, "net_")


def test_observations_at_another_noise_are_refused(data):
    # the 3D-Var step and the variational loss weigh by the noise frozen at fit: noisier
    # test observations were weighed as if they were the training ones, silently
    (train, obs), _, _ = data
    est = _small(max_epochs=1).fit(obs, train)
    noisier = obs.assign(noise_std=obs.noise_std * 2)
    with pytest.raises(ValueError, match="fitted with observation error std"):
        est.predict(noisier)
    with pytest.raises(ValueError, match="refit at this noise"):
        est.analyze(noisier, train)
    est.set_params(noise_std=float(obs.noise_std.values.flat[0]))  # the fitted noise: fine
    assert est.predict(obs.isel(time=slice(0, 30))).sizes["time"] == 30


def test_wrong_wing_share_constructed():
    time = np.arange(6.0)
    truth = xr.Dataset({"x": (("trajectory", "time"), [[1, -2, 3, -4, 5, 0],
                                                         [1, 1, 1, 1, 1, 1]])},
                       coords={"time": time})
    an = xr.Dataset({"x": (("trajectory", "time"), [[-1, -2, -3, 4, 5, 7],
                                                      [1, 1, -1, 1, 1, 1]])},
                    coords={"time": time})
    # trajectory 0: 3 wrong of 5 counted (truth 0 does not count); trajectory 1: 1 of 6
    per = wrong_wing_share(an, truth, keep_dims=("trajectory",))
    np.testing.assert_allclose(per.values, [3 / 5, 1 / 6])
    assert float(wrong_wing_share(an, truth)) == pytest.approx(4 / 11)


def test_encoders_shapes_and_names():
    seq = torch.zeros(7, 5, 4)
    for cls in (MLPEncoder, GRUEncoder, LSTMEncoder):
        assert cls(4, 5, hidden_size=6)(seq).shape == (7, 6)
    with pytest.raises(ValueError, match="encoder='cnn' is unknown"):
        make_encoder("cnn", 4, 5)
    with pytest.raises(ValueError, match="hidden_size"):
        GRUEncoder(4, 5, hidden_size=0)


def test_climatology_training_corrects_the_originals_backgrounds():
    """``training_background="climatology"`` trains on draws N(mean, cov) of the training
    states (the original pipeline's background, errors ~11 here): its single analyses of
    such draws are far better than the draws, and than the forecast-trained network's
    (which never saw errors that large). Measured on these 20 test trajectories: draws
    10.4, climatology-trained 2.4, forecast-trained 7.6 (1.9 and 7.9 before the window's
    innovations followed the background's trajectory); the training loss fell from 0.226
    to 0.154 over the 8 epochs (0.141 at a constant learning rate).
    """
    from xdyn.assimilation._neural_var_data import climatology_draws
    from xdyn.assimilation.climatology import estimate_climatology

    train, obs = _trajectories(40, 1)
    test, obs_test = _trajectories(20, 2)
    clim = _small(window=8, max_epochs=8, module__hidden_size=32,
                  training_background="climatology", B_scale=2.0).fit(obs, train)
    losses = clim.net_.history[:, "train_loss"]
    print("climatology-trained loss, first and last epoch:", losses[0], losses[-1])
    assert losses[-1] < 0.8 * losses[0]
    mean, cov = estimate_climatology(Lorenz63(), train)  # the training split's states
    np.testing.assert_allclose(clim.statistics_["x_mean"], mean)
    x_b = climatology_draws(mean, cov, (test.sizes["time"], test.sizes["trajectory"]),
                            np.random.RandomState(5), like=torch.zeros(1, dtype=torch.float64))
    draws = Lorenz63().from_state(x_b, dims=("time", "trajectory"), coords={"time": test.time})
    forecast = _small(window=8, max_epochs=8, module__hidden_size=32).fit(obs, train)
    b = _mean_rmse(draws, test, burn_in=0.0)
    a_clim = _mean_rmse(clim.analyze(obs_test, draws), test, burn_in=0.0)
    a_fc = _mean_rmse(forecast.analyze(obs_test, draws), test, burn_in=0.0)
    print("draws, climatology-trained, forecast-trained:", b, a_clim, a_fc)
    assert a_clim < 0.5 * b and a_clim < 0.5 * a_fc


def test_climatology_training_is_leakage_free(data):
    (train, obs), (valid, obs_v), _ = data
    plain = _small(training_background="climatology", B_scale=2.0).fit(obs, train)
    with_valid = _small(training_background="climatology", B_scale=2.0).fit(
        obs, train, validation=(obs_v, valid))
    for k, v in with_valid.net_.module_.state_dict().items():
        assert torch.equal(v, plain.net_.module_.state_dict()[k]), k


@pytest.mark.parametrize("observed", [["x", "y"], "x^2"])
def test_pipeline_after_an_observation_scaler(data, observed):
    """Scaling y, noise_std and h together leaves the 3D-Var start and the network's
    normalised inputs unchanged: the pipeline's analysis equals the plain estimator's
    up to float32 rounding in training (measured: 3e-6 for xy, 2e-2 of ~15 for x^2)."""
    from sklearn.pipeline import Pipeline

    from xdyn.observe import ObservationScaler

    (train, _), _, (test, _) = data
    obs = observe(train, observed, noise_std=0.5, random_state=1)
    obs_t = observe(test, observed, noise_std=0.5, random_state=2)
    plain = _small(encoder="gru").fit(obs, train).predict(obs_t)
    pipe = Pipeline([("scale", ObservationScaler()), ("var", _small(encoder="gru"))])
    piped = pipe.fit(obs, train).predict(obs_t)
    np.testing.assert_allclose(pipe[0].mean_, obs.observation.mean(("trajectory", "time")))
    assert type(pipe[-1].operator_).__name__ == "ScaledOperator"
    a, b = _mean_rmse(plain, test), _mean_rmse(piped, test)
    assert abs(a - b) < 1e-2 * a
    np.testing.assert_allclose(piped.x.values, plain.x.values, atol=0.05)


@pytest.mark.parametrize("lead", [0, 5, 10, 25])
def test_training_backgrounds_forecast_the_model_steps_between_observations(lead):
    # observed every 10 model steps: the forecast from an earlier observation time must
    # run the model steps between them (counting observation times, it ended elsewhere)
    truth = Lorenz63().simulate(n_trajectories=3, n_steps=300, burn_in=5, random_state=0)
    obs = observe(truth, ["x", "y"], noise_std=0.5, every=10, random_state=1)
    ctx = NeuralVar3D()._context(obs)
    assert set(ctx.n_steps[1:].tolist()) == {10}
    x_t = aligned_truth(truth, ctx)
    x_b = perturbed_backgrounds(ctx.system, x_t, ctx.dt, lead, np.random.RandomState(0),
                                error_range=(1e-9, 1e-9), n_steps=ctx.n_steps)
    assert float((x_b - x_t).abs().max()) < 1e-6


def test_background_lead_counts_model_steps_in_fit():
    truth = Lorenz63().simulate(n_trajectories=4, n_steps=400, burn_in=5, random_state=0)
    sparse = observe(truth, ["x", "y"], noise_std=0.5, every=10, random_state=1)
    fit = _small(window=2, max_epochs=1).fit(sparse, truth)
    # errors of 0.02 to 1.5 grown over 10 steps (the state from the wrong time: ~110)
    assert np.diag(fit.B_).max() < 5.0
    # observed at every step the lead still spans 10 observation times (the old backgrounds)
    ctx = NeuralVar3D()._context(observe(truth, ["x", "y"], noise_std=0.5, random_state=1))
    x_t = aligned_truth(truth, ctx)
    args = (ctx.system, x_t, ctx.dt, 10)
    torch.testing.assert_close(
        perturbed_backgrounds(*args, np.random.RandomState(3), n_steps=ctx.n_steps),
        perturbed_backgrounds(*args, np.random.RandomState(3)), rtol=0, atol=0)


def test_truth_and_background_are_paired_by_trajectory_label(data):
    (train, obs), _, _ = data
    perm = np.random.RandomState(0).permutation(train.sizes["trajectory"])
    shuffled = train.isel(trajectory=perm)  # the same trajectories, labels kept
    ordered = _small(window=2, max_epochs=1).fit(obs, train)
    other = _small(window=2, max_epochs=1).fit(obs, shuffled)
    for k, v in other.net_.module_.state_dict().items():
        assert torch.equal(v, ordered.net_.module_.state_dict()[k]), k
    background = train + 0.3
    xr.testing.assert_identical(ordered.analyze(obs, background.isel(trajectory=perm)),
                                ordered.analyze(obs, background))
    relabelled = train.assign_coords(trajectory=train["trajectory"].values + 100)
    with pytest.raises(ValueError, match="'trajectory' labels"):
        _small().fit(obs, relabelled)
    with pytest.raises(ValueError, match="'trajectory' labels"):
        ordered.analyze(obs, relabelled)


def test_validation_leaves_the_fit_from_a_random_state_instance_unchanged(data):
    # the validation data draw from their own generator (the second round's cycle too)
    (train, obs), (valid, obs_v), _ = data
    fits = [_small(window=2, n_rounds=2, random_state=np.random.RandomState(0)).fit(
        obs, train, validation=v) for v in (None, (obs_v, valid))]
    ref = fits[0].net_.module_.state_dict()
    for k, v in fits[1].net_.module_.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_a_site_never_observed_in_training_is_refused(data):
    """A site with no training observation had a scale of 1e-6: at predict its innovations
    entered the network 1e6 times too large (single analyses 10x worse with a good
    observation). Now predict, analyze and a validation that observe it are refused."""
    (train, obs), (valid, obs_v), _ = data
    no_y = obs.assign(observation=obs.observation.where(obs.variable != "y"))
    est = _small(window=2, max_epochs=1).fit(no_y, train)
    with pytest.raises(ValueError, match=r"site\(s\) \['obs=1 \(y\)'\].*never observed"):
        est.predict(obs_v)
    n = train.sizes["trajectory"] * train.sizes["time"]
    np.testing.assert_array_equal(est.statistics_["obs_count"], [n, 0])
    # fewer than two observations: no spread to scale by, so no scaling (not 1e-6)
    assert est.statistics_["y_scale"][1] == 1.0 and est.statistics_["d_scale"][1] == 1.0
    with pytest.raises(ValueError, match=r"\['obs=1 \(y\)'\].*Set those observations to NaN"):
        est.analyze(obs_v, valid + 0.3)
    masked = obs_v.assign(observation=obs_v.observation.where(obs_v.variable != "y"))
    assert est.analyze(masked, valid + 0.3).sizes == valid.sizes
    with pytest.raises(ValueError, match=r"validation observations observe the site\(s\)"):
        _small(window=2, max_epochs=1).fit(no_y, train, validation=(obs_v, valid))


def test_every_round_restarts_the_cosine_schedule():
    """With ``n_rounds > 1`` the rate falls from ``lr`` to 1e-5 in every round; skorch
    continued the schedule through partial_fit, and it rose back to ``lr`` in round 2."""
    train, obs = _trajectories(3, 0, n_steps=40)
    est = _small(window=2, max_epochs=4, n_rounds=3, lr=1e-2).fit(obs, train)
    one_round = 1e-5 + (1e-2 - 1e-5) * (1 + np.cos(np.pi * np.arange(4) / 4)) / 2
    np.testing.assert_allclose(est.net_.history[:, "event_lr"], np.tile(one_round, 3),
                               rtol=1e-6)
    assert [h["epochs"] for h in est.history_] == [4, 8, 12]  # cumulative, as documented


def test_a_refit_that_fails_on_its_data_leaves_the_estimator_unfitted():
    """A refit that fails must not leave the old network with the new observation interval:
    predict then accepted observations that its window is run back wrongly for."""
    from sklearn.exceptions import NotFittedError

    train, obs = _trajectories(3, 0, n_steps=60)
    obs5 = observe(train, ["x", "y"], noise_std=0.5, every=5, random_state=1)
    est = _small(window=2, max_epochs=1).fit(obs, train)
    with pytest.raises(ValueError, match="fitted on observations 1 model steps"):
        est.predict(obs5)
    with pytest.raises(ValueError, match="does not cover every observation time"):
        est.fit(obs5, train.isel(time=slice(0, 30)))
    with pytest.raises(NotFittedError):
        est.predict(obs5)
    assert not hasattr(est, "forecast_interval_") and not hasattr(est, "statistics_")


def test_a_refit_that_fails_in_training_leaves_the_estimator_unfitted():
    """Nor a net with no module: predict raised an AttributeError, not NotFittedError."""
    from sklearn.exceptions import NotFittedError

    train, obs = _trajectories(3, 0, n_steps=60)
    est = _small(window=2, max_epochs=1).fit(obs, train).set_params(module__bogus=1)
    with pytest.raises(TypeError, match="bogus"):
        est.fit(obs, train)
    with pytest.raises(NotFittedError):
        est.predict(obs)


def test_wrong_wing_share_of_a_diverged_run_is_nan():
    """A NaN analysis (a failed cycle) is not an analysis on the wrong wing: the share is
    NaN, per trajectory where that one failed, like the RMSE of a failed run."""
    time = np.arange(3.0)
    truth = xr.Dataset({"x": (("trajectory", "time"), [[1, -2, 3], [1, 2, 3]])},
                       coords={"time": time})
    an = xr.Dataset({"x": (("trajectory", "time"), [[-1, np.nan, np.nan], [1, 2, -3]])},
                    coords={"time": time})
    per = wrong_wing_share(an, truth, keep_dims=("trajectory",))
    np.testing.assert_allclose(per.values, [np.nan, 1 / 3])
    assert np.isnan(float(wrong_wing_share(an, truth)))


@pytest.mark.parametrize("what", ["truth", "background"])
def test_a_batch_dim_the_observations_lack_is_refused_by_name(data, what):
    """The truth or background of every trajectory with the observations of one failed deep
    in xarray or torch (IndexError, a tensor size mismatch); now refused by name."""
    (train, obs), _, _ = data
    one = obs.isel(trajectory=0)
    match = (rf"{what} has the batch dim\(s\) \['trajectory'\] that the observations lack"
             r".*\.isel\(trajectory=i\)")
    ctx = Var3D()._context(one)
    with pytest.raises(ValueError, match=match):
        aligned_truth(train, ctx, what=what)
    if what == "truth":
        with pytest.raises(ValueError, match=match):
            _small(window=2, max_epochs=1).fit(one, train)
