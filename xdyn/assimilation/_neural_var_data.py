"""Data side of :class:`~xdyn.assimilation.NeuralVar3D`: checks, aligned truth,
training statistics, and the torch module with its losses.

Kept apart from the estimator so that the estimator module reads as the
method (fit by cycling rounds, predict through the shared cycle) and this one
as what feeds the network.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from skorch.dataset import Dataset as SkorchDataset
from torch import nn

from xdyn._labels import label_order
from xdyn.model_selection import unwrap
from xdyn.nn.encoders import make_encoder
from xdyn.utils import int_seed

__all__ = ["NeuralVar3DModule", "BatchedDataset", "whole_batch", "check_observation_windows",
           "check_observed_sites", "aligned_truth", "analysis_dataset", "climatology_draws",
           "cycle_sequences", "fit_statistics", "perturbed_backgrounds", "validation_seed",
           "var_cost", "wrong_wing_share"]


class BatchedDataset(SkorchDataset):
    """A skorch Dataset that hands out whole mini-batches (``__getitems__``).

    torch's DataLoader fetches a batch with one ``__getitems__`` call when the
    dataset has it; with :func:`whole_batch` as ``collate_fn`` a batch of a
    dict of arrays costs one fancy index per array instead of one Python
    call per sample (30x faster for the small samples of a 3-variable state).
    """

    def __getitems__(self, indices):
        idx = np.asarray(indices)
        X = {k: torch.as_tensor(v[idx]) for k, v in self.X.items()}
        return X, (None if self.y is None else torch.as_tensor(self.y[idx]))


def whole_batch(batch):
    """``collate_fn`` for :class:`BatchedDataset`: the batch is already made."""
    return batch


def check_observation_windows(ctx, window: int):
    """Refuse a record shorter than ``window`` or a window with no observation at all."""
    n_times = int(ctx.y.shape[0])
    if window > n_times:
        raise ValueError(f"window={window} is longer than the observation record "
                         f"({n_times} times along 'time')")
    any_obs = ctx.mask.any(-1).numpy().astype(int)                    # (T,)
    counts = np.convolve(any_obs, np.ones(window, dtype=int), mode="valid")
    if np.any(counts == 0):
        start = int(np.flatnonzero(counts == 0)[0])
        raise ValueError(
            f"the observations are all NaN over a whole window of {window} times "
            f"(from time {float(ctx.times[start])}): the network would have nothing to read; "
            "use a longer window, or split the record there (dropping the times would leave "
            "observations unevenly spaced, which seq_len > 1 and window > 1 refuse)")


def check_observed_sites(ctx, trained, what="these observations"):
    """Refuse observations of a site that the training observations never observed.

    The network never saw such a site: its scalers have no data and its gain
    columns were never trained (their input was always zero), so an observation
    there would move the analysis by an untrained amount. ``trained`` is a bool
    array of shape ``(p,)``, True for the sites observed in training (None:
    no record, nothing checked).
    """
    if trained is None:
        return
    new = np.flatnonzero(ctx.mask.any(0).cpu().numpy() & ~np.asarray(trained, dtype=bool))
    if new.size:
        raise ValueError(
            f"{what} observe the site(s) {_site_names(ctx, new)}, which the training "
            "observations never observed (NaN at every time): NeuralVar3D has neither a "
            "scale nor a trained gain for them. Set those observations to NaN, or refit on "
            "training observations that observe those sites")


def _site_names(ctx, index):
    """``obs`` positions with their ``variable`` label where the observations have one."""
    dim = ctx.obs.dims[-1]
    labels = ctx.obs[dim].values if dim in ctx.obs.coords else np.arange(ctx.obs.sizes[dim])
    names = ctx.obs["variable"].values if "variable" in ctx.obs.coords else None
    return [f"{dim}={labels[i]}" + (f" ({names[i]})" if names is not None else "")
            for i in index]


def aligned_truth(truth, ctx, what="truth") -> torch.Tensor:
    """A state Dataset as a flat tensor ``(T, *batch, n_state)`` aligned with the observations.

    Along a batch dim (``trajectory`` ...) that both label with a coordinate the
    truth is selected by the observations' labels (the same set is required);
    where either has no labels, by position (the sizes must match).
    """
    truth = unwrap(truth)
    if not isinstance(truth, xr.Dataset):
        raise TypeError(f"{what} must be a state Dataset, got {type(truth).__name__}")
    missing = [v.name for v in ctx.system.variables if v.name not in truth.data_vars]
    if missing:
        raise ValueError(f"{what} lacks the state variable(s) {missing} of "
                         f"{type(ctx.system).__name__}")
    for d in ctx.batch_dims:
        if d not in truth.dims or truth.sizes[d] != ctx.obs.sizes[d]:
            raise ValueError(f"{what} needs the observations' batch dim {d!r} of size "
                             f"{ctx.obs.sizes[d]}; it has dims {dict(truth.sizes)}")
        if d in ctx.batch_coords and d in truth.coords:
            # by label: a truth whose trajectories come in another order must not be
            # paired with the wrong observations (by position, only sizes were checked)
            order = label_order(truth[d].values.tolist(), ctx.batch_coords[d].values.tolist())
            if order is None:
                raise ValueError(f"{what} and the observations have different {d!r} labels "
                                 "(or repeated ones): they must label the same elements")
            truth = truth.isel({d: order})
    own = {"time", *ctx.batch_dims, *(d for v in ctx.system.variables for d in v.dims)}
    extra = sorted({d for v in ctx.system.variables for d in truth[v.name].dims} - own)
    if extra:
        # else it failed deep in xarray or torch (an IndexError or a tensor size mismatch)
        raise ValueError(f"{what} has the batch dim(s) {extra} that the observations lack "
                         f"(their batch dims: {list(ctx.batch_dims)}): select the matching "
                         f"part of the {what} (e.g. .isel({extra[0]}=i)), or observe every "
                         f"element along {extra[0]!r}")
    try:
        truth = truth.sel(time=ctx.obs["time"])
    except KeyError as err:
        raise ValueError(f"{what} does not cover every observation time") from err
    truth = truth.transpose("time", *ctx.batch_dims, ...)
    x = ctx.system.to_state(truth)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what} contains non-finite values")
    return x


def analysis_dataset(x, ctx, method: str) -> xr.Dataset:
    """Flat states ``(T, *batch, n_state)`` at the observation times as a state Dataset
    (the output of a single-analysis ``analyze``), its ``method`` and operator in attrs."""
    out = ctx.system.from_state(x, dims=("time",) + ctx.batch_dims,
                                coords={"time": ctx.obs["time"], **ctx.batch_coords})
    out.attrs.update({"method": method, "operator": ctx.operator.spec()})
    return out


def perturbed_backgrounds(system, truth_x, dt, lead, rng, error_range=(0.02, 1.5), n_steps=None):
    """Forecasts of a perturbed truth: ``x_b(k) = M(x_t(k0) + eps)`` from ``k0`` to ``k``.

    ``k0`` is the earliest observation time at most ``lead`` model steps before
    ``k`` (whole observation intervals: ``k0 = k`` where one interval is longer
    than ``lead``, and fewer steps at the record's start); the model runs the
    model steps between ``k0`` and ``k``. The error ``eps`` has a std drawn
    log-uniformly in ``error_range`` per sample (from a spin-up's errors down to
    a good filter's), and the model grows it along the flow. It is independent
    of the observations, so the network cannot learn a particular filter's
    systematic error from the observation window (which it would then
    "correct" in its own cycle, where that error is absent).

    Parameters
    ----------
    system : DynamicalSystem
    truth_x : torch.Tensor of shape (T, *batch, n_state)
        The truth at the observation times.
    dt : float
        Model step.
    lead : int
        Longest forecast, in model steps.
    rng : numpy.random.RandomState
    error_range : (float, float), default=(0.02, 1.5)
    n_steps : array of int of shape (T,), optional
        Model steps from the previous observation time (``CycleContext.n_steps``,
        the first ignored); None: one (observations at every model step).

    Returns
    -------
    torch.Tensor like ``truth_x``
    """
    T = truth_x.shape[0]
    # model steps since the first observation time: the lead counts model steps. Counted
    # in observation times but forecast in model steps, the background came from the
    # wrong time (Lorenz-63 observed every 10 steps: 11.5 from an unperturbed truth)
    steps = np.arange(T) if n_steps is None else np.concatenate(
        [[0], np.cumsum(np.asarray(n_steps, dtype=int)[1:T])])
    lo, hi = np.log(error_range[0]), np.log(error_range[1])
    std = np.exp(rng.uniform(lo, hi, size=truth_x.shape[:-1] + (1,)))
    eps = std * rng.standard_normal(truth_x.shape)
    start = truth_x + torch.as_tensor(eps, dtype=truth_x.dtype)
    out = torch.empty_like(truth_x)
    with torch.no_grad():
        for k in range(T):
            k0 = int(np.searchsorted(steps, steps[k] - lead))
            gap = int(steps[k] - steps[k0])
            out[k] = system.forecast(start[k0], dt, gap) if gap > 0 else start[k]
    return out


def validation_seed(random_state):
    """The ``random_state`` of validation data, apart from that of the training.

    An int as it is (each use makes a fresh generator of it), and None. From
    an instance, a seed drawn from it once, at the start of ``fit``, whether
    or not there are validation data: they then leave the fitted network as
    it is without them.

    Examples
    --------
    >>> import numpy as np
    >>> validation_seed(3), validation_seed(None), validation_seed(np.random.RandomState(0))
    (3, None, 209652396)
    """
    if isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        return int_seed(random_state)
    return random_state


def cycle_sequences(samples, seq_len):
    """Cut samples ``(T, *batch, ...)`` into cycles of ``seq_len`` consecutive times.

    Returns ``(S, seq_len, ...)`` arrays, ``S`` = batch size times the number
    of whole, non-overlapping cycles in ``T``; the background is kept at each
    cycle's first time only (``(S, n_state)``): the later ones are the
    network's own forecasts, made in training.

    Examples
    --------
    >>> import numpy as np
    >>> s = {"window": np.zeros((10, 3, 4, 2)), "background": np.zeros((10, 3, 5)),
    ...      "obs": np.zeros((10, 3, 1)), "mask": np.ones((10, 3, 1))}
    >>> {k: v.shape for k, v in cycle_sequences(s, 4).items()}
    {'window': (6, 4, 4, 2), 'background': (6, 5), 'obs': (6, 4, 1), 'mask': (6, 4, 1)}
    """
    L = int(seq_len)
    T = samples["background"].shape[0]
    idx = np.arange(0, T - L + 1, L)[:, None] + np.arange(L)               # (cycles, L)
    out = {}
    for k, v in samples.items():
        trailing = v.shape[-(2 if k == "window" else 1):]
        seq = v.reshape(T, -1, *trailing)[idx]                              # (cycles, L, B, ...)
        seq = np.swapaxes(seq, 1, 2).reshape(-1, L, *trailing)
        out[k] = seq[:, 0] if k == "background" else seq
    return out


def climatology_draws(mean, cov, shape, rng, like=None):
    """Independent draws ``x_b ~ N(mean, cov)`` of shape ``(*shape, n_state)``.

    The background of the original research pipeline (its "resample" branch):
    a climatological state, unrelated to the truth at that time, with
    ``mean``/``cov`` those of the training truth's states. Returned as a
    tensor like ``like`` (float64 numpy array without it).

    Examples
    --------
    >>> import numpy as np
    >>> x = climatology_draws([0.0, 10.0], np.diag([1.0, 4.0]), (20000,), np.random.RandomState(0))
    >>> x.shape, np.round(x.mean(0), 1).tolist(), np.round(x.std(0), 1).tolist()
    ((20000, 2), [0.0, 10.0], [1.0, 2.0])
    """
    mean = np.asarray(mean, dtype=float)
    chol = np.linalg.cholesky(np.asarray(cov, dtype=float) + 1e-12 * np.eye(mean.shape[0]))
    z = rng.standard_normal(tuple(shape) + mean.shape)
    draws = mean + z @ chol.T
    if like is None:
        return draws
    return torch.as_tensor(draws, dtype=like.dtype, device=like.device)


def fit_statistics(ctx, windows, backgrounds, innovations, truth_x, clim_mean, clim_cov,
                   B_scale):
    """Scalers and background statistics, from the training data only.

    Returns a dict of float arrays: state mean/scale (climatology), observation
    mean/scale, innovation scale, ``B``/``bias`` of the background error
    (its covariance and mean against the truth when the truth is given, else
    ``B_scale`` times the climatological covariance and zero), and ``obs_count``,
    the training observations of each site. A site observed fewer than twice has
    no spread to scale by: its observation and innovation scales are 1 (its mean
    the one value, or 0); :meth:`NeuralVar3D.predict` refuses a site never observed.
    """
    p = ctx.mask.shape[-1]
    y = windows[..., -1, :p]
    m = windows[..., -1, p:] > 0
    d = innovations
    y_mean = _masked_mean(y, m)
    y_scale = _masked_std(y, m, y_mean)
    d_scale = _masked_std(d, m, np.zeros(p))
    if truth_x is not None:
        err = (truth_x - backgrounds).reshape(-1, backgrounds.shape[-1])
        bias = err.mean(0)
        B = np.atleast_2d(np.cov(err.T))
    else:
        bias = np.zeros(backgrounds.shape[-1])
        B = float(B_scale) * np.asarray(clim_cov)
    # a tiny ridge keeps B invertible when a component is (nearly) never wrong
    B = B + 1e-6 * np.trace(B) / B.shape[0] * np.eye(B.shape[0])
    return {
        "x_mean": np.asarray(clim_mean, float), "x_scale": np.sqrt(np.diag(clim_cov)),
        "y_mean": y_mean, "y_scale": y_scale, "d_scale": d_scale,
        "B": B, "bias": bias, "noise_std": ctx.obs_std.cpu().numpy(),
        "B_gain": float(B_scale) * np.asarray(clim_cov),
        "obs_count": m.reshape(-1, p).sum(0),
    }


def _masked_mean(a, m):
    n = np.maximum(m.reshape(-1, m.shape[-1]).sum(0), 1)
    return (np.where(m, a, 0.0).reshape(-1, a.shape[-1])).sum(0) / n


def _masked_std(a, m, mean):
    """Std per site; 1 (no scaling) where a site has fewer than 2 observations. Floored
    at 1e-12, such a site's scale was 1e-6, and an observation of it at predict entered
    the network 1e6 times too large (single analyses 10x worse for a good observation)."""
    count = m.reshape(-1, m.shape[-1]).sum(0)
    n = np.maximum(count, 2)
    var = (np.where(m, a - mean, 0.0) ** 2).reshape(-1, a.shape[-1]).sum(0) / (n - 1)
    return np.where(count >= 2, np.sqrt(np.maximum(var, 1e-12)), 1.0)


class NeuralVar3DModule(nn.Module):
    """Unrolled fixed-point analysis ``x <- x + G * f(code, x, y - h(x))``.

    The window holds raw ``[y, mask]`` rows (observation, observed flag) of
    the last ``window`` times. The encoder reads the normalised observations
    and their mask, once (not the innovations: the gain is read off the
    observations only). From one 3D-Var step (``B_gain``) the head refines the
    state ``n_iterations`` times: it turns the code and the state into a gain
    applied to the innovations (the window's past observations against the
    background's trajectory, the current one against the iterate), in units of
    the background error std, with a learned per-component factor ``G``.
    Statistics come from the training split.

    Parameters
    ----------
    encoder : {"mlp", "gru", "lstm"}
    window, n_state, n_obs : int
    obs_index : list of int
        Flat state indices the operator reads.
    operator : ObservationOperator
        Its ``_transform`` (identity or square) is applied to ``x[..., obs_index]``.
    stats : dict
        Output of :func:`fit_statistics` (zeros/ones before fitting).
    hidden_size : int, default=64
    n_layers : int or None
        Encoder depth (its default when None).
    n_iterations : int, default=2
    system : DynamicalSystem, optional
        The model forecast between the analyses of a training sequence.
    forecast_dt : float, optional
    forecast_steps : int, default=1
        Model steps of ``forecast_dt`` between two observation times.

    Examples
    --------
    >>> import torch
    >>> from xdyn.observe import SelectVariables
    >>> mod = NeuralVar3DModule("gru", 4, 3, 2, [0, 1], SelectVariables(["x", "y"]), hidden_size=8)
    >>> out = mod(torch.zeros(5, 4, 4), torch.zeros(5, 3), torch.zeros(5, 2), torch.ones(5, 2))
    >>> out.shape
    torch.Size([5, 3])
    """

    def __init__(self, encoder, window, n_state, n_obs, obs_index, operator, stats=None,
                 hidden_size=64, n_layers=None, n_iterations=2, system=None, forecast_dt=None,
                 forecast_steps=1):
        super().__init__()
        self.operator = operator
        self.system, self.forecast_dt, self.forecast_steps = system, forecast_dt, forecast_steps
        self.n_iterations = int(n_iterations)
        self.max_step = 4.0
        self.register_buffer("obs_index", torch.as_tensor(list(obs_index), dtype=torch.long))
        defaults = {"x_mean": np.zeros(n_state), "x_scale": np.ones(n_state),
                    "y_mean": np.zeros(n_obs), "y_scale": np.ones(n_obs),
                    "d_scale": np.ones(n_obs), "B": np.eye(n_state), "bias": np.zeros(n_state),
                    "noise_std": np.ones(n_obs), "B_gain": np.eye(n_state)}
        stats = {**defaults, **(stats or {})}
        for name in defaults:
            self.register_buffer(name, torch.as_tensor(np.asarray(stats[name], dtype=np.float32)))
        self.register_buffer("B_inv", torch.linalg.inv(self.B.double()).float())
        self.register_buffer("corr_scale", torch.diagonal(self.B_gain).clamp_min(1e-12).sqrt())
        selection = torch.zeros(n_obs, n_state)
        selection[torch.arange(n_obs), self.obs_index] = 1.0
        self.register_buffer("selection", selection)
        self.encoder = make_encoder(encoder, 2 * n_obs, window, hidden_size, n_layers)
        width = self.encoder.out_features + n_state
        self.head = nn.Sequential(nn.Linear(width, hidden_size), nn.GELU(),
                                  nn.Linear(hidden_size, hidden_size), nn.GELU(),
                                  nn.Linear(hidden_size, n_state * (window + 1) * n_obs))
        with torch.no_grad():  # start as exactly 3D-Var (ReZero-style): training moves away
            self.head[-1].weight.zero_()
            self.head[-1].bias.zero_()
        self.gain = nn.Parameter(torch.ones(n_state))

    def observe(self, x):
        """``h(x)`` on flat states (differentiable)."""
        return self.operator._transform(x.index_select(-1, self.obs_index))

    def blue(self, x_b, obs, mask):
        """One 3D-Var (Gauss-Newton) step from ``x_b`` with ``B_gain``: the start of the refinement."""
        z = x_b.index_select(-1, self.obs_index)
        _, slope = torch.func.jvp(self.operator._transform, (z,), (torch.ones_like(z),))
        H = (slope * mask).unsqueeze(-1) * self.selection          # (N, p, n)
        BHt = self.B_gain @ H.transpose(-1, -2)                     # (N, n, p)
        S = H @ BHt + torch.diag(self.noise_std**2)
        K = torch.linalg.solve(S, BHt.transpose(-1, -2)).transpose(-1, -2)
        d = (obs - self.observe(x_b)) * mask
        return x_b + (K @ d.unsqueeze(-1)).squeeze(-1)

    def forward(self, window, background, obs, mask):
        """The analysis of ``background``; or, for a sequence (``window`` of
        shape ``(N, L, window, 2p)``), the analyses of a cycle of ``L``
        observation times from ``background`` at the first, with the model
        forecast (differentiable) between them: shape ``(N, L, n_state)``."""
        if window.dim() == 3:
            return self._analysis(window, background, obs, mask)
        if self.system is None:
            raise ValueError("a sequence of windows needs the module's system and forecast_dt")
        x, out = background, []
        for k in range(window.shape[1]):
            x = self._analysis(window[:, k], x, obs[:, k], mask[:, k])
            out.append(x)
            if k + 1 < window.shape[1]:
                x = self.system.forecast(x, self.forecast_dt, int(self.forecast_steps))
        return torch.stack(out, 1)

    def backcast(self, x, w):
        """States at the window's ``w`` observation times, oldest first: ``(..., w, n)``.

        The model run backwards from ``x`` (RK4 with a negative step; over a
        short window, Lorenz-63 included, this is well conditioned), so that
        the past observations of the window are compared with the trajectory
        through ``x`` at their own times, not with ``x`` itself.
        """
        states = [x]
        for _ in range(w - 1):
            states.append(self.system.forecast(states[-1], -self.forecast_dt,
                                               int(self.forecast_steps)))
        return torch.stack(states[::-1], -2)

    def _analysis(self, window, background, obs, mask):
        p = self.y_mean.shape[0]
        y, m = window[..., :p], window[..., p:]
        y_norm = (y - self.y_mean) / self.y_scale * m
        n, w = background.shape[-1], window.shape[-2]
        # the gain is read off the observations only (exogenous to the cycle): a gain
        # that also read the innovations would make the correction quadratic in
        # them, a bias that the cycle integrates into a drift of unobserved components
        code = self.encoder(torch.cat([y_norm, m], -1))
        # innovations of the window against the background's own trajectory (4D
        # innovations). Against the background itself, the past rows were dominated by
        # the flow's motion over the window (about 1 per step, against noise down to
        # 0.05), and the analysis could not resolve errors below the noise (measured on
        # Lorenz-63, x and y observed with noise 0.05, MLP trained through cycles: 0.060
        # with, 0.067 without). Not differentiated (the gradient reaches the background
        # through the analysis): differentiated, the fit took 3x as long for 0.054
        with torch.no_grad():
            past = (self.backcast(background, w) if self.system is not None
                    else background.unsqueeze(-2))
        d_past = (y - self.observe(past)) * m / self.d_scale
        x = self.blue(background, obs, mask)
        for _ in range(self.n_iterations):
            # and the current innovation against the iterate: with it the correction can
            # undo any part of the first 3D-Var step (whose gain is near 1 at low noise)
            d_now = ((obs - self.observe(x)) * mask / self.d_scale).unsqueeze(-2)
            d = torch.cat([d_past, d_now], -2)
            z = (x - self.x_mean) / self.x_scale
            # the correction is linear in the innovations, with a gain read off the
            # window and the state (a learned, flow-dependent gain over the window):
            # an unbiased background gets no mean correction, hence no drift
            gain = self.head(torch.cat([code, z], -1)).reshape(-1, n, (w + 1) * p)
            delta = (gain @ d.flatten(-2).unsqueeze(-1)).squeeze(-1)
            # a soft bound of a few background stds per step: a network fed a state
            # outside its training range must not throw the cycle off the attractor
            delta = self.max_step * torch.tanh(delta / self.max_step)
            x = x + self.gain * delta * self.corr_scale
        return x


def var_cost(module, x_a, X) -> torch.Tensor:
    """Mean 3D-Var cost ``1/2|x-x_b-bias|^2_{B^-1} + 1/2|h(x)-y|^2_{R^-1}`` per state entry."""
    X = {k: v.to(x_a) for k, v in X.items()}
    e = x_a - X["background"] - module.bias
    jb = 0.5 * ((e @ module.B_inv) * e).sum(-1)
    r = (module.observe(x_a) - X["obs"]) / module.noise_std * X["mask"]
    jo = 0.5 * (r**2).sum(-1)
    return (jb + jo).mean() / x_a.shape[-1]


def wrong_wing_share(analysis, truth, variable="x", keep_dims=()) -> xr.DataArray:
    """Share of analyses whose ``variable`` has the opposite sign of the truth.

    On Lorenz-63 the sign of ``x`` says which wing of the attractor the state
    is on; an ``x**2`` observation cannot tell the two apart, so this is the
    rate at which an assimilator picked the wrong mirror image. Times where
    the truth is exactly zero do not count. A NaN analysis (a cycle that
    failed, NaN from then on) makes the share NaN, like the RMSE of a failed
    run: it is no analysis on the wrong wing, and the share of the times left
    would flatter the run.

    Examples
    --------
    >>> import xarray as xr
    >>> tr = xr.Dataset({"x": ("time", [1.0, -2.0, 3.0, -4.0])})
    >>> an = xr.Dataset({"x": ("time", [0.5, 2.0, -3.0, -1.0])})
    >>> float(wrong_wing_share(an, tr))
    0.5
    >>> float(wrong_wing_share(an.where(an.time < 3), tr))  # diverged at the last time
    nan
    """
    a, t = analysis[variable], truth[variable].sel(time=analysis["time"])
    if "member" in a.dims:
        a = a.mean("member")
    counted = t != 0
    # NaN != sign(t) is True: a failed run's NaN analyses counted as wrong
    wrong = (np.sign(a) != np.sign(t)) & counted
    dims = [d for d in a.dims if d not in keep_dims]
    return (wrong.sum(dims) / counted.sum(dims)).where(a.notnull().all(dims))
