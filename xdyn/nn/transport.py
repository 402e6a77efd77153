"""VGB-DM's weather model: a transport + source field of gridded fields, learned by flow matching.

Singh, Lavda, Mercatali & Kalousis (AISTATS 2026), "Variational grey-box
dynamics matching", forecast ERA5 with the continuity equation as the known
physics and the velocity and source as the unknown parts:

``du/dt = -div(u v) + dc/dt - rate (u - c) + s``, ``(v, s) = g_theta(u, grad u, u - c,
clock, position, z)``

where ``c(t)`` is the per-grid-point climatology and ``rate`` a learned
relaxation (:class:`~xdyn.nn.advection.ClimateEmbedding`), and ``z`` a
stochastic latent of the episode before the start; ``form="advective"``
transports by ``-v . grad u`` instead. Unlike ClimODE's
second-order model (velocity as a state, integrated in training), the
velocity is a function of the current state, so training needs no ODE
solve: the field at ``(1 - s) u_k + s u_{k+1}`` is matched to the chord
velocity ``u_{k+1} - u_k`` per data step (flow matching between consecutive
samples), or at the cubic through ``u_{k-1} .. u_{k+2}`` to its time
derivative (``interpolant="cubic"``). An encoder over the ``len_episode``
samples up to ``u_k`` gives a Gaussian posterior over ``z`` (a KL to
N(0, I) in the loss); forecasts draw ``z`` per member and integrate the
field with torchdiffeq.

Convolutions pad a periodic dim (longitude) circularly and a bounded one
(latitude) by repeating its edge.
"""

from __future__ import annotations

import torch
from torch import nn
from torchdiffeq import odeint

from xdyn.nn.advection import (ClimateEmbedding, advection_tendency, grid_conv,
                                spatial_gradient)
from xdyn.nn.dynamics import _solver_options, lagrange_weights

__all__ = ["TransportSourceField"]


class TransportSourceField(ClimateEmbedding):
    """Transport + source vector field of ``K`` fields on an ``H x W`` grid, with a latent.

    See the module docstring. Time is in data steps; the state is standardised.

    Parameters
    ----------
    n_channels : int
    grid_shape : (int, int)
    hidden : int, default=32
        Channels of the field's convolutional network.
    periodic : (bool, bool), default=(False, True)
    z_dim : int, default=4
        Size of the latent; 0: a deterministic field.
    len_episode : int, default=4
        Samples the encoder reads (ending at the start).
    encoder_hidden : int, default=16
    phase_step, climate, relaxation_rate
        See :class:`~xdyn.nn.advection.ClimateEmbedding`.
    v_scale : array-like of shape (n_channels,), optional
        Typical tendency per field (per data step): the loss's units.
    max_speed : float, default=2.0
        Velocities are soft-clipped to ``max_speed * tanh(v / max_speed)``
        grid cells per data step (inside RK4's stability limit at the
        default ``step_size``).
    method : str, default="rk4"
    step_size : float, default=0.5
        Integration step in data steps (fixed-step methods).
    form : {"conservative", "advective"}, default="conservative"
        Transport by the continuity equation ``-div(u v)`` (the original's:
        a converging velocity piles ``u`` up) or by advection ``-v . grad u``
        (the field is carried, never amplified, by the flow).
    interpolant : {"linear", "cubic"}, default="linear"
        The path matched between the start ``u0`` and the next sample: the
        chord (the original's; windows of ``len_episode + 1`` samples) or the
        cubic through the samples before and after too (``len_episode + 2``),
        whose velocity is the flow's to O(dt^3) instead of O(dt).

    Examples
    --------
    >>> import torch
    >>> field = TransportSourceField(2, (4, 8), hidden=8, z_dim=2, len_episode=3)
    >>> X = {"window": torch.randn(5, 4, 2, 4, 8), "phase0": torch.zeros(5, 2)}
    >>> pred, target, kl_p, kl_z, penalty = field(**X)
    >>> tuple(pred.shape), tuple(kl_z.shape)
    ((5, 2, 4, 8), (5,))
    >>> mu, logvar = field.encode(X["window"][:, :3])
    >>> traj = field.rollout(X["window"][:, 2], X["phase0"], mu, torch.tensor([0.0, 1.0, 2.0]))
    >>> tuple(traj.shape)
    (3, 5, 2, 4, 8)
    """

    def __init__(self, n_channels, grid_shape, hidden=32, periodic=(False, True), z_dim=4,
                 len_episode=4, encoder_hidden=16, phase_step=(0.0, 0.0), climate=None,
                 relaxation_rate=0.03, v_scale=None, max_speed=2.0, method="rk4",
                 step_size=0.5, form="conservative", interpolant="linear"):
        super().__init__(n_channels, grid_shape, periodic, phase_step, climate, relaxation_rate)
        k = self.k
        self.z_dim, self.len_episode = int(z_dim), int(len_episode)
        self.max_speed, self.method, self.step_size = float(max_speed), method, float(step_size)
        if form not in ("conservative", "advective"):
            raise ValueError(f"form must be 'conservative' or 'advective'; got {form!r}")
        self.form = form
        if interpolant not in ("linear", "cubic") or (interpolant == "cubic"
                                                      and self.len_episode < 2):
            raise ValueError(f"interpolant must be 'linear' or 'cubic' (with len_episode >= 2);"
                             f" got {interpolant!r} with len_episode={self.len_episode}")
        self.interpolant = interpolant
        self.field = grid_conv(4 * k + 6 + self.z_dim, 3 * k, hidden, self.periodic)
        if self.z_dim:
            self.encoder = nn.Sequential(
                grid_conv(self.len_episode * k, encoder_hidden, encoder_hidden, self.periodic,
                          zero_last=False),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.GELU(),
                nn.Linear(encoder_hidden, 2 * self.z_dim))
        scale = torch.ones(k) if v_scale is None else torch.as_tensor(v_scale,
                                                                       dtype=torch.float32)
        self.register_buffer("v_scale", scale.reshape(1, k, 1, 1))

    # ------------------------------------------------------------ the field
    def _terms(self, t, u, phase0, z):
        """Velocity ``(B, 2K, H, W)`` and source ``(B, K, H, W)`` at ``u``, time ``t``."""
        k = self.k
        gy, gx = spatial_gradient(u, self.periodic)
        clim, d_clim = self._climate(t, phase0)
        inputs = [u, gy, gx, u - clim, self._features(t, phase0, u)]
        if self.z_dim:
            inputs.append(z[:, :, None, None].expand(-1, -1, *u.shape[-2:]))
        out = self.field(torch.cat(inputs, 1))
        v = self.max_speed * torch.tanh(out[:, :2 * k] / self.max_speed)
        return v, self._relaxation(u, clim, d_clim) + out[:, 2 * k:] * self.v_scale

    def tendency(self, t, u, phase0, z):
        """``du/dt`` at time ``t`` (data steps after the start at ``phase0``): ``(B, K, H, W)``."""
        v, source = self._terms(t, u, phase0, z)
        return self._transport(u, v) + source

    def _transport(self, u, v):
        """``-div(u v)`` (``form="conservative"``) or ``-v . grad u`` (``"advective"``)."""
        if self.form == "conservative":
            return advection_tendency(u, v, self.periodic)
        gy, gx = spatial_gradient(u, self.periodic)
        return -(v[:, :self.k] * gy + v[:, self.k:] * gx)

    def encode(self, episode):
        """Posterior mean and log-variance of ``z`` from ``(B, len_episode, K, H, W)``."""
        if not self.z_dim:
            empty = episode.new_zeros(episode.shape[0], 0)
            return empty, empty
        out = self.encoder(episode.flatten(1, 2))
        return out[:, :self.z_dim], out[:, self.z_dim:].clamp(-10.0, 5.0)

    def forward(self, window, phase0):
        """Flow matching on ``window`` ``(B, len_episode + 1 [+ 1], K, H, W)``: the episode, then
        the next sample (and, with ``interpolant="cubic"``, the one after).

        Returns the field at a random point (in eval mode: evenly spread points,
        and ``z`` at its posterior mean) of the chord from the episode's
        last sample to the next, the chord velocity, a zero KL of parameters
        (this field has none), the KL of ``z`` and the velocity's roughness
        (mean square of its spatial gradient: the original's smoothness
        penalty), as :class:`~xdyn.nn.dynamics.GreyBoxFlowModule` returns them.
        """
        E = self.len_episode
        episode, u0, u1 = window[:, :E], window[:, E - 1], window[:, E]
        mu, logvar = self.encode(episode)
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            s = torch.rand(u0.shape[0], device=u0.device, dtype=u0.dtype)
        else:  # a deterministic held-out loss (early stopping compares it across epochs):
            # the posterior mean and evenly spread points of the chords
            z = mu
            s = (torch.arange(u0.shape[0], device=u0.device, dtype=u0.dtype) * 0.618034) % 1.0
        if self.interpolant == "cubic":  # through u_{-1}, u0, u1, u2 at times -1 .. 2
            nodes = torch.tensor([-1.0, 0.0, 1.0, 2.0], dtype=u0.dtype, device=u0.device)
            w, dw = lagrange_weights(nodes.expand(len(s), 4), s)
            four = window[:, E - 2:E + 2]
            point = torch.einsum("bj,bjkhw->bkhw", w, four)
            target = torch.einsum("bj,bjkhw->bkhw", dw, four)
        else:
            point, target = u0 + s[:, None, None, None] * (u1 - u0), u1 - u0
        v, source = self._terms(s[:, None], point, phase0, z)
        pred = self._transport(point, v) + source
        kl_z = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar).sum(-1)
        vy, vx = spatial_gradient(v, self.periodic)
        roughness = (vy ** 2 + vx ** 2).mean()
        return pred, target, u0.new_zeros(u0.shape[0]), kl_z, roughness

    def rollout(self, u0, phase0, z, times):
        """Integrate from ``u0`` to ``times`` (data steps, from 0): ``(len(times), B, K, H, W)``."""
        options = _solver_options(self.method, self.step_size)
        return odeint(lambda t, u: self.tendency(t, u, phase0, z), u0, times,
                      method=self.method, options=options)
