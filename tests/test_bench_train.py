"""``xdyn bench train``: the step timer, the step counts it extrapolates from, bad input."""

import numpy as np
import pytest
import torch

from xdyn.bench_train import (FAMILIES, bench_train, timed_training_steps,
                              training_step_times)
from xdyn.nn import XdynNet


def test_timer_counts_every_training_step_and_restores_the_net():
    original = XdynNet.run_single_epoch
    net = XdynNet(torch.nn.Linear, module__in_features=2, module__out_features=1,
                  criterion=torch.nn.MSELoss, max_epochs=3, batch_size=4, device="cpu",
                  train_split=None)
    X, y = np.zeros((9, 2), "float32"), np.zeros((9, 1), "float32")
    with timed_training_steps() as steps:
        net.fit(X, y)
    assert len(steps) == 3 * 3  # ceil(9 / 4) batches, 3 epochs; validation not counted
    assert all(name == "XdynNet" and s > 0 for name, s in steps)
    assert XdynNet.run_single_epoch is original
    with pytest.raises(RuntimeError), timed_training_steps():
        raise RuntimeError("a failed fit")
    assert XdynNet.run_single_epoch is original


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_times_its_quick_setup(family):
    # the step count the extrapolation uses is checked against the short fit's inside
    t = training_step_times(family, quick=True, device="cpu", n_batches=2)
    assert t["step_s"] > 0 and t["steps_per_epoch"] >= 1 and t["epochs"] >= 1
    assert t["training_h"] == pytest.approx(
        t["step_s"] * t["steps_per_epoch"] * t["epochs"] / 3600)
    assert t["device"] == "cpu" and t["peak_gpu_gib"] is None


def test_the_full_setups_count_the_experiments_steps():
    from xdyn.bench_train import _BUILDERS

    # lorenz96-amortized at the original's sizes: 240,000 times in sequences of 40, batches
    # of 64, 500 epochs
    spec = _BUILDERS["amortized"](False, "cpu", 0, 2)
    assert spec["steps"](spec["items"][1]) == 94 and spec["epochs"] == 500
    # the closure ROM: 6 trajectories x 8 symmetry images x (800 - 60 + 1) windows, batch 8
    spec = _BUILDERS["latent-rom"](False, "cpu", 0, 2)
    assert spec["items"][1] == 6 * 8 * 741 and spec["steps"](spec["items"][1]) == 4446


def test_bad_family_and_batches():
    with pytest.raises(ValueError, match="unknown family 'pod'"):
        training_step_times("pod", device="cpu")
    with pytest.raises(ValueError, match="n_batches must be at least 2"):
        training_step_times("vgbdm", device="cpu", n_batches=1)


def test_table_names_every_family_and_the_device():
    out = bench_train(quick=True, device="cpu", families=("neural-3dvar",))
    assert "neural-3dvar" in out and "on cpu" in out and "training h" in out


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_trains_on_cuda(family):
    t = training_step_times(family, quick=True, device="cuda", n_batches=2)
    assert t["device"].startswith("cuda") and t["peak_gpu_gib"] > 0
