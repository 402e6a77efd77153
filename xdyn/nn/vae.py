"""A beta-VAE of snapshots: convolutional on periodic grids, fully connected otherwise.

The encoder maps a snapshot to the mean and log-variance of a diagonal
Gaussian ``q(z | x)`` over ``n_latent`` coordinates; the decoder maps ``z`` back
to the snapshot (Higgins et al. 2017, "beta-VAE"; used as the compression of
the latent ROMs of Solera-Rico et al. 2024, Nat. Commun. 15, 1361, and
arXiv 2510.24583). On a ``(channels, H, W)`` grid the convolutions pad
circularly, since the fields are periodic, and halve the grid twice (H and W
divisible by 4); a flat ``(n_features,)`` input gets an MLP with a linear
shortcut around it (encoder and decoder), so that the VAE starts from, and
extrapolates at least like, a linear (PCA-like) code: an MLP alone learns a
near-linear map of few inputs slowly and bends it off the training data.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from xdyn.nn.modules import MLP

__all__ = ["BetaVAE", "gaussian_kl"]

# log-variances are clamped: keeps exp() finite in the first epochs
_LOGVAR_MAX = 10.0
_LOGVAR_INIT = -6.0


def gaussian_kl(mu, logvar):
    """KL divergence of ``N(mu, exp(logvar))`` from ``N(0, 1)``, summed over the last dim.

    Parameters
    ----------
    mu : torch.Tensor of shape (..., d)
        Means of the diagonal Gaussian.
    logvar : torch.Tensor of shape (..., d)
        Natural logarithms of its variances.

    Returns
    -------
    torch.Tensor of shape (...)

    Examples
    --------
    >>> import torch
    >>> float(gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3))[0])
    0.0
    >>> round(float(gaussian_kl(torch.ones(1, 2), torch.zeros(1, 2))[0]), 6)
    1.0
    """
    return 0.5 * (mu**2 + torch.exp(logvar) - 1.0 - logvar).sum(-1)


class BetaVAE(nn.Module):
    """Gaussian-latent autoencoder of snapshots (the beta weight lives in the loss).

    Parameters
    ----------
    in_shape : tuple of int
        ``(channels, H, W)`` for fields on a periodic grid (H, W divisible by 4),
        or ``(n_features,)``.
    n_latent : int, default=64
        Latent size.
    hidden : int, default=32
        Channels of the first convolution (doubled at each halving), or width
        of the MLP layers.
    architecture : {"auto", "conv", "mlp"}, default="auto"
        "auto": convolutional for a ``(channels, H, W)`` shape, else an MLP; an
        MLP on a grid flattens it (much cheaper on a CPU, and enough for a
        low-pass filtered field with few degrees of freedom).

    Examples
    --------
    >>> import torch
    >>> vae = BetaVAE((2, 16, 16), n_latent=8, hidden=4)
    >>> mu, logvar = vae.encode(torch.zeros(5, 2, 16, 16))
    >>> mu.shape, vae.decode(mu).shape
    (torch.Size([5, 8]), torch.Size([5, 2, 16, 16]))
    >>> BetaVAE((10,), n_latent=3, hidden=16).decode(torch.zeros(4, 3)).shape
    torch.Size([4, 10])
    >>> BetaVAE((2, 6, 6), n_latent=3, hidden=16, architecture="mlp").decode(torch.zeros(4, 3)).shape
    torch.Size([4, 2, 6, 6])
    """

    def __init__(self, in_shape, n_latent=64, hidden=32, architecture="auto"):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.n_latent = int(n_latent)
        if architecture not in ("auto", "conv", "mlp"):
            raise ValueError(f"architecture must be 'auto', 'conv' or 'mlp'; got {architecture!r}")
        if architecture == "conv" and len(self.in_shape) != 3:
            raise ValueError(f"a convolutional VAE needs in_shape (channels, H, W); got {in_shape}")
        conv = len(self.in_shape) == 3 and architecture != "mlp"
        if conv:
            c, h, w = self.in_shape
            if h % 4 or w % 4:
                raise ValueError(f"BetaVAE needs a grid divisible by 4; got {h}x{w}")
            h1, h2 = int(hidden), 2 * int(hidden)
            self._bottleneck = (2 * h2, h // 4, w // 4)
            flat = 2 * h2 * (h // 4) * (w // 4)
            self.encoder = nn.Sequential(
                _conv(c, h1, 3, 1), nn.GELU(),
                _conv(h1, h2, 4, 2), nn.GELU(),
                _conv(h2, 2 * h2, 4, 2), nn.GELU(),
                nn.Flatten(), nn.Linear(flat, 2 * self.n_latent),
            )
            self.decoder_in = nn.Linear(self.n_latent, flat)
            self.decoder = nn.Sequential(
                nn.GELU(),
                nn.Upsample(scale_factor=2, mode="nearest"), _conv(2 * h2, h2, 3, 1), nn.GELU(),
                nn.Upsample(scale_factor=2, mode="nearest"), _conv(h2, h1, 3, 1), nn.GELU(),
                _conv(h1, c, 3, 1),
            )
        elif len(self.in_shape) in (1, 3):
            n = math.prod(self.in_shape)
            self._bottleneck = None
            # the shortcut is registered first: the last Linear below is the MLP's read-out
            self.encoder = nn.Sequential(nn.Flatten(), _Shortcut(n, 2 * self.n_latent, hidden))
            self.decoder_in = nn.Identity()
            self.decoder = nn.Sequential(_Shortcut(self.n_latent, n, hidden),
                                         nn.Unflatten(-1, self.in_shape))
        else:
            raise ValueError(f"in_shape must be (channels, H, W) or (n_features,); got {in_shape}")
        # start with a narrow posterior: with a small beta, unit noise on z at initialisation
        # drowns the reconstruction signal and slows the first epochs a lot
        last = [m for m in self.encoder.modules() if isinstance(m, nn.Linear)][-1]
        with torch.no_grad():
            last.bias[self.n_latent:] = _LOGVAR_INIT

    def encode(self, x):
        """Mean and (clamped) log-variance of ``q(z | x)``; ``x`` is ``(batch, *in_shape)``."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-_LOGVAR_MAX, _LOGVAR_MAX)

    def decode(self, z):
        """The snapshot ``(batch, *in_shape)`` of latent ``z`` ``(batch, n_latent)``."""
        h = self.decoder_in(z)
        if self._bottleneck is not None:
            h = h.reshape(-1, *self._bottleneck)
        return self.decoder(h)

    def forward(self, x, generator=None):
        """Reconstruction from a sampled ``z``, and ``(mu, logvar)``."""
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps if self.training else mu
        return self.decode(z), mu, logvar


class _Shortcut(nn.Module):
    """``linear(x) + MLP(x)``: an MLP around a linear map (bias in the MLP's read-out)."""

    def __init__(self, n_in, n_out, hidden):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out, bias=False)
        self.mlp = MLP(n_in, n_out, hidden=int(hidden), n_layers=2)

    def forward(self, x):
        return self.linear(x) + self.mlp(x)


def _conv(c_in, c_out, kernel, stride):
    # circular padding: the fields are periodic; "same" size for stride 1, halved for 2
    pad = (kernel - 1) // 2 if stride == 1 else 1
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=pad, padding_mode="circular")
