"""Torch building blocks and the skorch glue shared by learned estimators.

This is the only place torch training lives: a learned estimator builds an
:class:`XdynNet` (a skorch ``NeuralNet``) in ``fit`` and adds behaviour with
callbacks (:class:`EarlyStopping`, :class:`Checkpoint`, :class:`LRScheduler`,
progress) or by overriding ``get_loss`` / ``train_step``; validation data come
in through :func:`predefined_split`.

Examples
--------
>>> from xdyn.nn import MLP, XdynNet, EarlyStopping
>>> net = XdynNet(MLP, module__in_features=3, module__out_features=3,
...               callbacks=[EarlyStopping(monitor="train_loss", patience=3)])
>>> net.get_params()["device"]
'auto'
"""

from skorch.callbacks import Checkpoint, EarlyStopping
from skorch.helper import predefined_split

from xdyn.nn.callbacks import (EpochProgressBar, FiniteLoss, LRScheduler, best_epoch,
                               cosine_annealing, keep_best)
from xdyn.nn.encoders import GRUEncoder, LSTMEncoder, MLPEncoder, make_encoder
from xdyn.nn.modules import MLP, PeriodicConvNet, get_activation
from xdyn.nn.net import XdynNet
from xdyn.nn.transformer import LatentROMModule, LatentROMNet, LatentTransformer
from xdyn.nn.vae import BetaVAE
from xdyn.nn.update_nets import ConvEnsembleUpdate, EnsembleRollout, FeedForwardEnsembleUpdate
from xdyn.utils._torch import resolve_device

__all__ = [
    "XdynNet",
    "MLP",
    "PeriodicConvNet",
    "MLPEncoder",
    "GRUEncoder",
    "LSTMEncoder",
    "make_encoder",
    "get_activation",
    "EpochProgressBar",
    "FiniteLoss",
    "EarlyStopping",
    "Checkpoint",
    "LRScheduler",
    "cosine_annealing",
    "keep_best",
    "best_epoch",
    "predefined_split",
    "resolve_device",
    "ConvEnsembleUpdate",
    "FeedForwardEnsembleUpdate",
    "EnsembleRollout",
    "BetaVAE",
    "LatentTransformer",
    "LatentROMModule",
    "LatentROMNet",
]
