"""Learned vector fields: a black-box neural ODE and the VGB-DM grey-box field.

Both act on flat states ``(..., n_state)`` and integrate with torchdiffeq.
They normalise the state for the network with statistics fitted on the
training data (``x_mean``, ``x_scale``) and scale the network's output by the
typical tendency (``v_scale``), so the same sizes work on a pendulum (state
~1) and on Lorenz-63 (state ~20, tendency ~100).

:class:`NeuralODEModule` (Chen et al. 2018): ``dx/dt = MLP(x)``; its
``forward`` integrates a batch of short windows from their first state
(trajectory matching).

:class:`GreyBoxFlowModule` (variational grey-box dynamic matching, Singh et al.
2026): ``dx/dt = f_phys(x; p) + f_nn(x, history, z)``. An encoder reads an
observed episode and returns a Gaussian posterior over the unknown physical
parameters ``p`` (mapped into their prior bounds by a sigmoid) and a
stochastic latent ``z``. Its ``forward`` is simulation-free: for random
consecutive pairs ``(x_k, x_{k+1})`` of each trajectory and a random
``s in [0, 1]`` it evaluates the field at the linear interpolant
``(1 - s) x_k + s x_{k+1}`` and returns it with the target
``(x_{k+1} - x_k) / dt_k`` (flow matching between consecutive states), or,
with ``interpolant="cubic"``, at the cubic Lagrange interpolant through the
four grid states around the step with its time derivative as the target, the
KL terms of ``p`` and ``z``, and the mean square of the (normalised)
correction, which an estimator may penalise so that the physics explains what
it can (the least-action principle of APHYNITY, Yin et al. 2021).
"""

from __future__ import annotations

import torch
from torch import nn

from xdyn.nn.encoders import make_encoder
from xdyn.nn.modules import MLP

__all__ = ["NeuralODEModule", "GreyBoxFlowModule", "integrate_field", "lagrange_weights"]


def lagrange_weights(nodes, t):
    """Weights of the Lagrange interpolant through ``nodes`` and of its derivative at ``t``.

    Parameters
    ----------
    nodes : torch.Tensor of shape (..., m)
        Distinct node times.
    t : torch.Tensor of shape (...)
        Evaluation times.

    Returns
    -------
    w, dw : torch.Tensor of shape (..., m)
        ``sum_i w_i x_i`` is the interpolant at ``t`` of values ``x_i`` at the
        nodes, ``sum_i dw_i x_i`` its time derivative.

    Examples
    --------
    >>> import torch
    >>> nodes = torch.tensor([0.0, 1.0, 2.0, 3.0])
    >>> w, dw = lagrange_weights(nodes, torch.tensor(1.5))
    >>> float((w * nodes**3).sum()), float((dw * nodes**3).sum())  # exact on cubics
    (3.375, 6.75)
    """
    m = nodes.shape[-1]
    t = t.unsqueeze(-1)
    diff = nodes.unsqueeze(-1) - nodes.unsqueeze(-2)                # (..., m, m): x_i - x_j
    eye = torch.eye(m, dtype=torch.bool, device=nodes.device)
    denom = torch.where(eye, torch.ones_like(diff), diff)
    # factor (t - x_j) / (x_i - x_j) for j != i, and 1 on the diagonal
    fac = torch.where(eye, torch.ones_like(diff), (t.unsqueeze(-2) - nodes.unsqueeze(-2)) / denom)
    w = fac.prod(-1)
    # d/dt prod_j fac_ij = sum_q 1 / (x_i - x_q) prod_{j != q} fac_ij
    dw = torch.zeros_like(w)
    for q in range(m):
        keep = torch.ones(m, dtype=torch.bool, device=nodes.device)
        keep[q] = False
        term = fac[..., keep].prod(-1) / denom[..., q]
        dw = dw + torch.where(eye[:, q], torch.zeros_like(term), term)
    return w, dw


def _stats(n_state, stats, dtype=torch.float32):
    stats = dict(stats or {})
    out = {}
    for key, default in (("x_mean", 0.0), ("x_scale", 1.0), ("v_scale", 1.0)):
        value = torch.as_tensor(stats.get(key, default), dtype=dtype)
        out[key] = value.expand(n_state).clone() if value.ndim == 0 else value.reshape(n_state)
    return out


def _ode_methods():
    """Names of the torchdiffeq solvers and, among them, the fixed-grid ones."""
    try:  # torchdiffeq's own table (private)
        from torchdiffeq._impl.odeint import SOLVERS
        from torchdiffeq._impl.solvers import FixedGridODESolver
    except ImportError:  # the table of torchdiffeq 0.2.5
        fixed = {"euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams",
                 "implicit_adams", "fixed_adams"}
        return fixed | {"dopri8", "dopri5", "bosh3", "fehlberg2", "adaptive_heun",
                        "scipy_solver"}, fixed
    fixed = {name for name, cls in SOLVERS.items() if issubclass(cls, FixedGridODESolver)}
    return set(SOLVERS), fixed


ODE_METHODS, FIXED_STEP_METHODS = _ode_methods()
# the estimators' choices: torchdiffeq 0.2.5's "explicit_adams" diverges at any step
# (dx/dt = -x to t = 8: 6e10 at step 0.25, 6e36 at 0.05; measured 2026-12-07)
ODE_METHODS = ODE_METHODS - {"explicit_adams"}


def _solver_options(method, step_size):
    """torchdiffeq ``options``: ``{"step_size": step_size}`` for every fixed-grid method."""
    if method in FIXED_STEP_METHODS and step_size is not None:
        return {"step_size": float(step_size)}
    return None


def integrate_field(func, x0, times, method="rk4", step_size=None, adjoint=False):
    """Integrate ``dx/dt = func(t, x)`` from ``x0`` and return the states at ``times``.

    A thin wrapper of :func:`torchdiffeq.odeint`: ``method="rk4"`` (and the
    other fixed-step methods) step by ``step_size`` (default: the smallest
    output interval).

    Parameters
    ----------
    func : callable or torch.nn.Module
        ``func(t, x)``; a Module for ``adjoint=True``.
    x0 : tensor ``(..., n_state)``
    times : 1-D tensor
        Output times, the first being the time of ``x0``.
    method : str, default="rk4"
        Any torchdiffeq method (``"dopri5"`` for adaptive steps).
    step_size : float, optional
        Step of the fixed-step methods.
    adjoint : bool, default=False
        Backpropagate with the adjoint method (memory constant in the horizon).

    Returns
    -------
    tensor ``(len(times), ..., n_state)``

    Examples
    --------
    >>> import torch
    >>> out = integrate_field(lambda t, x: -x, torch.ones(2, 1), torch.tensor([0.0, 1.0]),
    ...                       step_size=0.1)
    >>> round(float(out[-1, 0, 0]), 4)  # exp(-1)
    0.3679
    """
    from torchdiffeq import odeint, odeint_adjoint

    if method in FIXED_STEP_METHODS and step_size is None and len(times) > 1:
        step_size = float((times[1:] - times[:-1]).abs().min())
    options = _solver_options(method, step_size) if len(times) > 1 else None
    solver = odeint_adjoint if adjoint else odeint
    return solver(func, x0, times, method=method, options=options)


class _Field(nn.Module):
    """``dx/dt = v_scale * MLP((x - x_mean) / x_scale)``: the black-box tendency."""

    def __init__(self, n_state, hidden, n_layers, activation, stats):
        super().__init__()
        self.net = MLP(n_state, n_state, hidden=hidden, n_layers=n_layers, activation=activation)
        for key, value in _stats(n_state, stats).items():
            self.register_buffer(key, value)

    def forward(self, t, x):
        return self.v_scale * self.net((x - self.x_mean) / self.x_scale)


class NeuralODEModule(nn.Module):
    """A black-box neural ODE ``dx/dt = MLP(x)`` integrated over windows.

    Parameters
    ----------
    n_state : int
    hidden : int, default=64
    n_layers : int, default=2
    activation : str, default="tanh"
    stats : dict, optional
        ``x_mean``, ``x_scale``, ``v_scale`` (scalars or ``(n_state,)``).
    method : str, default="rk4"
    step_size : float, optional
        Step of the fixed-step methods.
    adjoint : bool, default=False

    Examples
    --------
    >>> import torch
    >>> mod = NeuralODEModule(2, hidden=8)
    >>> mod(torch.zeros(5, 4, 2), torch.linspace(0, 1, 4).expand(5, 4)).shape
    torch.Size([5, 4, 2])
    """

    def __init__(self, n_state, hidden=64, n_layers=2, activation="tanh", stats=None,
                 method="rk4", step_size=None, adjoint=False):
        super().__init__()
        self.field = _Field(n_state, hidden, n_layers, activation, stats)
        self.method, self.step_size, self.adjoint = method, step_size, adjoint

    def rollout(self, x0, times):
        """States ``(len(times), ..., n_state)`` from ``x0`` at ``times`` (``times[0]`` is x0's)."""
        return integrate_field(self.field, x0, times, self.method, self.step_size, self.adjoint)

    def forward(self, traj, time):
        # every window shares its time offsets (the training windows are cut on
        # one regular grid), so one solve integrates the whole batch
        times = time[0] - time[0, 0]
        return self.rollout(traj[:, 0], times).transpose(0, 1)


class GreyBoxFlowModule(nn.Module):
    """VGB-DM: incomplete physics + neural correction, with an episode encoder.

    Parameters
    ----------
    n_state : int
    physics : xdyn.forecast.physics.PhysicsModel or None
        The known physics (None: a black-box field with a latent).
    z_dim : int, default=4
        Size of the stochastic latent (0: none).
    history_size : int, default=1
        States the correction sees: the current one and ``history_size - 1``
        previous grid states.
    len_episode : int, default=20
        Length of the observed episode the encoder reads.
    hidden, n_layers : int
        Width and depth of the correction MLP.
    activation : str or type, default="tanh"
        Activation of the correction MLP's hidden layers (see
        :func:`xdyn.nn.modules.get_activation`).
    encoder : {"gru", "lstm", "mlp", "conv"}, default="gru"
        ``"conv"``: fields on a periodic square grid (``encoder_channels`` of
        them, default ``n_channels`` or 1), :class:`xdyn.nn.encoders.ConvEncoder`.
    encoder_hidden : int, default=64
    encoder_channels : int, optional
        Number of fields the ``"conv"`` encoder splits the state into (default
        ``n_channels``, or 1); ignored by the other encoders.
    correction : bool, default=True
        False: the physics alone (parameters still inferred).
    stats : dict, optional
        ``x_mean``, ``x_scale``, ``v_scale``.
    n_channels : int, optional
        Make the correction pointwise: the state is ``n_channels`` fields of
        equal size (variable-major), and one MLP maps each site's channels
        (and ``z``) to its tendencies. None: one MLP on the whole state.
    method : str, default="rk4"
    step_size : float, optional
        Step of the fixed-step methods at prediction.
    n_pairs : int, default=4
        Consecutive pairs drawn per trajectory in each training batch.
    input_mask : array-like of shape (n_state,), optional
        1 for the state entries the correction reads, 0 for those it does not
        (all by default): a correction that cannot see what the physics term
        depends on cannot stand in for it, which makes the physics' parameters
        identifiable.
    output_mask : array-like of shape (n_state,), optional
        1 for the tendencies the correction adds to, 0 for those the physics
        gives alone (all corrected by default): where the physics of an
        equation is complete, a correction there can only trade off against
        the physics' parameters.
    interpolant : {"linear", "cubic"}, default="linear"
        The path between consecutive states that training matches the field
        to. ``"linear"``: the chord, whose constant velocity differs from the
        flow's by O(dt) away from the midpoint; ``"cubic"``: the Lagrange
        cubic through the four grid states around the step (shifted inward
        at the ends of a run), its velocity O(dt^3) from the flow's.
    episode : {"random", "first"}, default="random"
        The training episode the encoder reads: a random window of each
        trajectory, or its first ``len_episode`` states (where forecasts
        start after the first states of a run, and a transient at the start
        carries what later states do not).
    time_step : float, optional
        The spacing of the runs' samples when :meth:`forward` gets their times
        as integer sample indices (VGB-DM's training on its even grid). Paths
        then take their steps from index differences, exact on a record of any
        length, where float32 times keep about seven digits of their size, not
        of the step (a step of 0.05 at time 1e4 came out up to 1.5% off).
        Float times are used as they are.

    Examples
    --------
    >>> import torch
    >>> from xdyn.forecast.physics import PendulumPhysics
    >>> mod = GreyBoxFlowModule(2, PendulumPhysics(), z_dim=2, history_size=2, len_episode=5)
    >>> pred, target, kl_p, kl_z, corr_sq = mod(torch.randn(3, 12, 2), torch.linspace(0, 1, 12).expand(3, 12))
    >>> pred.shape, kl_p.shape
    (torch.Size([3, 4, 2]), torch.Size([3]))
    """

    def __init__(self, n_state, physics=None, z_dim=4, history_size=1, len_episode=20,
                 hidden=64, n_layers=2, encoder="gru", encoder_hidden=64, correction=True,
                 stats=None, method="rk4", step_size=None, n_pairs=4, activation="tanh",
                 n_channels=None, interpolant="linear", input_mask=None, encoder_channels=None,
                 episode="random", output_mask=None, time_step=None):
        super().__init__()
        self.time_step = time_step
        if interpolant not in ("linear", "cubic"):
            raise ValueError(f"interpolant must be 'linear' or 'cubic', got {interpolant!r}")
        if episode not in ("random", "first"):
            raise ValueError(f"episode must be 'random' or 'first', got {episode!r}")
        self.interpolant, self.episode = interpolant, episode
        self.n_state, self.physics = int(n_state), physics
        self.p_dim = physics.p_dim if physics is not None else 0
        self.z_dim, self.history_size = int(z_dim), int(history_size)
        self.len_episode, self.n_pairs = int(len_episode), int(n_pairs)
        self.method, self.step_size = method, step_size
        bounds = list(physics.parameter_bounds.values()) if self.p_dim else []
        self.register_buffer("p_low", torch.tensor([b[0] for b in bounds], dtype=torch.float32))
        self.register_buffer("p_width", torch.tensor([b[1] - b[0] for b in bounds],
                                                     dtype=torch.float32))
        for key, value in _stats(self.n_state, stats).items():
            self.register_buffer(key, value)
        for name, mask in (("input_mask", input_mask), ("output_mask", output_mask)):
            self.register_buffer(name, torch.ones(self.n_state) if mask is None else
                                 torch.as_tensor(mask, dtype=torch.float32).reshape(self.n_state))
        # pointwise: one MLP shared by every grid site, acting on the channels
        # (variables) there, as a reaction term does; dense: one MLP on the state
        self.n_channels = int(n_channels) if n_channels else None
        if self.n_channels and self.n_state % self.n_channels:
            raise ValueError(f"n_state={self.n_state} is not a multiple of n_channels={n_channels}")
        n_latent = self.p_dim + self.z_dim
        fields = {"n_channels": int(encoder_channels or self.n_channels or 1)} \
            if encoder == "conv" else {}
        self.encoder = make_encoder(encoder, self.n_state, self.len_episode,
                                    hidden_size=encoder_hidden, **fields) if n_latent else None
        self.head = nn.Linear(encoder_hidden, 2 * n_latent) if n_latent else None
        width = self.n_channels or self.n_state
        self.correction = (MLP(width * self.history_size + self.z_dim, width,
                               hidden=hidden, n_layers=n_layers, activation=activation)
                           if correction else None)
        if physics is None and not correction:
            raise ValueError("GreyBoxFlowModule needs physics, a correction or both")

    # --- inference --------------------------------------------------------
    def encode(self, episode):
        """Posterior mean and log-variance of the unconstrained ``(p, z)``, each ``(..., p_dim + z_dim)``."""
        if self.encoder is None:
            empty = episode.new_zeros(*episode.shape[:-2], 0)
            return empty, empty
        h = self.encoder((episode - self.x_mean) / self.x_scale)
        mu, logvar = self.head(h).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 6.0)

    def split(self, latent):
        """Physical parameters (in their bounds) and latent ``z`` from an unconstrained draw."""
        p = self.p_low + self.p_width * torch.sigmoid(latent[..., :self.p_dim])
        return p, latent[..., self.p_dim:]

    # --- the field --------------------------------------------------------
    def field(self, t, x, history, p, z, parts=False):
        """``dx/dt`` at ``x``; ``history`` is ``(..., history_size - 1, n_state)``, oldest first.

        ``parts=True`` also returns the correction divided by ``v_scale``.
        """
        out = self.physics.rhs(t, x, p) if self.physics is not None else 0.0
        corr = None
        if self.correction is not None:
            states = torch.cat([history, x.unsqueeze(-2)], dim=-2) if self.history_size > 1 \
                else x.unsqueeze(-2)
            normed = self.input_mask * (states - self.x_mean) / self.x_scale  # (..., h, n)
            if self.n_channels:
                C = self.n_channels
                sites = normed.reshape(*normed.shape[:-1], C, -1)  # (..., h, C, S)
                sites = sites.movedim(-1, -3).flatten(-2)  # (..., S, h * C)
                zs = z.unsqueeze(-2).expand(*sites.shape[:-1], z.shape[-1])
                corr = self.correction(torch.cat([sites, zs], dim=-1))  # (..., S, C)
                corr = corr.movedim(-2, -1).flatten(-2)  # (..., C * S), variable-major
            else:
                corr = self.correction(torch.cat([normed.flatten(-2), z], dim=-1))
            corr = self.output_mask * corr
            out = out + self.v_scale * corr
        return (out, corr) if parts else out

    def forward(self, traj, time):
        B, T, n = traj.shape
        h, E = self.history_size, self.len_episode
        if T < max(E, h + 1):
            raise ValueError(f"training windows of {T} times are shorter than len_episode={E} "
                             f"or history_size + 1 = {h + 1}")
        if self.interpolant == "cubic" and T < 4:
            raise ValueError(f"the cubic interpolant needs runs of at least 4 times, got {T}")
        if not time.is_floating_point() and self.time_step is None:
            raise ValueError("integer times are sample indices: they need the module's "
                             "time_step (the samples' spacing)")
        # the episode: a random window of each trajectory (the parameters are
        # constant along it, so any window informs them), or its first E states
        start = torch.randint(0, T - E + 1, (B, 1), device=traj.device) \
            if self.episode == "random" else torch.zeros(B, 1, dtype=torch.long,
                                                         device=traj.device)
        idx = start + torch.arange(E, device=traj.device)
        episode = torch.gather(traj, 1, idx[..., None].expand(B, E, n))
        mu, logvar = self.encode(episode)
        latent = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        p, z = self.split(latent)
        kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar)
        kl_p, kl_z = kl[..., :self.p_dim].sum(-1), kl[..., self.p_dim:].sum(-1)
        # n_pairs consecutive pairs per trajectory, each with its history
        K = self.n_pairs
        k = torch.randint(h - 1, T - 1, (B, K), device=traj.device)
        s = torch.rand(B, K, device=traj.device, dtype=traj.dtype)
        ts, xs, target, history = self._paths(traj, time, k, s)
        pred, corr = self.field(ts, xs, history, p[:, None].expand(B, K, self.p_dim),
                                z[:, None].expand(B, K, self.z_dim), parts=True)
        corr_sq = (corr**2).mean() if corr is not None else pred.new_zeros(())
        return pred, target, kl_p, kl_z, corr_sq

    # --- paths (training and refinement) and semi-amortized inference -----
    def _paths(self, traj, time, k, s):
        """The path between grid states ``k`` and ``k + 1`` at fraction ``s`` (both ``(B, K)``).

        The cubic where the runs have four states or more, else the chord. Returns
        the path's times ``(B, K)``, states and velocities ``(B, K, n)``
        and the ``history_size - 1`` grid states before ``k`` ``(B, K, h - 1, n)``.
        """
        B, T, n = traj.shape
        K = k.shape[1]
        take = lambda j: torch.gather(traj, 1, j[..., None].expand(B, K, n))  # noqa: E731

        def since_k(j):  # time from state k to state j: exact for integer sample indices
            d = torch.gather(time, 1, j) - torch.gather(time, 1, k)
            return d if time.is_floating_point() else d.to(s.dtype) * self.time_step

        t0 = torch.gather(time, 1, k)
        t0 = t0 if time.is_floating_point() else t0.to(s.dtype) * self.time_step
        step = since_k(k + 1)
        ts = t0 + s * step
        if self.interpolant == "cubic" and T >= 4:
            # the four grid states around the step, shifted inward at a run's ends; the
            # weights from times relative to the step's start (they are shift-invariant)
            nodes = [(k - 1).clamp(0, T - 4) + j for j in range(4)]
            w, dw = lagrange_weights(torch.stack([since_k(j) for j in nodes], -1), s * step)
            states = torch.stack([take(j) for j in nodes], -2)              # (B, K, 4, n)
            xs = (w.unsqueeze(-1) * states).sum(-2)
            target = (dw.unsqueeze(-1) * states).sum(-2)
        else:
            x0, x1 = take(k), take(k + 1)
            xs = (1 - s[..., None]) * x0 + s[..., None] * x1
            target = (x1 - x0) / step[..., None]
        h = self.history_size
        history = torch.stack([take(k - j) for j in range(h - 1, 0, -1)], dim=-2) \
            if h > 1 else xs.new_zeros(B, K, 0, n)
        return ts, xs, target, history

    def _episode_points(self, episode, dt):
        """:meth:`_paths` at every step of episodes ``(B, E, n)`` with a full history,
        at ``s`` = 0 and 1/2: the training pairs' paths inside one episode."""
        B, E, _ = episode.shape
        steps = torch.arange(self.history_size - 1, E - 1, device=episode.device)
        k = steps.repeat(2).expand(B, -1)
        s = torch.cat([torch.zeros_like(steps), torch.ones_like(steps)]).to(episode.dtype) / 2
        time = torch.arange(E, device=episode.device, dtype=episode.dtype) * dt
        return self._paths(episode, time.expand(B, -1), k, s.expand(B, -1))

    def refine(self, episode, dt, latent, beta_p, beta_z, steps):
        """MAP of the unconstrained ``(p, z)`` of each episode, from ``latent``.

        Minimizes the training objective of one run with the latent as a point:
        the flow-matching loss on the episode's own path plus the prior's
        negative log density, ``beta_p |u_p|^2 / 2 + beta_z |u_z|^2 / 2``. The
        encoder's mean is the start (semi-amortized inference, Kim et al. 2018).
        The objective is a sum of one term per episode, so its Hessian is block
        diagonal, one small ``(p_dim + z_dim)`` block per episode: all episodes
        take damped Newton steps at once (Levenberg-Marquardt on the exact
        blocks, with their eigenvalues' magnitudes, so a step always descends),
        each with its own damping, acceptance and convergence. An episode's MAP
        does not depend on the others in the call. At most ``steps`` steps.
        """
        u = latent.detach().clone()
        if episode.shape[0] == 0 or u.shape[-1] == 0:
            return u
        ts, xs, target, history = self._episode_points(episode, dt)
        K, P, d = xs.shape[1], self.p_dim, u.shape[-1]
        if K == 0:
            raise ValueError(f"refinement needs episodes longer than history_size="
                             f"{self.history_size}, got {episode.shape[-2]} states")

        def objective(rows, v):  # the objective of episodes ``rows`` at latents ``v``
            p, z = self.split(v)
            pred = self.field(ts[rows], xs[rows], history[rows],
                              p[:, None].expand(-1, K, -1), z[:, None].expand(-1, K, -1))
            fm = (((pred - target[rows]) / self.v_scale) ** 2).mean((-2, -1))
            return fm + 0.5 * (beta_p * v[:, :P].pow(2).sum(-1) + beta_z * v[:, P:].pow(2).sum(-1))

        # L-BFGS's tolerances in float64, no finer than the dtype resolves (float32: 1e-5, 1e-6)
        eps = torch.finfo(u.dtype).eps
        tol_grad, tol_change = max(1e-7, 100 * eps), max(1e-9, 10 * eps)
        damping = torch.full(u.shape[:1], 1e-3, dtype=u.dtype, device=u.device)
        active = torch.arange(u.shape[0], device=u.device)  # episodes not yet converged
        for _ in range(int(steps)):
            with torch.enable_grad():
                v = u[active].requires_grad_(True)
                f = objective(active, v)
                # the network's weights keep no .grad: derivatives of the latent alone
                (g,) = torch.autograd.grad(f.sum(), v, create_graph=True)
                hess = torch.stack([torch.autograd.grad(g[:, j].sum(), v, retain_graph=j < d - 1)[0]
                                    for j in range(d)], -1)  # a column of every block per pass
            f, g, hess = f.detach(), g.detach(), hess.detach()
            # an episode whose objective or derivatives are not finite stays where it is
            # (a step from there means nothing, and eigh fails on them)
            finite = torch.isfinite(f) & torch.isfinite(g).all(-1) \
                & torch.isfinite(hess).flatten(1).all(-1)
            hess = torch.where(finite[:, None, None], hess, torch.eye(d, dtype=hess.dtype,
                                                                  device=hess.device))
            g = torch.where(finite[:, None], g, 0.0)
            evals, evecs = torch.linalg.eigh(0.5 * (hess + hess.mT))
            lam = damping[active, None] * evals.abs().amax(-1, keepdim=True).clamp_min(1e-12)
            step = -evecs @ ((evecs.mT @ g[..., None]) / (evals.abs() + lam)[..., None])
            step = step.squeeze(-1)
            with torch.no_grad():
                f_new = objective(active, u[active] + step)
            better = torch.isfinite(f_new) & (f_new < f)
            u[active[better]] += step[better]
            damping[active] = torch.where(better, damping[active] / 3, damping[active] * 8)
            # L-BFGS's tests (gradient; change of the objective, here over a nearly undamped
            # step: a heavily damped one is short by design), and no descent within reach
            done = ~finite | (g.abs().amax(-1) <= tol_grad) | (damping[active] > 1e10) \
                | (better & (lam[:, 0] <= 1e-3 * evals.abs().amax(-1).clamp_min(1e-12))
                   & (f - f_new <= tol_change * f.abs().clamp_min(1.0)))
            active = active[~done]
            if active.numel() == 0:
                break
        return u

    # --- prediction -------------------------------------------------------
    def rollout(self, history, times, p, z):
        """Integrate from the last state of ``history`` (``(..., >= history_size, n)``).

        ``times`` are the output times from the start (``times[0] = 0``), on
        the training grid when ``history_size > 1`` (the history is taken at
        the output times). Returns ``(len(times), ..., n_state)``.
        """
        x = history[..., -1, :]
        past = history[..., history.shape[-2] - self.history_size:-1, :]
        if self.history_size == 1:
            func = lambda t, y: self.field(t, y, past, p, z)  # noqa: E731
            return integrate_field(func, x, times, self.method, self.step_size)
        out = [x]
        for j in range(len(times) - 1):
            func = lambda t, y, past=past: self.field(t, y, past, p, z)  # noqa: E731
            x = integrate_field(func, x, times[j:j + 2], self.method, self.step_size)[-1]
            past = torch.cat([past[..., 1:, :], out[-1].unsqueeze(-2)], dim=-2)
            out.append(x)
        return torch.stack(out)
