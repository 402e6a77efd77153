"""XdynNet: learning happens, seeds reproduce, checkpoint+resume equals an
uninterrupted run, grid search over module__*, clone/pickle, device "auto"."""

import pickle
import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from skorch.dataset import Dataset

from xdyn.nn import MLP, Checkpoint, EarlyStopping, LRScheduler, XdynNet, predefined_split
from xdyn.utils import resolve_device


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 3))
    y = np.sin(X[:, :1]) + X[:, 1:2] * X[:, 2:3]
    return X, y


def make_net(**kw):
    params = dict(
        module__in_features=3, module__out_features=1, module__hidden=16,
        lr=1e-2, max_epochs=8, batch_size=32, random_state=0,
    )
    params.update(kw)
    return XdynNet(MLP, **params)


def weights(net):
    return {k: v.detach().clone() for k, v in net.module_.state_dict().items()}


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_loss_falls_and_beats_mean_predictor(data):
    X, y = data
    net = make_net(max_epochs=40).fit(X, y)
    losses = net.history[:, "train_loss"]
    assert losses[-1] < 0.3 * losses[0]
    # the fit explains most of the variance (a mean predictor has MSE = var(y))
    mse = float(np.mean((net.predict(X) - y) ** 2))
    assert mse < 0.2 * float(np.var(y))


def test_dtype_casts_inputs_and_parameters(data):
    X, y = data
    net = make_net(max_epochs=1).fit(X, y)
    assert all(p.dtype == torch.float32 for p in net.module_.parameters())
    assert net.predict(X).dtype == np.float32
    net64 = make_net(max_epochs=1, dtype="float64").fit(X.astype(np.float32), y)
    assert all(p.dtype == torch.float64 for p in net64.module_.parameters())
    assert net64.predict(torch.as_tensor(X, dtype=torch.float32)).dtype == np.float64
    with pytest.raises(ValueError, match="floating"):
        make_net(dtype="int64").initialize()


def test_set_params_rebuilds_a_fitted_module(data):
    X, y = data
    net = make_net(max_epochs=1).fit(X, y)
    net.set_params(module__hidden=4)
    assert net.module_.layers[0].out_features == 4 and net.device == "auto"
    assert net.fit(X, y).predict(X).shape == (len(X), 1)


def test_parameters_stored_unchanged_and_keyword_only():
    net = make_net()
    assert net.device == "auto" and net.dtype == "float32" and net.random_state == 0
    net.initialize()
    assert net.get_params()["device"] == "auto"
    assert net.device_ == torch.device("cpu")
    with pytest.raises(TypeError, match="keyword"):
        XdynNet(MLP, torch.nn.MSELoss)


def test_same_seed_same_weights_other_seed_differs(data):
    X, y = data
    state = torch.random.get_rng_state()
    a = make_net().fit(X, y)
    b = make_net().fit(X, y)
    # seeding happens in forked RNG streams: the global RNG is left as it was
    assert torch.equal(state, torch.random.get_rng_state())
    assert_same_weights(a, b)
    c = make_net(random_state=1).fit(X, y)
    assert not torch.equal(weights(a)["layers.0.weight"], weights(c)["layers.0.weight"])
    # same init, different epoch streams: shuffling is seeded too
    init_a = make_net().initialize()
    init_c = make_net(random_state=1).initialize()
    assert not torch.equal(weights(init_a)["layers.0.weight"], weights(init_c)["layers.0.weight"])


def test_checkpoint_resume_equals_uninterrupted_run(data, tmp_path):
    X, y = data
    # dropout makes the per-epoch RNG stream matter beyond shuffling
    module = torch.nn.Sequential(
        torch.nn.Linear(3, 16), torch.nn.Dropout(0.2), torch.nn.GELU(), torch.nn.Linear(16, 1)
    )
    kw = dict(module=module, lr=1e-2, batch_size=32, random_state=3)
    straight = XdynNet(**{**kw, "module": clone_module(module)}, max_epochs=6).fit(X, y)

    cp = Checkpoint(monitor=None, dirname=str(tmp_path))
    first = XdynNet(**{**kw, "module": clone_module(module)}, max_epochs=3, callbacks=[cp])
    first.fit(X, y)
    resumed = XdynNet(**{**kw, "module": clone_module(module)}, max_epochs=3).initialize()
    resumed.load_params(checkpoint=cp)
    assert len(resumed.history) == 3
    resumed.partial_fit(X, y)
    assert len(resumed.history) == 6
    assert_same_weights(straight, resumed)
    np.testing.assert_array_equal(
        straight.history[:, "train_loss"], resumed.history[:, "train_loss"]
    )


def clone_module(module):
    return pickle.loads(pickle.dumps(module))


def test_save_params_resume_with_lr_scheduler(data, tmp_path):
    X, y = data
    sched = dict(policy=torch.optim.lr_scheduler.StepLR, step_size=2, gamma=0.5)
    straight = make_net(max_epochs=4, callbacks=[LRScheduler(**sched)]).fit(X, y)
    half = make_net(max_epochs=2, callbacks=[LRScheduler(**sched)]).fit(X, y)
    files = {k: str(tmp_path / f"{k}.pt") for k in ("f_params", "f_optimizer")}
    files["f_history"] = str(tmp_path / "history.json")
    half.save_params(**files)
    resumed = make_net(max_epochs=2, callbacks=[LRScheduler(**sched)]).initialize()
    resumed.load_params(**files)
    resumed.partial_fit(X, y)
    assert_same_weights(straight, resumed)


def test_explicit_validation_split_and_early_stopping(data):
    X, y = data
    valid = Dataset(X[150:], y[150:])
    net = make_net(
        max_epochs=50,
        train_split=predefined_split(valid),
        callbacks=[EarlyStopping(monitor="valid_loss", patience=2, threshold=1e-2)],
    ).fit(X[:150], y[:150])
    assert "valid_loss" in net.history[-1]
    assert len(net.history) < 50  # stopped early
    # no hidden split: the default trains on all samples given
    plain = make_net(max_epochs=1).fit(X, y)
    assert sum(plain.history[-1, "batches", :, "train_batch_size"]) == len(X)


def test_grid_search_over_module_parameter(data):
    X, y = data
    search = GridSearchCV(
        make_net(max_epochs=5), {"module__hidden": [4, 8]}, cv=2,
        scoring="neg_mean_squared_error",
    ).fit(X, y)
    assert search.best_params_["module__hidden"] in (4, 8)
    assert search.best_estimator_.module_.layers[0].out_features == search.best_params_["module__hidden"]
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_clone_and_pickle_round_trip(data):
    X, y = data
    net = make_net(max_epochs=3).fit(X, y)
    fresh = clone(net)
    assert fresh.get_params()["device"] == "auto"
    assert not hasattr(fresh, "module_")
    assert_same_weights(fresh.fit(X, y), net)  # same seed, same weights
    loaded = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    assert loaded.device == "auto"


def test_progress_bar_runs(data, capsys):
    X, y = data
    net = make_net(max_epochs=2, progress=True).fit(X, y)
    assert "progress" in dict(net.callbacks_)
    assert "2/2" in capsys.readouterr().err
    pickle.dumps(net)


def test_self_supervised_subclass_with_dict_input_and_no_target():
    rng = np.random.RandomState(1)
    clean = rng.normal(size=(128, 2))
    X = {"noisy": clean + 0.1 * rng.normal(size=clean.shape), "clean": clean}

    class Denoiser(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = MLP(2, 2, hidden=16, n_layers=1)

        def forward(self, noisy, clean=None):
            return noisy + self.mlp(noisy)

    class SelfSupervised(XdynNet):
        def get_loss(self, y_pred, y_true, X=None, training=False):
            assert X["clean"].dtype == self.dtype_ and X["clean"].device.type == self.device_.type
            return torch.mean((y_pred - X["clean"]) ** 2)

    net = SelfSupervised(Denoiser, lr=1e-2, max_epochs=15, batch_size=32, random_state=0).fit(X)
    losses = net.history[:, "train_loss"]
    assert losses[-1] < 0.5 * losses[0]


def test_resolve_device_auto_follows_cuda_availability():
    with mock.patch("torch.cuda.is_available", return_value=True):
        assert resolve_device("auto") == torch.device("cuda")
        assert resolve_device(None) == torch.device("cuda")
    with mock.patch("torch.cuda.is_available", return_value=False):
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu")


def test_net_saved_on_cuda_loads_on_cpu_only_machine(data, tmp_path):
    X, y = data
    net = make_net(max_epochs=2).fit(X, y)
    path = tmp_path / "params.pt"
    # write the weights as a GPU run would: every storage tagged "cuda:0"
    with mock.patch("torch.serialization.location_tag", return_value="cuda:0"):
        net.save_params(f_params=str(path))
    with mock.patch("torch.cuda.is_available", return_value=False):
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)  # the file really claims CUDA
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "auto" needs no device fallback warning
            cpu = make_net().initialize()
            cpu.load_params(f_params=str(path))
        assert cpu.device_ == torch.device("cpu")
        assert next(cpu.module_.parameters()).device.type == "cpu"
        np.testing.assert_array_equal(cpu.predict(X), net.predict(X))


def test_pickle_from_cuda_net_loads_on_cpu(data):
    X, y = data
    net = make_net(max_epochs=1).fit(X, y)
    state = net.__getstate__()
    state["device_"] = torch.device("cuda")  # as pickled on a GPU machine
    with mock.patch("torch.cuda.is_available", return_value=False):
        other = XdynNet.__new__(XdynNet)
        other.__setstate__(state)
    assert other.device == "auto" and other.device_ == torch.device("cpu")
    np.testing.assert_array_equal(other.predict(X), net.predict(X))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trained_on_cuda_predicts_on_cpu(data, tmp_path):
    X, y = data
    gpu = make_net(max_epochs=3).fit(X, y)
    assert gpu.device_.type == "cuda" and next(gpu.module_.parameters()).is_cuda
    expected = gpu.predict(X)
    gpu.save_params(f_params=str(tmp_path / "p.pt"))
    blob = pickle.dumps(gpu)
    with mock.patch("torch.cuda.is_available", return_value=False), \
            mock.patch("torch.cuda.device_count", return_value=0):
        cpu = make_net().initialize()
        cpu.load_params(f_params=str(tmp_path / "p.pt"))
        unpickled = pickle.loads(blob)
        assert unpickled.device_ == torch.device("cpu")
        for net in (cpu, unpickled):
            np.testing.assert_allclose(net.predict(X), expected, rtol=1e-5, atol=1e-6)


def test_small_batches_train_on_one_thread_unless_the_net_keeps_the_process_s(data):
    # XdynNet runs a small MLP's batches on one torch thread (weights x batch below
    # _SMALL_BATCH_WORK); a net whose weights act at every grid point of a sample
    # (_keeps_process_threads) keeps the process's, and the setting is restored after
    X, y = data
    seen = {}

    class Recorder(MLP):
        def forward(self, x):
            seen[type(net).__name__] = torch.get_num_threads()
            return super().forward(x)

    class Keeping(XdynNet):
        _keeps_process_threads = True

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for cls in (XdynNet, Keeping):
            net = cls(Recorder, module__in_features=3, module__out_features=1, max_epochs=1,
                      batch_size=32, random_state=0)
            net.fit(X, y)
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen == {"XdynNet": 1, "Keeping": 2}


def test_a_nan_or_infinite_training_loss_stops_the_fit(data):
    X, y = data
    bad = y.copy()
    bad[70] = np.nan  # in the third batch of 32 when batches are not shuffled
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 1, batch 3 of XdynNet"):
        make_net(iterator_train__shuffle=False).fit(X, bad)
    # a learning rate that blows the weights up: stopped at the first infinite or NaN loss
    with pytest.raises(FloatingPointError, match="the fit diverged"):
        make_net(lr=1e30, optimizer=torch.optim.SGD, max_epochs=20).fit(X, y * 1e10)
    # turned off, skorch trains on to NaN weights (what the guard prevents)
    net = make_net(iterator_train__shuffle=False, callbacks__finite_loss=None).fit(X, bad)
    assert np.isnan(net.history[-1, "train_loss"])
    assert np.isnan(net.predict(X)).all()
