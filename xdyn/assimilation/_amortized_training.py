"""Training pieces of :class:`~xdyn.assimilation.AmortizedAssimilator`: the loss, the
learning-rate schedule of the original and the learning-curve callback."""

from __future__ import annotations

import warnings

import torch
from skorch.callbacks import Callback
from skorch.dataset import Dataset

from xdyn.assimilation._amortized_cycle import ClampWarning
from xdyn.assimilation._cycle import LostTrackWarning
from xdyn.metrics import analysis_rmse
from xdyn.nn import XdynNet

__all__ = ["WarmupHalving"]


class WarmupHalving:
    """Learning-rate factor of epoch ``e``: ``1.02**min(e + 1, warmup) * 0.5**((e + 2) // halve)``.

    The original multiplies the rate by 1.02 before each of the first
    ``warmup_epochs`` epochs and halves it before every epoch ``i`` (1-based)
    with ``(i + 1) % halve_every == 0``. A class, not a lambda, so that the
    fitted estimator pickles.

    Parameters
    ----------
    warmup_epochs : int, default=50
        Number of epochs over which the factor grows by 1.02 per epoch (capped after).
    halve_every : int, default=200
        Period, in epochs, of the halvings: the factor is halved ``(e + 2) // halve_every``
        times by epoch ``e`` (0-based).

    Examples
    --------
    >>> f = WarmupHalving(warmup_epochs=2, halve_every=4)
    >>> [round(f(e), 4) for e in range(7)]
    [1.02, 1.0404, 0.5202, 0.5202, 0.5202, 0.5202, 0.2601]
    """

    def __init__(self, warmup_epochs=50, halve_every=200):
        self.warmup_epochs, self.halve_every = int(warmup_epochs), int(halve_every)

    def __call__(self, epoch):
        return 1.02 ** min(epoch + 1, self.warmup_epochs) * 0.5 ** ((epoch + 2) // self.halve_every)


class _ValidationRMSE(Callback):
    """Analysis RMSE of the estimator on held-out observations after each epoch."""

    def __init__(self, score):
        self.score = score

    def on_epoch_end(self, net, **kwargs):
        if self.score is not None:
            net.history.record("valid_rmse", float(self.score()))


class _RedrawnSequences(Dataset):
    """Training sequences that :class:`_RedrawEachEpoch` draws afresh: ``draw()`` returns
    ``(X, y)`` (new offsets and starting ensembles from the estimator's stream)."""

    def __init__(self, draw):
        self.draw = draw
        super().__init__(*draw())

    def redraw(self):
        self.X, self.y = self.draw()


class _RedrawEachEpoch(Callback):
    """Before every epoch but the first, draw the training sequences again (the original's
    ``ChunkedTimeseries`` draws its offsets per epoch)."""

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        if len(net.history) > 1 and isinstance(dataset_train, _RedrawnSequences):
            dataset_train.redraw()


class _AmortizedNet(XdynNet):
    """XdynNet whose loss is one of the self-supervised (or clean) losses of the rollout."""

    def __init__(self, module, *args, loss_kind="ss_forecast", **kwargs):
        super().__init__(module, *args, **kwargs)
        self.loss_kind = loss_kind

    # the update convolves every member at every site (4 quick epochs on two threads:
    # Lorenz-96 23.5 -> 20.7 s, KS 51.7 -> 41.1 s; the same weights)
    _keeps_process_threads = True

    def get_loss(self, y_pred, y_true, X=None, training=False):
        background, analysis = y_pred
        y, mask = X["y"], X["mask"]
        if self.loss_kind == "ss_forecast":  # the forecast of the next noisy observations
            err = (background[:, 1:] - y[:, 1:]) ** 2 * mask[:, 1:]
            return err.sum(-1).mean()
        # the analysis losses leave out the first time, as the original's: its analysis is
        # of the starting ensemble, not of a forecast the network has learned to correct
        if self.loss_kind == "ss_analysis":
            return ((analysis[:, 1:] - y[:, 1:]) ** 2 * mask[:, 1:]).sum(-1).mean()
        return ((analysis[:, 1:] - y_true[:, 1:].to(analysis)) ** 2).mean()


class _ValidationScore:
    """Analysis RMSE of the estimator being trained on held-out data (a learning curve).

    The cycle draws from ``random_state``, not the estimator's: a RandomState
    instance shared with the training (its redrawn sequences) would make the
    fitted network depend on whether there are validation data. It never
    raises on divergence: an early network that loses track scores its
    (clamped) RMSE, which falls as it learns, where a NaN would end early
    stopping after ``n_iter_no_change`` epochs of an uninformative curve.
    """

    def __init__(self, estimator, obs, truth, random_state=None):
        self.estimator, self.obs, self.truth = estimator, obs, truth
        self.random_state = random_state

    def __call__(self):
        est = self.estimator
        own = est.random_state, est.raise_on_divergence
        est.random_state, est.raise_on_divergence = self.random_state, False
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", LostTrackWarning)
                warnings.simplefilter("ignore", ClampWarning)  # an early network may meet it
                analysis = est.predict(self.obs)
        finally:
            est.random_state, est.raise_on_divergence = own
        # a non-finite analysis (no clamp) scores NaN: the curve says so
        return analysis_rmse(analysis, self.truth, burn_in=est.burn_in)
