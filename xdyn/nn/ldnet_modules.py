"""Torch modules of latent dynamics networks (LDNets) and their observation encoder.

An LDNet (Regazzoni, Pagani, Salvador, Dede' & Quarteroni 2024) has two
networks: a *dynamics* net ``f(s, u)`` giving the rate of a small latent state
``s`` driven by the system's parameters ``u``, stepped explicitly from
``s_0 = 0``; and a *reconstruction* net ``g(s, x)`` giving the field at any
spatial coordinate ``x`` from the latent state, so training samples a few
points per step instead of whole grids. The reconstruction comes in the two
variants of LD-EnSF (Xiao, Si & Chen, ICLR 2026): a residual MLP on
``(x, s)`` and one that first lifts ``x`` to Fourier features (periodic in
the domain, which suits doubly periodic flows).

Shapes: parameters ``(B, P)``, latents ``(B, T, L)``, coordinates scaled to
``[0, 1)`` of shape ``(..., D)``, fields ``(..., F)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from xdyn.nn.modules import MLP, get_activation

__all__ = ["LatentDynamics", "FieldReconstruction", "LDNetModule", "LatentObservationEncoder"]


class LatentDynamics(nn.Module):
    """Rate of the latent state, ``ds/dt = f(s, u)``.

    Parameters
    ----------
    n_latent : int
        Latent state size.
    n_params : int
        Number of (scaled) system parameters driving the dynamics (0 allowed).
    hidden : int, default=64
    n_layers : int, default=2
    activation : str, default="tanh"

    Examples
    --------
    >>> f = LatentDynamics(9, 1, hidden=16)
    >>> f(torch.zeros(4, 9), torch.zeros(4, 1)).shape
    torch.Size([4, 9])
    """

    def __init__(self, n_latent, n_params, hidden=64, n_layers=2, activation="tanh"):
        super().__init__()
        self.net = MLP(int(n_latent) + int(n_params), int(n_latent), hidden=hidden,
                       n_layers=n_layers, activation=activation)

    def forward(self, s, u):
        return self.net(torch.cat([s, u], -1))


class _ResidualBlock(nn.Module):
    def __init__(self, width, activation):
        super().__init__()
        self.lin = nn.Linear(width, width)
        self.act = get_activation(activation)

    def forward(self, h):
        return h + self.act(self.lin(h))


class FieldReconstruction(nn.Module):
    """Field values at coordinates ``x`` from the latent state: ``g(s, x)``.

    Parameters
    ----------
    n_latent : int
    n_coords : int
        Spatial dimensions of a coordinate (2 for a plane).
    n_fields : int
        Output fields (variables) per point.
    kind : {"residual", "fourier"}, default="fourier"
        ``"residual"``: a residual MLP on ``(x, s)``. ``"fourier"``: ``x`` (in
        ``[0, 1)``, periodic) is lifted to ``sin/cos(2 pi k x)`` for
        ``k = 1..n_fourier`` per axis and their pairwise products, so the
        output is periodic and resolves ``n_fourier`` wavenumbers at once.
    n_fourier : int, default=6
    hidden : int, default=128
    n_layers : int, default=4
    activation : str, default="gelu"

    Examples
    --------
    >>> g = FieldReconstruction(9, 2, 1, kind="fourier", n_fourier=3, hidden=16)
    >>> g(torch.zeros(5, 9), torch.rand(5, 2)).shape
    torch.Size([5, 1])
    >>> g = FieldReconstruction(9, 2, 1, kind="residual", hidden=16)
    >>> g(torch.zeros(5, 9), torch.rand(5, 2)).shape
    torch.Size([5, 1])
    """

    def __init__(self, n_latent, n_coords, n_fields, kind="fourier", n_fourier=6, hidden=128,
                 n_layers=4, activation="gelu"):
        super().__init__()
        if kind not in ("residual", "fourier"):
            raise ValueError(f"kind must be 'residual' or 'fourier', got {kind!r}")
        self.kind = kind
        self.n_coords = int(n_coords)
        if kind == "fourier":
            self.register_buffer("k", 2 * math.pi * torch.arange(1, int(n_fourier) + 1,
                                                                 dtype=torch.float32))
            n_in = self._fourier_size(int(n_fourier))
        else:
            n_in = self.n_coords
        self.inp = nn.Linear(n_in + int(n_latent), int(hidden))
        self.act = get_activation(activation)
        self.blocks = nn.Sequential(*[_ResidualBlock(int(hidden), activation)
                                      for _ in range(max(int(n_layers) - 1, 0))])
        self.out = nn.Linear(int(hidden), int(n_fields))

    def _fourier_size(self, n):
        # per axis: sin, cos of n wavenumbers; plus the products across the first two axes
        per_axis = 2 * n
        return self.n_coords * per_axis + (per_axis**2 if self.n_coords >= 2 else 0)

    def features(self, x):
        """Input features of coordinates ``x`` in ``[0, 1)``: scaled, or Fourier.

        Examples
        --------
        >>> g = FieldReconstruction(2, 2, 1, kind="fourier", n_fourier=1, hidden=4)
        >>> g.features(torch.zeros(3, 2)).shape   # 2 axes x (sin, cos) + 2x2 products
        torch.Size([3, 8])
        """
        if self.kind == "residual":
            return 2 * x - 1
        phase = x.unsqueeze(-1) * self.k.to(x)                       # (..., D, n)
        axes = torch.cat([torch.sin(phase), torch.cos(phase)], -1)    # (..., D, 2n)
        feats = [axes.flatten(-2)]
        if self.n_coords >= 2:  # products carry the oblique modes a sum of 1-D ones lacks
            feats.append((axes[..., 0, :, None] * axes[..., 1, None, :]).flatten(-2))
        return torch.cat(feats, -1)

    def forward_at(self, s, grid, idx):
        """``forward`` at the points ``grid[idx]`` with one latent per row of ``idx``.

        The same numbers as ``forward(s[..., None, :], grid[idx])`` (to float
        rounding), for latents ``s`` (..., L), a grid (G, D) and point indices
        ``idx`` (..., m). The first layer is linear in the coordinate features
        and in the latent, so its feature part is computed once per grid point
        and gathered: cheaper than per drawn point when fewer grid points than
        drawn ones (a 32 x 32 grid, 30 steps of 128 points: training steps
        1.6x faster, a whole LDNet fit 1.9x; measured 2026-12-04).

        Examples
        --------
        >>> g = FieldReconstruction(3, 2, 1, n_fourier=2, hidden=8)
        >>> s, grid, idx = torch.randn(4, 3), torch.rand(10, 2), torch.randint(10, (4, 6))
        >>> torch.allclose(g.forward_at(s, grid, idx), g(s[:, None], grid[idx]), atol=1e-6)
        True
        """
        at_points, from_latent = self._first_layer_parts(s, grid)
        return self._after_first_layer(at_points[idx] + from_latent.unsqueeze(-2))

    def forward_points(self, s, x):
        """``forward`` of every latent ``s`` (..., L) at every point ``x`` (P, D): (..., P, F).

        The same numbers as ``forward(s[..., None, :], x)`` (to float
        rounding) by the first layer's split (see :meth:`forward_at`): no
        (latent, point) copy of the coordinate features, whose first layer
        was half the cost of decoding LD-EnSF's members on a 32 x 32 grid.

        Examples
        --------
        >>> g = FieldReconstruction(3, 2, 1, n_fourier=2, hidden=8)
        >>> s, x = torch.randn(4, 3), torch.rand(10, 2)
        >>> torch.allclose(g.forward_points(s, x), g(s[:, None], x), atol=1e-6)
        True
        """
        at_points, from_latent = self._first_layer_parts(s, x)
        return self._after_first_layer(at_points + from_latent.unsqueeze(-2))

    def forward_points_jacobian(self, s, x):
        """:meth:`forward_points` and its Jacobian in ``s``: (..., P, F), (..., P, F, L).

        Each point's output depends on ``s`` only through its own first-layer
        output ``h_i = A f(x_i) + W_s s + b``, so one backward pass per field
        through ``h`` gives every point's gradient at once:
        ``d out_i / d s = (d out_i / d h_i) W_s``. (Forward mode over the
        latent's entries made LD-EnSF's joint analysis step 3.8x slower on
        the quick Kolmogorov case.)

        Examples
        --------
        >>> g = FieldReconstruction(3, 2, 2, n_fourier=2, hidden=8)
        >>> s, x = torch.randn(4, 3), torch.rand(10, 2)
        >>> out, jac = g.forward_points_jacobian(s, x)
        >>> ref = torch.func.vmap(torch.func.jacfwd(lambda v: g.forward_points(v, x)))(s)
        >>> jac.shape, torch.allclose(jac, ref, atol=1e-6)
        (torch.Size([4, 10, 2, 3]), True)
        """
        with torch.enable_grad():
            at_points, from_latent = self._first_layer_parts(s.detach(), x)
            h = (at_points + from_latent.unsqueeze(-2)).detach().requires_grad_(True)
            out = self._after_first_layer(h)
            n_fields = out.shape[-1]
            grads = [torch.autograd.grad(out[..., f].sum(), h, retain_graph=f < n_fields - 1)[0]
                     for f in range(n_fields)]
        w_s = self.inp.weight[:, self.inp.in_features - s.shape[-1]:]          # (H, L)
        return out.detach(), (torch.stack(grads, -2) @ w_s).detach()

    def _first_layer_parts(self, s, x):
        """The first layer's affine output split: coordinate part (P, H), latent part (..., H)."""
        feats = self.features(x)                                      # (P, n_in)
        n_in = feats.shape[-1]
        w = self.inp.weight
        return feats @ w[:, :n_in].T, s @ w[:, n_in:].T + self.inp.bias

    def forward(self, s, x):
        lead = torch.broadcast_shapes(s.shape[:-1], x.shape[:-1])
        feats = self.features(x)
        h = torch.cat([feats.expand(*lead, feats.shape[-1]), s.expand(*lead, s.shape[-1])], -1)
        return self._after_first_layer(self.inp(h))

    def _after_first_layer(self, h):
        """The decoder from the first layer's affine output ``h`` on (both entry points)."""
        return self.out(self.blocks(self.act(h)))


class LDNetModule(nn.Module):
    """Latent dynamics network: latent rollout from the parameters, then reconstruction.

    ``s_{k+1} = s_k + (1/n_substeps) f(s_k, u)`` applied ``n_substeps`` times
    per saved step, from ``s_0 = 0`` one step before the first saved state
    (the time unit is one saved step).

    Parameters
    ----------
    n_latent, n_params, n_coords, n_fields : int
    coords : array-like of shape (n_points, n_coords)
        The training grid's coordinates scaled to ``[0, 1)``; :meth:`forward`
        samples from them by index.
    n_substeps : int, default=2
    dynamics_hidden, dynamics_layers : int
    reconstruction, n_fourier, reconstruction_hidden, reconstruction_layers
        See :class:`FieldReconstruction`.

    Examples
    --------
    >>> m = LDNetModule(4, 1, 2, 1, coords=torch.rand(10, 2), reconstruction_hidden=8,
    ...                 dynamics_hidden=8)
    >>> m(torch.zeros(3, 1), torch.zeros(3, 5, 10, 1)).shape   # latents (B, T, L)
    torch.Size([3, 5, 4])
    """

    def __init__(self, n_latent, n_params, n_coords, n_fields, coords, n_substeps=2,
                 dynamics_hidden=64, dynamics_layers=2, reconstruction="fourier", n_fourier=6,
                 reconstruction_hidden=128, reconstruction_layers=4):
        super().__init__()
        self.n_latent = int(n_latent)
        self.n_substeps = int(n_substeps)
        self.dynamics = LatentDynamics(n_latent, n_params, dynamics_hidden, dynamics_layers)
        self.reconstruction = FieldReconstruction(n_latent, n_coords, n_fields, reconstruction,
                                                  n_fourier, reconstruction_hidden,
                                                  reconstruction_layers)
        self.register_buffer("coords", torch.as_tensor(coords, dtype=torch.float32))

    def step(self, s, u, n_steps=1):
        """Advance latents ``s`` (..., L) by ``n_steps`` saved steps under parameters ``u``.

        Examples
        --------
        >>> m = LDNetModule(3, 1, 2, 1, coords=torch.rand(4, 2), dynamics_hidden=8)
        >>> m.step(torch.zeros(5, 3), torch.zeros(5, 1), n_steps=2).shape
        torch.Size([5, 3])
        """
        h = 1.0 / self.n_substeps
        for _ in range(int(n_steps) * self.n_substeps):
            s = s + h * self.dynamics(s, u)
        return s

    def rollout(self, u, n_steps, s0=None):
        """Latents of saved steps ``0..n_steps-1`` (B, T, L): ``s_1 .. s_T`` from ``s_0``.

        As in LD-EnSF's LDNet, the first saved state is one step from ``s_0``
        (zeros by default), so the initial field may depend on the parameters.

        Examples
        --------
        >>> m = LDNetModule(3, 1, 2, 1, coords=torch.rand(4, 2), dynamics_hidden=8)
        >>> m.rollout(torch.zeros(5, 1), n_steps=4).shape
        torch.Size([5, 4, 3])
        """
        s = u.new_zeros(u.shape[:-1] + (self.n_latent,)) if s0 is None else s0
        out = []
        for _ in range(int(n_steps)):
            s = self.step(s, u)
            out.append(s)
        return torch.stack(out, -2)

    def reconstruct(self, s, x):
        """Field values at coordinates ``x`` (..., D) from latents ``s`` (..., L).

        Examples
        --------
        >>> m = LDNetModule(3, 1, 2, 1, coords=torch.rand(4, 2), reconstruction_hidden=8)
        >>> m.reconstruct(torch.zeros(5, 1, 3), torch.rand(5, 4, 2)).shape
        torch.Size([5, 4, 1])
        """
        return self.reconstruction(s, x)

    def reconstruct_points(self, s, x):
        """Field values of every latent ``s`` (..., L) at every point ``x`` (P, D): (..., P, F).

        Examples
        --------
        >>> m = LDNetModule(3, 1, 2, 1, coords=torch.rand(4, 2), reconstruction_hidden=8)
        >>> m.reconstruct_points(torch.zeros(5, 3), torch.rand(7, 2)).shape
        torch.Size([5, 7, 1])
        """
        return self.reconstruction.forward_points(s, x)

    def reconstruct_points_jacobian(self, s, x):
        """:meth:`reconstruct_points` and its Jacobian in ``s``: (..., P, F), (..., P, F, L).

        Examples
        --------
        >>> m = LDNetModule(3, 1, 2, 1, coords=torch.rand(4, 2), reconstruction_hidden=8)
        >>> [t.shape for t in m.reconstruct_points_jacobian(torch.zeros(5, 3), torch.rand(7, 2))]
        [torch.Size([5, 7, 1]), torch.Size([5, 7, 1, 3])]
        """
        return self.reconstruction.forward_points_jacobian(s, x)

    def reconstruct_at(self, s, idx):
        """Field values at the training grid's points ``idx`` (..., m) from latents ``s`` (..., L).

        ``reconstruct`` at ``coords[idx]``, through
        :meth:`FieldReconstruction.forward_at` when the grid has fewer points
        than ``idx`` draws.

        Examples
        --------
        >>> m = LDNetModule(3, 1, 2, 1, coords=torch.rand(4, 2), reconstruction_hidden=8)
        >>> m.reconstruct_at(torch.zeros(5, 3), torch.randint(4, (5, 6))).shape
        torch.Size([5, 6, 1])
        """
        if idx.numel() > self.coords.shape[0]:
            return self.reconstruction.forward_at(s, self.coords, idx)
        x = self.coords[idx]
        return self.reconstruct(s.unsqueeze(-2).expand(*x.shape[:-1], s.shape[-1]), x)

    def forward(self, params, fields):
        # the fields only set the number of steps here; the loss samples them
        return self.rollout(params, fields.shape[1])


class LatentObservationEncoder(nn.Module):
    """A history of observations ``(B, T, n_obs)`` -> latent state and parameters ``(B, T, L+P)``.

    A recurrent net (LSTM or GRU) reads the observations oldest first; a
    linear head maps its hidden state at every step to the target, so step
    ``k`` uses observations ``0..k`` only (causal).

    Parameters
    ----------
    n_obs, n_out : int
    cell : {"lstm", "gru"}, default="lstm"
    hidden_size : int, default=64
    n_layers : int, default=2

    Examples
    --------
    >>> enc = LatentObservationEncoder(12, 10, hidden_size=8)
    >>> enc(torch.zeros(2, 7, 12)).shape
    torch.Size([2, 7, 10])
    """

    def __init__(self, n_obs, n_out, cell="lstm", hidden_size=64, n_layers=2):
        super().__init__()
        cells = {"lstm": nn.LSTM, "gru": nn.GRU}
        if cell not in cells:
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        self.rnn = cells[cell](int(n_obs), int(hidden_size), num_layers=int(n_layers),
                               batch_first=True)
        self.head = nn.Linear(int(hidden_size), int(n_out))

    def forward(self, obs):
        out, _ = self.rnn(obs)
        return self.head(out)
