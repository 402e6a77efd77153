"""Neural ODE forecaster: a black-box vector field learned by trajectory matching."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch

from xdyn.assimilation._validation import Interval, StrOptions
from xdyn.forecast._trajectories import TrajectoryForecaster
from xdyn.nn import XdynNet
from xdyn.nn.dynamics import NeuralODEModule
from xdyn.nn.params import TRAINING_CONSTRAINTS

__all__ = ["NeuralODE"]


def _state_stats(values):
    """Scales for the networks: state mean/std and typical tendency per feature."""
    flat = values.reshape(-1, values.shape[-1])
    scale = flat.std(0)
    scale = np.where(scale > 1e-12 * max(float(scale.max()), 1e-300), scale, 1.0)
    return {"x_mean": flat.mean(0), "x_scale": scale}


def _tendency_scale(values, times):
    """Typical tendency per feature: its root mean square, at least 1e-6 of the feature's
    size per step.

    Not the std: a steady drift has a std of rounding noise (1e-15), which divided the loss
    and scaled the field's output. The floor, relative to the data, covers a feature that
    does not move; one that is 0 throughout takes 1.
    """
    dt = np.diff(times)
    n = values.shape[-1]
    v = np.diff(values, axis=1) / dt[None, :, None]
    rms = np.sqrt((v.reshape(-1, n) ** 2).mean(0))
    size = np.sqrt((values.reshape(-1, n) ** 2).mean(0)) / np.median(dt)
    s = np.maximum(rms, 1e-6 * size)
    return np.where(s > 0, s, 1.0)


def _windows(values, times, window, stride):
    """All windows ``(n, window, n_features)`` of every trajectory and their times."""
    T = values.shape[1]
    starts = np.arange(0, T - window + 1, stride)
    idx = starts[:, None] + np.arange(window)
    wins = values[:, idx].reshape(-1, window, values.shape[-1])
    return wins, np.broadcast_to(times[idx], (values.shape[0],) + idx.shape).reshape(-1, window)


class _TrajectoryMatchingNet(XdynNet):
    """XdynNet whose loss is the normalised squared error of integrated windows."""

    def get_loss(self, y_pred, y_true, X=None, training=False):
        target = X["traj"].to(y_pred)
        return (((y_pred - target) / self.module_.field.x_scale) ** 2).mean()


class NeuralODE(TrajectoryForecaster):
    """Black-box neural ODE ``dx/dt = MLP(x)`` fitted by trajectory matching.

    The vector field (an :class:`xdyn.nn.MLP` on the normalised state) is
    integrated with torchdiffeq over short windows of the training runs from
    their first state, and trained through :class:`xdyn.nn.XdynNet` to match
    the whole window (Chen et al. 2018). Deterministic: ``predict`` has no
    ``member`` dim.

    Parameters
    ----------
    sample_dim : str, default="time"
    trajectory_dim : str, default="trajectory"
        Dim of independent runs (optional in the data).
    window : int, default=10
        Times per training window (the integration horizon of one sample).
    stride : int, optional
        Spacing of window starts (default ``window // 2``).
    hidden, n_layers : int, default=64, 2
        Width and depth of the vector field MLP.
    activation : str, default="tanh"
    method : str, default="rk4"
        torchdiffeq method (``"dopri5"`` for adaptive steps).
    n_substeps : int, default=1
        Fixed steps per sample spacing.
    adjoint : bool, default=False
        Backpropagate with the adjoint method.
    max_epochs, batch_size, lr
        Training of the :class:`~xdyn.nn.XdynNet`.
    device : str, default="auto"
    dtype : str, default="float32"
    random_state : int or None
    progress : bool, default=False

    Attributes
    ----------
    net_ : xdyn.nn.XdynNet
        The trained net; ``net_.module_`` is a :class:`xdyn.nn.dynamics.NeuralODEModule`.
    n_train_pairs_ : int
        Consecutive-state transitions per epoch (``n_windows * (window - 1)``).
    layout_, n_features_in_, time_kind_, time_calendar_, time_units_, dt_
        See :class:`~xdyn.forecast.BaseForecaster`.

    See Also
    --------
    VGBDM : grey-box, simulation-free, probabilistic.

    References
    ----------
    Chen, R. T. Q., Rubanova, Y., Bettencourt, J. & Duvenaud, D. (2018). Neural
    ordinary differential equations. NeurIPS.

    Examples
    --------
    >>> from xdyn.systems import DampedPendulum
    >>> from xdyn.forecast import NeuralODE
    >>> ds = DampedPendulum(damping=0.3).simulate(n_trajectories=4, t_span=3.0, dt=0.1,
    ...                                           save_every=1, random_state=0)
    >>> model = NeuralODE(hidden=16, max_epochs=10, random_state=0).fit(ds)
    >>> fc = model.predict(ds.isel(time=[0]), lead_times=[0.5, 1.0])
    >>> dict(fc.theta.sizes)
    {'trajectory': 4, 'time': 1, 'lead_time': 2}
    >>> bool(model.net_.history[-1, "train_loss"] < model.net_.history[0, "train_loss"])
    True
    """

    _parameter_constraints = {
        **TrajectoryForecaster._parameter_constraints,
        **TRAINING_CONSTRAINTS,
        "window": [Interval(Integral, 2, None, closed="left")],
        "stride": [Interval(Integral, 1, None, closed="left"), None],
        "hidden": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 0, None, closed="left")],
        "activation": [str],
        "method": [str],
        "n_substeps": [Interval(Integral, 1, None, closed="left")],
        "adjoint": ["boolean"],
    }

    def __init__(self, *, sample_dim="time", trajectory_dim="trajectory", window=10, stride=None,
                 hidden=64, n_layers=2, activation="tanh", method="rk4", n_substeps=1,
                 adjoint=False, max_epochs=100, batch_size=64, lr=3e-3, device="auto",
                 dtype="float32", random_state=None, progress=False):
        self.sample_dim = sample_dim
        self.trajectory_dim = trajectory_dim
        self.window = window
        self.stride = stride
        self.hidden = hidden
        self.n_layers = n_layers
        self.activation = activation
        self.method = method
        self.n_substeps = n_substeps
        self.adjoint = adjoint
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress

    def _fit_trajectories(self, values, times):
        T = values.shape[1]
        if T < self.window:
            raise ValueError(f"window={self.window} is longer than the {T} training times")
        dt = float(self.dt_)
        stats = {**_state_stats(values), "v_scale": _tendency_scale(values, times)}
        stride = self.stride or max(1, self.window // 2)
        wins, wtimes = _windows(values, times, self.window, stride)
        self.n_train_pairs_ = int(wins.shape[0] * (self.window - 1))
        self.net_ = _TrajectoryMatchingNet(
            NeuralODEModule, module__n_state=int(values.shape[-1]),
            module__hidden=int(self.hidden), module__n_layers=int(self.n_layers),
            module__activation=self.activation,
            module__stats={k: np.asarray(v, np.float32) for k, v in stats.items()},
            module__method=self.method, module__step_size=dt / self.n_substeps,
            module__adjoint=bool(self.adjoint), lr=float(self.lr),
            max_epochs=int(self.max_epochs), batch_size=int(self.batch_size),
            device=self.device, dtype=self.dtype, random_state=self.random_state,
            progress=bool(self.progress))
        # offsets from each window's start, in float64 before float32: absolute times far
        # from 0 (a late slice, t / dt ~ 1e5) keep only a few digits of the step in float32
        X = {"traj": wins.astype(np.float32),
             "time": (wtimes - wtimes[:, :1]).astype(np.float32)}
        self.net_.fit(X, None)

    def _predict_trajectories(self, values, times, lead_times):
        B, T, n = values.shape
        leads = np.asarray(lead_times, dtype=float)
        grid = np.unique(np.concatenate([[0.0], leads]))
        module = self.net_.module_
        x0 = torch.as_tensor(values.reshape(-1, n), dtype=self.net_.dtype_,
                             device=self.net_.device_)
        with torch.no_grad():
            out = module.rollout(x0, torch.as_tensor(grid, dtype=x0.dtype, device=x0.device))
        out = out.cpu().double().numpy()[np.searchsorted(grid, leads)]  # (n_lead, B*T, n)
        return out.reshape(len(leads), B, T, n).transpose(1, 2, 0, 3)
