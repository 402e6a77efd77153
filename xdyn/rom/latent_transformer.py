"""Latent ROM: a beta-VAE compresses snapshots, a transformer steps the latent sequence.

The reduced-order model of "Scale Separation and Stochastic Closure for
Chaotic Dynamics" (arXiv 2510.24583), after Solera-Rico et al. (2024, Nat.
Commun. 15, 1361): a beta-VAE (:class:`xdyn.nn.BetaVAE`) encodes each snapshot
into ``n_latent`` coordinates; a transformer (:class:`xdyn.nn.LatentTransformer`,
``n_layers`` attention blocks of ``n_heads`` heads) reads ``seq_len`` latent
steps and predicts the next ``pred_horizon``. Both are trained at once through
:class:`xdyn.nn.LatentROMNet` on windows of ``seq_len + pred_horizon``
consecutive snapshots of each training trajectory (``seq_len +
rollout_blocks * pred_horizon`` when the transformer is trained on its own
rollouts), with the loss
``reconstruction + prediction_weight * latent prediction + beta * KL``.

Here the transformer predicts a Gaussian per future step (its latent
prediction loss is a negative log-likelihood), so that ``predict(...,
n_samples=k)`` draws ``k`` stochastic rollouts whose spread is learned, where
the original's spread came from the VAE's sampling alone.
"""

from __future__ import annotations

import copy
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from skorch.callbacks import GradientNormClipping

from xdyn.nn import LatentROMModule, LatentROMNet
from xdyn.nn.net import _numpy_dtype
from xdyn.nn.params import TRAINING_CONSTRAINTS
from xdyn.rom._data import (from_trajectories, latent_input, latent_output, member_dims,
                             rollout_times, time_step, time_units, to_trajectories)
from xdyn.rom._windows import Windows, grid_shape, roll_fields, shift_axis, standardisation
from xdyn.utils import int_seed, resolve_dtype
from xdyn.utils._fitted import fit_anew

__all__ = ["LatentTransformerROM"]

_FRAMES_PER_CHUNK = 256  # snapshots encoded/decoded at once outside training


class LatentTransformerROM(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """beta-VAE + transformer latent reduced-order model with stochastic rollouts.

    Parameters
    ----------
    n_latent : int, default=64
        Latent size (the original: 64).
    seq_len : int, default=30
        Latent steps the transformer reads (the original: 30).
    pred_horizon : int, default=30
        Steps it predicts at once (the original: 30).
    beta : float, default=5e-4
        Weight of the KL term, averaged over the samples and the latent dims
        (the original's 5e-4 and its averaging).
    prediction_weight : float, default=1.0
        Weight ``lambda`` of the latent prediction term.
    hidden : int, default=32
        VAE width (channels of its first convolution, or MLP width).
    architecture : {"auto", "conv", "mlp"}, default="auto"
        VAE kind: "auto" is convolutional on fields of one 2-D grid (sides
        divisible by 4), else an MLP; "mlp" on a grid is far cheaper on a CPU.
    d_model : int, default=64
        Transformer token width (a multiple of ``n_heads``).
    n_heads : int, default=8
    n_layers : int, default=2
        Attention blocks.
    dropout : float, default=0.0
    rollout_blocks : int, default=1
        Blocks of ``pred_horizon`` steps the transformer predicts in a row
        from each training window, reading its own predicted means after the
        first as in :meth:`predict`'s rollouts; the loss scores every block
        (:class:`xdyn.nn.LatentROMModule`). Teaches it to correct the errors a
        rollout feeds it; windows grow to ``seq_len + rollout_blocks *
        pred_horizon`` snapshots. Not a sure gain: on the quick Kolmogorov
        closure data 2 and 3 blocks shortened the lead over persistence
        (:mod:`xdyn.experiments.kolmogorov_closure`).
    window_stride : int, default=1
        Snapshots between the starts of consecutive training windows.
    shift_augmentation : bool, default=False
        Roll each training window by a random number of grid points along the
        grid dim ``shift_dim`` (periodic), whatever its storage order: for flows
        equivariant under translations along it (Kolmogorov flow), it shows
        the model every phase of a pattern from few trajectories. Needs fields
        on one 2-D grid with a ``shift_dim`` dim. With
        a ``reducer``, the coefficients of every roll of the training
        trajectories are computed once and each window is read from a random one.
    shift_dim : str, default="x"
        The periodic grid dim ``shift_augmentation`` rolls along, by name
        (e.g. ``"lon"`` for fields on ``(lat, lon)``). Fit only.
    reducer : estimator or None, default=None
        A transformer with ``fit``/``transform``/``inverse_transform`` on
        ``(n_samples, n_features)`` snapshot matrices (e.g.
        :class:`~xdyn.rom.POD` or ``sklearn.decomposition.PCA``), fitted on the
        training snapshots: the VAE then encodes its coefficients (an MLP,
        one scale for all coefficients, so that their sizes keep the energy of
        each mode) and every decoded snapshot goes back through its
        ``inverse_transform``. A POD with enough modes to be exact on the
        data (a filtered field has few degrees of freedom) gives the VAE a
        small input it can learn from few snapshots.
    spread_inflation : float or array-like of shape (n_leads,), default=1.0
        Factor on the predicted standard deviations when ``predict`` draws
        stochastic rollouts (training does not use it, so it can be set after
        ``fit``, e.g. to the ratio of error to spread on validation data).
        An array gives one factor per lead (leads past its end take its last):
        a spread calibrated over all leads at once is too wide at the first
        ones, where the members' mean then strays from the forecast.
    anchored : bool, default=False
        Anchor each forecast on the last context snapshot ``x_t``:
        ``x_{t+k} = x_t + D(z_{t+k}) - D(z_t)`` instead of ``D(z_{t+k})``,
        where ``D`` decodes and ``z_t`` encodes ``x_t``. The decoder's error
        ``x - D(E(x))`` then floors no lead: it changes slowly along a
        trajectory, so at short leads the one at the start cancels the one of
        the forecast, and the rollout starts exactly where persistence does
        instead of one reconstruction error away. Predict only (training
        does not use it); every member is moved by the same field, so the
        ensemble's spread is unchanged.
    recentred : bool, default=False
        With ``n_samples``, shift the members so that their mean is the mean
        path (what ``predict`` returns without ``n_samples``), keeping each
        one's deviation from the members' mean. The mean of a few members
        strays from the mean path by its sampling error, which at short leads
        can exceed the forecast's own (measured on quick Kolmogorov flow:
        rel-L2 at lead 1 0.015 for the mean of 10 members, 0.007 for the
        mean path). The members are then no longer draws of the stochastic
        dynamics: their spread says how far the truth may be, their mean is
        the mean path. Predict only.
    max_epochs : int, default=50
    lr : float, default=1e-3
    batch_size : int, default=32
        Windows per batch.
    sample_dim : str, default="time"
        The time dim (windows run along it); every other dim but
        ``trajectory_dim`` is a feature.
    trajectory_dim : str or None, default="trajectory"
        Independent trajectories (windows never cross them). Not ``"member"``,
        the dim of an ensemble's members (see the Notes).
    device : str, default="auto"
    dtype : str, default="float32"
    random_state : int or None, default=None
        Seeds the network and the rollouts of :meth:`predict`.
    progress : bool, default=False

    Attributes
    ----------
    net_ : xdyn.nn.LatentROMNet
        The trained network (``net_.history`` holds the losses).
    mean_, scale_ : ndarray of shape (n_features,)
        Standardisation of the snapshots (mean snapshot, one scale per variable).
    in_shape_ : tuple of int
        The VAE's input: ``(channels, H, W)`` when every variable is a field on
        one 2-D grid whose sides divide by 4 (convolutional VAE), else
        ``(n_features,)``; with a ``reducer``, ``(n_coefficients,)``.
    reducer_ : estimator or None
        The fitted clone of ``reducer``.
    n_features_in_ : int
    time_step_ : float, numpy.timedelta64 or None
        Spacing of the training snapshots along ``sample_dim`` (a timedelta64
        for datetime64 times): the step of a rollout. None without a time
        coordinate.
    time_units_ : str or None
        The ``units`` attr of the training time coordinate (None where it has
        none): :meth:`predict` refuses a context whose time states other units.
    layout_ : object
        How the training data were stacked, to unstack forecasts and decodings.

    Notes
    -----
    ``transform`` returns the encoder means ``z`` (as :class:`~xdyn.rom.POD`
    does its coefficients) and ``inverse_transform`` decodes any ``z``.
    ``predict(X, n_steps, n_samples=None)`` reads the last ``seq_len``
    snapshots of each trajectory of ``X`` and rolls the transformer out
    ``pred_horizon`` steps at a time: the mean path without ``n_samples``; with
    it, ``n_samples`` paths along a new ``member`` dim, each chunk drawn from
    the predicted Gaussians with one standard-normal vector per member and
    chunk (so a path is coherent in time and its marginal at each lead is the
    predicted one).

    A POD front end (``reducer=POD(n_modes)``) composes the two: the ROM
    then learns and forecasts in the POD coefficients and returns fields.

    ``member`` is only ever an ensemble's dim: ``transform``,
    ``inverse_transform`` and ``predict`` keep it (each member read as a
    trajectory is), and ``fit`` refuses data with one (it would read it as a
    feature dim, the members side by side in one snapshot). To train on an
    ensemble's snapshots, make its members trajectories first,
    ``xr.concat([X.sel(member=m, drop=True) for m in X.member.values],
    "trajectory")``; to read the members as features, rename the dim.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t, x = 0.2 * np.arange(120), np.linspace(0, 2 * np.pi, 8, endpoint=False)
    >>> ds = xr.Dataset({"u": (("time", "x"), np.sin(x[None] - t[:, None]))}, coords={"time": t})
    >>> rom = LatentTransformerROM(n_latent=2, seq_len=4, pred_horizon=2, hidden=16, d_model=16,
    ...                            max_epochs=2, random_state=0).fit(ds)
    >>> rom.transform(ds).z.dims
    ('time', 'latent')
    >>> forecast = rom.predict(ds, n_steps=3, n_samples=2)
    >>> forecast.u.dims, forecast.time.values.round(1).tolist()
    (('member', 'time', 'x'), [24.0, 24.2, 24.4])
    >>> from xdyn.rom import POD
    >>> rom = rom.set_params(reducer=POD(2)).fit(ds)
    >>> rom.in_shape_, rom.predict(ds, n_steps=3).u.dims
    ((2,), ('time', 'x'))
    """

    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "n_latent": [Interval(Integral, 1, None, closed="left")],
        "seq_len": [Interval(Integral, 1, None, closed="left")],
        "pred_horizon": [Interval(Integral, 1, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "prediction_weight": [Interval(Real, 0, None, closed="left")],
        "hidden": [Interval(Integral, 1, None, closed="left")],
        "d_model": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "rollout_blocks": [Interval(Integral, 1, None, closed="left")],
        "architecture": [StrOptions({"auto", "conv", "mlp"})],
        "window_stride": [Interval(Integral, 1, None, closed="left")],
        "shift_augmentation": ["boolean"],
        "shift_dim": [str],
        "reducer": [HasMethods(["fit", "transform", "inverse_transform"]), None],
        "spread_inflation": [Interval(Real, 0, None, closed="left"), "array-like"],
        "anchored": ["boolean"],
        "recentred": ["boolean"],
        "sample_dim": [str],
        "trajectory_dim": [str, None],
    }

    def __init__(self, n_latent=64, *, seq_len=30, pred_horizon=30, beta=5e-4,
                 prediction_weight=1.0, hidden=32, architecture="auto", d_model=64, n_heads=8,
                 n_layers=2, dropout=0.0, rollout_blocks=1, window_stride=1,
                 shift_augmentation=False, shift_dim="x", reducer=None, spread_inflation=1.0,
                 anchored=False, recentred=False, max_epochs=50, lr=1e-3, batch_size=32,
                 sample_dim="time", trajectory_dim="trajectory", device="auto", dtype="float32",
                 random_state=None, progress=False):
        self.n_latent = n_latent
        self.seq_len = seq_len
        self.pred_horizon = pred_horizon
        self.beta = beta
        self.prediction_weight = prediction_weight
        self.hidden = hidden
        self.architecture = architecture
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.dropout = dropout
        self.rollout_blocks = rollout_blocks
        self.window_stride = window_stride
        self.shift_augmentation = shift_augmentation
        self.shift_dim = shift_dim
        self.reducer = reducer
        self.spread_inflation = spread_inflation
        self.anchored = anchored
        self.recentred = recentred
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.sample_dim = sample_dim
        self.trajectory_dim = trajectory_dim
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Train the VAE and the transformer on windows of the trajectories of ``X``.

        ``X`` may not have a ``member`` dim (see the Notes of
        :class:`LatentTransformerROM`). A fit that raises leaves the estimator
        unfitted, not half updated (an old network with a new layout).
        """
        return fit_anew(self, X)  # a fit builds a new network every time: nothing is warm-started

    def _fit(self, X):
        self._validate_params()
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads "
                             f"({self.n_heads})")
        values, layout = to_trajectories(X, self.sample_dim, self.trajectory_dim)
        window = self.seq_len + self.rollout_blocks * self.pred_horizon
        if values.shape[1] < window:
            raise ValueError(f"each trajectory needs at least seq_len + rollout_blocks * "
                             f"pred_horizon = {window} snapshots along {self.sample_dim!r}; "
                             f"got {values.shape[1]}")
        self.layout_ = layout
        self.n_features_in_ = values.shape[-1]
        self.time_step_ = time_step(layout.time_coord)
        self.time_units_ = time_units(layout.time_coord)
        grid = grid_shape(layout)
        if len(grid) != 3 and (self.shift_augmentation or self.architecture == "conv"):
            dims = {str(v.name): v.feature_dims for v in layout.info.variables} \
                if layout.kind == "xarray" else None
            raise ValueError("shift_augmentation=True and architecture='conv' need every variable "
                             "to be a field on one 2-D grid (the same two dims, in the same "
                             f"order: transpose them alike) with sides divisible by 4; got "
                             f"feature dims {dims}")
        if self.reducer is not None and self.architecture == "conv":
            raise ValueError("architecture='conv' needs reducer=None: with a reducer the VAE "
                             "reads its coefficients (an MLP)")
        axis = shift_axis(layout, self.shift_dim) if self.shift_augmentation else -1
        self.reducer_ = None
        if self.reducer is None:
            self.in_shape_ = grid
            # with shifts, the mean over every roll: a window of standardised frames rolled is
            # then the standardisation of the rolled fields, roll(x) - mean_, as at predict
            self.mean_, self.scale_ = standardisation(
                values, layout, *((grid, axis) if self.shift_augmentation else ()))
            windows = Windows(self._frames(values), window, self.window_stride,
                              self.shift_augmentation, shift_axis=axis)
        else:
            self.reducer_ = clone(self.reducer).fit(values.reshape(-1, values.shape[-1]))
            # a roll of a field is not a roll of its coefficients: reduce every roll once
            shifts = range(grid[axis]) if self.shift_augmentation else [0]
            coefficients = np.stack([self._reduce(values, grid, s, axis) for s in shifts])
            self.in_shape_ = (coefficients.shape[-1],)
            self.mean_, self.scale_ = standardisation(coefficients, None)
            frames = ((coefficients - self.mean_) / self.scale_).astype(self._frame_dtype())
            windows = Windows(frames, window, self.window_stride, copies=True)
        self.net_ = LatentROMNet(
            LatentROMModule,
            module__in_shape=self.in_shape_, module__n_latent=self.n_latent,
            module__seq_len=self.seq_len, module__pred_horizon=self.pred_horizon,
            module__hidden=self.hidden, module__d_model=self.d_model,
            module__n_heads=self.n_heads, module__n_layers=self.n_layers,
            module__dropout=self.dropout, module__architecture=self.architecture,
            module__rollout_blocks=self.rollout_blocks, beta=self.beta,
            prediction_weight=self.prediction_weight, lr=self.lr,
            max_epochs=self.max_epochs, batch_size=self.batch_size, device=self.device,
            dtype=self.dtype, random_state=int_seed(self.random_state), progress=self.progress,
            # the Gaussian NLL can spike when a predicted variance is small: clip the step
            callbacks=[("clip", GradientNormClipping(gradient_clip_value=1.0))],
        )
        self.net_.fit(windows, None)
        self.net_.module_.eval()  # skorch leaves it training: dropout would stay on
        return self

    # ------------------------------------------------------------ transform
    def transform(self, X):
        """Encoder means of the snapshots of ``X`` (same kind as ``X``).

        An ensemble's ``member`` dim is kept (each member encoded as a
        trajectory is). Dask-backed ``X`` is computed (the encoder is a torch net).
        """
        check_is_fitted(self)
        values, layout = self._stack(X)
        z = self._encode(self._frames(values))
        return latent_output(z, layout, self.sample_dim, layout.time_coord)

    def inverse_transform(self, X):
        """Decoded snapshots of latent coordinates ``X`` (also of unseen data).

        Other dims (an ensemble's ``member``) are kept. Dask-backed ``X`` is computed.
        """
        check_is_fitted(self)
        z, meta = latent_input(X, self.sample_dim, self.trajectory_dim, self.n_latent)
        return self._unstack(self._decode(z), meta)

    # -------------------------------------------------------------- predict
    def predict(self, X, n_steps, n_samples=None):
        """Roll the ROM out ``n_steps`` snapshots after the last one of each trajectory of ``X``.

        Parameters
        ----------
        X : xarray.Dataset, xarray.DataArray or array
            At least ``seq_len`` snapshots per trajectory, ``time_step_`` apart;
            the last ``seq_len`` start the rollout. An ensemble's ``member`` dim
            is kept, each member's mean path started as a trajectory's is
            (refused with ``n_samples``, whose draws are a ``member`` dim).
            Dask-backed ``X`` is computed.
        n_steps : int
            Snapshots to forecast.
        n_samples : int, optional
            Stochastic rollouts, along a new leading ``member`` dim; None: the
            mean path, without ``member``.

        Returns
        -------
        Same kind as ``X``
            The forecast on the training grid, at times continuing ``X``'s last
            one by the training step ``time_step_``.
        """
        check_is_fitted(self)
        if not isinstance(n_steps, Integral) or n_steps < 1:
            raise ValueError(f"n_steps must be a positive integer; got {n_steps!r}")
        if n_samples is not None and (not isinstance(n_samples, Integral) or n_samples < 1):
            raise ValueError(f"n_samples must be None or a positive integer; got {n_samples!r}")
        values, layout = self._stack(X)
        if n_samples is not None and member_dims(layout):
            raise ValueError(f"X has a {member_dims(layout)[0]!r} dim (an ensemble); "
                             f"predict(..., n_samples={n_samples}) draws its own members along "
                             "'member': predict each member alone, or pass n_samples=None for "
                             "the mean path of every member")
        if values.shape[1] < self.seq_len:
            raise ValueError(f"X needs at least seq_len = {self.seq_len} snapshots along "
                             f"{self.sample_dim!r} to start a rollout; got {values.shape[1]}")
        times = rollout_times(layout.time_coord, self.time_step_, n_steps, self.sample_dim,
                              units=getattr(self, "time_units_", None),  # None: an old pickle
                              model=type(self).__name__) if layout.kind == "xarray" else None
        context = self._encode(self._frames(values[:, -self.seq_len:]))
        members = 1 if n_samples is None else int(n_samples)
        rng = check_random_state(self.random_state)
        z = self._rollout(context, n_steps, members, stochastic=n_samples is not None, rng=rng)
        fields = np.stack([self._decode(zm) for zm in z])  # (member, traj, time, feature)
        if self.recentred and n_samples is not None:
            mean_path = self._decode(self._rollout(context, n_steps, 1, False, rng)[0])
            fields += (mean_path - fields.mean(0))[None]
        if self.anchored:  # + x_t - D(z_t): the decoder's error at the start, per trajectory
            fields += (values[:, -1] - self._decode(context[:, -1]))[None, :, None]
        if n_samples is None:
            fields = fields[0]
        if layout.kind == "array":
            return fields[:, 0] if n_samples is not None else fields[0]
        meta = (layout.trajectory_dim, layout.trajectory_coord, times)
        return self._unstack(fields, meta, member_dim="member" if n_samples else None)

    def score(self, X, y=None):
        """Minus the relative L2 error of the mean-path forecasts from ``X`` against ``X``.

        Every window of ``seq_len`` consecutive snapshots of a trajectory of
        ``X`` starts a forecast of one block of ``pred_horizon`` steps, as
        :meth:`predict` rolls out its mean path (anchored where ``anchored``),
        and each forecast step that ``X`` still holds is compared with it.

        Parameters
        ----------
        X : xarray.Dataset, xarray.DataArray or array
            At least ``seq_len + 1`` consecutive snapshots per trajectory on the
            training grid, ``time_step_`` apart (as the context of :meth:`predict`).
            Dask-backed ``X`` is computed.
        y : None
            Ignored (scikit-learn's signature).

        Returns
        -------
        float
            ``-sqrt(sum((f - x)**2) / sum(x**2))`` over the forecast steps ``f``
            (of every window, lead and trajectory; an ensemble's ``member`` dim
            is read as trajectories are) and their snapshots ``x`` of ``X``:
            the relative L2 error, :func:`xdyn.metrics.relative_l2`, as
            :meth:`PODLinearDynamics.score <xdyn.rom.PODLinearDynamics.score>`
            gives for its one-step forecasts. Higher is better
            (scikit-learn's convention), so that model selection
            (``GridSearchCV``, ``cross_val_score``) needs no scorer.

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> t, x = 0.2 * np.arange(120), np.linspace(0, 2 * np.pi, 8, endpoint=False)
        >>> ds = xr.Dataset({"u": (("time", "x"), np.sin(x[None] - t[:, None]))},
        ...                 coords={"time": t})
        >>> rom = LatentTransformerROM(n_latent=2, seq_len=4, pred_horizon=2, hidden=16,
        ...                            d_model=16, max_epochs=2, random_state=0)
        >>> score = rom.fit(ds.isel(time=slice(0, 80))).score(ds.isel(time=slice(80, None)))
        >>> bool(-np.inf < score < 0)
        True
        """
        check_is_fitted(self)
        values, layout = self._stack(X)
        n_time, seq_len = values.shape[1], self.seq_len
        if n_time <= seq_len:
            raise ValueError(f"X needs at least seq_len + 1 = {seq_len + 1} snapshots along "
                             f"{self.sample_dim!r} to score a forecast; got {n_time}")
        if layout.kind == "xarray":  # X's times must be spaced as the training ones
            rollout_times(layout.time_coord, self.time_step_, 1, self.sample_dim,
                          units=getattr(self, "time_units_", None),
                          model=type(self).__name__)
        z = self._encode(self._frames(values))
        per_chunk = max(1, _FRAMES_PER_CHUNK // self.pred_horizon)  # windows forecast at once
        error = norm = 0.0  # sums over chunks: no copy of every window's forecast
        for traj, fields in zip(z, values):
            for first in range(0, n_time - seq_len, per_chunk):
                starts = np.arange(first, min(first + per_chunk, n_time - seq_len))
                context = np.stack([traj[s:s + seq_len] for s in starts])
                forecast = self._decode(
                    self._rollout(context, self.pred_horizon, 1, False, None)[0])
                if self.anchored:  # + x_t - D(z_t), as predict
                    last = fields[starts + seq_len - 1] - self._decode(context[:, -1])
                    forecast += last[:, None]
                at = starts[:, None] + seq_len + np.arange(self.pred_horizon)  # forecast times
                held = at < n_time  # the forecast steps X still holds
                truth = fields[at[held]]
                error += float(((forecast[held] - truth) ** 2).sum())
                norm += float((truth**2).sum())
        if norm == 0:  # an all-zero truth: 0 for an exact forecast (relative_error's rule)
            return 0.0 if error == 0 else -np.inf
        return -float(np.sqrt(error / norm))

    # -------------------------------------------------------------- helpers
    def _stack(self, X):
        return to_trajectories(X, self.sample_dim, self.trajectory_dim, info=self.layout_.info)

    def _unstack(self, values, meta, member_dim=None):
        if meta is None:
            return values[:, 0] if member_dim else values[0]
        layout = copy.copy(self.layout_)
        layout.trajectory_dim, layout.trajectory_coord, time = meta
        return from_trajectories(values, layout, time, member_dim=member_dim)

    def _reduce(self, values, grid=None, shift=0, axis=-1):
        """The reducer's coefficients of snapshots ``(n_traj, n_times, n_features)``, rolled
        ``shift`` points along the grid's axis ``axis`` first: a trajectory at a time (a rolled
        copy of every snapshot at once would double the training set's memory)."""
        out = []
        for traj in values:
            flat = roll_fields(traj, grid, shift, axis) if shift else traj
            out.append(np.asarray(self.reducer_.transform(flat)))
        return np.stack(out)

    def _frames(self, values):
        """Standardised VAE inputs ``(n_traj, n_times, *in_shape)`` in the net's dtype."""
        if self.reducer_ is not None:
            values = self._reduce(values)
        scaled = (values - self.mean_) / self.scale_
        return scaled.reshape(*values.shape[:2], *self.in_shape_).astype(self._frame_dtype())

    def _frame_dtype(self):
        # the network's: float64 nets read unrounded frames, float32 ones half the memory
        return _numpy_dtype(resolve_dtype(self.dtype)) or np.float32  # None: no numpy twin

    def _module(self):
        # inference in eval mode: dropout off (skorch leaves the module training after fit)
        module = self.net_.module_.eval()
        param = next(module.parameters())
        return module, param.device, param.dtype

    def _encode(self, frames):
        module, device, dtype = self._module()
        flat = frames.reshape(-1, *self.in_shape_)
        out = []
        with torch.no_grad():
            for start in range(0, len(flat), _FRAMES_PER_CHUNK):
                chunk = torch.as_tensor(flat[start:start + _FRAMES_PER_CHUNK], device=device,
                                        dtype=dtype)
                out.append(module.vae.encode(chunk)[0].cpu().double().numpy())
        return np.concatenate(out).reshape(*frames.shape[:2], self.n_latent)

    def _decode(self, z):
        module, device, dtype = self._module()
        flat = z.reshape(-1, self.n_latent)
        out = []
        with torch.no_grad():
            for start in range(0, len(flat), _FRAMES_PER_CHUNK):
                chunk = torch.as_tensor(flat[start:start + _FRAMES_PER_CHUNK], device=device,
                                        dtype=dtype)
                out.append(module.vae.decode(chunk).reshape(len(chunk), -1).cpu().double().numpy())
        fields = np.concatenate(out) * self.scale_ + self.mean_
        if self.reducer_ is not None:
            fields = np.asarray(self.reducer_.inverse_transform(fields), dtype=np.float64)
        return fields.reshape(*z.shape[:-1], -1)

    def _rollout(self, context, n_steps, n_members, stochastic, rng):
        """Latent paths ``(member, traj, n_steps, n_latent)`` from ``context`` ``(traj, seq_len, n_latent)``."""
        module, device, dtype = self._module()
        n_traj = context.shape[0]
        window = torch.as_tensor(np.repeat(context[None], n_members, 0), device=device,
                                 dtype=dtype).reshape(n_members * n_traj, self.seq_len, -1)

        n_blocks = -(-n_steps // self.pred_horizon)
        factors = self._lead_inflation(n_blocks * self.pred_horizon).reshape(
            n_blocks, 1, self.pred_horizon, 1)
        block = iter(range(n_blocks))

        def draw(mean, logvar):
            # one normal vector per member and chunk: coherent paths, exact marginals
            eps = factors[next(block)] * rng.standard_normal((mean.shape[0], 1, self.n_latent))
            return mean + torch.exp(0.5 * logvar) * torch.as_tensor(eps, device=device,
                                                                    dtype=dtype)

        with torch.no_grad():
            steps, _ = module.dynamics.rollout(window, n_blocks, draw if stochastic else None)
        z = steps[:, :n_steps].cpu().double().numpy()
        return z.reshape(n_members, n_traj, n_steps, self.n_latent)

    def _lead_inflation(self, n_steps):
        """``spread_inflation`` at each of the first ``n_steps`` leads."""
        f = np.asarray(self.spread_inflation, dtype=float)
        if f.ndim > 1 or f.size == 0 or not np.all(np.isfinite(f)) or np.any(f < 0):
            raise ValueError("spread_inflation must be a finite factor >= 0 or a 1-D array of "
                             f"them (one per lead); got {self.spread_inflation!r}")
        return f.reshape(-1)[np.minimum(np.arange(n_steps), f.size - 1)]

    def __setstate__(self, state):
        # pickled before these parameters existed: their defaults (recentred=False is the
        # behaviour then; shift_dim is read by fit only)
        super().__setstate__({"recentred": False, "shift_dim": "x", **state})

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.input_tags.allow_nan = False
        return tags


