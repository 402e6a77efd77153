"""Small torch modules shared by the learned estimators.

Modules here are plain :class:`torch.nn.Module` classes: an estimator hands
the class (not an instance) to :class:`xdyn.nn.XdynNet` with its sizes as
``module__*`` parameters, so the net seeds their initialisation and a grid
search can tune them.
"""

from __future__ import annotations

import torch
from torch import nn

from xdyn.utils._validation import is_integer

__all__ = ["MLP", "PeriodicConvNet", "get_activation"]

_ACTIVATIONS = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "identity": nn.Identity,
}


def get_activation(activation) -> nn.Module:
    """A fresh activation module from its name or its class.

    Parameters
    ----------
    activation : str or type
        One of ``"gelu"``, ``"relu"``, ``"tanh"``, ``"silu"``, ``"elu"``,
        ``"identity"``, or a :class:`torch.nn.Module` subclass taking no argument.

    Examples
    --------
    >>> from xdyn.nn.modules import get_activation
    >>> get_activation("tanh")
    Tanh()
    """
    if isinstance(activation, str):
        key = activation.lower()
        if key not in _ACTIVATIONS:
            raise ValueError(
                f"activation={activation!r} is unknown; use one of {sorted(_ACTIVATIONS)} "
                "or a torch.nn.Module class"
            )
        return _ACTIVATIONS[key]()
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation()
    raise TypeError(
        f"activation must be a name or a torch.nn.Module class, got {activation!r}"
    )


class MLP(nn.Module):
    """A multilayer perceptron acting on the last dimension.

    ``n_layers`` hidden layers of width ``hidden``, each a linear map followed
    by ``activation``, then a linear read-out; leading dimensions are batch.

    Parameters
    ----------
    in_features : int
        Size of the input's last dimension.
    out_features : int
        Size of the output's last dimension.
    hidden : int, default=64
        Width of each hidden layer.
    n_layers : int, default=2
        Number of hidden layers (0 gives one linear map).
    activation : str or type, default="gelu"
        See :func:`get_activation`.

    Examples
    --------
    >>> import torch
    >>> from xdyn.nn import MLP
    >>> mlp = MLP(3, 2, hidden=8, n_layers=1)
    >>> mlp(torch.zeros(5, 3)).shape
    torch.Size([5, 2])
    >>> sum(p.numel() for p in mlp.parameters())  # 3*8+8 + 8*2+2
    50
    """

    def __init__(self, in_features, out_features, hidden=64, n_layers=2, activation="gelu"):
        super().__init__()
        for name, value, minimum in (
            ("in_features", in_features, 1),
            ("out_features", out_features, 1),
            ("hidden", hidden, 1),
            ("n_layers", n_layers, 0),
        ):
            if not is_integer(value) or value < minimum:
                raise ValueError(f"MLP: {name} must be an integer >= {minimum}, got {value!r}")
        layers = []
        width = int(in_features)
        for _ in range(n_layers):
            layers += [nn.Linear(width, int(hidden)), get_activation(activation)]
            width = int(hidden)
        layers.append(nn.Linear(width, int(out_features)))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class PeriodicConvNet(nn.Module):
    """A stack of 2-D convolutions with periodic (circular) padding: fields to fields.

    ``n_layers`` convolutions of ``kernel_size``, the hidden ones ``hidden``
    channels wide and followed by ``activation``; the output has the input's
    grid. Every layer commutes with shifts of a doubly periodic grid, so a map
    learned at one place holds at every place (a field seen once teaches all
    its shifts).

    Parameters
    ----------
    in_channels, out_channels : int
    hidden : int, default=32
    n_layers : int, default=5
        Convolutions in all (at least 2); the receptive field is
        ``n_layers * (kernel_size - 1) + 1`` points wide.
    kernel_size : int, default=5
        Odd, so that the output stays centred on the input.
    activation : str or type, default="gelu"
        See :func:`get_activation`.

    Examples
    --------
    >>> import torch
    >>> from xdyn.nn.modules import PeriodicConvNet
    >>> net = PeriodicConvNet(2, 2, hidden=4, n_layers=3, kernel_size=3)
    >>> x = torch.randn(1, 2, 8, 8)
    >>> net(x).shape
    torch.Size([1, 2, 8, 8])
    >>> bool(torch.allclose(net(x.roll(3, -1)), net(x).roll(3, -1), atol=1e-6))
    True
    """

    def __init__(self, in_channels, out_channels, hidden=32, n_layers=5, kernel_size=5,
                 activation="gelu"):
        super().__init__()
        for name, value, minimum in (("in_channels", in_channels, 1),
                                     ("out_channels", out_channels, 1), ("hidden", hidden, 1),
                                     ("n_layers", n_layers, 2), ("kernel_size", kernel_size, 1)):
            if not is_integer(value) or value < minimum:
                raise ValueError(f"PeriodicConvNet: {name} must be an integer >= {minimum}, "
                                 f"got {value!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"PeriodicConvNet: kernel_size must be odd, got {kernel_size}")
        widths = [int(in_channels)] + [int(hidden)] * (n_layers - 1) + [int(out_channels)]
        layers = []
        for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Conv2d(w_in, w_out, int(kernel_size), padding=kernel_size // 2,
                                    padding_mode="circular"))
            if i < n_layers - 1:
                layers.append(get_activation(activation))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
