"""Amortized ensemble assimilation, learned self-supervised through a differentiable model.

An ensemble of ``n_members`` states is forecast by the system and updated at
each observation time by a learned network (:mod:`xdyn.nn.update_nets`) that
reads the forecast ensemble, its banded covariance, the model tendency, the
observations scattered onto the grid with their mask, and a memory carried
from cycle to cycle. The network is trained from observations only: on
sequences of ``seq_len`` observation times at random offsets, the ensemble is
cycled through the differentiable torch model and the loss scores the
ensemble-mean forecast of the next noisy observations where they exist
(``loss="ss_forecast"``, the original's default), or the analysis mean
against the noisy observations (``"ss_analysis"``) or against the truth
(``"clean_analysis"``, needs ``fit(obs, truth)``). At test time the update
is one forward pass per cycle (amortized), with no linear algebra on the
ensemble.

Training follows the original: AdamW, learning rate warmed up x1.02 per
epoch for ``warmup_epochs`` and halved every ``halve_every`` epochs
(:class:`xdyn.nn.LRScheduler`), forecasts and analyses clamped to
``[-clamp, clamp]`` in training. Two departures from the original:
:meth:`predict` applies the same clamp (the cycle the network was trained
in) and reports where it acted; and where the original's training
sequences start from the truth plus noise, the initial ensemble uses no
truth: observed sites start from the first observation plus noise of its
error std, the others from independent climatological states (the same
start as :meth:`predict`).

Reference: McCabe, M. & Brown, J. (2021). Learning to assimilate in chaotic
dynamical systems. NeurIPS 34 (code: github.com/mikemccabe210/amortizedassimilation).
"""

from __future__ import annotations

import time as _time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
import xarray as xr
from torch import nn
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from xdyn.assimilation._amortized_cycle import (ClampWarning, bound, grid_observations,
                                                observation_start, obs_std_grid, report_clamp)
from xdyn.assimilation._amortized_training import (WarmupHalving, _AmortizedNet,
                                                   _RedrawEachEpoch, _RedrawnSequences,
                                                   _ValidationRMSE, _ValidationScore)
from xdyn.assimilation._cycle import _user_stacklevel
from xdyn.assimilation._neural_var_data import aligned_truth, validation_seed
from xdyn.assimilation._saving import load_fitted, save_fitted
from xdyn.assimilation._validation import FiniteInterval, Interval, StrOptions
from xdyn.assimilation.ensemble_base import BaseEnsembleAssimilator
from xdyn.metrics import state_rmse
from xdyn.model_selection import unwrap
from xdyn.nn import LRScheduler, best_epoch, keep_best
from xdyn.nn.net import _seeded_torch
from xdyn.nn.params import TRAINING_CONSTRAINTS
from xdyn.nn.update_nets import EnsembleRollout
from xdyn.systems.climatology import climatological_sample

__all__ = ["AmortizedAssimilator", "WarmupHalving", "ClampWarning"]


class AmortizedAssimilator(BaseEnsembleAssimilator):
    """Learned ensemble update trained self-supervised through the differentiable model.

    Parameters
    ----------
    system, operator, noise_std, R, dt, initial_state, initial_spread, burn_in,
    return_background, raise_on_divergence
        See :class:`xdyn.assimilation.base.BaseAssimilator`. The operator must
        select sites of the state (identity, every k-th ...); the observations
        may be missing (NaN) at any site and time, the same in every batch
        element (trajectory) at a time.
    architecture : {"conv", "ff"}, default="conv"
        Circular-convolution update (a 1-D periodic state) or feed-forward.
    n_members : int, default=10
    hidden_size : int or None, default=None
        Hidden width; None is 64 for ``"conv"`` and 250 for ``"ff"``.
    mem_channels : int, default=6
        Memory channels of the conv network.
    cov_band : int, default=3
        Diagonals of the ensemble covariance the conv network reads (odd; 1 is
        the ensemble variance).
    tendency : bool, default=True
        Whether the conv network reads each member's model tendency (see
        :class:`xdyn.nn.ConvEnsembleUpdate`); False for stiff PDEs such as
        Kuramoto-Sivashinsky, as the original's network for it.
    dropout : float, default=0.2
        Channel dropout of the update network in training.
    ensemble_dropout : bool, default=True
        Keep that dropout in :meth:`predict`, a draw per member and cycle
        (from ``random_state``), as the original's test loop does (its
        network never leaves training mode): the members then stay apart by
        about their error. Without it the network is deterministic at test
        time and, trained on the mean's loss alone, pulls the members onto
        one state (spread 1e-7 to 2e-4 on the quick Lorenz-96 and KS runs of
        2026-12-06). Quick Lorenz-96, 30 epochs, seed 0: all sites RMSE
        0.497 / spread 0 without, 0.508-0.511 / 0.445-0.447 with (three
        draws); every 4th 1.558 / 0.99 and 1.556-1.581 / 1.34-1.35.
    loss : {"ss_forecast", "ss_analysis", "clean_analysis"}, default="ss_forecast"
    seq_len : int, default=40
        Observation times per training sequence.
    n_sequences : int or None, default=None
        Training sequences per epoch, windows at uniform random offsets drawn
        (with replacement) from ``random_state``. None draws ``n_batch * (T //
        seq_len)`` of them (``n_batch`` trajectories of ``T`` observation
        times): as many observation times as the data hold, yet an epoch
        leaves about ``1/e``, 37%, of the times in no window (and some in
        several); over the epochs of ``redraw_sequences`` every time is seen.
    redraw_sequences : bool, default=True
        Draw the sequences' offsets and starting ensembles afresh before every
        epoch, instead of once: an epoch then sees ``n_sequences`` new windows
        of the same observations. The original draws per epoch too, but one
        window per ``seq_len`` block of the record with a jittered start
        (about 90% of the times in some window per epoch). False trains on one
        fixed draw, which small training sets overfit.
    batch_size : int, default=64
    max_epochs : int, default=500
    lr : float, default=8e-4
        Base rate of AdamW.
    warmup_epochs, halve_every : int, default=50, 200
        The schedule (:class:`WarmupHalving`).
    early_stopping : bool, default=False
        Needs ``fit(..., validation=...)``: stop when the validation analysis
        RMSE has not improved for ``n_iter_no_change`` epochs and keep the
        weights of the epoch where it was lowest. The validation cycle never
        raises on divergence (a young network that loses track gets its
        RMSE); a fit whose validation RMSE was never finite warns. On small
        training sets the self-supervised loss keeps falling after the
        analysis error has turned up (quick Lorenz-96, one fixed draw of 128
        sequences: test RMSE 0.448 after 80 epochs, 0.826 after 400).
    n_iter_no_change : int, default=10
    clamp : float or None, default=20.0
        Forecasts and analyses are clamped to ``[-clamp, clamp]`` in training
        (as in the original) and in :meth:`predict`, which so runs the cycle
        the network was trained in: a network that stays on the attractor
        never reaches the bound, a barely trained one stays finite instead of
        overflowing, and the output's attrs ``clamped_cycles`` and
        ``clamped_first_time`` say where the clamp acted (with a
        :class:`ClampWarning`). None: no clamp.
    initial_ensemble : Dataset or array, optional
        Start :meth:`predict` from these members instead of the
        observation-informed climatological start.
    return_ensemble : bool, default=False
    device : str, default="auto"
    dtype : str, default="float32"
        Of the network (the cycle runs in the system's dtype).
    random_state : int or None
    progress : bool, default=False

    Attributes
    ----------
    net_ : xdyn.nn.XdynNet
        The trained rollout (``net_.module_.update`` is the update network).
    history_ : list of dict
        Per epoch: ``epoch`` (1-based), ``train_loss``, ``event_lr`` (the
        learning rate of the epoch), ``dur`` (s) and, with
        ``fit(..., validation=...)``, ``valid_rmse``.
    n_epochs_, best_validation_rmse_ : int, float
        With ``early_stopping``: the epoch kept and its validation RMSE.
    train_time_s_ : float
        Wall time of the training.
    noise_std_ : numpy.ndarray of shape (n_obs,)
        Observation error std of the training observations. The network learned
        its update at this noise: :meth:`predict` (and ``validation``) refuse
        observations with another.
    system_, operator_, n_obs_, n_state_
        As for every assimilator.

    Notes
    -----
    The self-supervised losses score only the ensemble mean, so nothing in
    training asks the members to stay apart: run deterministically (no
    ``ensemble_dropout``) the trained network collapses them onto one state
    (``xdyn run lorenz96-amortized --quick``, 70 epochs: spread 3e-7 with
    every site observed, 2e-4 with one in four; KS 2e-7), a deterministic
    filter whose ensemble says nothing of its error. With the dropout drawn
    at test time as in training (the default, the original's test loop)
    the spread stays near the error: 0.74-0.75 of it in the same quick runs,
    at about the same RMSE.

    Test-time cost per cycle against LETKF-10 (same observations, one thread,
    predict time / cycles, medians; loaded 2-core machine): Lorenz-96 with 40
    sites 0.9-1.05x at hidden 16, KS with 128 points 0.72-0.87x; at the
    original's hidden 64 the update is compute-bound (about 36e6
    multiply-adds per cycle on 40 sites) and costs 2.2-2.3x LETKF-10's cycle
    (KS: 1.7-1.9x). On 2026-12-06's slower machine, with ``ensemble_dropout``
    (0.2-0.4 ms a cycle), the quick runs measured 1.42-1.46x on Lorenz-96
    and 0.99x on KS.

    Examples
    --------
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz96
    >>> truth = Lorenz96(n=8).simulate(n_trajectories=2, n_steps=60, dt=0.05, save_every=2,
    ...                                burn_in=5.0, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    >>> amortized = AmortizedAssimilator(n_members=4, hidden_size=8, seq_len=5, max_epochs=2,
    ...                                  batch_size=8, device="cpu", random_state=0).fit(obs)
    >>> len(amortized.history_)
    2
    >>> analysis = amortized.predict(obs)
    >>> dict(analysis["x"].sizes)
    {'time': 31, 'trajectory': 2, 'k': 8}
    """

    name = "amortized"
    aliases = ("amortised", "enaf")
    _preanalysis = False  # the network learned from the observation-informed start

    _parameter_constraints = {
        **BaseEnsembleAssimilator._parameter_constraints,
        **TRAINING_CONSTRAINTS,
        "architecture": [StrOptions({"conv", "ff"})],
        "hidden_size": [Interval(Integral, 1, None, closed="left"), None],
        "mem_channels": [Interval(Integral, 0, None, closed="left")],
        "cov_band": [Interval(Integral, 1, None, closed="left")],
        "tendency": ["boolean"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "ensemble_dropout": ["boolean"],
        "loss": [StrOptions({"ss_forecast", "ss_analysis", "clean_analysis"})],
        "seq_len": [Interval(Integral, 2, None, closed="left")],
        "n_sequences": [Interval(Integral, 1, None, closed="left"), None],
        "redraw_sequences": ["boolean"],
        "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "halve_every": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "clamp": [FiniteInterval(Real, 0, None, closed="neither"), None],
    }

    def __init__(self, system=None, *, architecture="conv", n_members=10, hidden_size=None,
                 mem_channels=6, cov_band=3, tendency=True, dropout=0.2, ensemble_dropout=True,
                 loss="ss_forecast",
                 seq_len=40, n_sequences=None, redraw_sequences=True, batch_size=64, max_epochs=500,
                 lr=8e-4, warmup_epochs=50, halve_every=200, early_stopping=False,
                 n_iter_no_change=10, clamp=20.0,
                 operator=None, noise_std=None, R=None, dt=None,
                 initial_ensemble=None, initial_state=None, initial_spread=1.0, burn_in=0.0,
                 return_ensemble=False, return_background=False, raise_on_divergence=True,
                 device="auto", dtype="float32", random_state=None, progress=False):
        self.system = system
        self.architecture = architecture
        self.n_members = n_members
        self.hidden_size = hidden_size
        self.mem_channels = mem_channels
        self.cov_band = cov_band
        self.tendency = tendency
        self.dropout = dropout
        self.ensemble_dropout = ensemble_dropout
        self.loss = loss
        self.seq_len = seq_len
        self.n_sequences = n_sequences
        self.redraw_sequences = redraw_sequences
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.lr = lr
        self.warmup_epochs = warmup_epochs
        self.halve_every = halve_every
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.clamp = clamp
        self.operator = operator
        self.noise_std = noise_std
        self.R = R
        self.dt = dt
        self.initial_ensemble = initial_ensemble
        self.initial_state = initial_state
        self.initial_spread = initial_spread
        self.burn_in = burn_in
        self.return_ensemble = return_ensemble
        self.return_background = return_background
        self.raise_on_divergence = raise_on_divergence
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------------ fit
    def fit(self, obs, truth=None, *, validation=None):
        """Train the update network on the observations (self-supervised); returns self.

        Parameters
        ----------
        obs : xarray.Dataset
            Training observations (from :func:`xdyn.observe.observe`), with
            any batch dims (e.g. ``trajectory``): sequences are drawn from every
            batch element.
        truth : xarray.Dataset, optional
            Only for ``loss="clean_analysis"``.
        validation : (obs, truth) tuple, optional
            Held-out observations and truth: the analysis RMSE of a full cycle
            over them is recorded after each epoch (``history_[i]["valid_rmse"]``,
            the learning curve); nothing is fitted on them. The cycle runs with
            ``raise_on_divergence=False``: an early network that loses track
            scores its (clamped) RMSE, where an error would leave the curve
            NaN. They are checked before training, as :meth:`predict` would
            check them (the training interval and noise), with a truth the
            analysis can be scored against after ``burn_in``.

        Returns
        -------
        AmortizedAssimilator
            The estimator. A fit that raises leaves it as it was before.
        """
        self._validate_params()
        if self.early_stopping and validation is None:
            raise ValueError("early_stopping=True stops on the validation analysis RMSE: call "
                             "fit(obs, validation=(obs_valid, truth_valid))")
        if self.loss == "clean_analysis" and truth is None:
            raise ValueError("loss='clean_analysis' scores the analysis against the truth: call "
                             "fit(obs, truth) or use loss='ss_forecast'")
        # the validation cycles predict with the estimator being fitted, so the new fitted
        # attributes are set as training goes; a fit that fails (or is interrupted) puts
        # back the ones it had, as load_params does, rather than a half-trained net_
        before = dict(vars(self))
        try:
            return self._fit_network(obs, truth, validation)
        except BaseException:
            vars(self).clear()
            vars(self).update(before)
            raise

    def _fit_network(self, obs, truth, validation):
        """The body of :meth:`fit` (which restores the earlier fit if this raises)."""
        ctx = self._context(obs)
        self._check_context(ctx)
        if not bool(ctx.mask.any()):
            raise ValueError("the observation mask hides every site at every time (all "
                             "'observation' values are NaN): there is nothing to learn from")
        gaps = np.unique(ctx.n_steps[1:])
        if len(gaps) > 1:
            raise ValueError(f"training needs a regular observation interval; the observations "
                             f"are {sorted(gaps.tolist())} model steps apart")
        T = len(ctx.times)
        L = int(self.seq_len)
        if T < L:
            raise ValueError(f"seq_len={L} is longer than the {T} observation times")
        self.system_, self.operator_ = ctx.system, ctx.operator
        self.n_obs_, self.n_state_ = int(ctx.mask.shape[-1]), int(ctx.n_state)
        self.noise_std_ = _error_std(ctx)
        n_steps = int(gaps[0]) if len(gaps) else 1
        if validation is not None:  # checked before an epoch is spent, as predict will
            self._check_validation(validation, n_steps, ctx.dt)
        # drawn always, before the training's draws: validation must not change them
        valid_state = validation_seed(self.random_state)
        rng = check_random_state(self.random_state)
        extra = []
        if self.redraw_sequences:  # a dataset that holds the targets too
            X, y_true = _RedrawnSequences(lambda: self._sequences(ctx, truth, L, rng)), None
            extra.append(("redraw_sequences", _RedrawEachEpoch()))
        else:
            X, y_true = self._sequences(ctx, truth, L, rng)
        if validation is not None:
            score = _ValidationScore(self, *validation, random_state=valid_state)
            extra.append(("valid_rmse", _ValidationRMSE(score)))
            if self.early_stopping:  # after valid_rmse is recorded for the epoch
                extra.append(("early_stopping",
                              keep_best("valid_rmse", self.n_iter_no_change)))
        self.net_ = self._make_net(n_steps, ctx.dt, extra)
        start = _time.perf_counter()
        try:
            self.net_.fit(X, y_true)
        finally:
            for _, cb in extra:  # the fitted net keeps no reference to held-out data
                cb.score = None
        self.train_time_s_ = _time.perf_counter() - start
        keys = ("epoch", "train_loss", "valid_rmse", "event_lr", "dur")
        self.history_ = [{k: row[k] for k in keys if k in row} for row in self.net_.history]
        for stale in ("n_epochs_", "best_validation_rmse_"):  # from an earlier fit
            vars(self).pop(stale, None)
        if self.early_stopping:
            self.n_epochs_, self.best_validation_rmse_ = best_epoch(self.history_, "valid_rmse")
        curve = [row.get("valid_rmse", np.nan) for row in self.history_]
        if validation is not None and curve and not np.isfinite(curve).any():
            kept = (f"; early stopping kept the weights of the last epoch ({len(curve)}), "
                    "untested" if self.early_stopping else "")
            warnings.warn(f"{type(self).__name__}: the validation analysis RMSE was never "
                          f"finite in {len(curve)} epochs: its validation analysis was non-finite "
                          f"(with clamp=None a young network's may overflow){kept}",
                          RuntimeWarning, stacklevel=_user_stacklevel())
        return self

    def _check_context(self, ctx):
        H = ctx.jacobian_h(ctx.system.as_tensor(np.zeros(ctx.n_state)))
        ones = (H == 1).sum(-1)
        # linear too: the Jacobian at 0 alone passes arctan (slope 1 there) as a selection,
        # and its arctan values would be placed on the grid as state values
        if not (getattr(ctx.operator, "linear", False) and bool((ones == 1).all())
                and bool(((H == 0) | (H == 1)).all()) and bool((H.sum(0) <= 1).all())):
            raise ValueError(f"{type(self).__name__} needs an operator that selects state sites "
                             f"(identity, every k-th ...); got {ctx.operator.spec()}")
        ctx.grid_index = H.argmax(-1)
        variables = ctx.system.variables
        if self.architecture == "conv" and (len(variables) != 1 or len(variables[0].dims) != 1):
            raise ValueError("architecture='conv' needs one state variable on a periodic 1-D "
                             f"grid; {type(ctx.system).__name__} has "
                             f"{[(v.name, v.dims) for v in variables]}; use 'ff'")

    def _sequences(self, ctx, truth, L, rng):
        T = len(ctx.times)
        y_grid, m_grid = grid_observations(ctx, ctx.y, ctx.mask)                 # (T, *batch, n), (T, n)
        n = ctx.n_state
        Y = y_grid.reshape(T, -1, n)
        nb = Y.shape[1]
        S = int(self.n_sequences) if self.n_sequences is not None else max(1, nb * (T // L))
        traj = rng.randint(nb, size=S)
        start = rng.randint(T - L + 1, size=S)
        times = start[:, None] + np.arange(L)                                 # (S, L)
        ys = Y[torch.as_tensor(times), torch.as_tensor(traj)[:, None]]        # (S, L, n)
        ms = m_grid[torch.as_tensor(times)]
        m = int(self.n_members)
        clim = ctx.system.as_tensor(climatological_sample(ctx.system, (S, m), ctx.dt, rng))
        noise = ctx.system.as_tensor(rng.standard_normal((S, m, n)))
        E0 = observation_start(ys[:, 0], ms[:, 0], obs_std_grid(ctx), clim, noise)
        X = {"y": ys.cpu().numpy(), "mask": ms.cpu().numpy(), "E0": E0.cpu().numpy()}
        y_true = None
        if truth is not None and self.loss == "clean_analysis":
            tx = aligned_truth(truth, ctx).reshape(T, -1, n)
            y_true = tx[torch.as_tensor(times), torch.as_tensor(traj)[:, None]].cpu().numpy()
        return X, y_true

    def _net_params(self):
        hidden = self.hidden_size
        if self.architecture == "conv":
            return {"hidden_size": 64 if hidden is None else int(hidden),
                    "mem_channels": int(self.mem_channels), "cov_band": int(self.cov_band),
                    "tendency": bool(self.tendency), "dropout": float(self.dropout)}
        return {"hidden_size": 250 if hidden is None else int(hidden),
                "dropout": float(self.dropout)}

    def _make_net(self, n_steps, dt, extra_callbacks=()):
        schedule = LRScheduler(torch.optim.lr_scheduler.LambdaLR,
                               lr_lambda=WarmupHalving(self.warmup_epochs, self.halve_every))
        return _AmortizedNet(
            EnsembleRollout, loss_kind=self.loss,
            module__system=self.system_, module__dt=float(dt), module__n_steps=int(n_steps),
            module__n_state=int(self.n_state_), module__architecture=self.architecture,
            module__clamp=None if self.clamp is None else float(self.clamp),
            module__detach_forecast=self.loss != "ss_forecast",
            **{f"module__{k}": v for k, v in self._net_params().items()},
            optimizer=torch.optim.AdamW, optimizer__weight_decay=0.0, lr=float(self.lr),
            max_epochs=int(self.max_epochs), batch_size=int(self.batch_size),
            callbacks=[("lr_schedule", schedule), *extra_callbacks], device=self.device, dtype=self.dtype,
            random_state=self.random_state, progress=bool(self.progress))

    # ------------------------------------------------------------ cycle hooks
    def _check_trained_regime(self, ctx, n_steps, dt, validation=False):
        """Refuse observations outside the regime the network is trained in.

        The update network learns the forecast errors of one observation interval
        (its memory and gates too), self-supervised from observations of one
        error std: another interval, model step or noise is an untrained regime.

        Parameters
        ----------
        ctx : CycleContext
            The observations to assimilate.
        n_steps : int
            Model steps between the training observations.
        dt : float
            Model step of the training.
        validation : bool, default=False
            Whether ``ctx`` holds the validation data of a fit (the message says so).
        """
        name, gaps = type(self).__name__, sorted(np.unique(ctx.n_steps[1:]).tolist())
        if any(g != n_steps for g in gaps) or not np.isclose(ctx.dt, dt):
            if validation:
                raise ValueError(
                    f"the validation observations are {gaps} model steps of dt={ctx.dt:g} "
                    f"apart, the training ones {n_steps} steps of dt={dt:g}: {name} learns the "
                    "update of the training interval; validate at that interval")
            raise ValueError(f"{name} was trained on observations {n_steps} model steps of "
                             f"dt={dt:g} apart; these are {gaps} steps of dt={ctx.dt:g} apart: "
                             "observe at the training interval or refit")
        fitted = getattr(self, "noise_std_", None)  # None: loaded from an older file
        given = _error_std(ctx)
        if fitted is None or (given.shape == fitted.shape
                              and np.allclose(given, fitted, rtol=1e-6, atol=0.0)):
            return
        stds = [np.unique(np.round(a, 6)).tolist() for a in (fitted, given)]
        if validation:
            raise ValueError(
                f"the validation observations have error std {stds[1]}, the training ones "
                f"{stds[0]}: {name} learns the update at the training noise; validate at it")
        raise ValueError(
            f"{name} was trained on observations with error std {stds[0]}; these "
            f"observations' are {stds[1]}: its network learned the update at the training "
            "noise (self-supervised, from those observations), another noise is an untrained "
            "regime: observe at the training noise or refit at this one")

    def _check_validation(self, validation, n_steps, dt):
        """Check ``fit``'s held-out ``(obs, truth)`` as predict and the score will use them."""
        try:
            obs_v, truth_v = validation
        except (TypeError, ValueError):
            raise TypeError("validation must be a pair (obs_valid, truth_valid); got "
                            f"{type(validation).__name__}") from None
        if truth_v is None:
            raise ValueError("validation=(obs_valid, None): the learning curve is the analysis "
                             "RMSE against the truth; pass validation=(obs_valid, truth_valid)")
        try:
            ctx = self._context(obs_v, fitted=True)
            self._check_context(ctx)
        except (TypeError, ValueError) as err:
            kind = TypeError if isinstance(err, TypeError) else ValueError
            raise kind(f"the validation observations: {err}") from err
        self._check_trained_regime(ctx, n_steps, dt, validation=True)
        truth_v = unwrap(truth_v)
        if not isinstance(truth_v, xr.Dataset):
            raise TypeError(f"the validation truth must be a state Dataset, got "
                            f"{type(truth_v).__name__}")
        # the analysis the score compares with it: the state on the observations' times
        zeros = ctx.system.as_tensor(np.zeros((len(ctx.times), *ctx.batch_shape, ctx.n_state)))
        analysis = ctx.system.from_state(zeros, dims=("time", *ctx.batch_dims),
                                         coords={"time": ctx.obs["time"], **ctx.batch_coords})
        try:
            state_rmse(analysis, truth_v)
        except (KeyError, ValueError) as err:
            raise ValueError(f"the validation truth does not match the validation "
                             f"observations' analysis: {err}") from err
        try:  # the score's checks: every time covered and finite, burn_in leaves a time
            self._check_truth_scores(unwrap(obs_v), truth_v)
        except ValueError as err:
            raise ValueError(f"the validation data: {err}") from err

    def _initialize(self, ctx, rng):
        self._check_trained_regime(ctx, int(self.net_.module__n_steps),
                                   float(self.net_.module__dt))
        if self.initial_ensemble is not None or self.initial_state is not None:
            E = self._initial_ensemble(ctx, rng, int(self.n_members))
        else:
            m = int(self.n_members)
            clim = self._climatological_members(ctx, m, rng)
            noise = ctx.system.as_tensor(rng.standard_normal(tuple(clim.shape)))
            y_grid, m_grid = grid_observations(ctx, ctx.y[0], ctx.mask[0])
            E = observation_start(y_grid, m_grid, obs_std_grid(ctx), clim, noise)
        rollout = self.net_.module_
        p = next(rollout.parameters())
        # the observations on the grid, once for the whole run, in the network's dtype
        y_grid, m_grid = grid_observations(ctx, ctx.y, ctx.mask)
        ctx.amortized_grid = (y_grid.reshape(len(ctx.times), -1, ctx.n_state).to(p),
                              m_grid.to(p))
        memory = rollout.initial_memory(E.reshape(-1, *E.shape[-2:]).to(p))
        return E, memory

    # forecasts and analyses are clamped as in training (see _amortized_cycle)
    def _forecast(self, state, n_steps, ctx, rng):
        return bound(ctx.system.forecast(state[0], ctx.dt, n_steps), self.clamp, ctx), state[1]

    def _analyze(self, state, k, ctx, rng):
        E, memory = state
        y_grid, m_grid = ctx.amortized_grid
        flat = E.reshape(-1, *E.shape[-2:]).to(y_grid)
        Ea, memory = self.net_.module_.analysis(flat, y_grid[k], m_grid[k], memory)
        return bound(Ea.to(E).reshape(E.shape), self.clamp, ctx), memory

    def _to_dataset(self, callbacks, ctx, wall):
        out = super()._to_dataset(callbacks, ctx, wall)
        return report_clamp(out, ctx, self.clamp, type(self).__name__)

    def _summarize(self, state):
        E = state[0]
        return E.mean(-2), E, E.std(-2)

    def predict(self, obs, *, callbacks=None):
        """Cycle over ``obs``: model forecast, then the learned update, at every time.

        ``callbacks`` as in :meth:`BaseAssimilator.predict
        <xdyn.assimilation.base.BaseAssimilator.predict>`.
        """
        check_is_fitted(self, "net_")
        rollout = self.net_.module_
        was_training = rollout.training
        rollout.eval()  # the cycle hooks clamp as the training rollout does
        if self.ensemble_dropout:  # the dropout layers alone, drawn from random_state
            for layer in rollout.modules():
                if isinstance(layer, nn.modules.dropout._DropoutNd):
                    layer.train()
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        try:
            with _seeded_torch(seed):
                return super().predict(obs, callbacks=callbacks)
        finally:
            rollout.train(was_training)

    # ------------------------------------------------------------ persistence
    def save_params(self, f):
        """Write the trained network and fitted attributes to ``f`` (path or file object).

        Load them with :meth:`load_params` into an estimator with the same
        parameters; the file loads on a CPU-only machine.
        """
        check_is_fitted(self, "net_")
        save_fitted(self, f, n_steps=self.net_.module__n_steps, dt=self.net_.module__dt)

    def load_params(self, f):
        """Restore what :meth:`save_params` wrote (no refit); returns self.

        The file holds pickled Python objects (the system): load only files you trust.
        """
        # a file saved before noise_std_ was recorded has none: no earlier fit's either
        stale = vars(self).pop("noise_std_", None)
        try:
            return load_fitted(self, f,
                               lambda blob: self._make_net(blob["n_steps"], blob["dt"]),
                               required=("n_steps", "dt"))
        except BaseException:
            if stale is not None:
                self.noise_std_ = stale
            raise


def _error_std(ctx) -> np.ndarray:
    """Observation error std of each observation ``(n_obs,)`` (the sqrt of ``R``'s diagonal)."""
    return ctx.obs_variance.sqrt().double().cpu().numpy()
