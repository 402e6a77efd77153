"""ClimODE-style forecaster: advection + source of each field, with Gaussian emission.

Follows Verma, Heinonen & Garg (ICLR 2024), "ClimODE: Climate and weather
forecasting with physics-informed neural ODEs": each field moves by the
continuity equation with its own velocity, the velocity evolves by a learned
law, a learned source adds what transport does not explain (heating, the
diurnal cycle), and a Gaussian emission head gives a mean correction and an
uncertainty. The initial velocity of every forecast is inverted from the data
(the backward time difference of the last two samples), as ClimODE does. The
vector field and emission are :class:`xdyn.nn.advection.AdvectionSourceODE`,
trained through :class:`xdyn.nn.XdynNet` on the Gaussian negative
log-likelihood of the next ``n_steps`` samples.

Differences from the original, for CPU size and short records: small
convolutional networks instead of ClimODE's ResNet + attention; grid cells as
the length unit; no spline fit of the time derivative (a backward difference);
the static embedding is the training data's own climatology per grid point
(mean and first daily and yearly harmonics) instead of orography and a
land-sea mask, and the source relaxes the anomaly from it at a learned rate
(see :class:`~xdyn.nn.advection.AdvectionSourceODE`); velocities are
soft-clipped inside the RK4 stability limit. The fields are standardised
(z-scores per variable) where the original scales them to [0, 1] by their
minimum and maximum: the continuity equation is not invariant to that offset
(it differs by ``-c div v``), so the transport term is not the original's on
the same data (not measured); no penalty on the emission variance or the
weights (the original adds both).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from skorch.dataset import Dataset
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from xdyn.forecast._grid import (GriddedForecaster, _climate_series, _fit_climate,
                                 _relaxation_rate)
from xdyn.nn import XdynNet
from xdyn.nn.advection import AdvectionSourceODE, fit_velocity
from xdyn.nn.dynamics import ODE_METHODS
from xdyn.nn.params import TRAINING_CONSTRAINTS

__all__ = ["ClimODE"]

_CHUNK = 128


class _GaussianNLLNet(XdynNet):
    """Gaussian negative log-likelihood of the emission over all training leads."""

    def get_loss(self, y_pred, y_true, X=None, training=False):
        mean, std = y_pred[:, :, 0], y_pred[:, :, 1]
        return torch.mean(torch.log(std) + 0.5 * ((y_true - mean) / std) ** 2)


class ClimODE(GriddedForecaster):
    """Continuous-time advection + source forecaster of gridded fields (ClimODE-style).

    Every data variable must have the same two spatial dims (``lat``/``lon``,
    ``y``/``x`` ...) besides ``sample_dim``; the samples must be evenly spaced
    and consecutive (forecasts start from every sample but the first, whose
    velocity needs the sample before it: its forecast is NaN; with ``memory``,
    from the ``memory``-th sample on).

    Parameters
    ----------
    hidden : int, default=32
        Channels of the convolutional vector field and emission networks.
    n_steps : int, default=4
        Training leads ``1 .. n_steps`` data steps.
    stride : int, default=1
        Training forecasts start every ``stride`` samples (consecutive
        starts are nearly the same sample; a stride trades them for longer
        ``n_steps`` at the same cost).
    max_epochs : int, default=20
    lr : float, default=2e-3
    batch_size : int, default=32
    n_members : int, default=10
        Members drawn by :meth:`predict` from the Gaussian emission,
        independently: their spread, CRPS and spread-skill ratio are those of
        the emission, and their mean is the emission mean plus sampling noise
        of standard deviation ``std / sqrt(n_members)``, which :meth:`score`
        (of the ensemble mean) includes. The draws are independent per
        grid point and per lead too: a member is neither a coherent field
        nor a trajectory, only the marginals at each point and lead are the
        emission's (the spread of an area mean or of a sum over leads is far
        too small). ``n_members=1`` gives the emission mean itself, a
        deterministic forecast (``score`` then scores the emission mean).
    memory : int, optional
        Lag ``m`` in samples of a memory input: the emission also reads the
        anomaly ``m`` samples before each valid time (observed up to the
        initialisation, the model's own forecast after it), so ``memory=24``
        on hourly data tells the model what the valid hour was like
        yesterday. Forecasts then start from the ``m``-th sample on (earlier
        ones are NaN) and leads must be whole samples.
    early_stopping : bool, default=False
        Hold out the forecasts from the last ``validation_fraction`` of the
        training record (later in time than every training target), stop
        when their loss has not improved for ``n_iter_no_change`` epochs and
        keep the best epoch's weights: on a short record the loss of the
        training forecasts keeps falling long after the held-out one rises.
        The standardisation, climatology and initial relaxation rate are then
        fitted on the samples before the first held-out start only.
    validation_fraction : float, default=0.15
    n_iter_no_change : int, default=3
    smoothness : float, default=1.0
        Weight of ``||grad v||^2`` in the initial-velocity inversion.
    damping : float, default=1e-2
        Weight of ``||v||^2`` in the inversion.
    periodic : {"auto"} or tuple of two bool, default="auto"
        Periodic spatial dims, for each of the two. "auto": ``lon`` and
        ``longitude`` when their coordinate closes the circle (evenly spaced,
        spanning 360 degrees minus one step; an error without a coordinate);
        ``x`` and ``y`` by name, as on xdyn's doubly periodic grids, unless
        their coordinate is unevenly spaced (give ``periodic`` for a bounded
        channel on ``y``/``x``); never ``lat``/``latitude`` nor another name.
    method : str, default="rk4"
        torchdiffeq solver (not ``"explicit_adams"``: torchdiffeq's diverges);
        ``step_size`` in data steps for the fixed-grid solvers.
    step_size : float, default=0.5
    sample_dim : str, default="time"
    device : str, default="auto"
    dtype : str, default="float32"
    random_state : int or None
        Seeds the network and the members.
    progress : bool, default=False

    Attributes
    ----------
    net_ : xdyn.nn.XdynNet
        The trained network (:class:`~xdyn.nn.advection.AdvectionSourceODE`).
    variables_ : tuple
        The fields, in channel order.
    spatial_dims_ : tuple of str
    grid_shape_ : tuple of int
    periodic_ : tuple of bool
    mean_, std_ : ndarray of shape (n_channels,)
        Per-field standardisation, fitted on the training data (its training
        part, with ``early_stopping``).
    n_epochs_, best_validation_loss_ : int, float
        With ``early_stopping``: the epoch kept and its held-out loss.
    climate_ : ndarray of shape (5, n_channels, H, W)
        Per grid point, the training data's mean and first daily and yearly
        harmonics (standardised): the climatology the anomalies relax to.
    layout_, n_features_in_, time_kind_, time_calendar_, time_units_, dt_
        See :class:`~xdyn.forecast.BaseForecaster`.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> x = np.arange(8)
    >>> u = np.sin(2 * np.pi * (x[None, None, :] - 0.5 * np.arange(12)[:, None, None]) / 8)
    >>> ds = xr.Dataset({"u": (("time", "y", "x"), np.repeat(u, 3, axis=1))},
    ...                 coords={"time": np.arange(12.0), "x": x})
    >>> fc = ClimODE(hidden=4, max_epochs=1, n_steps=1, n_members=3, random_state=0,
    ...              device="cpu").fit(ds)
    >>> dict(fc.predict(ds, [1.0, 2.0])["u"].sizes)
    {'time': 12, 'lead_time': 2, 'member': 3, 'y': 3, 'x': 8}
    """

    _probabilistic = True
    _parameter_constraints = {
        **GriddedForecaster._parameter_constraints,
        **TRAINING_CONSTRAINTS,
        "hidden": [Interval(Integral, 1, None, closed="left")],
        "n_steps": [Interval(Integral, 1, None, closed="left")],
        "stride": [Interval(Integral, 1, None, closed="left")],
        "n_members": [Interval(Integral, 1, None, closed="left")],
        "memory": [Interval(Integral, 1, None, closed="left"), None],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "smoothness": [Interval(Real, 0, None, closed="left")],
        "damping": [Interval(Real, 0, None, closed="neither")],
        "method": [StrOptions(ODE_METHODS)],
        "step_size": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, *, hidden=32, n_steps=4, stride=1, max_epochs=20, lr=2e-3, batch_size=32,
                 n_members=10, memory=None, early_stopping=False, validation_fraction=0.15,
                 n_iter_no_change=3, smoothness=1.0, damping=1e-2, periodic="auto",
                 method="rk4", step_size=0.5, sample_dim="time", device="auto",
                 dtype="float32", random_state=None, progress=False):
        self.hidden = hidden
        self.n_steps = n_steps
        self.stride = stride
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.n_members = n_members
        self.memory = memory
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.smoothness = smoothness
        self.damping = damping
        self.periodic = periodic
        self.method = method
        self.step_size = step_size
        self.sample_dim = sample_dim
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------ hooks
    def _velocity(self, u, phase):
        """Initial velocities of samples ``1 ..``: what transports the anomaly change.

        The change of the climatology between two samples (the diurnal and
        seasonal cycle) is the model's source, not transport: left in, the
        inversion explains daytime heating by converging winds and the
        forecast carries them on.
        """
        change = np.diff(u - _climate_series(self.climate_, phase), axis=0)
        out = []
        for s in range(1, u.shape[0], _CHUNK):
            cur = torch.as_tensor(u[s:s + _CHUNK], dtype=torch.float64)
            u_t = torch.as_tensor(change[s - 1:s - 1 + cur.shape[0]], dtype=torch.float64)
            out.append(fit_velocity(cur, u_t, self.periodic_, self.smoothness,
                                    self.damping, n_iter=60).numpy())
        return np.concatenate(out) if out else np.zeros((0, 2 * u.shape[1], *u.shape[2:]))

    def _fit(self, X, times):
        self._setup_grid(X, times)
        k = len(self.variables_)
        n_steps = int(self.n_steps)
        first = self._first_init()
        if X.shape[0] < first + n_steps + 1:
            raise ValueError(f"ClimODE needs at least {first + n_steps + 1} samples along "
                             f"{self.sample_dim!r} (n_steps={n_steps}, memory={self.memory}); "
                             f"got {X.shape[0]}")
        inits = np.arange(first, X.shape[0] - n_steps, int(self.stride))
        held_out = self.early_stopping and self.max_epochs > 0  # with no epoch, nothing to stop
        # the statistics see the training part only: the held-out loss is out of sample
        n_fit = self._first_held_out(inits, n_steps) if held_out else X.shape[0]
        self._fit_standardisation(X[:n_fit])
        u = self._fields(X)
        phase, phase_step = self._phases(times)
        self.climate_ = _fit_climate(u[:n_fit], phase[:n_fit])
        anomaly = u - _climate_series(self.climate_, phase)
        v0 = self._velocity(u, phase)               # samples 1 .. n-1
        target = np.stack([u[inits + j] for j in range(1, n_steps + 1)], 1)
        Xd = {"u0": u[inits].astype(np.float32), "v0": v0[inits - 1].astype(np.float32),
              "phase0": phase[inits].astype(np.float32)}
        if self.memory:
            Xd["history"] = self._history(u, inits).astype(np.float32)
        target = target.astype(np.float32)
        stopping = {}
        if held_out:
            Xd, target, stopping = self._hold_out_last(Xd, target, inits, n_steps, n_fit)
        self.net_ = _GaussianNLLNet(
            AdvectionSourceODE, module__n_channels=k, module__grid_shape=self.grid_shape_,
            module__hidden=int(self.hidden), module__periodic=self.periodic_,
            module__n_steps=n_steps, module__phase_step=phase_step,
            module__method=self.method, module__step_size=float(self.step_size),
            module__climate=self.climate_.astype(np.float32),
            module__memory=self.memory,
            module__relaxation_rate=_relaxation_rate(anomaly[:n_fit], n_steps),
            lr=self.lr, max_epochs=int(self.max_epochs), batch_size=int(self.batch_size),
            device=self.device, dtype=self.dtype, random_state=self.random_state,
            progress=self.progress, **stopping)
        self.net_.fit(Xd, target)
        self._record_best_epoch()
        return self

    def _first_held_out(self, inits, n_steps):
        """The first start held out by early stopping: the forecasts from the last
        ``validation_fraction`` of the record; raise where none is left to train on."""
        first_valid = inits[-max(1, int(round(self.validation_fraction * len(inits))))]
        if not np.any(inits + n_steps < first_valid):
            raise ValueError(f"early_stopping with validation_fraction="
                             f"{self.validation_fraction} leaves no training forecast before "
                             f"the held-out ones; give a longer record or a smaller fraction")
        return int(first_valid)

    def _hold_out_last(self, Xd, target, inits, n_steps, first_valid):
        """Split off the forecasts from ``first_valid`` on (a gap of ``n_steps`` keeps
        every training target before it) and stop on their loss, keeping the best
        epoch's weights."""
        train = inits + n_steps < first_valid
        held = inits >= first_valid
        valid = Dataset({key: v[held] for key, v in Xd.items()}, target[held])
        return ({key: v[train] for key, v in Xd.items()}, target[train],
                self._stopping_on(valid))

    def _first_init(self):
        """The first sample a forecast can start from: it needs the sample before it
        (the velocity) and ``memory - 1`` before it (the memory)."""
        return max(1, int(self.memory or 0) - 1)

    def _history(self, u, inits):
        """``(len(inits), memory, K, H, W)``: the ``memory`` samples up to each start."""
        return u[inits[:, None] + np.arange(1 - int(self.memory), 1)]

    def _predict(self, X, times, lead_times):
        self._check_sample_step(times)  # the initial velocity differences consecutive samples
        steps = np.asarray(self.lead_steps(lead_times), dtype=float)
        if np.any(steps <= 0):
            raise ValueError(f"ClimODE forecasts at lead_times > 0; got {lead_times!r}")
        if self.memory and np.any(np.abs(steps - np.round(steps)) > 1e-6):
            raise ValueError(f"ClimODE(memory={self.memory}) forecasts at whole samples "
                             f"({self.dt_} each); got lead_times {lead_times!r}")
        order = np.argsort(steps)
        uniq, inverse = np.unique(steps[order], return_inverse=True)
        k, (h, w) = len(self.variables_), self.grid_shape_
        n = X.shape[0]
        m = int(self.n_members)
        out = np.full((n, len(steps), m, k * h * w), np.nan)
        first = self._first_init()
        if n <= first:
            return out
        u = self._fields(X)
        phase, _ = self._phases(times)
        v0 = self._velocity(u, phase)
        module = self.net_.module_
        device, dtype = self.net_.device_, self.net_.dtype_
        rng = check_random_state(self.random_state)
        mean_, std_ = self.mean_[None, None, None, :, None, None], \
            self.std_[None, None, None, :, None, None]
        with torch.no_grad(), self.net_._threads():
            for s in range(first, n, _CHUNK):
                e = min(s + _CHUNK, n)

                def t(a):
                    return torch.as_tensor(a, dtype=dtype, device=device)

                history = t(self._history(u, np.arange(s, e))) if self.memory else None
                pred = module(t(u[s:e]), t(v0[s - 1:e - 1]), t(phase[s:e]), t(uniq),
                              history=history)
                pred = pred.cpu().numpy().astype(float)[:, inverse][:, np.argsort(order)]
                mean, std = pred[:, :, 0][:, :, None], pred[:, :, 1][:, :, None]
                # independent draws (their spread and CRPS are the emission's); one member
                # is the emission mean itself
                noise = rng.standard_normal((e - s, len(steps), m, k, h, w)) if m > 1 else 0.0
                members = (mean + std * noise) * std_ + mean_
                out[s:e] = members.reshape(e - s, len(steps), m, -1)
        return out
