"""``xdyn bench train``: seconds per training step of each learned family, and what its
experiment's whole training takes on this device.

A training step is one optimizer step of a family's network (forward, loss,
backward, update) on one batch. Every learned estimator trains through
:class:`xdyn.nn.XdynNet`, and :func:`timed_training_steps` times every step
its nets take. Each family's estimator is built as its experiment builds it
(the full setup, or the CPU-sized one with ``quick``) and fitted for one
epoch on data just long enough for a few batches: the cost of a step depends
on the network and the batch, not on what the data say. The first step is
left out (torch's one-off set-up; a GPU's kernel selection) and the median of
the rest reported, next to the experiment's steps per epoch and epochs, as
the estimator counts them (the count is checked against the steps the short
fit took), and their product: the whole training's time on this device.

The families and the experiments that size them:

* ``neural-3dvar``: one network of ``lorenz63-neural-var`` (GRU encoder, x
  observed; the experiment trains one per encoder, observed mode, noise level
  and candidate);
* ``amortized``: ``lorenz96-amortized`` (conv update network, 10 members,
  Lorenz-96 rolled out through the sequence);
* ``latent-rom``: the latent ROM of ``kolmogorov-closure`` (POD front end,
  VAE + transformer, on the symmetry images of the training trajectories);
* ``ldnet``: the LDNet of ``kolmogorov-ldensf`` (latent ODE rolled out over
  a trajectory, decoder at the sampled points);
* ``vgbdm``: VGB-DM of ``reaction-diffusion-vgbdm`` (conv encoder, pointwise
  correction, flow matching).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time

import numpy as np
import torch

__all__ = ["FAMILIES", "bench_train", "timed_training_steps", "training_step_times"]

FAMILIES = ("neural-3dvar", "amortized", "latent-rom", "ldnet", "vgbdm")


def _synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class _Steps(list):
    """``(net class name, seconds)`` per step, and ``threads``: torch's threads per step."""

    def __init__(self):
        super().__init__()
        self.threads = []


@contextlib.contextmanager
def timed_training_steps():
    """Record ``(net class name, seconds)`` of every training step an XdynNet takes inside.

    On a GPU each step is timed between two synchronisations, so the time is
    the step's, not its launch's. The list's ``threads`` holds the torch
    threads each step ran on: on a CPU an XdynNet runs a small network on one
    thread, whatever the process's count.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from xdyn.nn import XdynNet
    >>> net = XdynNet(torch.nn.Linear, module__in_features=2, module__out_features=1,
    ...               criterion=torch.nn.MSELoss, max_epochs=2, batch_size=4, device="cpu")
    >>> X, y = np.zeros((10, 2), "float32"), np.zeros((10, 1), "float32")
    >>> with timed_training_steps() as steps:
    ...     _ = net.fit(X, y)
    >>> len(steps), steps[0][0], steps.threads[0]  # 3 batches an epoch, 2 epochs; a tiny net
    (6, 'XdynNet', 1)
    """
    from xdyn.nn import XdynNet

    records = _Steps()
    original = XdynNet.run_single_epoch

    def run_single_epoch(net, iterator, training, prefix, step_fn, **fit_params):
        if training:
            inner = step_fn

            def step_fn(batch, **kwargs):
                _synchronize(net.device_)
                t0 = time.perf_counter()
                out = inner(batch, **kwargs)
                _synchronize(net.device_)
                records.append((type(net).__name__, time.perf_counter() - t0))
                records.threads.append(torch.get_num_threads())
                return out
        return original(net, iterator, training, prefix, step_fn, **fit_params)

    XdynNet.run_single_epoch = run_single_epoch
    try:
        yield records
    finally:
        XdynNet.run_single_epoch = original


# ---------------------------------------------------------------- the families
# Each returns _spec(...): the short fit (a callable), the experiment's sizes in words, the
# batch size, the training items (samples, sequences, windows, trajectories) of the short
# fit and of the experiment, and the experiment's epochs.

def _spec(fit, sizes, batch_size, items, epochs):
    return {"fit": fit, "sizes": f"{sizes}, batch {batch_size}",
            "steps": lambda n: math.ceil(n / batch_size), "items": items, "epochs": epochs}


def _neural_3dvar(quick, device, seed, n_batches):
    from xdyn.assimilation import NeuralVar3D
    from xdyn.experiments.neural_var import MODES, NeuralVarSetup, make_trajectories
    from xdyn.observe import observe

    setup = NeuralVarSetup.quick() if quick else NeuralVarSetup()
    # every analysis time of every trajectory is a training sample
    per_traj = setup.n_steps
    n_traj = max(1, math.ceil(setup.batch_size * n_batches / per_traj))
    small = dataclasses.replace(setup, n_train=n_traj, n_valid=1, n_test=1)
    prior, train, _, _ = make_trajectories(small, seed)
    obs = observe(train, MODES["x"], noise_std=0.5, random_state=seed)
    est = NeuralVar3D(encoder="gru", window=setup.window, n_iterations=setup.n_iterations,
                      loss=setup.loss, n_rounds=1, max_epochs=1, batch_size=setup.batch_size,
                      initial_state=prior, initial_spread=setup.initial_std, device=device,
                      random_state=seed, module__hidden_size=setup.hidden_size)
    return _spec(lambda: est.fit(obs, train),
                 f"GRU hidden {setup.hidden_size}, window {setup.window}", setup.batch_size,
                 (n_traj * per_traj, setup.n_train * per_traj), setup.max_epochs * setup.n_rounds)


def _amortized(quick, device, seed, n_batches):
    from xdyn.experiments.amortized import AmortizedSetup, make_amortized, make_twins

    setup = AmortizedSetup.quick() if quick else AmortizedSetup()
    S = setup.n_sequences or setup.n_train_trajectories * (setup.n_train_times // setup.seq_len)
    small = dataclasses.replace(setup, n_train_trajectories=1, n_train_times=2 * setup.seq_len,
                                n_valid_times=4, n_test_times=4, test_burn_in_times=1,
                                cases=("full",))
    obs = make_twins(small, seed)["obs"]["full"]["train"]
    n_short = setup.batch_size * n_batches
    est = make_amortized(setup, seed, device).set_params(
        n_sequences=n_short, max_epochs=1, early_stopping=False)
    return _spec(lambda: est.fit(obs),
                 f"conv hidden {setup.hidden_size}, {setup.n_members} members x "
                 f"{setup.n_sites} sites, sequences of {setup.seq_len}", setup.batch_size,
                 (n_short, S), setup.max_epochs)


def _fields(n_traj, n_time, n, seed):
    """Random smooth (u, v) on an n x n periodic grid, the closure data's layout."""
    import xarray as xr

    rng = np.random.RandomState(seed)
    x = np.arange(n) * 2 * np.pi / n
    k = np.arange(1, 5)
    amp = rng.standard_normal((2, n_traj, n_time, len(k), 2))
    waves = np.sin(k[:, None] * x[None] + np.arange(2)[:, None, None] * np.pi / 2)  # (2, 4, n)
    fields = np.einsum("vbtkw,wkx->vbtx", amp, waves)[..., None, :] \
        * np.cos(x)[None, None, None, :, None]
    dims = ("trajectory", "time", "y", "x")
    return xr.Dataset({"u": (dims, fields[0].astype("float32")),
                       "v": (dims, fields[1].astype("float32"))},
                      coords={"x": x, "y": x, "time": np.arange(n_time) * 0.1})


def _latent_rom(quick, device, seed, n_batches):
    from xdyn.datasets.kolmogorov_closure import FULL_CONFIG, QUICK_CONFIG
    from xdyn.experiments._kolmogorov_forecast import _make_latent_rom
    from xdyn.experiments.kolmogorov_closure import ClosureSetup

    setup = ClosureSetup() if quick else ClosureSetup.full()
    config = QUICK_CONFIG if quick else FULL_CONFIG
    length, stride = setup.latent_seq_len + setup.latent_pred_horizon, setup.latent_window_stride
    # two trajectories, long enough for the POD's modes and a few batches of windows
    per_traj = max(math.ceil(setup.latent_batch_size * n_batches / 2),
                   setup.latent_reducer_modes)
    n_time = length + (per_traj - 1) * stride
    data = _fields(2, n_time, config["output_grid"], seed)
    est = _make_latent_rom(setup, seed, device).set_params(max_epochs=1)

    def windows(n_traj, n_time):
        return n_traj * ((n_time - length) // stride + 1)

    full = windows(config["n_train"] * setup.latent_symmetry_copies, config["n_snapshots"])
    return _spec(lambda: est.fit(data),
                 f"POD {setup.latent_reducer_modes} -> {setup.latent_architecture} VAE latent "
                 f"{setup.latent_n_latent}, transformer d {setup.latent_d_model}, windows "
                 f"{setup.latent_seq_len}+{setup.latent_pred_horizon}",
                 setup.latent_batch_size, (windows(2, n_time), full), setup.latent_epochs)


def _ldnet(quick, device, seed, n_batches):
    from xdyn.experiments._ldensf_cases import CASES
    from xdyn.experiments.ldensf import LDEnSFSetup, make_ldnet

    setup = LDEnSFSetup.for_case("kolmogorov", quick=quick)
    case = CASES["kolmogorov"]
    n_short = setup.ldnet_batch_size * n_batches
    small = dataclasses.replace(setup, n_train=n_short, n_test=0, n_calibration=0)
    data = case.make_data(small, seed)
    est = make_ldnet(setup, case.parameters, max_epochs=1, device=device, random_state=seed)
    return _spec(lambda: est.fit(data),
                 f"{setup.N}^2 grid, {setup.n_saved} kept steps x {setup.ldnet_substeps} "
                 f"Euler, {setup.n_points} points, hidden {setup.hidden}",
                 setup.ldnet_batch_size, (n_short, setup.n_train), setup.ldnet_epochs)


def _vgbdm(quick, device, seed, n_batches):
    from xdyn.experiments.vgbdm import QUICK, SETUPS, _methods, make_data

    name = "reaction_diffusion"
    setup = SETUPS[name].quick(**QUICK[name]) if quick else SETUPS[name]
    n_short = setup.batch_size * n_batches
    data = make_data(setup, n_short, seed)
    est = _methods(setup, seed, device, False)["vgbdm"].set_params(max_epochs=1)
    return _spec(lambda: est.fit(data),
                 f"{setup.system_kwargs.get('N', '')}^2 grid, hidden {setup.hidden}, "
                 f"{setup.encoder} encoder, {setup.n_pairs} pairs", setup.batch_size,
                 (n_short, setup.n_train), setup.epochs)


_BUILDERS = {"neural-3dvar": _neural_3dvar, "amortized": _amortized,
             "latent-rom": _latent_rom, "ldnet": _ldnet, "vgbdm": _vgbdm}


def training_step_times(family, quick=False, device="auto", seed=0, n_batches=4):
    """Time ``family``'s training steps at its experiment's sizes on ``device``.

    Parameters
    ----------
    family : str
        One of :data:`FAMILIES`.
    quick : bool, default=False
        The experiment's CPU-sized setup instead of the full one.
    device : str, default="auto"
    seed : int, default=0
    n_batches : int, default=4
        Batches of the short fit (the first is not timed).

    Returns
    -------
    dict
        ``step_s`` (median seconds per step), ``steps_per_epoch``,
        ``epochs``, ``training_h`` (the experiment's whole training of this
        network, hours), ``sizes`` (text), ``device``, ``peak_gpu_gib``
        (None on a CPU), ``threads`` (the torch threads of the timed steps,
        their range as text when they differ).

    Examples
    --------
    >>> t = training_step_times("vgbdm", quick=True, device="cpu", n_batches=2)
    >>> t["steps_per_epoch"] > 0 and t["step_s"] > 0
    True
    """
    from xdyn.utils import resolve_device

    if family not in _BUILDERS:
        raise ValueError(f"unknown family {family!r}; known: {list(FAMILIES)}")
    if int(n_batches) < 2:
        raise ValueError(f"n_batches must be at least 2 (the first is not timed); "
                         f"got {n_batches}")
    device = str(resolve_device(device))
    spec = _BUILDERS[family](quick, device, seed, int(n_batches))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    with timed_training_steps() as steps:
        spec["fit"]()
    seconds = [s for _, s in steps]
    short, full = spec["items"]
    if len(seconds) != spec["steps"](short):  # the count the extrapolation relies on
        raise RuntimeError(f"{family}: the short fit took {len(seconds)} steps, the step "
                           f"count expects {spec['steps'](short)} for {short} items")
    step = float(np.median(seconds[1:]))
    used = sorted(set(steps.threads[1:]))
    per_epoch = spec["steps"](full)
    return {"step_s": step, "steps_per_epoch": per_epoch, "epochs": int(spec["epochs"]),
            "training_h": step * per_epoch * spec["epochs"] / 3600.0,
            "sizes": spec["sizes"], "device": device,
            "threads": str(used[0]) if len(used) == 1 else f"{used[0]}-{used[-1]}",
            "peak_gpu_gib": (torch.cuda.max_memory_allocated(device) / 2**30
                             if device.startswith("cuda") else None)}


def bench_train(quick: bool = False, device: str = "auto", families=FAMILIES) -> str:
    """A table of every family's seconds per training step and whole-training hours.

    Parameters
    ----------
    quick : bool, default=False
        The experiments' CPU-sized setups instead of the full ones.
    device : str, default="auto"
        Torch device to train on; ``"auto"`` is ``cuda`` when available, else ``cpu``.
    families : sequence of str, default=FAMILIES
        The learned families to time, each one of :data:`FAMILIES`, one row each.

    Returns
    -------
    str
        The table (see :func:`training_step_times` for its columns) and notes.

    Examples
    --------
    One family at its CPU-sized setup (seconds; all five at the full sizes take minutes):

    >>> out = bench_train(quick=True, device="cpu", families=("neural-3dvar",))
    >>> out.splitlines()[2].split()[0], "training h" in out
    ('neural-3dvar', True)
    """
    from xdyn.bench import _load_line, _peak_line
    from xdyn.experiments.catalogue import reset_peak_memory

    size = "CPU-sized (--quick) setups" if quick else "full setups"
    reset = reset_peak_memory()
    rows = [f"{'family':<14}{'s/step':>10}{'threads':>8}{'steps/epoch':>13}{'epochs':>8}"
            f"{'training h':>12}{'GPU GiB':>9}  sizes"]
    device_name = None
    for family in families:
        t = training_step_times(family, quick=quick, device=device)
        device_name = t["device"]
        gpu = "" if t["peak_gpu_gib"] is None else f"{t['peak_gpu_gib']:.2f}"
        threads = t["threads"] if t["device"] == "cpu" else ""
        rows.append(f"{family:<14}{t['step_s']:>10.4f}{threads:>8}{t['steps_per_epoch']:>13,d}"
                    f"{t['epochs']:>8,d}{t['training_h']:>12.2f}{gpu:>9}  {t['sizes']}")
    where = device_name or device
    if where == "cpu":
        where = (f"cpu ('threads': the torch threads of the timed steps; the process has "
                 f"{torch.get_num_threads()})")
    elif where.startswith("cuda"):
        where = f"{where} ({torch.cuda.get_device_name(where)})"
    return "\n".join([f"training steps of the learned families, the experiments' {size}, "
                      f"on {where}"] + rows
                     + ["'training h': one network's whole training in its experiment "
                        "(median step x steps per epoch x epochs; data making, validation "
                        "and prediction not included)",
                        _peak_line(reset), _load_line()])
