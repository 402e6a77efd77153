"""Callbacks of :class:`xdyn.nn.XdynNet` beyond skorch's own.

* :class:`EpochProgressBar`: tqdm over epochs (``XdynNet(progress=True)``);
* :class:`FiniteLoss`: stops a fit whose training loss, or whose weights or loss
  after the last step, are NaN or infinite (one of :class:`xdyn.nn.XdynNet`'s
  default callbacks);
* :class:`LRScheduler`: skorch's, but a resumed or continued run (``partial_fit``
  after ``load_params``) follows the same learning-rate sequence as an
  uninterrupted one;
* :func:`cosine_annealing`: that scheduler with a cosine decay over the epochs;
* :func:`keep_best` and :func:`best_epoch`: early stopping that keeps the best
  epoch's weights, and which epoch that was.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from skorch.callbacks import Callback, EarlyStopping
from skorch.callbacks import LRScheduler as _SkorchLRScheduler
from skorch.dataset import unpack_data
from torch.optim.lr_scheduler import ReduceLROnPlateau
from tqdm.auto import tqdm

__all__ = ["EpochProgressBar", "FiniteLoss", "LRScheduler", "cosine_annealing", "keep_best",
           "best_epoch"]


class EpochProgressBar(Callback):
    """A tqdm progress bar over epochs, with the last train/valid loss.

    Added by :class:`xdyn.nn.XdynNet` when ``progress=True``; skorch's own
    ``ProgressBar`` counts batches inside an epoch instead.

    Parameters
    ----------
    desc : str, default="training"
        Label of the bar.
    leave : bool, default=True
        Keep the finished bar on screen.

    Examples
    --------
    >>> from xdyn.nn import EpochProgressBar
    >>> EpochProgressBar(desc="fit").desc
    'fit'
    """

    def __init__(self, desc="training", leave=True):
        self.desc = desc
        self.leave = leave

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.on_train_end(net)  # a bar left open by a fit that raised
        self._open(net)

    def on_epoch_end(self, net, **kwargs):
        if getattr(self, "pbar_", None) is None:  # unpickled mid-fit: the bar was not pickled
            self._open(net)
        row = net.history[-1]
        losses = {k: f"{row[k]:.4g}" for k in ("train_loss", "valid_loss") if k in row}
        self.pbar_.set_postfix(losses, refresh=False)
        self.pbar_.update(1)

    def _open(self, net):
        self.pbar_ = tqdm(total=net.max_epochs, desc=self.desc, leave=self.leave, unit="epoch")

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if getattr(self, "pbar_", None) is not None:
            self.pbar_.close()
        self.pbar_ = None

    def __getstate__(self):
        # a tqdm bar holds its output stream, which does not pickle: a net pickled
        # mid-fit (Checkpoint(f_pickle=...)) or after a fit that raised goes without it
        state = dict(vars(self))
        state["pbar_"] = None
        return state


class FiniteLoss(Callback):
    """Raise :class:`FloatingPointError` when a fit's loss or final weights are not finite.

    One NaN or infinite loss makes NaN gradients and then NaN weights: every
    later batch, and every prediction of the fitted estimator, is NaN. skorch
    trains on regardless, so a diverged fit would come back looking fitted.
    The first training batch whose loss is not finite stops the fit, and so do
    weights or a loss left non-finite by the last optimizer step
    (:meth:`check_last_step`).
    :class:`xdyn.nn.XdynNet` adds this callback by default (``finite_loss``;
    ``callbacks__finite_loss=None`` turns it off).

    Examples
    --------
    >>> import numpy as np
    >>> from xdyn.nn import MLP, XdynNet
    >>> X = np.ones((8, 2), "float32")
    >>> y = np.full((8, 1), np.nan, "float32")
    >>> net = XdynNet(MLP, module__in_features=2, module__out_features=1, max_epochs=2)
    >>> try:
    ...     net.fit(X, y)
    ... except FloatingPointError as err:
    ...     print(str(err)[:43])
    training loss is nan at epoch 1, batch 1 of
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.batch_ = None

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if not training:
            return
        # skorch has recorded the batch's loss; training batches come first in an epoch
        batches = net.history[-1]["batches"]
        value = batches[-1]["train_loss"]
        if not np.isfinite(value):
            _diverged(net, f"training loss is {value} at epoch {len(net.history)}, batch "
                           f"{len(batches)}")
        self.batch_ = batch  # a reference, for check_last_step

    def check_last_step(self, net, **fit_params):
        """Raise :class:`FloatingPointError` if the last step left non-finite weights or loss.

        A batch's loss is computed before its step, so the last step of a fit is
        never seen by a loss (a step to weights of 1e37 is finite, but the next
        forward pass overflows). :class:`xdyn.nn.XdynNet` calls this once at the
        end of each ``fit``/``partial_fit``, after every callback's
        ``on_train_end`` (after :func:`keep_best` restored its best epoch), and
        with torch's RNG forked.

        Parameters
        ----------
        net : skorch.NeuralNet
            The net just trained; every module in ``net._modules`` is checked,
            and the loss of the last training batch is computed in training
            mode (no step, no batch record; the buffers put back after).
        **fit_params
            The fit's ``fit_params``, passed on to the forward pass as training does.
        """
        batch, self.batch_ = getattr(self, "batch_", None), None
        params = [p.detach() for name in net._modules
                  for p in getattr(net, name + "_").parameters()]
        # one flag per tensor, then one device sync for the whole net
        if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            _diverged(net, f"the weights are not finite after epoch {len(net.history)}")
        if batch is None:
            return
        modules = [getattr(net, name + "_") for name in net._modules + net._criteria]
        modules = [m for m in modules if isinstance(m, torch.nn.Module)]
        modes = [m.training for m in modules]
        # a training-mode forward updates running statistics (BatchNorm): put them back
        buffers = [(b, b.detach().clone()) for m in modules for b in m.buffers()]
        # the training objective in training mode: in eval mode a GP scores its posterior
        # at the training points, near-singular where the noise reached its bound
        net._set_training(True)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                X_batch, y_batch = unpack_data(batch)
                # training=False: a loss that records its terms per batch when training
                # would overwrite the last batch's with post-step values
                value = float(net.get_loss(net.infer(X_batch, **fit_params), y_batch,
                                           X=X_batch, training=False))
        finally:
            for module, mode in zip(modules, modes):
                module.train(mode)
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)
        if not np.isfinite(value):
            _diverged(net, f"training loss is {value} after the last step, at epoch "
                           f"{len(net.history)}")

    def __getstate__(self):
        state = dict(vars(self))
        state["batch_"] = None  # no data in a net pickled mid-fit (Checkpoint(f_pickle=...))
        return state


def _diverged(net, what):
    raise FloatingPointError(
        f"{what} of {type(net).__name__}: the fit diverged and its weights are not usable "
        "(check the inputs for NaN or inf, lower lr, or clip the gradients)")


class LRScheduler(_SkorchLRScheduler):
    """skorch's :class:`~skorch.callbacks.LRScheduler` that resumes exactly.

    skorch rebuilds the scheduler at each ``fit``/``partial_fit`` with
    ``last_epoch=len(history) - 1`` on the optimizer's current learning rate;
    a chainable schedule (``StepLR``, ``ExponentialLR`` ...) then applies the
    step of the last finished epoch twice. Here the schedule is replayed from
    the optimizer's ``initial_lr`` instead, so epoch ``k`` gets the same rate
    whether or not training stopped (and was checkpointed) before it.
    ``ReduceLROnPlateau`` depends on past scores and keeps skorch's behaviour.

    Parameters
    ----------
    policy : str or torch scheduler class, default="WarmRestartLR"
    monitor : str or callable, default="train_loss"
    event_name : str, default="event_lr"
    step_every : {"epoch", "batch"}, default="epoch"
    **kwargs
        Arguments of the scheduler (``step_size=2, gamma=0.5`` ...).

    Examples
    --------
    >>> import torch
    >>> from xdyn.nn import LRScheduler
    >>> cb = LRScheduler(torch.optim.lr_scheduler.StepLR, step_size=2, gamma=0.5)
    >>> cb.simulate(steps=5, initial_lr=1.0).tolist()
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def _get_scheduler(self, net, policy, **scheduler_kwargs):
        n_done = (
            len(net.history) if self.step_every == "epoch" else getattr(self, "batch_idx_", 0)
        )
        if policy is ReduceLROnPlateau or "last_epoch" in scheduler_kwargs or n_done == 0:
            return super()._get_scheduler(net, policy, **scheduler_kwargs)
        for group in net.optimizer_.param_groups:
            group["lr"] = group.get("initial_lr", group["lr"])
        scheduler = policy(net.optimizer_, **scheduler_kwargs)
        with warnings.catch_warnings():
            # replaying steps before this process called optimizer.step()
            warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*", category=UserWarning)
            for _ in range(n_done):
                scheduler.step()
        return scheduler


def cosine_annealing(max_epochs, eta_min=1e-5):
    """An :class:`LRScheduler` whose rate falls from ``lr`` to ``eta_min`` along a half
    cosine over ``max_epochs`` epochs (``CosineAnnealingLR``).

    The last epochs then take small steps, so the weights a fit ends with are
    not one noisy draw of a constant-rate optimizer around its minimum.

    Parameters
    ----------
    max_epochs : int
        Epochs of the half cosine (``T_max``; at least 1), normally the net's ``max_epochs``.
    eta_min : float, default=1e-5
        Learning rate the schedule ends at.

    Returns
    -------
    skorch.callbacks.LRScheduler

    Examples
    --------
    >>> cosine_annealing(4, eta_min=0.0).simulate(4, 1.0).round(4).tolist()
    [1.0, 0.8536, 0.5, 0.1464]
    """
    return LRScheduler(policy="CosineAnnealingLR", T_max=max(int(max_epochs), 1),
                       eta_min=eta_min)


def keep_best(monitor, patience):
    """skorch's :class:`~skorch.callbacks.EarlyStopping` on ``monitor`` (lower is better)
    that stops after ``patience`` epochs without improvement and restores the weights
    of the best epoch.

    Any improvement counts (``threshold=0``; skorch's default asks for 1e-4
    relative), so the weights kept are those of :func:`best_epoch`.

    Parameters
    ----------
    monitor : str
        History key to watch, lower is better (``"valid_loss"``).
    patience : int
        Epochs without improvement after which training stops.

    Returns
    -------
    skorch.callbacks.EarlyStopping

    Examples
    --------
    >>> stop = keep_best("valid_loss", 3)
    >>> stop.patience, stop.threshold, stop.load_best
    (3, 0.0, True)
    """
    return EarlyStopping(monitor=monitor, patience=int(patience), threshold=0.0,
                         load_best=True)


def best_epoch(history, monitor):
    """The epoch (1-based) with the lowest finite ``monitor`` in ``history`` and its value.

    ``history`` is a net's history or a list of per-epoch dicts. Without any
    finite value: the last epoch and NaN (0 and NaN without epochs), the
    weights :func:`keep_best` leaves in place.

    Parameters
    ----------
    history : skorch.History or list of dict
        One dict per epoch; an epoch without the ``monitor`` key counts as NaN.
    monitor : str
        The key scored, lower is better (``"valid_loss"``).

    Returns
    -------
    epoch : int
    value : float

    Examples
    --------
    >>> best_epoch([{"valid_loss": 3.0}, {"valid_loss": 1.0}, {"valid_loss": 2.0}],
    ...            "valid_loss")
    (2, 1.0)
    >>> best_epoch([], "valid_loss")
    (0, nan)
    """
    curve = np.array([row.get(monitor, np.nan) for row in history], float)
    if not np.isfinite(curve).any():
        return len(curve), float("nan")
    best = int(np.nanargmin(curve))
    return best + 1, float(curve[best])
