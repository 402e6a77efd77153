"""Advection on a grid: finite differences, velocity inversion, the ClimODE vector field.

A field ``u`` (channels ``K`` on an ``H x W`` grid, grid cells as the length
unit) moves with a velocity ``v = (v_y, v_x)`` per channel by the continuity
equation ``du/dt = -div(u v) + s``; ClimODE (Verma, Heinonen & Garg, ICLR 2024,
"ClimODE: Climate and weather forecasting with physics-informed neural ODEs")
makes the velocity itself evolve by a learned second-order law
``dv/dt = f_theta(u, grad u, v, time, position)`` and adds a learned source
``s_theta``; a Gaussian emission head gives each output a mean correction and a
standard deviation. The initial velocity is what makes the first time
derivative of the data true (ClimODE's velocity inversion):
``v0 = argmin ||du/dt + div(u v)||^2 + smoothness ||grad v||^2 + damping ||v||^2``,
solved here for a whole batch at once by conjugate gradients on the normal
equations (the transpose of the advection operator comes from autograd, so it
is exact whatever the boundary handling).

Boundaries: a periodic dim wraps (``torch.roll``); a bounded one repeats its edge
value (a one-sided half difference at the edge). The networks' convolutions pad
the same way, per dim (:class:`GridPad`): on a latitude-longitude grid,
longitude wraps and latitude repeats its edge.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torchdiffeq import odeint

from xdyn.nn.dynamics import _solver_options

__all__ = ["GridPad", "grid_conv", "spatial_gradient", "advection_tendency", "fit_velocity",
           "ClimateEmbedding", "AdvectionSourceODE"]


def _diff(f, dim, periodic):
    """Central difference ``(f[i+1] - f[i-1]) / 2`` along ``dim`` (grid units)."""
    if periodic:
        return 0.5 * (torch.roll(f, -1, dim) - torch.roll(f, 1, dim))
    n = f.shape[dim]
    idx_p = torch.clamp(torch.arange(n, device=f.device) + 1, max=n - 1)
    idx_m = torch.clamp(torch.arange(n, device=f.device) - 1, min=0)
    return 0.5 * (f.index_select(dim, idx_p) - f.index_select(dim, idx_m))


def spatial_gradient(f, periodic=(False, False)):
    """``(df/dy, df/dx)`` of ``f`` with shape ``(..., H, W)``, in grid units.

    Parameters
    ----------
    f : torch.Tensor of shape (..., H, W)
        The field; central differences ``(f[i+1] - f[i-1]) / 2`` along the last two dims.
    periodic : (bool, bool), default=(False, False)
        Whether the ``y`` (H) and ``x`` (W) dims wrap; a bounded dim repeats its edge value
        (a one-sided half difference at the edge).

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``df/dy`` and ``df/dx``, each shaped like ``f``.

    Examples
    --------
    >>> import torch
    >>> f = torch.arange(5.0).repeat(3, 1)  # f = x
    >>> gy, gx = spatial_gradient(f)
    >>> gx[1].tolist(), float(gy.abs().max())
    ([0.5, 1.0, 1.0, 1.0, 0.5], 0.0)
    """
    return _diff(f, -2, periodic[0]), _diff(f, -1, periodic[1])


def advection_tendency(u, v, periodic=(False, False)):
    """``-div(u v)``: the continuity-equation tendency of ``u`` ``(B, K, H, W)``.

    ``v`` is ``(B, 2K, H, W)``: the ``y`` components of the ``K`` channels,
    then their ``x`` components, in grid cells per time unit.

    Parameters
    ----------
    u : torch.Tensor of shape (B, K, H, W)
        The advected field.
    v : torch.Tensor of shape (B, 2K, H, W)
        Its velocity: the ``y`` components of the K channels, then their ``x`` components.
    periodic : (bool, bool), default=(False, False)
        Whether the ``y`` (H) and ``x`` (W) dims wrap; a bounded dim repeats its edge value
        (a one-sided half difference at the edge).

    Returns
    -------
    torch.Tensor of shape (B, K, H, W)

    Examples
    --------
    A constant velocity moves a wave without changing its shape:
    ``-div(u c) = -c du/dx``.

    >>> import math, torch
    >>> x = torch.arange(16.0) * 2 * math.pi / 16
    >>> u = torch.sin(x).repeat(4, 1)[None, None]
    >>> v = torch.cat([torch.zeros_like(u), torch.ones_like(u)], 1)
    >>> tend = advection_tendency(u, v, periodic=(False, True))
    >>> bool(torch.allclose(tend, -0.5 * (u.roll(-1, -1) - u.roll(1, -1))))
    True
    """
    k = u.shape[1]
    vy, vx = v[:, :k], v[:, k:]
    return -(_diff(u * vy, -2, periodic[0]) + _diff(u * vx, -1, periodic[1]))


def fit_velocity(u, u_t, periodic=(False, False), smoothness=1.0, damping=1e-3, n_iter=100):
    """The velocity ``v`` whose advection best explains ``u_t``, for a whole batch.

    Minimises ``||u_t - advection_tendency(u, v)||^2 + smoothness ||grad v||^2
    + damping ||v||^2`` per sample by conjugate gradients on the normal
    equations (ClimODE's initial-velocity inversion).

    Parameters
    ----------
    u, u_t : torch.Tensor of shape (B, K, H, W)
        The field and its time derivative (per time unit).
    periodic : (bool, bool)
    smoothness, damping : float
    n_iter : int

    Returns
    -------
    torch.Tensor of shape (B, 2K, H, W)

    Examples
    --------
    A wave moved by one cell per step: the fitted velocity explains the tendency
    (the velocity itself is not unique: ``u v = u + c`` moves ``u`` alike).

    >>> import math, torch
    >>> x = torch.arange(32.0, dtype=torch.float64) * 2 * math.pi / 32
    >>> u = (2 + torch.sin(x)).repeat(8, 1)[None, None]
    >>> u_t = -0.5 * (u.roll(-1, -1) - u.roll(1, -1))
    >>> v = fit_velocity(u, u_t, periodic=(True, True), smoothness=1.0, n_iter=100)
    >>> residual = advection_tendency(u, v, periodic=(True, True)) - u_t
    >>> bool(residual.norm() < 0.05 * u_t.norm()), round(float(v[0, 0].abs().max()), 2)
    (True, 0.0)
    """
    k = u.shape[1]
    u = u.detach()
    shape = (u.shape[0], 2 * k) + tuple(u.shape[2:])

    def A(v):
        return advection_tendency(u, v, periodic)

    def AT(r):
        zero = torch.zeros(shape, dtype=u.dtype, device=u.device, requires_grad=True)
        with torch.enable_grad():
            return torch.autograd.grad(A(zero), zero, grad_outputs=r)[0]

    def G(v):
        gy, gx = spatial_gradient(v, periodic)
        return torch.cat([gy, gx], 1)

    def GT(r):
        zero = torch.zeros(shape, dtype=u.dtype, device=u.device, requires_grad=True)
        with torch.enable_grad():
            return torch.autograd.grad(G(zero), zero, grad_outputs=r)[0]

    def normal(v):
        return AT(A(v)) + smoothness * GT(G(v)) + damping * v

    def dot(a, b):
        return (a * b).flatten(1).sum(1).view(-1, 1, 1, 1)

    v = torch.zeros(shape, dtype=u.dtype, device=u.device)
    r = AT(u_t.detach())
    p = r.clone()
    rr = dot(r, r)
    for _ in range(int(n_iter)):
        Ap = normal(p)
        alpha = rr / dot(p, Ap).clamp_min(1e-30)
        v = v + alpha * p
        r = r - alpha * Ap
        rr_new = dot(r, r)
        if float(rr_new.max()) < 1e-20:
            break
        p = r + (rr_new / rr.clamp_min(1e-30)) * p
        rr = rr_new
    return v


class GridPad(nn.Module):
    """Pad ``(..., H, W)`` by ``width`` cells: circularly along periodic dims, else by the edge.

    Parameters
    ----------
    periodic : (bool, bool), default=(False, False)
        Whether the ``y`` (H) and ``x`` (W) dims wrap (circular padding); a bounded dim
        repeats its edge value.
    width : int, default=1
        Cells added on each side of both dims.

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(6.0).view(1, 1, 2, 3)
    >>> GridPad((False, True))(x)[0, 0].tolist()
    [[2.0, 0.0, 1.0, 2.0, 0.0], [2.0, 0.0, 1.0, 2.0, 0.0], [5.0, 3.0, 4.0, 5.0, 3.0], \
[5.0, 3.0, 4.0, 5.0, 3.0]]
    """

    def __init__(self, periodic=(False, False), width=1):
        super().__init__()
        self.periodic, self.width = tuple(bool(p) for p in periodic), int(width)

    def forward(self, x):
        w = self.width
        x = F.pad(x, (w, w, 0, 0), mode="circular" if self.periodic[1] else "replicate")
        return F.pad(x, (0, 0, w, w), mode="circular" if self.periodic[0] else "replicate")


def grid_conv(n_in, n_out, hidden, periodic, zero_last=True):
    """Two 3x3 convolutions (GELU) and a 1x1 output, padded per dim by :class:`GridPad`.

    ``zero_last`` starts the output at zero: the model begins as its closed-form part
    (no learned motion or source).

    Parameters
    ----------
    n_in : int
        Input channels.
    n_out : int
        Output channels.
    hidden : int
        Channels of the two hidden 3x3 convolutions.
    periodic : (bool, bool)
        Whether the ``y`` and ``x`` dims wrap, for the :class:`GridPad` before each 3x3
        convolution (the output keeps the input's H x W).
    zero_last : bool, default=True
        Initialise the 1x1 output convolution's weight and bias to zero.

    Returns
    -------
    torch.nn.Sequential

    Examples
    --------
    >>> import torch
    >>> net = grid_conv(3, 2, hidden=8, periodic=(False, True))
    >>> with torch.no_grad():
    ...     shape = net(torch.randn(4, 3, 6, 10)).shape
    ...     peak = net(torch.ones(1, 3, 6, 10)).abs().max()
    >>> tuple(shape), float(peak)
    ((4, 2, 6, 10), 0.0)
    """
    last = nn.Conv2d(hidden, n_out, 1)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return nn.Sequential(GridPad(periodic), nn.Conv2d(n_in, hidden, 3), nn.GELU(),
                         GridPad(periodic), nn.Conv2d(hidden, hidden, 3), nn.GELU(), last)


class ClimateEmbedding(nn.Module):
    """What the advection models of gridded fields share: position, clock and climatology.

    Holds the grid position (``y``, ``x`` in [-1, 1]), the advance of the day
    and year phases per data step, the per-grid-point climatology
    ``c(t) = c0 + c1 cos(day) + c2 sin(day) + c3 cos(year) + c4 sin(year)``
    and a learned per-field rate at which anomalies ``u - c`` relax to it.

    Parameters
    ----------
    n_channels : int
    grid_shape : (int, int)
    periodic : (bool, bool)
    phase_step : (float, float)
        Advance of the day and year phases (radians) per data step.
    climate : array-like of shape (5, n_channels, H, W), optional
        The coefficients ``c0 .. c4`` (default zero).
    relaxation_rate : float or array-like of shape (n_channels,)
        Initial relaxation rate per data step.

    Examples
    --------
    A climatology with a daily cycle, a quarter of a day per data step:

    >>> import math, torch
    >>> climate = torch.zeros(5, 1, 2, 3)
    >>> climate[1] = 1.0                                   # c = cos(day)
    >>> emb = ClimateEmbedding(1, (2, 3), phase_step=(math.pi / 2, 0.0), climate=climate)
    >>> c, dc = emb._climate(torch.tensor(1.0), torch.zeros(1, 2))
    >>> abs(round(float(c[0, 0, 0, 0]), 6)), round(float(dc[0, 0, 0, 0]), 4)  # cos, -sin at pi/2
    (0.0, -1.5708)
    """

    def __init__(self, n_channels, grid_shape, periodic=(False, False), phase_step=(0.0, 0.0),
                 climate=None, relaxation_rate=0.03):
        super().__init__()
        k = int(n_channels)
        self.k, self.periodic = k, tuple(bool(p) for p in periodic)
        rate = torch.as_tensor(relaxation_rate, dtype=torch.float32).reshape(-1)
        rate = rate.expand(k).reshape(1, k, 1, 1).clamp(1e-4, 10.0)
        self.log_rate = nn.Parameter(torch.log(torch.expm1(rate)))  # softplus^-1
        h, w = grid_shape
        climate = torch.zeros(5, k, h, w) if climate is None else \
            torch.as_tensor(climate, dtype=torch.float32)
        self.register_buffer("climate", climate.reshape(5, k, h, w))
        yy = torch.linspace(-1, 1, h).view(h, 1).expand(h, w)
        xx = torch.linspace(-1, 1, w).view(1, w).expand(h, w)
        self.register_buffer("position", torch.stack([yy, xx])[None])
        self.register_buffer("phase_step", torch.as_tensor(phase_step, dtype=torch.float32))

    def _features(self, t, phase0, like):
        """sin/cos of the day and year phases at ``t`` and the position: ``(B, 6, H, W)``."""
        phase = phase0 + t * self.phase_step                               # (B, 2)
        f = torch.cat([torch.sin(phase), torch.cos(phase)], -1)            # (B, 4)
        f = f[:, :, None, None].expand(-1, -1, *like.shape[-2:])
        return torch.cat([f, self.position.expand(like.shape[0], -1, -1, -1).to(like.dtype)], 1)

    def _climate(self, t, phase0):
        """Climatology ``c(t)`` and its time derivative, ``(B, K, H, W)`` each."""
        phase = phase0 + t * self.phase_step
        cos, sin = torch.cos(phase), torch.sin(phase)
        one = torch.ones_like(cos[:, :1])
        basis = torch.cat([one, cos[:, :1], sin[:, :1], cos[:, 1:], sin[:, 1:]], 1)
        w = self.phase_step
        d_basis = torch.cat([0 * one, -w[0] * sin[:, :1], w[0] * cos[:, :1],
                             -w[1] * sin[:, 1:], w[1] * cos[:, 1:]], 1)
        clim = self.climate.to(phase.dtype)
        return (torch.einsum("bj,jkhw->bkhw", basis, clim),
                torch.einsum("bj,jkhw->bkhw", d_basis, clim))

    def _relaxation(self, u, clim, d_clim):
        """The closed-form source: ``dc/dt - rate (u - c)``."""
        return d_clim - nn.functional.softplus(self.log_rate) * (u - clim)


class AdvectionSourceODE(ClimateEmbedding):
    """ClimODE-style continuous-time model: advection + source, with a Gaussian emission.

    The state ``(u, v)`` evolves by ``du/dt = -div(u v) + s`` and
    ``dv/dt = f_theta(u, grad u, v, features) - decay * v`` (a learned decay per
    component), integrated with torchdiffeq
    in units of one data step; the features are sin/cos of the phase of the
    day and of the year at the current time (zero for model time), the grid
    position and the anomaly ``u - c(t)`` from a climatology
    ``c(t) = c0 + c1 cos(day) + c2 sin(day) + c3 cos(year) + c4 sin(year)``
    (per grid point, fitted to the training data by the estimator: the
    static climatological inputs ClimODE takes as its spatio-temporal
    embedding). The source is
    ``s = dc/dt - rate * (u - c) + s_theta(...)``: the anomaly relaxes to the
    climatology at a learned per-field rate, and the network adds the rest.
    The output at each lead is the emission's mean ``u + mu_theta`` and
    standard deviation ``softplus(.)``.

    With ``memory = m`` the emission also reads the anomaly ``m`` data steps
    before each valid time: from ``history`` (the ``m`` samples up to the
    initial time) while that lies before the start, and from the model's own
    emission mean after it. A diurnal ``m`` (24 for hourly data) carries what
    happened at the valid hour yesterday, which neither the state nor a
    climatology holds.

    Parameters
    ----------
    n_channels : int
        Fields ``K``.
    grid_shape : (int, int)
        ``(H, W)``.
    hidden : int, default=32
        Channels of the convolutional networks.
    periodic : (bool, bool), default=(False, False)
    n_steps : int, default=4
        Training leads: ``1 .. n_steps`` data steps.
    phase_step : (float, float), default=(0.0, 0.0)
        Advance of the day and year phases (radians) per data step.
    method : str, default="rk4"
        torchdiffeq method; ``step_size`` (in data steps) for fixed-step ones.
    step_size : float, default=0.5
    min_std : float, default=1e-3
    relaxation_rate : float or array-like of shape (n_channels,), default=0.03
        Initial rate (per data step) at which anomalies relax to ``c``.
    climate : array-like of shape (5, n_channels, H, W), optional
        The coefficients ``c0 .. c4`` of the climatology (default zero).
    max_speed : float, optional
        Velocities are soft-clipped to ``max_speed * tanh(v / max_speed)``
        (grid cells per data step) inside the advection; default
        ``2 / step_size``, inside the stability limit of RK4 with central
        differences (``|v| dt <= 2.8``), so a velocity the network pushes
        too far cannot blow the integration up.
    memory : int, optional
        Lag ``m`` (data steps) of the emission's memory input; ``forward``
        then needs ``history`` and whole data steps as leads.

    Examples
    --------
    >>> import torch
    >>> m = AdvectionSourceODE(1, (6, 8), hidden=8, n_steps=2)
    >>> out = m(torch.zeros(3, 1, 6, 8), torch.zeros(3, 2, 6, 8), torch.zeros(3, 2))
    >>> tuple(out.shape)  # (batch, lead, mean/std, K, H, W)
    (3, 2, 2, 1, 6, 8)
    """

    def __init__(self, n_channels, grid_shape, hidden=32, periodic=(False, False), n_steps=4,
                 phase_step=(0.0, 0.0), method="rk4", step_size=0.5, min_std=1e-3,
                 max_speed=None, climate=None, relaxation_rate=0.03, memory=None):
        super().__init__(n_channels, grid_shape, periodic, phase_step, climate, relaxation_rate)
        k = self.k
        self.memory = None if memory is None else int(memory)
        self.n_steps, self.method, self.step_size = int(n_steps), method, float(step_size)
        self.min_std = float(min_std)
        self.max_speed = float(max_speed) if max_speed is not None else 2.0 / self.step_size
        n_feat = 4 + 2
        # dv (2K), source (K); then the emission's mean and raw std
        self.dynamics = grid_conv(6 * k + n_feat, 3 * k, hidden, self.periodic)
        n_memory = k if self.memory else 0                             # the lagged anomaly
        self.emission = grid_conv(2 * k + n_feat + n_memory, 2 * k, hidden, self.periodic)
        # softplus(-2.25) = 0.1 per step: a velocity inverted from one noisy difference
        # fades unless the learned law sustains it
        self.log_velocity_decay = nn.Parameter(torch.full((1, 2 * k, 1, 1), -2.25))

    def _output_leads(self, leads):
        """The leads whose emission is computed: ``leads`` and, for the memory, every
        ``lead - m, lead - 2m, ... > 0`` (the model's own forecast of the lagged time)."""
        if not self.memory:
            return leads
        values = leads.detach().cpu().double().numpy()
        if np.any(np.abs(values - np.round(values)) > 1e-6):
            raise ValueError(f"memory={self.memory} needs whole data steps as leads; got "
                             f"{values.tolist()}")
        needed = {int(round(v)) - j * self.memory for v in values
                  for j in range(int(round(v)) // self.memory + 1)}
        return torch.as_tensor(sorted(n for n in needed if n > 0), dtype=leads.dtype,
                               device=leads.device)

    def _lagged_anomaly(self, lead, phase0, history, means):
        """Anomaly at ``lead - m``: from ``history`` up to the start, else the own mean."""
        lag = int(round(float(lead))) - self.memory
        # ``means`` is keyed by lead: ``_output_leads`` puts every lagged lead first
        field = history[:, self.memory - 1 + lag] if lag <= 0 else means[lag]
        clim, _ = self._climate(torch.as_tensor(float(lag), dtype=field.dtype,
                                                device=field.device), phase0)
        return field - clim

    def forward(self, u0, v0, phase0, leads=None, history=None):
        """Mean and std at ``leads`` (data steps; default ``1 .. n_steps``): ``(B, L, 2, K, H, W)``.

        ``history`` ``(B, memory, K, H, W)``: the samples ``memory - 1 .. 0`` steps
        before the start (the last is ``u0``), needed with ``memory``.
        """
        k = self.k
        if leads is None:
            leads = torch.arange(1, self.n_steps + 1, dtype=u0.dtype, device=u0.device)
        leads = torch.as_tensor(leads, dtype=u0.dtype, device=u0.device)
        if self.memory and (history is None or history.shape[1] != self.memory):
            raise ValueError(f"memory={self.memory} needs history of shape (batch, "
                             f"{self.memory}, K, H, W); got "
                             f"{None if history is None else tuple(history.shape)}")
        computed = self._output_leads(leads)
        times = torch.cat([computed.new_zeros(1), computed])

        def rhs(t, state):
            u, v = state[:, :k], state[:, k:]
            gy, gx = spatial_gradient(u, self.periodic)
            feats = self._features(t, phase0, u)
            clim, d_clim = self._climate(t, phase0)
            out = self.dynamics(torch.cat([u, gy, gx, v, u - clim, feats], 1))
            v_eff = self.max_speed * torch.tanh(v / self.max_speed)
            source = self._relaxation(u, clim, d_clim) + out[:, 2 * k:]
            du = advection_tendency(u, v_eff, self.periodic) + source
            dv = out[:, :2 * k] - nn.functional.softplus(self.log_velocity_decay) * v
            return torch.cat([du, dv], 1)

        options = _solver_options(self.method, self.step_size)
        states = odeint(rhs, torch.cat([u0, v0], 1), times, method=self.method, options=options)
        outs, means = [], {}
        for j in range(1, len(times)):
            u = states[j][:, :k]
            clim, _ = self._climate(times[j], phase0)
            inputs = [u, u - clim, self._features(times[j], phase0, u)]
            if self.memory:
                inputs.append(self._lagged_anomaly(times[j], phase0, history, means))
            e = self.emission(torch.cat(inputs, 1))
            mean = u + e[:, :k]
            # softplus(-1) = 0.31: a first guess of the error in standardised units
            std = nn.functional.softplus(e[:, k:] - 1.0) + self.min_std
            means[int(round(float(times[j])))] = mean
            outs.append(torch.stack([mean, std], 1))
        if not self.memory:
            return torch.stack(outs, 1)
        position = {int(round(float(t))): i for i, t in enumerate(computed)}
        return torch.stack([outs[position[int(round(float(t)))]] for t in leads], 1)
