"""Learned ensemble update networks (amortized assimilation) and their sequence rollout.

An update network maps a forecast ensemble ``E`` of shape ``(B, m, n)`` on a
periodic 1-D grid, the observations scattered onto that grid (zero where
unobserved) with their mask, the model tendency of each member (optional) and a memory
of the previous updates to the analysis ensemble and the new memory. Each
member is updated by the same network (the ensemble enters only through its
banded covariance), so the update costs one batched forward pass per cycle.

Both networks use the gated form of McCabe & Brown (2021),
``x_a = sigmoid(f) * x_f + a`` and ``memory = sigmoid(c) * memory + u``,
where ``(a, f, u, c)`` are the network's outputs.

* :class:`ConvEnsembleUpdate`: circular convolutions (kernel 5) with hidden
  width 64, LayerNorm, two residual blocks, memory channels and the banded
  ensemble covariance ``cov[i, i + s]`` (``|s| <= cov_band // 2``) as input
  features (the original's ``MultiObs_ConvEnAF``);
* :class:`FeedForwardEnsembleUpdate`: two MLPs (hidden 250, LayerNorm) on the
  flat state, observations, ensemble variance and a memory vector.

:class:`EnsembleRollout` runs a network through a sequence of observation
times with a differentiable forecast model in between: the module that
:class:`xdyn.nn.XdynNet` trains with the self-supervised losses.

Reference: McCabe, M. & Brown, J. (2021). Learning to assimilate in chaotic
dynamical systems. NeurIPS 34.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvEnsembleUpdate", "FeedForwardEnsembleUpdate", "EnsembleRollout",
           "make_update_net", "banded_covariance", "fill_unobserved"]


def banded_covariance(E: torch.Tensor, band: int) -> torch.Tensor:
    """Ensemble covariances ``cov[..., s, i] = C[i, (i + s - band // 2) mod n]``.

    Parameters
    ----------
    E : torch.Tensor of shape (..., m, n)
        Ensemble on a periodic grid of ``n`` sites.
    band : int
        Number of diagonals (odd: the main one and ``band // 2`` on each side).

    Returns
    -------
    torch.Tensor of shape (..., band, n)

    Examples
    --------
    >>> import torch
    >>> E = torch.randn(7, 5, dtype=torch.float64)
    >>> C = torch.cov(E.T)
    >>> band = banded_covariance(E, 3)
    >>> bool(torch.allclose(band[1], torch.diagonal(C)))  # the variances
    True
    >>> bool(torch.allclose(band[2, 4], C[4, 0]))  # periodic: site 4's right neighbour is 0
    True
    """
    A = E - E.mean(-2, keepdim=True)
    m = E.shape[-2]
    shifts = range(-(band // 2), band // 2 + 1)
    # roll(A, -s)[i] = A[i + s]: the covariance of each site with its neighbour s
    return torch.stack([(A * torch.roll(A, -s, dims=-1)).sum(-2) / (m - 1) for s in shifts], -2)


def fill_unobserved(E: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Observations for each member, unobserved sites filled from the next member.

    A zero would tell the network nothing and a common value would make every
    member see the same input; as in the original, each member gets another
    member's forecast where nothing is observed (here the next one, so no
    random draw is needed at test time).

    Parameters
    ----------
    E : torch.Tensor of shape (B, m, n)
    y : torch.Tensor of shape (B, n)
        Observations on the grid (any value where unobserved).
    mask : torch.Tensor of shape (B, n) or (n,)
        1 where observed, 0 elsewhere.

    Returns
    -------
    torch.Tensor of shape (B, m, n)

    Examples
    --------
    >>> import torch
    >>> E = torch.arange(6.0).reshape(1, 2, 3)
    >>> fill_unobserved(E, torch.full((1, 3), 9.0), torch.tensor([1.0, 0.0, 1.0]))
    tensor([[[9., 4., 9.],
             [9., 1., 9.]]])
    """
    mask = mask.unsqueeze(-2)
    return mask * y.unsqueeze(-2) + (1 - mask) * torch.roll(E, 1, dims=-2).detach()


def _conv(c_in, c_out, kernel_size):
    return nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2, padding_mode="circular")


def _circular_conv(z, conv):
    """``conv(z)`` of a circularly padded ``nn.Conv1d``, the padding done as one ``cat``.

    ``F.pad(..., mode="circular")`` (what the module calls) copies slice by
    slice: on a 40-site grid it was a fifth of the update's time at test time.
    """
    p = conv.padding[0]
    if p:
        z = torch.cat([z[..., -p:], z, z[..., :p]], -1)
    return F.conv1d(z, conv.weight, conv.bias)


# Multiply-adds of one hidden convolution (batch x channels^2 x kernel x sites) below which
# the test-time update runs its convolutions without oneDNN. Measured on one thread (AVX-512,
# MKL): oneDNN's conv1d has a floor of ~60-90 us per call, while the im2col + GEMM path costs
# 25-35 us at hidden 8-16 on 40 sites (2-3x faster); they break even near 2e6 (hidden 32 on
# 40 sites, hidden 16 on 128) and oneDNN is 1.5x faster at hidden 48-64.
SMALL_CONV_WORK = 2_000_000


@contextlib.contextmanager
def _without_onednn():
    """Convolutions on PyTorch's own im2col + GEMM path (the setting is restored on exit).

    Process-wide, like the thread count of :func:`xdyn._threads.threads_for`: another
    thread's convolution meanwhile takes the same path, which changes its speed, not its
    result beyond round-off.
    """
    mkldnn = torch.backends.mkldnn
    before = mkldnn.enabled
    try:
        mkldnn.enabled = False
    except RuntimeError:  # the flags were frozen (torch.backends.disable_global_flags)
        yield
        return
    try:
        yield
    finally:
        mkldnn.enabled = before


def _run(layers, z):
    """Apply a ``nn.Sequential`` of conv / LayerNorm / LeakyReLU / Dropout1d layers functionally.

    The same operations, in the same order, as calling the modules (so
    training draws the same dropout masks and every result is bit-identical),
    without the per-module call overhead, which on the small tensors of one
    assimilation cycle costs as much as the arithmetic; a dropout layer not in
    training mode is skipped outright.
    """
    for layer in layers:
        if isinstance(layer, nn.Conv1d):
            z = _circular_conv(z, layer)
        elif isinstance(layer, nn.LayerNorm):
            z = F.layer_norm(z, layer.normalized_shape, layer.weight, layer.bias, layer.eps)
        elif isinstance(layer, nn.LeakyReLU):
            z = F.leaky_relu(z, layer.negative_slope)
        elif isinstance(layer, nn.Dropout1d):
            if layer.training:  # also at test time with AmortizedAssimilator(ensemble_dropout)
                z = F.dropout1d(z, layer.p, True)
        else:
            z = layer(z)
    return z


class ConvEnsembleUpdate(nn.Module):
    """Circular-convolution ensemble update with memory and banded covariance input.

    Parameters
    ----------
    n_state : int
        Sites of the periodic grid.
    hidden_size : int, default=64
        Channels of the hidden convolutions.
    mem_channels : int, default=6
        Memory channels carried from one cycle to the next.
    cov_band : int, default=3
        Diagonals of the ensemble covariance given as features (odd).
    kernel_size : int, default=5
    dropout : float, default=0.2
        Channel dropout before each convolution (training only).
    tendency : bool, default=True
        Read the model tendency ``dx/dt`` of each member (the original's
        Lorenz-96 network). False for stiff PDEs, as the original's
        Kuramoto-Sivashinsky network: there the fourth derivative of a rough
        analysis is hundreds of times its value on the attractor (tendency
        std 250 for a start of noisy observations against 0.33 on the truth),
        and that one input channel destabilised training.

    Examples
    --------
    >>> import torch
    >>> net = ConvEnsembleUpdate(n_state=8, hidden_size=4)
    >>> E, y, mask = torch.randn(2, 3, 8), torch.randn(2, 8), torch.ones(8)
    >>> memory = torch.zeros(2, 3, *net.memory_shape())
    >>> Ea, memory = net(E, y, mask, memory, tendency=torch.zeros_like(E))
    >>> tuple(Ea.shape), tuple(memory.shape)
    ((2, 3, 8), (2, 3, 6, 8))
    """

    def __init__(self, n_state, hidden_size=64, mem_channels=6, cov_band=3, kernel_size=5,
                 dropout=0.2, tendency=True):
        super().__init__()
        if int(cov_band) % 2 != 1:
            raise ValueError(f"cov_band must be odd, got {cov_band}")
        self.n_state, self.mem_channels = int(n_state), int(mem_channels)
        self.cov_band, self.tendency = int(cov_band), bool(tendency)
        h, k = int(hidden_size), int(kernel_size)
        # state, obs, mask, (tendency), cov, memory
        n_in = 3 + self.tendency + self.cov_band + self.mem_channels

        def norm():
            return nn.LayerNorm([h, self.n_state], elementwise_affine=False)

        def block():
            return nn.Sequential(nn.Dropout1d(dropout), _conv(h, h, k), norm(), nn.LeakyReLU(),
                                 nn.Dropout1d(dropout), _conv(h, h, k), norm(), nn.LeakyReLU())

        self.scale_up = nn.Sequential(_conv(n_in, h, k), norm())
        # the original's first Lorenz-96 version (and its KS network) had one convolution in
        # the second block, its final Lorenz-96 network two, as here; the second scored
        # better on the quick Lorenz-96 run (hidden 16, 2026-12-04: all sites 0.418
        # against 0.429 with one, every 4th 1.247 against 1.349)
        self.block1, self.block2 = block(), block()
        self.readout = nn.Sequential(nn.Dropout1d(dropout),
                                     _conv(h, 2 * (1 + self.mem_channels), k))

    def memory_shape(self):
        """Shape of one member's memory."""
        return (self.mem_channels, self.n_state)

    def _small(self, batch):
        """Test-time convolutions small enough for the im2col path (training keeps oneDNN)."""
        conv = self.block1[1]
        work = batch * conv.in_channels * conv.out_channels * conv.kernel_size[0] * self.n_state
        return not self.training and conv.weight.device.type == "cpu" and work < SMALL_CONV_WORK

    def forward(self, E, y, mask, memory, tendency):
        B, m, n = E.shape
        mask = mask.expand(B, n).to(E.dtype)
        obs = fill_unobserved(E, y, mask)
        cov = banded_covariance(E, self.cov_band).unsqueeze(1).expand(B, m, self.cov_band, n)
        tend = [tendency.unsqueeze(2)] if self.tendency else []
        feats = torch.cat([E.unsqueeze(2), obs.unsqueeze(2),
                           mask.reshape(B, 1, 1, n).expand(B, m, 1, n), *tend,
                           cov, memory], 2).reshape(B * m, -1, n)
        with _without_onednn() if self._small(B * m) else contextlib.nullcontext():
            z = _run(self.scale_up, feats)
            z = _run(self.block1, z) + z
            z = _run(self.block2, z) + z
            out = _run(self.readout, z)
        adj, mem_in, gate, mem_gate = out.reshape(B, m, -1, n).split(
            [1, self.mem_channels, 1, self.mem_channels], 2)
        memory = torch.sigmoid(mem_gate) * memory + mem_in
        return torch.sigmoid(gate[:, :, 0]) * E + adj[:, :, 0], memory


class FeedForwardEnsembleUpdate(nn.Module):
    """Feed-forward ensemble update (two gated MLPs) with a memory vector.

    Parameters
    ----------
    n_state : int
    hidden_size : int, default=250
        Width of the hidden layers and of the memory vector.
    dropout : float, default=0.2

    Examples
    --------
    >>> import torch
    >>> net = FeedForwardEnsembleUpdate(n_state=8, hidden_size=16)
    >>> E = torch.randn(2, 3, 8)
    >>> memory = torch.zeros(2, 3, *net.memory_shape())
    >>> Ea, memory = net(E, torch.randn(2, 8), torch.ones(8), memory, torch.zeros_like(E))
    >>> tuple(Ea.shape), tuple(memory.shape)
    ((2, 3, 8), (2, 3, 16))
    """

    tendency = False  # it never reads the model tendency (the rollout computes none for it)

    def __init__(self, n_state, hidden_size=250, dropout=0.2):
        super().__init__()
        self.n_state, self.hidden_size = int(n_state), int(hidden_size)
        n, h = self.n_state, self.hidden_size
        n_in = 4 * n + h  # obs, mask, state, ensemble variance, memory

        def mlp(last):
            return nn.Sequential(nn.Linear(n_in, h), nn.LayerNorm(h), nn.LeakyReLU(),
                                 nn.Dropout(dropout), nn.Linear(h, h), nn.LayerNorm(h),
                                 nn.LeakyReLU(), nn.Dropout(dropout), nn.Linear(h, n + h), last)

        self.additive, self.gates = mlp(nn.Identity()), mlp(nn.Sigmoid())

    def memory_shape(self):
        """Shape of one member's memory."""
        return (self.hidden_size,)

    def forward(self, E, y, mask, memory, tendency):
        B, m, n = E.shape
        mask = mask.expand(B, n).to(E.dtype)
        obs = fill_unobserved(E, y, mask)
        var = E.var(-2, keepdim=True).expand(B, m, n)
        feats = torch.cat([obs, mask.unsqueeze(1).expand(B, m, n), E, var, memory], -1)
        adj, mem_in = self.additive(feats).split([n, self.hidden_size], -1)
        gate, mem_gate = self.gates(feats).split([n, self.hidden_size], -1)
        return gate * E + adj, mem_gate * memory + mem_in


_NETS = {"conv": ConvEnsembleUpdate, "ff": FeedForwardEnsembleUpdate}


def make_update_net(architecture, n_state, **kwargs) -> nn.Module:
    """An update network by name: ``"conv"`` or ``"ff"``.

    Parameters
    ----------
    architecture : {"conv", "ff"}
        :class:`ConvEnsembleUpdate` or :class:`FeedForwardEnsembleUpdate` (case-sensitive).
    n_state : int
        Size of the state (the sites of the periodic grid for ``"conv"``).
    **kwargs
        Further parameters of that class (``hidden_size``, ``dropout`` ...).

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> type(make_update_net("ff", 8, hidden_size=4)).__name__
    'FeedForwardEnsembleUpdate'
    >>> make_update_net("gru", 8)
    Traceback (most recent call last):
    ...
    ValueError: architecture='gru' is unknown; use one of ['conv', 'ff']
    """
    if architecture not in _NETS:
        raise ValueError(f"architecture={architecture!r} is unknown; use one of {sorted(_NETS)}")
    return _NETS[architecture](n_state, **kwargs)


class EnsembleRollout(nn.Module):
    """An update network cycled with a differentiable forecast model over a sequence.

    At each observation time ``t`` of a sequence the ensemble is forecast
    from the previous analysis (``system.forecast`` with ``n_steps`` steps of
    ``dt``; not before the first time), then updated by the network. With
    ``clamp`` the forecast and analysis ensembles are clamped to
    ``[-clamp, clamp]`` in training, which keeps an untrained network from
    leaving the attractor (as the original does).

    Parameters
    ----------
    system : object
        A dynamical system with a batched torch ``forecast(x, dt, n_steps)`` and
        ``rhs(t, x)`` (a :class:`xdyn.systems.DynamicalSystem`).
    dt : float
        Model step.
    n_steps : int
        Model steps between observation times.
    n_state : int
    architecture : {"conv", "ff"}
    clamp : float or None, default=20.0
    detach_forecast : bool, default=False
        Stop gradients through the forecast (the analysis losses).
    **net_params
        Arguments of the update network (``hidden_size``, ``dropout`` ...).

    Examples
    --------
    >>> import torch
    >>> from xdyn.systems import Lorenz96
    >>> rollout = EnsembleRollout(Lorenz96(n=8), dt=0.05, n_steps=2, n_state=8,
    ...                           architecture="conv", hidden_size=4)
    >>> y, mask, E0 = torch.randn(2, 5, 8), torch.ones(2, 5, 8), 8 + torch.randn(2, 3, 8)
    >>> background, analysis = rollout(y, mask, E0)
    >>> tuple(background.shape), tuple(analysis.shape)  # ensemble means per time
    ((2, 5, 8), (2, 5, 8))
    """

    def __init__(self, system, dt, n_steps, n_state, architecture="conv", clamp=20.0,
                 detach_forecast=False, **net_params):
        super().__init__()
        self.system, self.dt, self.n_steps = system, float(dt), int(n_steps)
        self.clamp, self.detach_forecast = clamp, bool(detach_forecast)
        self.update = make_update_net(architecture, n_state, **net_params)

    def _bound(self, E):
        if self.training and self.clamp is not None:
            return E.clamp(-float(self.clamp), float(self.clamp))
        return E

    def initial_memory(self, E):
        """Zero memory for the ensemble ``E`` of shape (B, m, n)."""
        return E.new_zeros(tuple(E.shape[:2]) + tuple(self.update.memory_shape()))

    def analysis(self, E, y, mask, memory):
        """One update: ``(E_a, memory)`` from the forecast ensemble and the observations."""
        tendency = self.system.rhs(0.0, E) if self.update.tendency else None
        return self.update(E, y, mask, memory, tendency)

    def forward(self, y, mask, E0):
        """Background and analysis ensemble means ``(B, L, n)`` over a sequence of ``L`` times."""
        E, memory = E0, self.initial_memory(E0)
        backgrounds, analyses = [], []
        for t in range(y.shape[1]):
            if t > 0:
                E = self.system.forecast(E, self.dt, self.n_steps)
                if self.detach_forecast:
                    E = E.detach()
                E = self._bound(E)
            backgrounds.append(E.mean(-2))
            E, memory = self.analysis(E, y[:, t], mask[:, t], memory)
            E = self._bound(E)
            analyses.append(E.mean(-2))
        return torch.stack(backgrounds, 1), torch.stack(analyses, 1)
