"""Sequence encoders: a window of per-time features to one fixed-size code.

A learned assimilator reads the last ``window`` observations (and the
innovations that go with them) as a sequence ``(batch, window, n_features)``
and needs one vector per analysis. Three encoders share that contract, so an
estimator swaps them by name (:func:`make_encoder`):

* :class:`MLPEncoder` flattens the window (order is in the weights);
* :class:`GRUEncoder` and :class:`LSTMEncoder` run a recurrent net over the
  window, oldest first, and return the last hidden state (Cho et al. 2014;
  Hochreiter & Schmidhuber 1997);
* :class:`ConvEncoder` reads a window of fields on a periodic square grid
  with convolutions and averages over the grid: the same code wherever a
  pattern sits, and few weights for many grid points.
"""

from __future__ import annotations

import torch
from torch import nn

from xdyn.utils._validation import is_integer

__all__ = ["MLPEncoder", "GRUEncoder", "LSTMEncoder", "ConvEncoder", "make_encoder",
           "ENCODERS"]


def _check_sizes(who, **sizes):
    """The sizes as Python ints, each checked to be an integer (numpy's too) >= its minimum."""
    for name, (value, minimum) in sizes.items():
        if not is_integer(value) or value < minimum:
            raise ValueError(f"{who}: {name} must be an integer >= {minimum}, got {value!r}")
    # torch's recurrent layers take Python ints only (a grid over np.arange gives np.int64)
    return [int(value) for value, _ in sizes.values()]


class MLPEncoder(nn.Module):
    """Encode a window by flattening it through a multilayer perceptron.

    Parameters
    ----------
    n_features : int
        Features per time of the window.
    window : int
        Number of times in the window.
    hidden_size : int, default=64
        Width of the hidden layers and of the code.
    n_layers : int, default=2
        Hidden layers (each linear + GELU).

    Examples
    --------
    >>> import torch
    >>> enc = MLPEncoder(n_features=3, window=4, hidden_size=8)
    >>> enc(torch.zeros(5, 4, 3)).shape
    torch.Size([5, 8])
    """

    def __init__(self, n_features, window, hidden_size=64, n_layers=2):
        super().__init__()
        n_features, window, hidden_size, n_layers = _check_sizes(
            "MLPEncoder", n_features=(n_features, 1), window=(window, 1),
            hidden_size=(hidden_size, 1), n_layers=(n_layers, 1))
        layers, width = [], n_features * window
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden_size), nn.GELU()]
            width = hidden_size
        self.net = nn.Sequential(*layers)
        self.out_features = hidden_size

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.net(seq.flatten(-2))


class _RecurrentEncoder(nn.Module):
    _cell = None

    def __init__(self, n_features, window, hidden_size=64, n_layers=1):
        super().__init__()
        n_features, window, hidden_size, n_layers = _check_sizes(
            type(self).__name__, n_features=(n_features, 1), window=(window, 1),
            hidden_size=(hidden_size, 1), n_layers=(n_layers, 1))
        self.rnn = self._cell(n_features, hidden_size, num_layers=n_layers, batch_first=True)
        self.out_features = hidden_size

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        lead = seq.shape[:-2]
        out, _ = self.rnn(seq.reshape(-1, *seq.shape[-2:]))
        return out[:, -1].reshape(*lead, -1)


class GRUEncoder(_RecurrentEncoder):
    """Encode a window with a GRU; the code is the hidden state after the newest time.

    Parameters
    ----------
    n_features, window : int
        Features per time and number of times.
    hidden_size : int, default=64
    n_layers : int, default=1
        Stacked recurrent layers.

    Examples
    --------
    >>> import torch
    >>> GRUEncoder(3, 4, hidden_size=8)(torch.zeros(2, 5, 4, 3)).shape
    torch.Size([2, 5, 8])
    """

    _cell = nn.GRU


class LSTMEncoder(_RecurrentEncoder):
    """Encode a window with an LSTM; the code is the hidden state after the newest time.

    Parameters
    ----------
    n_features, window : int
        Features per time and number of times.
    hidden_size : int, default=64
    n_layers : int, default=1
        Stacked recurrent layers.

    Examples
    --------
    >>> import torch
    >>> LSTMEncoder(3, 4, hidden_size=8)(torch.zeros(5, 4, 3)).shape
    torch.Size([5, 8])
    """

    _cell = nn.LSTM


class ConvEncoder(nn.Module):
    """Encode a window of fields on a periodic square grid: convolutions, then the grid mean.

    The features per time are ``n_channels`` fields of ``side x side``
    points, variable-major and row-major (as :mod:`xdyn.preprocessing.stacking`
    flattens them). The window's times and channels enter as the input
    channels of periodic 3x3 convolutions; their output is averaged over the
    grid, so the code does not depend on where a pattern sits and a few
    trajectories give many samples of each local relation (a time tendency
    against a Laplacian, say).

    Parameters
    ----------
    n_features : int
        Features per time (``n_channels * side**2``).
    window : int
        Number of times in the window.
    hidden_size : int, default=64
        Convolution width and size of the code.
    n_layers : int, default=2
        Convolution layers (each 3x3 periodic + GELU).
    n_channels : int, default=1
        Fields per time.

    Examples
    --------
    >>> import torch
    >>> enc = ConvEncoder(n_features=2 * 8 * 8, window=3, hidden_size=16, n_channels=2)
    >>> x = torch.randn(5, 3, 128)
    >>> enc(x).shape
    torch.Size([5, 16])
    >>> shifted = x.reshape(5, 3, 2, 8, 8).roll(3, dims=-1).reshape(5, 3, 128)
    >>> torch.allclose(enc(shifted), enc(x), atol=1e-5)  # translation invariant
    True
    """

    def __init__(self, n_features, window, hidden_size=64, n_layers=2, n_channels=1):
        super().__init__()
        n_features, window, hidden_size, n_layers, n_channels = _check_sizes(
            "ConvEncoder", n_features=(n_features, 1), window=(window, 1),
            hidden_size=(hidden_size, 1), n_layers=(n_layers, 1), n_channels=(n_channels, 1))
        side = int(round((n_features / n_channels) ** 0.5))
        if n_channels * side * side != n_features:
            raise ValueError(f"ConvEncoder: n_features={n_features} is not n_channels="
                             f"{n_channels} square fields")
        self.n_channels, self.side = n_channels, side
        layers, width = [], window * n_channels
        for _ in range(n_layers):
            layers += [nn.Conv2d(width, hidden_size, 3, padding=1, padding_mode="circular"),
                       nn.GELU()]
            width = hidden_size
        self.net = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU())
        self.out_features = hidden_size

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        lead, (E, _) = seq.shape[:-2], seq.shape[-2:]
        fields = seq.reshape(-1, E * self.n_channels, self.side, self.side)
        code = self.head(self.net(fields).mean((-2, -1)))
        return code.reshape(*lead, -1)


ENCODERS = {"mlp": MLPEncoder, "gru": GRUEncoder, "lstm": LSTMEncoder, "conv": ConvEncoder}


def make_encoder(kind, n_features, window, hidden_size=64, n_layers=None,
                 **kwargs) -> nn.Module:
    """Build an encoder by name: ``"mlp"``, ``"gru"``, ``"lstm"`` or ``"conv"``.

    ``n_layers=None`` takes the encoder's default (2 for the MLP and the
    convolutions, 1 for the recurrent ones); ``kwargs`` go to the encoder
    (``n_channels`` for ``"conv"``). The result has an ``out_features``
    attribute.

    Parameters
    ----------
    kind : {"mlp", "gru", "lstm", "conv"}
        The encoder (case-insensitive): :class:`MLPEncoder`, :class:`GRUEncoder`,
        :class:`LSTMEncoder` or :class:`ConvEncoder`.
    n_features : int
        Features per time of the window.
    window : int
        Number of times in the window.
    hidden_size : int, default=64
        Width of the encoder and size of the code (``out_features``).
    n_layers : int, optional
        Layers of the encoder; None takes its default.
    **kwargs
        Further parameters of the encoder's class.

    Returns
    -------
    torch.nn.Module
        Maps ``(..., window, n_features)`` to ``(..., out_features)``.

    Examples
    --------
    >>> make_encoder("gru", n_features=3, window=4, hidden_size=8).out_features
    8
    """
    key = str(kind).lower()
    if key not in ENCODERS:
        raise ValueError(f"encoder={kind!r} is unknown; use one of {sorted(ENCODERS)}")
    if n_layers is not None:
        kwargs["n_layers"] = n_layers
    return ENCODERS[key](n_features, window, hidden_size=hidden_size, **kwargs)
