"""Neural fixed-point 3D-Var: a learned analysis inside the classical cycle.

From a background ``x_b`` (the model forecast of the previous analysis), the
analysis is the fixed point of ``x <- x + f_theta(window, y - h(x), x)``,
unrolled ``n_iterations`` times: an encoder (MLP, GRU or LSTM) reads the last
``window`` observations (and which are missing), and a head turns its code and
the state into a gain on the innovations: a residual correction in units of the
background error std, with a learned per-component factor. The
network is trained end to end through :class:`xdyn.nn.XdynNet` (skorch) with
either the 3D-Var cost (``loss="var"``, self-supervised) or the analysis error
against the truth (``loss="supervised"``).

The analysis starts from one 3D-Var step (Gauss-Newton BLUE with the
climatological ``B`` times ``B_scale``); the network then adds a correction
that is linear in the innovations of the whole window (each past observation
against the background's trajectory at its time, the model run backwards over
the window, and the current one against the iterate), with a gain it reads off
the observations and the state, so an unbiased background gets no mean
correction and the cycle no drift. Training backgrounds, when the truth is
given, are forecasts of the perturbed truth over ``background_lead`` model steps,
with errors from 0.02 to 1.5 and *independent of the observations*: trained on
3D-Var's cycled backgrounds (or, DAgger-style, on its own, ``n_rounds > 1``),
the network learned that filter's systematic, observation-correlated error and
"corrected" it in its own cycle, where it is absent, and the cycle diverged
(measured on Lorenz-63, x and y observed). Without the truth (``loss="var"``)
the backgrounds are 3D-Var's cycled forecasts. ``training_background=
"climatology"`` trains instead on draws from the climatology of the training
truth, ``x_b ~ N(mean, cov)`` of its states: the background of the original
research pipeline this estimator rebuilds (its "resample" branch), whose
errors are the size of the attractor; it fits single analyses far from the
truth, not the small errors of a running cycle (Lorenz-63, x and y observed
with noise 0.5, 1000 training trajectories: single analyses of such draws
11.4 -> 0.69-0.77, against 7.9 for the forecast-trained network; cycled
0.63-0.70 against 0.15-0.17). Every scaler, ``B`` and its mean are fitted on
the training observations (and truth) only; validation data only monitor the
loss. In a :class:`~sklearn.pipeline.Pipeline`, put
:class:`xdyn.observe.ObservationScaler` before it (not a scaler of the
``observation`` variable alone): it rescales the observations, their
``noise_std`` and the operator together, and the analysis is unchanged.

References: Lorenc (1986), Q. J. R. Meteorol. Soc. 112; Fablet et al. (2021),
"Learning variational data assimilation models and solvers", JAMES 13.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
import xarray as xr
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from xdyn.assimilation._neural_var_data import (BatchedDataset, NeuralVar3DModule,
                                                aligned_truth, analysis_dataset,
                                                check_observation_windows,
                                                check_observed_sites,
                                                climatology_draws, cycle_sequences,
                                                fit_statistics,
                                                perturbed_backgrounds, validation_seed,
                                                var_cost, whole_batch)
from xdyn.assimilation._cycle import DivergenceMonitor, run_cycle
from xdyn.assimilation._saving import load_fitted, save_fitted
from xdyn.assimilation._static import gauss_newton_analysis
from xdyn.assimilation._validation import FiniteInterval, Interval, StrOptions
from xdyn.assimilation.base import BaseAssimilator
from xdyn.assimilation.climatology import estimate_climatology
from xdyn.exceptions import DivergenceError
from xdyn.nn import XdynNet, cosine_annealing, predefined_split
from xdyn.nn.params import TRAINING_CONSTRAINTS, RoutedParamsMixin
from xdyn.utils._fitted import fit_anew

__all__ = ["NeuralVar3D"]


class NeuralVar3D(RoutedParamsMixin, BaseAssimilator):
    """Learned fixed-point 3D-Var analysis, cycled with the model forecast.

    Parameters
    ----------
    system, operator, noise_std, R, dt, initial_state, initial_spread, burn_in,
    raise_on_divergence
        See :class:`xdyn.assimilation.base.BaseAssimilator`.
    encoder : {"mlp", "gru", "lstm"}, default="gru"
        Reads the last ``window`` observations and their mask (the gain on the
        innovations is read off its code and the state).
    window : int, default=8
        Observation times the encoder reads (the current one included).
    n_iterations : int, default=2
        Unrolled fixed-point steps of the analysis.
    loss : {"supervised", "var"}, default="supervised"
        ``"supervised"``: mean squared analysis error against the truth given
        to :meth:`fit`. ``"var"``: the 3D-Var cost with the fitted ``B`` and
        the observation noise (no truth needed for the gradient).
    B_scale : float, default=0.01
        Factor on the climatological covariance: the ``B`` of the round-0
        3D-Var cycle, and of the ``"var"`` loss when no truth is given. It
        also sets the first 3D-Var step of every analysis and the scale of the
        network's correction; with little observation noise a much smaller
        one is better, as for :class:`~xdyn.assimilation.Var3D` (Lorenz-63,
        ``x**2`` observed with noise 0.05, MLP, ``cycle_loss="relative"``:
        cycled 1.06 with 0.01, the cycle on the wrong wing 10% of the time,
        and 0.009 with 1e-5).
    n_rounds : int, default=1
        Training rounds: each further round continues the training on the
        network's own cycled backgrounds (DAgger), for ``max_epochs`` more
        epochs; with ``lr_schedule="cosine"`` each round's rate falls again
        from ``lr`` to 1e-5. Measured: this hurts (see the module docstring;
        measured at a constant learning rate, before the cosine schedule);
        kept for experiments. Until 2026-12-07 a cosine schedule was not
        restarted: in later rounds the rate rose from 1e-5 back to ``lr``.
    background_lead : int, default=10
        With a truth, round 0 trains on forecasts of the perturbed truth
        (errors independent of the observations) instead of 3D-Var
        backgrounds, over at most this many *model* steps: from the earliest
        observation time within them (none where the observations are further
        apart: the perturbed truth itself).
    training_background : {"forecast", "climatology"}, default="forecast"
        Backgrounds of round 0 when the truth is given. ``"forecast"``: the
        forecasts of the perturbed truth above (errors 0.02 to 1.5, what a
        cycle meets). ``"climatology"``: independent draws from ``N(mean,
        cov)`` of the training truth's states (the original pipeline's
        training backgrounds, errors of the attractor's size); pair it with
        ``B_scale=2`` (the error covariance of such a draw is twice the
        climatological one), so that the first 3D-Var step and the bound on
        the network's correction have that size too. Ignored without a truth.
    seq_len : int, default=1
        Observation times each training sample cycles through: from its
        background, the network's analysis, the model forecast to the next
        time, the network's analysis there, and so on, with the loss on every
        analysis and the gradient through the model (truncated
        back-propagation through the cycle), the loss the plain squared
        error of every analysis. With ``seq_len > 1`` the network meets in
        training the backgrounds of its own cycle, from the first analyses of
        a far start to the small errors of a settled one; with 1 it learns
        single analyses of backgrounds independent of the observations.
        Measured before the window's innovations followed the background's
        trajectory, at a constant learning rate (Lorenz-63, 150 training
        trajectories, MLP, 8 epochs; the cycle from the prior mean, RMSE after
        burn-in, 3D-Var with a tuned ``B`` in brackets): observed as x with
        noise 1, 4.19 with 1 and 0.39 with 10 (0.37); x with noise 0.5, 0.47
        and 0.29 (0.24); but x and y with noise 0.5, 0.14 with 1 and 0.26 with
        10 (0.21). Needs the truth,
        ``loss="supervised"`` and evenly spaced observation times, and
        :meth:`predict` then refuses observations at another interval (the
        network learned its cycle's backgrounds at this one); an epoch
        costs about 3x that of ``seq_len=1`` (the cycles do not overlap, the
        forecast is differentiated). ``batch_size`` then counts cycles (the
        numbers above used ``512 // seq_len``).
    single_analysis_weight : float, default=0.0
        With ``seq_len > 1``: the weight of the ``seq_len=1`` loss (the
        squared error relative to the background's) of each cycle's first
        analysis, added to the plain squared error of every analysis. The
        first analysis is a single analysis of an independent background, and
        the plain loss alone can leave it worse than that background.
        Measured (Lorenz-63 observed as x with noise 0.5, 40 training
        trajectories, three seeds; single analysis over background RMSE):
        1.08, 1.02, 0.98 with 0 and 0.96, 0.95, 0.95 with 0.05. It costs the
        cycle where the network must find the wing from a far start (x with
        noise 1: 0.44 with 0 and 0.52 with 0.05, 3D-Var 0.40). Since the
        window's innovations follow the background's trajectory the plain
        loss keeps single analyses good too: 0.81, 0.81, 0.82 with 0 and
        0.84, 0.85, 0.86 with 0.05.
    cycle_loss : {"absolute", "relative"}, default="absolute"
        With ``seq_len > 1``: ``"absolute"`` scores every analysis of a
        training cycle by its plain squared error; ``"relative"`` adds, for
        every analysis, its squared error over that of its own background
        (the forecast of the previous analysis). The plain error is ruled by
        the first, large errors of a cycle; the relative one weighs the small
        errors of a settled cycle as much, and so teaches the small gain that
        observations with little noise call for, at the price of the recovery
        from a far start. Measured (Lorenz-63, 150 training trajectories, MLP,
        ``seq_len=10``, 8 epochs at a constant learning rate; cycled RMSE after
        burn-in, absolute then relative): x and y observed with noise 0.05,
        0.054 and 0.019; noise 0.5, 0.149 and 0.109; x alone with noise 1,
        0.36 and 4.4 (the cycle lost the attractor's wing).
    max_epochs : int, default=15
        Epochs per round.
    lr : float, default=2e-3
    lr_schedule : {"cosine", "constant"}, default="cosine"
        ``"cosine"``: the rate falls from ``lr`` to 1e-5 over ``max_epochs``
        (:func:`xdyn.nn.cosine_annealing`), restarted in each of the
        ``n_rounds``. With a constant rate the weights a
        fit ends with are one noisy draw of the optimizer around its minimum,
        and a cycle can amplify that noise (measured, Lorenz-63, 150 training
        trajectories, 8 epochs, ``seq_len=10``, ``cycle_loss="relative"``,
        three seeds; cycled analysis over background RMSE): ``x**2`` observed
        with noise 0.05, GRU, 1.030, 1.017, 0.968 constant and 0.971, 0.971,
        0.969 cosine; noise 0.5, LSTM, cycled RMSE 0.231, 0.041, 0.043
        constant and 0.045, 0.042, 0.043 cosine.
    batch_size : int, default=512
    climatology_length : float or None, default=None
        Free-run length for the climatology when :meth:`fit` gets no truth.
        None: 100 times the system's ``climatology_burn_in`` (1000 time units for
        the nondimensional systems, 100 days for shallow water).
    device : str, default="auto"
    dtype : str, default="float32"
        Of the network (the cycle runs in the system's dtype).
    return_background : bool, default=False
    random_state : int or None
        Seeds the network, the training backgrounds and the climatology's free
        run (without a truth). The cycle itself is deterministic: it starts at
        ``initial_state`` (or the climatological mean); ``initial_spread`` is
        not used by this method.
    progress : bool, default=False
    **kwargs
        ``module__<name>`` (``hidden_size``, ``n_layers``) and
        ``optimizer__<name>`` parameters, routed to the network as in skorch,
        so ``GridSearchCV(..., {"module__hidden_size": [...]})`` works. Not
        the network arguments set from the estimator's own parameters
        (``module__window``: use ``window``; likewise ``encoder``,
        ``n_iterations``) or from the data (``module__n_state`` ...).

    Attributes
    ----------
    system_ : DynamicalSystem
    operator_ : ObservationOperator
    n_obs_, n_state_ : int
    net_ : xdyn.nn.XdynNet
        The trained network.
    B_ : ndarray of shape (n_state, n_state)
        Background error covariance (of the round-0 backgrounds against the
        truth when given).
    statistics_ : dict
        Scalers fitted on the training split, and ``obs_count``, the training
        observations of each site (:meth:`predict` and :meth:`analyze` refuse
        observations of a site never observed in training).
    history_ : list of dict
        Per round: ``epochs`` (the total so far, cumulative over the rounds),
        the last train/valid loss.
    forecast_interval_ : tuple of (float, int)
        Model step and steps between two observation times (the forecast
        of a training cycle).

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> from xdyn.observe import observe
    >>> truth = Lorenz63().simulate(n_trajectories=8, n_steps=150, burn_in=5, random_state=0)
    >>> obs = observe(truth, ["x", "y"], noise_std=0.5, random_state=1)
    >>> nv = NeuralVar3D(encoder="mlp", window=4, max_epochs=2, n_rounds=1, random_state=0,
    ...                  device="cpu", module__hidden_size=16).fit(obs, truth)
    >>> analysis = nv.predict(obs)
    >>> dict(analysis["z"].sizes)
    {'time': 151, 'trajectory': 8}
    """

    name = "neural-var"
    aliases = ("neuralvar3d",)

    _parameter_constraints = {
        **BaseAssimilator._parameter_constraints,
        **TRAINING_CONSTRAINTS,
        "encoder": [StrOptions({"mlp", "gru", "lstm"})],
        "window": [Interval(Integral, 1, None, closed="left")],
        "n_iterations": [Interval(Integral, 1, None, closed="left")],
        "loss": [StrOptions({"supervised", "var"})],
        "B_scale": [FiniteInterval(Real, 0, None, closed="neither")],
        "n_rounds": [Interval(Integral, 1, None, closed="left")],
        "background_lead": [Interval(Integral, 0, None, closed="left")],
        "training_background": [StrOptions({"forecast", "climatology"})],
        "seq_len": [Interval(Integral, 1, None, closed="left")],
        "single_analysis_weight": [FiniteInterval(Real, 0, None, closed="left")],
        "cycle_loss": [StrOptions({"absolute", "relative"})],
        "lr_schedule": [StrOptions({"cosine", "constant"})],
        "climatology_length": [FiniteInterval(Real, 0, None, closed="neither"), None],
    }

    def __init__(self, system=None, *, operator=None, noise_std=None, R=None, dt=None,
                 encoder="gru", window=8, n_iterations=2, loss="supervised", B_scale=0.01,
                 n_rounds=1, background_lead=10, training_background="forecast", seq_len=1,
                 single_analysis_weight=0.0, cycle_loss="absolute", max_epochs=15, lr=2e-3,
                 lr_schedule="cosine", batch_size=512, climatology_length=None,
                 device="auto", dtype="float32", initial_state=None, initial_spread=1.0,
                 burn_in=0.0, return_background=False, raise_on_divergence=True,
                 random_state=None, progress=False, **kwargs):
        self.system = system
        self.operator = operator
        self.noise_std = noise_std
        self.R = R
        self.dt = dt
        self.encoder = encoder
        self.window = window
        self.n_iterations = n_iterations
        self.loss = loss
        self.B_scale = B_scale
        self.n_rounds = n_rounds
        self.background_lead = background_lead
        self.training_background = training_background
        self.seq_len = seq_len
        self.single_analysis_weight = single_analysis_weight
        self.cycle_loss = cycle_loss
        self.max_epochs = max_epochs
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.climatology_length = climatology_length
        self.device = device
        self.dtype = dtype
        self.initial_state = initial_state
        self.initial_spread = initial_spread
        self.burn_in = burn_in
        self.return_background = return_background
        self.raise_on_divergence = raise_on_divergence
        self.random_state = random_state
        self.progress = progress
        self._set_routed(kwargs)

    # ------------------------------------------------------------------ fit
    def _check_context(self, ctx):
        super()._check_context(ctx)
        if ctx.obs_std is None:
            raise ValueError(f"{type(self).__name__} weighs each observation by its own error "
                             "std (a diagonal R); this R has off-diagonal terms: give noise_std "
                             "or a diagonal R, or decorrelate the observations first")

    def fit(self, obs, truth=None, *, validation=None):
        """Learn the analysis network from training observations (and truth).

        Parameters
        ----------
        obs : xarray.Dataset
            Training observations (from :func:`xdyn.observe.observe`), usually
            with a ``trajectory`` dim: each trajectory is cycled independently.
        truth : xarray.Dataset, optional
            Required by ``loss="supervised"``. With ``loss="var"`` (whose
            gradient needs no truth) it still sets what it does for the
            supervised loss: the training backgrounds (forecasts of the
            perturbed truth, not 3D-Var's cycle), the climatology
            (``x_mean``/``x_scale``, ``B_gain``), and ``B`` and its mean from
            the background errors.
        validation : (obs, truth) tuple, optional
            Held-out trajectories whose loss is recorded each epoch. They are
            never used to fit anything: the fitted network is the same with or
            without them. With ``window > 1`` or ``seq_len > 1`` they must be
            observed at the training interval; they must not observe a site
            that the training observations never do.

        Returns
        -------
        self

        Notes
        -----
        A fit that raises leaves the estimator unfitted (:meth:`predict`
        raises ``NotFittedError``), never with a part of the old fit and a
        part of the new.
        """
        return fit_anew(self, obs, truth, validation)

    def _fit(self, obs, truth, validation):
        self._validate_params()
        self._refuse_routed_set_by_fit(_SET_BY_FIT)
        if self.loss == "supervised" and truth is None:
            raise ValueError("loss='supervised' needs the truth: call fit(obs, truth) "
                             "or use loss='var'")
        if self.seq_len > 1 and self.loss != "supervised":
            raise ValueError("seq_len > 1 scores every analysis of a training cycle against the "
                             "truth: use loss='supervised' (and fit(obs, truth))")
        # drawn first and always: validation must not change the training's draws
        valid_state = validation_seed(self.random_state)
        ctx = self._context(obs)
        self._check_context(ctx)
        check_observation_windows(ctx, int(self.window))
        self.forecast_interval_ = _forecast_interval(ctx, int(self.seq_len), int(self.window))
        truth_x = aligned_truth(truth, ctx) if truth is not None else None
        valid = None
        if validation is not None:
            obs_v, truth_v = validation
            if self.loss == "supervised" and truth_v is None:
                raise ValueError("loss='supervised' scores validation against the truth: pass "
                                 "validation=(obs_valid, truth_valid)")
            ctx_v = self._context(obs_v)
            self._check_context(ctx_v)
            check_observation_windows(ctx_v, int(self.window))
            check_observed_sites(ctx_v, ctx.mask.any(0).cpu().numpy(),
                                 "the validation observations")
            dt, steps = self.forecast_interval_
            v_dt, v_steps = _forecast_interval(ctx_v, int(self.seq_len), int(self.window))
            if max(int(self.window), int(self.seq_len)) > 1 and (
                    v_steps != steps or not np.isclose(v_dt, dt)):
                # the window's backward run and the training cycles step by the fitted
                # interval: the validation loss would be scored against the wrong states
                raise ValueError(
                    f"the validation observations are {v_steps} model steps of {v_dt:g} "
                    f"apart, the training ones {steps} steps of {dt:g}: with window > 1 or "
                    "seq_len > 1 the network steps by the training interval, so their loss "
                    "would be scored at the wrong times; validate at the training interval")
            valid = (ctx_v, aligned_truth(truth_v, ctx_v) if truth_v is not None else None)
        self.system_, self.operator_ = ctx.system, ctx.operator
        self.n_obs_, self.n_state_ = int(ctx.mask.shape[-1]), int(ctx.n_state)
        clim_mean, clim_cov = estimate_climatology(ctx.system, truth, self.climatology_length,
                                                   ctx.dt, self.random_state)
        self._B0 = ctx.system.as_tensor(float(self.B_scale) * clim_cov)
        self._climatology_fit = (clim_mean, clim_cov)
        self.net_ = None
        self.history_ = []
        try:
            samples = self._collect(ctx, truth_x, first=True)
            stats = fit_statistics(ctx, samples["window"], samples["background"],
                                   samples["innovation"],
                                   None if truth_x is None else samples["truth"],
                                   clim_mean, clim_cov, self.B_scale)
            self.statistics_, self.B_ = stats, stats["B"]
            valid_samples = (None if valid is None
                             else self._collect(*valid, first=True, random_state=valid_state))
            self.net_ = self._make_net(ctx, stats)
            for round_ in range(int(self.n_rounds)):
                if round_ > 0:
                    samples = self._collect(ctx, truth_x)
                    valid_samples = (None if valid is None
                                     else self._collect(*valid, random_state=valid_state))
                self._train_round(samples, valid_samples, first=round_ == 0)
        finally:
            del self._B0, self._climatology_fit
        return self

    def _collect(self, ctx, truth_x, first=False, random_state=None):
        """Training samples over ``ctx``: windows from a cycle, and their backgrounds.

        The cycle is 3D-Var before the network exists, then the network's own
        (DAgger rounds). In the first round with a truth the backgrounds are
        instead forecasts of the perturbed truth (:func:`perturbed_backgrounds`), or
        draws from the training climatology (:func:`climatology_draws`).
        ``random_state`` (validation's) replaces the estimator's when given.
        """
        random_state = self.random_state if random_state is None else random_state
        if first and truth_x is not None:  # no cycle needed: the windows are observations only
            window, y, m = self._obs_windows(ctx)
            rng = check_random_state(random_state)
            if self.training_background == "climatology":
                background = climatology_draws(*self._climatology_fit, truth_x.shape[:-1], rng,
                                               like=truth_x)
            else:
                background = perturbed_backgrounds(ctx.system, truth_x, ctx.dt,
                                                   int(self.background_lead), rng,
                                                   n_steps=ctx.n_steps)
            out = {"window": window, "background": background, "obs": y, "mask": m,
                   "innovation": (y - ctx.h(background)) * m}
        else:
            self._record = []
            try:
                with torch.no_grad():
                    run_cycle(self, ctx, check_random_state(random_state),
                              [DivergenceMonitor(raise_on_divergence=True)])
                rec = self._record
            finally:
                del self._record
            out = {k: torch.stack([r[k] for r in rec]) for k in rec[0]}
        out = {k: v.cpu().numpy() for k, v in out.items()}
        if truth_x is not None:
            out["truth"] = truth_x.cpu().numpy()
        return out

    def _obs_windows(self, ctx):
        """Windows ``(T, *batch, window, 2p)`` of ``[y, mask]`` rows, zero rows before the start."""
        y = torch.nan_to_num(ctx.y, nan=0.0)
        m = ctx.mask.to(y.dtype).reshape((ctx.mask.shape[0],) + (1,) * (y.dim() - 2)
                                         + (ctx.mask.shape[-1],)).expand_as(y)
        rows = torch.cat([y * m, m], -1)                                      # (T, *batch, 2p)
        w = int(self.window)
        padded = torch.cat([rows.new_zeros((w - 1,) + rows.shape[1:]), rows])
        return padded.unfold(0, w, 1).movedim(-1, -2), y, m

    def analyze(self, obs, background) -> xr.Dataset:
        """Single analyses of given backgrounds, without cycling (transform-style use).

        Parameters
        ----------
        obs : xarray.Dataset
            Observations; the window of each time is read from them.
        background : xarray.Dataset
            A background state at every observation time (same batch dims).

        Returns
        -------
        xarray.Dataset
            The analysis at every observation time.
        """
        check_is_fitted(self, "net_")
        ctx = self._context(obs, fitted=True)
        _check_window_spacing(self, ctx, cycle=False)
        _check_noise(self, ctx)
        _check_observed_sites(self, ctx)
        x_b = aligned_truth(background, ctx, what="background")
        window, y, m = self._obs_windows(ctx)
        with torch.no_grad():
            x_a = self._network_analysis(window, x_b, y, m)
        return analysis_dataset(x_a, ctx, type(self).__name__)

    def _make_net(self, ctx, stats):
        self._refuse_routed_set_by_fit(_SET_BY_FIT)
        return _NeuralVarNet(
            NeuralVar3DModule, loss_kind=self.loss,
            single_analysis_weight=float(self.single_analysis_weight),
            cycle_loss=self.cycle_loss,
            module__encoder=self.encoder, module__window=int(self.window),
            module__n_state=int(ctx.n_state), module__n_obs=int(ctx.mask.shape[-1]),
            module__obs_index=[int(i) for i in ctx.operator.indices(ctx.system.variables)],
            module__operator=ctx.operator, module__stats=stats,
            module__n_iterations=int(self.n_iterations),
            module__system=ctx.system, module__forecast_dt=self.forecast_interval_[0],
            module__forecast_steps=self.forecast_interval_[1],
            criterion=torch.nn.MSELoss, optimizer=torch.optim.Adam, lr=float(self.lr),
            callbacks=([("lr_schedule", cosine_annealing(self.max_epochs))]
                       if self.lr_schedule == "cosine" else None),
            max_epochs=int(self.max_epochs), batch_size=int(self.batch_size),
            device=self.device, dtype=self.dtype, random_state=self.random_state,
            progress=bool(self.progress), train_split=None, dataset=BatchedDataset,
            iterator_train__collate_fn=whole_batch, iterator_valid__collate_fn=whole_batch,
            **self._routed(),
        )

    def _arrays(self, samples):
        samples = {k: v for k, v in samples.items() if k != "innovation"}
        if self.seq_len > 1:
            flat = cycle_sequences(samples, int(self.seq_len))
        else:
            flat = {k: v.reshape(-1, *v.shape[-(2 if k == "window" else 1):])
                    for k, v in samples.items()}
        X = {k: flat[k].astype(np.float32) for k in ("window", "background", "obs", "mask")}
        if not all(np.isfinite(v).all() for v in X.values()):
            raise DivergenceError("NeuralVar3D: the cycled training run left the attractor "
                                  "(non-finite backgrounds); lower lr or n_rounds")
        y = flat["truth"].astype(np.float32) if "truth" in flat else None
        return X, y

    def _train_round(self, samples, valid_samples, first):
        X, y = self._arrays(samples)
        if self.loss == "var":
            y = None
        if valid_samples is not None:
            Xv, yv = self._arrays(valid_samples)
            self.net_.set_params(train_split=predefined_split(
                BatchedDataset(Xv, None if self.loss == "var" else yv)))
        if first:
            self.net_.fit(X, y)
        else:
            if self.lr_schedule == "cosine":
                _restart_schedule(self.net_, self.lr, self.max_epochs)
            self.net_.partial_fit(X, y)
        hist = self.net_.history
        last = hist[-1] if len(hist) else {}
        self.history_.append({"epochs": len(hist),
                              "train_loss": float(last.get("train_loss", np.nan)),
                              "valid_loss": float(last.get("valid_loss", np.nan))})
        self.net_.set_params(train_split=None)  # the fitted net holds no reference to them

    # ------------------------------------------------------------ cycle hooks
    # The state is ``(x, buffer)``: the buffer holds the rows ``[y, mask]`` of the
    # last ``window`` observation times (zero rows before the first).
    def _initialize(self, ctx, rng):
        if getattr(self, "net_", None) is not None:
            _check_window_spacing(self, ctx)
            _check_noise(self, ctx)
            _check_observed_sites(self, ctx)
        x = self._initial_mean(ctx, rng)
        p = ctx.mask.shape[-1]
        buf = torch.zeros(x.shape[:-1] + (int(self.window), 2 * p), dtype=x.dtype,
                          device=x.device)
        return x, buf

    def _forecast(self, state, n_steps, ctx, rng):
        return ctx.system.forecast(state[0], ctx.dt, n_steps), state[1]

    def _analyze(self, state, k, ctx, rng):
        x_b, buf = state
        y = ctx.innovation_data(k)
        m = ctx.mask[k].to(y.dtype).expand_as(y)
        window = torch.cat([buf[..., 1:, :], torch.cat([y * m, m], -1).unsqueeze(-2)], -2)
        if getattr(self, "net_", None) is None:  # round 0 of fit: the 3D-Var teacher
            x_a, _ = gauss_newton_analysis(x_b, self._B0, k, ctx, n_outer=3)
        else:
            x_a = self._network_analysis(window, x_b, y, m)
        if hasattr(self, "_record"):
            self._record.append({"window": window, "background": x_b, "obs": y, "mask": m,
                                 "innovation": (y - ctx.h(x_b)) * m})
        return x_a, window

    def _network_analysis(self, window, x_b, y, m):
        module = self.net_.module_
        was_training = module.training
        module.eval()
        p = next(module.parameters())
        lead = x_b.shape[:-1]
        args = [t.reshape(-1, *t.shape[len(lead):]).to(device=p.device, dtype=p.dtype)
                for t in (window, x_b, y, m)]
        out = module(*args).to(device=x_b.device, dtype=x_b.dtype).reshape(x_b.shape)
        module.train(was_training)
        return out

    def _summarize(self, state):
        return state[0], None, None

    def predict(self, obs, *, callbacks=None):
        """Cycle over ``obs``: model forecast, then the network's analysis, at every time.

        ``callbacks`` as in :meth:`BaseAssimilator.predict`.
        """
        check_is_fitted(self, "net_")
        return super().predict(obs, callbacks=callbacks)

    # ------------------------------------------------------------ persistence
    def save_params(self, f):
        """Write the fitted network and statistics to ``f`` (path or file object).

        Load them into an estimator with the same parameters with
        :meth:`load_params`; the file loads on a CPU-only machine.
        """
        check_is_fitted(self, "net_")
        save_fitted(self, f)

    def load_params(self, f):
        """Restore what :meth:`save_params` wrote (no refit); returns self.

        The file holds pickled Python objects (the system, the operator):
        load only files you trust.
        """
        return load_fitted(self, f, lambda blob: self._make_net(
            _FittedShape(self.system_, self.operator_, self.n_obs_), self.statistics_))


# the network arguments _make_net sets: routed name -> the estimator's own parameter (None:
# from the data or the system)
_SET_BY_FIT = {"module__encoder": "encoder", "module__window": "window",
               "module__n_iterations": "n_iterations", **dict.fromkeys(
                   ("module__n_state", "module__n_obs", "module__obs_index", "module__operator",
                    "module__stats", "module__system", "module__forecast_dt",
                    "module__forecast_steps"))}


def _forecast_interval(ctx, seq_len, window=1):
    """``(dt, model steps)`` between two observation times: of training cycles, and of
    the backward run of the window."""
    gaps = np.unique(ctx.n_steps[1:])
    for name, value in (("seq_len", seq_len), ("window", window)):
        if value > 1 and len(gaps) > 1:
            how = ("keep each missing time, with NaN observations (a whole window of them is "
                   "refused)" if window > 1 else "fit on an evenly spaced part of the record "
                   "(with window=1 a time whose observations are all NaN is refused: the "
                   "network would read nothing there)")
            raise ValueError(f"{name} > 1 needs evenly spaced observation times; these are "
                             f"{sorted(gaps.tolist())} model steps apart: {how}")
    n_times = int(ctx.y.shape[0])
    if seq_len > n_times:
        raise ValueError(f"seq_len={seq_len} is longer than the observation record "
                         f"({n_times} times along 'time')")
    return float(ctx.dt), int(gaps[0]) if len(gaps) else 1


def _check_window_spacing(est, ctx, cycle=True):
    """The window's past observations are compared with the background's trajectory run
    back by the fitted observation interval: other observation times would be compared
    with the wrong states, so they are refused. A ``cycle`` (predict) is refused too with
    ``seq_len > 1``: the network learned the backgrounds of its own cycle at that interval
    (Lorenz-63, trained every 5 steps, observed every 25: cycled RMSE 1.25 against 0.64
    for the network trained at 25)."""
    cycled = cycle and int(est.seq_len) > 1
    if (int(est.window) <= 1 and not cycled) or ctx.n_steps.shape[0] < 2:
        return
    dt, steps = est.forecast_interval_
    gaps = np.unique(ctx.n_steps[1:])
    if len(gaps) > 1 or int(gaps[0]) != steps or not np.isclose(float(ctx.dt), dt):
        why = ("runs its window back by that interval" if int(est.window) > 1 else
               f"learned the backgrounds of its cycle at that interval (seq_len={est.seq_len})")
        raise ValueError(
            f"NeuralVar3D was fitted on observations {steps} model steps of {dt:g} apart and "
            f"{why}; these are {sorted(gaps.tolist())} steps "
            f"of {float(ctx.dt):g} apart (observe at the fitted interval, keeping a missing "
            "time with NaN observations, or refit)")


def _check_observed_sites(est, ctx):
    """Refuse a site that the training observations never observed (its scale had no
    data: it was 1e-6, and the network read its innovations 1e6 times too large)."""
    count = est.statistics_.get("obs_count")  # absent from files saved before 2026-12-07
    check_observed_sites(ctx, None if count is None else np.asarray(count) > 0)


def _restart_schedule(net, lr, max_epochs):
    """A fresh cosine schedule for another round (``partial_fit``): from ``lr`` to 1e-5.

    skorch continues a scheduler from the epochs in the net's history, and
    ``CosineAnnealingLR`` is periodic past ``T_max``: round 2 rose from 1e-5 back to ``lr``.
    """
    for group in net.optimizer_.param_groups:  # the optimizer's state (Adam's moments) stays
        group["lr"] = group["initial_lr"] = float(lr)
    schedule = cosine_annealing(max_epochs)
    schedule = type(schedule)(**schedule.get_params(), last_epoch=-1)  # not from the history
    schedule.initialize()
    net.set_params(callbacks__lr_schedule=schedule)


def _check_noise(est, ctx):
    """The observation error std must be the fitted one: the network's 3D-Var step and
    its variational loss weigh the innovations by the noise frozen at fit."""
    fitted = np.asarray(est.statistics_["noise_std"], dtype=float)
    given = ctx.obs_std.cpu().numpy()
    if given.shape != fitted.shape or not np.allclose(given, fitted, rtol=1e-6, atol=0.0):
        raise ValueError(f"NeuralVar3D was fitted with observation error std "
                         f"{np.unique(fitted.round(6)).tolist()}; these observations' are "
                         f"{np.unique(given.round(6)).tolist()} (its 3D-Var step weighs by the "
                         "fitted noise): refit at this noise")


class _FittedShape:
    """The parts of a cycle context :meth:`NeuralVar3D._make_net` reads, from fitted attrs."""

    def __init__(self, system, operator, n_obs):
        self.system, self.operator = system, operator
        self.n_state = system.n_state
        self.mask = torch.ones(1, n_obs, dtype=torch.bool)


class _NeuralVarNet(XdynNet):
    """XdynNet whose loss is the 3D-Var cost or the supervised analysis error."""

    def __init__(self, module, *args, loss_kind="supervised", single_analysis_weight=0.0,
                 cycle_loss="absolute", **kwargs):
        super().__init__(module, *args, **kwargs)
        self.loss_kind = loss_kind
        self.single_analysis_weight = single_analysis_weight
        self.cycle_loss = cycle_loss

    def _own_background_relative(self, analyses, truth, X):
        """Squared error of every analysis of a cycle over that of its own background
        (the forecast of the cycle's previous analysis; the given one first), per sample
        and time. The backgrounds are constants of the loss, not differentiated."""
        module = self.module_
        with torch.no_grad():
            later = module.system.forecast(analyses[:, :-1].detach(), module.forecast_dt,
                                           int(module.forecast_steps))
            backgrounds = torch.cat([X["background"].to(analyses).unsqueeze(1), later], 1)
        # a floor far below any error a cycle reaches (1e-4 of the mean B_gain variance)
        return self._relative_error(analyses, truth, backgrounds, floor_factor=1e-4)

    def _relative_error(self, analysis, truth, background, floor_factor=1e-2):
        """Squared analysis error over the background's, per sample (floored at
        ``floor_factor`` times the mean ``B_gain`` variance)."""
        e_b = ((background.to(analysis) - truth) ** 2).mean(-1)
        floor = floor_factor * (self.module_.corr_scale**2).mean()
        return ((analysis - truth) ** 2).mean(-1) / (e_b + floor)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        if self.loss_kind == "var":
            return var_cost(self.module_, y_pred, X)
        # squared analysis error relative to the sample's background error: the
        # training backgrounds span two decades of error, and a plain MSE would
        # leave the small errors of a running cycle to chance
        y_true = y_true.to(y_pred)
        if y_true.dim() == 3:
            # a training cycle: the plain squared error of every analysis. Relative to
            # the first background's error (as below), the cycles that start almost at
            # the truth dominate, and the network never learns to recover from a far
            # start: cycled from the prior, Lorenz-63 observed as x with noise 1, it
            # stayed at 4.5-4.8 against 0.39-0.44 with this loss (seq_len 10). The first
            # analysis of each cycle is a single analysis of an independent background:
            # its relative error, weighted, keeps that skill (plain alone, single
            # analyses ended 1-5% worse than their backgrounds)
            first = self._relative_error(y_pred[:, 0], y_true[:, 0], X["background"]).mean()
            plain = ((y_pred - y_true) ** 2).mean()
            if self.cycle_loss == "relative":
                plain = plain + self._own_background_relative(y_pred, y_true, X).mean()
            return plain + self.single_analysis_weight * first
        return self._relative_error(y_pred, y_true, X["background"]).mean()
