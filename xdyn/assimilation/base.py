"""The assimilator contract: ``fit``, ``predict``, ``score`` and the hooks a method implements.

An assimilator is a scikit-learn estimator (see ``DESIGN.md``: Estimators):
``fit(obs, truth=None)`` checks the parameters and the observations once and
learns what the method learns, ``predict(obs)`` runs the forecast-analysis
cycle (:func:`xdyn.assimilation._cycle.run_cycle`) over an observation Dataset
made by :func:`xdyn.observe.observe` with the fitted system and operator, and
``score(obs, truth)`` is minus the time-averaged analysis RMSE.

A method implements five hooks on its own ``state`` (a mean tensor, an
ensemble tensor, a mean and covariance ...): ``_fit(ctx, truth)``,
``_initialize(ctx, rng)``, ``_forecast(state, n_steps, ctx, rng)``,
``_analyze(state, k, ctx, rng)`` and ``_summarize(state)``; a windowed method
(4D-Var) also ``_windows`` and ``_window_summaries``. Every tensor carries
arbitrary leading *batch* dims, which come from the observation Dataset's dims
other than ``time`` and ``obs`` (independent experiments run in one batched
call).
"""

from __future__ import annotations

import json
import time as _time
import warnings
from contextlib import nullcontext
from numbers import Real

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from xdyn._registry import Registry
from xdyn._threads import threads_for
from xdyn._units import common_units
from xdyn.assimilation._cycle import (CycleCallback, CycleContext, DivergenceMonitor, LostTrackMonitor,
                                      LostTrackWarning, ProgressBar, Recorder, run_cycle)
from xdyn.assimilation._start import initial_ensemble_tensor
from xdyn.assimilation._validation import FiniteInterval, HasMethods, NumericArray
from xdyn.assimilation.climatology import _check_symmetric
from xdyn.metrics import analysis_rmse, mean_after_burn_in, state_rmse
from xdyn.model_selection import unwrap
from xdyn.observe import Identity, ObservationOperator, make_operator, operator_from_spec
from xdyn.systems.climatology import climatological_pool, climatological_sample
from xdyn.systems.registry import system_from_attrs

# state_rmse, mean_after_burn_in and analysis_rmse live in xdyn.metrics; they are
# re-exported here for code written against their old home.
__all__ = ["BaseAssimilator", "CycleContext", "LostTrackWarning", "analysis_rmse", "state_rmse",
           "mean_after_burn_in"]

# Every assimilator that declares a ``name``, filled by BaseAssimilator.__init_subclass__
ASSIMILATORS = Registry("assimilation method")


class BaseAssimilator(BaseEstimator):
    """Base class for assimilators (not to be used directly).

    Parameters
    ----------
    system : DynamicalSystem or None
        Forecast model. ``None`` rebuilds the system recorded in the observation
        attrs (a twin experiment's perfect model).
    operator : ObservationOperator, spec or None
        ``None`` rebuilds the operator recorded in the observation attrs; an
        operator that differs from the recorded one is an error.
    noise_std : float, 1-D array of length n_obs, or None
        Observation error standard deviation; ``None`` reads the ``noise_std``
        variable of the observations (or uses ``R``).
    R : array of shape (n_obs, n_obs) or None
        Full observation error covariance, instead of ``noise_std``: giving
        both is an error.
    dt : float or None
        Model step (> 0); ``None`` uses the ``dt`` attr of the observations,
        else the system's default.
    initial_state : array of shape (n_state,) or None
        Mean of the initial background. ``None``: the system's climatology
        (independent states of its invariant measure for an ensemble, their
        mean for a single background), what a user without the truth has.
        The initial background (this, an ``initial_ensemble``, or the
        climatological start) is taken as valid at the *first observation
        time*, which is analysed with no forecast before it, whatever model
        time that is. A state valid earlier (the truth at ``t = 0`` when the
        observations start at ``t = 0.15``) is not forecast to it: prepend an
        all-NaN observation time at its time (a free forecast from there), or
        start from the state at the first observation time.
    initial_spread : float >= 0
        Standard deviation of the initial background error around
        ``initial_state`` (unused with the climatological start).
    burn_in : float >= 0
        Model time excluded from :meth:`score`.
    raise_on_divergence : bool
        Raise :class:`xdyn.DivergenceError` when the analysis becomes
        non-finite or the filter is no better than climatology. With False,
        the output says so instead (a ``lost`` flag per time, the attrs
        ``diverged``, ``diverged_time``, ``lost_track``, ``lost_track_time``)
        and a :class:`LostTrackWarning` is issued.

    Attributes
    ----------
    system_ : DynamicalSystem
        The forecast model used by :meth:`predict`.
    operator_ : ObservationOperator
        The observation operator used by :meth:`predict`.
    n_obs_ : int
        Observations per time.
    n_state_ : int
        Size of the flat state.

    Notes
    -----
    Parameters are checked once, in :meth:`fit`, against
    ``_parameter_constraints`` (scikit-learn's mechanism; subclasses extend
    this class's dict); checks that need the observations (shapes, batch dims,
    the recorded operator) are made there too. The output of :meth:`predict`
    always has ``n_assimilated``, the number of observations assimilated at
    each time (0 where every observation is missing: the filter runs free).

    Batch dims: the experiments of a batch (the observation dims other than
    ``time`` and ``obs``) share one cycle. A failure of one of them (a
    non-finite analysis, a ``LinAlgError``) ends the cycle for all: with
    ``raise_on_divergence=False`` every element is NaN and flagged ``lost``
    from that time on, and ``diverged`` is one attr for the batch. Run an
    element that fails on its own (:func:`xdyn.experiments.sweep.sweep` reruns
    its NaN cells itself, by bisection). They also share one random stream
    (``random_state``): an element's draws (initial members, perturbations,
    noise), hence its analysis, depend on the other elements of the batch and
    on its size. A batched run is statistically equivalent to separate runs,
    not equal to them; the same seed and the same batch give the same result.

    A missing observation is NaN; its ``noise_std`` may be NaN too (as
    ``obs.where(cond)`` leaves it). The batch is cycled at once with one set of
    observed sites per time, so an observation missing in one batch element
    must be missing in all of them at that time; per-trajectory patterns
    (``observe(..., missing_fraction=...)`` on several trajectories) are
    refused, with the two ways round it in the message.

    Dask: unlike metrics and preprocessing, which stay lazy, an assimilator
    computes. The forecast-analysis cycle is sequential (each analysis starts
    from the previous one), so :meth:`fit` and :meth:`predict` read chunked
    observations into memory and return a numpy-backed analysis, equal to the
    one numpy observations give. Select the time window first (``obs.sel(time=...)``)
    to bound memory; independent experiments can be batched along another dim.

    Examples
    --------
    A new method implements the hooks on its own state. Nudging relaxes the
    forecast towards the observations, ``x + gain H^T (y - H x)`` (a linear
    operator; missing observations get no weight); its state is the mean:

    >>> from numbers import Real
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz63
    >>> class Nudging(BaseAssimilator):
    ...     _parameter_constraints = {**BaseAssimilator._parameter_constraints, "gain": [Real]}
    ...     def __init__(self, system=None, *, gain=0.5, operator=None, noise_std=None, R=None,
    ...                  dt=None, initial_state=None, initial_spread=1.0, burn_in=0.0,
    ...                  return_background=False, raise_on_divergence=True,
    ...                  random_state=None, progress=False):
    ...         self.system, self.gain, self.operator = system, gain, operator
    ...         self.noise_std, self.R, self.dt = noise_std, R, dt
    ...         self.initial_state, self.initial_spread = initial_state, initial_spread
    ...         self.burn_in, self.return_background = burn_in, return_background
    ...         self.raise_on_divergence, self.random_state = raise_on_divergence, random_state
    ...         self.progress = progress
    ...     def _initialize(self, ctx, rng):
    ...         return self._initial_mean(ctx, rng)  # initial_state, else the climatological mean
    ...     def _forecast(self, state, n_steps, ctx, rng):
    ...         return ctx.system.forecast(state, ctx.dt, n_steps)
    ...     def _analyze(self, state, k, ctx, rng):
    ...         innovation = ctx.mask[k] * (ctx.innovation_data(k) - ctx.h(state))
    ...         return state + self.gain * innovation @ ctx.jacobian_h(state)
    ...     def _summarize(self, state):
    ...         return state, None, None  # mean, no ensemble, no spread
    >>> truth = Lorenz63().simulate(n_steps=1000, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=1.0, every=5, random_state=1)
    >>> nudging = Nudging(gain=0.5).fit(obs)
    >>> nudging.system_, nudging.n_state_, nudging.n_obs_
    (Lorenz63(), 3, 3)
    >>> analysis = nudging.predict(obs)
    >>> sorted(analysis.data_vars)
    ['lost', 'n_assimilated', 'x', 'y', 'z']
    >>> bool(-nudging.score(obs, truth) < 1.0)  # below the observation error
    True
    >>> Nudging(gain="strong").fit(obs)
    Traceback (most recent call last):
    ...
    sklearn.utils._param_validation.InvalidParameterError: The 'gain' parameter of Nudging must be ... Got 'strong' instead.
    """

    _parameter_constraints: dict = {
        "system": [HasMethods(["forecast", "to_state", "from_state"]), None],
        "operator": [HasMethods(["n_obs", "indices"]), str, dict, list, tuple, None],
        "noise_std": [FiniteInterval(Real, 0, None, closed="neither"),
                      NumericArray((1,), positive=True), None],
        "R": [NumericArray((2,)), None],
        "dt": [FiniteInterval(Real, 0, None, closed="neither"), None],
        "initial_state": [NumericArray((1, 2, 3, 4)), None],
        "initial_spread": [FiniteInterval(Real, 0, None, closed="left")],
        "burn_in": [FiniteInterval(Real, 0, None, closed="left")],
        "return_background": ["boolean"],
        "raise_on_divergence": ["boolean"],
        "random_state": ["random_state"],
        "progress": ["boolean"],
    }

    # A subclass that declares ``name`` (and optionally ``aliases``) in its own body is
    # registered when defined: ``make_assimilator(name)`` and ``obs.xdyn.assimilate(name)``
    # find it. Intermediate bases declare no name and stay out.
    aliases: tuple = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        ASSIMILATORS.add(cls)

    _no_grad = True     # the cycle runs without autograd (Var4D differentiates its cost)
    _windowed = False   # True: ``_analyze`` gets a window (list of time indices)
    # A sequential filter: each analysis depends on every observation before it, so
    # xdyn.model_selection.warm_start_score scores a fold along time after a run over the
    # record from its start (estimators without this marker are scored by their own score)
    _sequential_filter = True
    # what the analysis std (``<name>_std``, ``spread``) is the std of: the ensemble's,
    # a filter's propagated covariance, or a static B's (constant in time, not measured)
    _spread_source = "ensemble"
    # Lost-track monitor settings (see xdyn.assimilation._cycle.LostTrackMonitor)
    lost_track_window = 100
    lost_track_threshold = 0.5
    lost_track_min_cycles = 40

    # ------------------------------------------------------------------ API
    def fit(self, obs, truth=None):
        """Check parameters and observations, learn what the method learns; returns self."""
        self._validate_params()
        ctx = self._context(obs)
        self._check_context(ctx)
        self._fit(ctx, truth)
        self.system_ = ctx.system
        self.operator_ = ctx.operator
        self.n_obs_ = int(ctx.mask.shape[-1])
        self.n_state_ = int(ctx.n_state)
        return self

    def predict(self, obs, *, callbacks=None) -> xr.Dataset:
        """Run the forecast-analysis cycle over ``obs`` and return the analysis Dataset.

        Parameters
        ----------
        obs : xarray.Dataset
            Observations (see :func:`xdyn.observe.observe`).
        callbacks : sequence of CycleCallback, optional
            Run after the built-in ones (recording, divergence and lost-track
            monitors, progress). An instance of a built-in monitor's class
            replaces that monitor: ``callbacks=[LostTrackMonitor(window=200,
            threshold=0.8)]`` judges with other settings.

        Examples
        --------
        >>> from xdyn.assimilation import EnKF, LostTrackMonitor
        >>> from xdyn.observe import observe
        >>> from xdyn.systems import Lorenz63
        >>> truth = Lorenz63().simulate(n_steps=200, burn_in=5, random_state=0)
        >>> obs = observe(truth, "identity", noise_std=1.0, every=10, random_state=1)
        >>> enkf = EnKF(n_members=10, random_state=0).fit(obs)
        >>> out = enkf.predict(obs, callbacks=[LostTrackMonitor(threshold=0.8)])
        >>> int(out.attrs["lost_track"]), sorted(out.data_vars)
        (0, ['lost', 'n_assimilated', 'x', 'y', 'z'])
        """
        check_is_fitted(self, "n_obs_")
        ctx = self._context(obs, fitted=True)
        self._check_context(ctx)
        rng = check_random_state(self.random_state)
        start = _time.perf_counter()
        n_batch = int(np.prod(ctx.batch_shape, dtype=int))
        size = n_batch * ctx.n_state * int(getattr(self, "n_members", 1) or 1)
        callbacks = self._callbacks(ctx, callbacks)
        with threads_for(size), (torch.no_grad() if self._no_grad else nullcontext()):
            run_cycle(self, ctx, rng, callbacks)
        wall = _time.perf_counter() - start
        return self._to_dataset(callbacks, ctx, wall)

    def score(self, obs, truth) -> float:
        """Minus the time-averaged analysis RMSE against ``truth`` (after ``burn_in``).

        On a batch (observations with dims besides ``time`` and ``obs``) the
        squared errors are pooled over the batch elements with the state at
        each time, then the RMSE is averaged over time: one number for the
        batch, not the mean of the elements' own time-averaged RMSEs (what
        :func:`xdyn.experiments.sweep.sweep` reports per element). A parameter
        swept along a batch dim (a 1-D ``inflation``) is pooled over too.
        """
        check_is_fitted(self, "n_obs_")
        truth = unwrap(truth)
        self._check_truth(truth)
        self._check_truth_scores(unwrap(obs), truth)
        return -analysis_rmse(self.predict(obs), truth, burn_in=self.burn_in)

    def _check_truth_scores(self, obs, truth):
        """Refuse a truth that cannot score every analysed time: one lacking an observation
        time, holding NaN there (an all-NaN time made the score NaN, as a diverged filter's;
        an all-NaN variable was left out), or a ``burn_in`` that leaves no time."""
        if "time" not in obs.coords or "time" not in truth.coords:
            return
        times = obs["time"].values
        missing = np.setdiff1d(times, truth["time"].values)
        if missing.size:
            raise ValueError(f"truth lacks {missing.size} of the {times.size} observation "
                             f"times (the first {missing[0]}): score compares the analysis "
                             "with the truth at every observation time")
        if not self.burn_in < float(times[-1] - times[0]) + 1e-12 * max(abs(times[-1]), 1):
            raise ValueError(f"burn_in={self.burn_in} leaves no analysis time to score in "
                             f"the record of {float(times[-1] - times[0])} model time units")
        at = truth.sel(time=times)
        for v in self.system_.variables:
            bad = int((~np.isfinite(at[v.name])).any([d for d in at[v.name].dims
                                                       if d != "time"]).sum())
            if bad:
                raise ValueError(f"truth variable {v.name!r} holds NaN or inf at {bad} of the "
                                 f"{times.size} observation times: score needs a finite truth")

    # ------------------------------------------------------------ hooks
    def _fit(self, ctx: CycleContext, truth):
        """Learn from observations (and truth); nothing by default."""

    def _check_context(self, ctx: CycleContext):
        """Checks of parameters against the observations (batch dims ...); at fit and predict."""

    def _initialize(self, ctx: CycleContext, rng):
        raise NotImplementedError

    def _forecast(self, state, n_steps: int, ctx: CycleContext, rng):
        raise NotImplementedError

    def _analyze(self, state, k, ctx: CycleContext, rng):
        raise NotImplementedError

    def _summarize(self, state):
        """Return ``(mean, ensemble_or_None, std_or_None)`` tensors of the state."""
        raise NotImplementedError

    def _windows(self, ctx: CycleContext):
        """Observation-time indices analysed together: one per window for a filter."""
        return ([k] for k in range(len(ctx.times)))

    def _window_summaries(self, state, ks, ctx: CycleContext, background: bool):
        """Summaries at each time of a window (a filter's window is its one time)."""
        return [self._summarize(state)]

    def _uses_forecast_background(self) -> bool:
        """False for methods whose background is not a model forecast (no misfit check)."""
        return True

    def _callbacks(self, ctx: CycleContext, extra=None):
        """The cycle callbacks of one run: recording, monitors, progress, then ``extra``.

        The first three are always a Recorder, a DivergenceMonitor and a
        LostTrackMonitor (``_to_dataset`` reads them); a user's instance of
        one of the built-in classes takes its place.
        """
        raise_ = bool(self.raise_on_divergence)
        callbacks = [Recorder(background=bool(self.return_background)),
                     DivergenceMonitor(raise_),
                     LostTrackMonitor(raise_, self.lost_track_window, self.lost_track_threshold,
                                      self.lost_track_min_cycles)]
        if getattr(self, "progress", False):
            callbacks.append(ProgressBar())
        for cb in list(extra or ()):
            if not isinstance(cb, CycleCallback):
                raise TypeError(f"callbacks must be CycleCallback instances; got "
                                f"{type(cb).__name__}")
            same = [i for i, c in enumerate(callbacks) if type(c) is type(cb)
                    and isinstance(cb, (Recorder, DivergenceMonitor, LostTrackMonitor, ProgressBar))]
            if same:
                callbacks[same[0]] = cb
            else:
                callbacks.append(cb)
        return callbacks

    # ------------------------------------------------------------ inputs
    def _context(self, obs, fitted=False) -> CycleContext:
        obs = unwrap(obs)
        if isinstance(obs, xr.Dataset):
            if "observation" not in obs:
                raise ValueError(
                    "observation Dataset needs an 'observation' variable (see xdyn.observe); "
                    f"it has {list(obs.data_vars)}"
                )
            da = obs["observation"]
        elif isinstance(obs, xr.DataArray):
            da, obs = obs, obs.to_dataset(name="observation")
        else:
            raise TypeError(
                f"{type(self).__name__} expects an observation Dataset/DataArray, got "
                f"{type(obs).__name__}"
            )
        for d in ("time", "obs"):
            if d not in da.dims:
                raise ValueError(f"observations need dims ('time', 'obs'); got {da.dims}")
        if da.sizes["time"] == 0:
            raise ValueError("observations have no time: the 'time' dim has size 0")
        if "time" not in da.coords:  # a bare dim reads as 0, 1, 2, ...: one model time apart
            raise ValueError("observations need a 'time' coordinate (their model times)")
        if "member" in da.dims and hasattr(self, "n_members"):
            raise ValueError("observations with a batch dim named 'member' (an ensemble "
                             "truth's?) clash with the filter's own members; rename it")
        batch_dims = tuple(d for d in da.dims if d not in ("time", "obs"))
        da = da.transpose("time", *batch_dims, "obs")
        attrs = {**obs.attrs, **da.attrs}
        system, operator = self._system_and_operator(attrs, fitted, da)
        n_obs = operator.n_obs(system)
        if n_obs != da.sizes["obs"]:
            raise ValueError(
                f"operator {operator!r} makes {n_obs} observations of {type(system).__name__}, "
                f"but the Dataset has obs dim of size {da.sizes['obs']}"
            )
        self._check_operator_matches(operator, system, attrs, da)
        times = np.asarray(da["time"].values)
        if not np.issubdtype(times.dtype, np.number):
            raise TypeError("assimilation needs a numeric model-time 'time' coordinate")
        stored, times = times.dtype, times.astype(float)
        if np.any(np.diff(times) <= 0):
            raise ValueError("observation times must be strictly increasing")
        dt = self.dt if self.dt is not None else attrs.get("dt", system.default_dt)
        dt = float(dt)
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive finite model step, got {dt} (from the "
                             "dt parameter, the observations' 'dt' attr or the system)")
        gaps = np.diff(times) / dt
        n_steps = np.concatenate([[0], np.rint(gaps)]).astype(int)
        # times stored in float32 (a file's) are off their grid by its rounding: 1e-4 steps
        # at t = 30 with dt = 0.01
        resolution = np.finfo(stored if np.issubdtype(stored, np.floating) else float).eps
        tolerance = max(1e-6, 4 * resolution * float(np.abs(times).max(initial=0.0)) / dt)
        if np.any(np.abs(gaps - n_steps[1:]) > tolerance):
            raise ValueError(f"observation times are not multiples of the model step dt={dt}")
        y = system.as_tensor(np.asarray(da.values, dtype=float))
        if bool(torch.isinf(y).any()):  # NaN marks a missing observation, inf is bad data
            raise ValueError("observations hold inf values; mark missing ones with NaN")
        finite = torch.isfinite(y)
        mask = finite.reshape(finite.shape[0], -1, finite.shape[-1])
        if not bool((mask == mask[:, :1]).all()):
            _refuse_missing_per_batch_element(mask, batch_dims)
        mask = mask[:, 0]
        if not bool(mask.any()):
            warnings.warn(f"{type(self).__name__}: every observation is missing (NaN); the "
                          "model runs free (see the 'n_assimilated' output)", UserWarning,
                          stacklevel=3)
        obs_std, R_chol = self._noise(obs, n_obs, system)
        batch_coords = {d: da[d] for d in batch_dims if d in da.coords}
        return CycleContext(system, operator, times, n_steps, dt, y, mask, obs_std, R_chol,
                            batch_dims, batch_coords, da)

    def _system_and_operator(self, attrs, fitted, da):
        if fitted:
            system, operator = self.system_, self.operator_
        else:
            system = self.system if self.system is not None else system_from_attrs(attrs)
            if self.operator is not None:
                operator = make_operator(self.operator)
            elif "operator" in attrs:
                operator = operator_from_spec(attrs["operator"])
            else:
                raise ValueError("no operator given and none recorded in the observation attrs")
        if "system" in attrs and attrs["system"] != type(system).__name__:
            raise ValueError(f"system {type(system).__name__} does not match the system "
                             f"{attrs['system']!r} recorded in the observations")
        return system, operator

    @staticmethod
    def _check_operator_matches(operator, system, attrs, da):
        """The operator must observe what the observations observed (else: wrong sites)."""
        mismatch = None
        expected = operator.obs_coords(system)

        def along_obs(name):
            return name in da.coords and da.coords[name].dims == ("obs",)

        # observe() writes a spatial dim's physical coordinate values along ``obs``
        # (x in metres on a 2 pi grid) and the grid position as ``<dim>_index``;
        # the operator's coordinates are grid positions, so compare those
        shared = {c: f"{c}_index" if along_obs(f"{c}_index") else c
                  for c in expected if c != "obs" and (along_obs(c) or along_obs(f"{c}_index"))}
        if shared:  # compare where each observation is, by its coordinates
            for c, name in shared.items():
                want = np.asarray(expected[c][1])
                got = np.asarray(da.coords[name].values)
                if name.endswith("_index"):  # no position: NaN (-1 in files before 2026-12-08)
                    want, got = _positions(want), _positions(got)
                if want.shape != got.shape or not np.array_equal(want.astype(str),
                                                                 got.astype(str)):
                    mismatch = f"its {c!r} coordinates are {want.tolist()[:8]}, the data's "\
                               f"{got.tolist()[:8]}"
                    break
            if mismatch is not None:  # the right sites in another order: say so, not "operator"
                _refuse_sites_in_another_order(operator, expected, shared, da)
            # the same positions on a grid stored in another order (a descending axis) are
            # other places: the data's labels must be the system's at those positions
            grid = system.coords()
            for c in shared:
                if mismatch is None and c in grid and along_obs(c) and along_obs(f"{c}_index"):
                    labels = grid[c][1] if isinstance(grid[c], tuple) else grid[c]
                    # NaN: a variable without that dim (two-scale Lorenz-96's slow x has no j),
                    # already matched as an index above; not a position on the grid
                    pos = _positions(expected[c][1])
                    keep = np.isfinite(pos)
                    want = np.asarray(labels)[pos[keep].astype(int)]
                    got = np.asarray(da.coords[c].values)[keep]
                    # equal up to float32 rounding (a truth read back from a file) is equal
                    if not np.allclose(want.astype(float), got.astype(float), rtol=1e-6,
                                       atol=1e-9 * float(np.abs(want).max(initial=1.0))):
                        raise ValueError(
                            f"the observations' {c!r} labels are {got.tolist()[:8]} where "
                            f"{type(system).__name__}'s grid has {want.tolist()[:8]}: they were "
                            "made from a grid in another order; sort it (sortby) first")
            # the same sites, but the recorded operator may transform them (x^2, arctan, a
            # scaling): the coordinates cannot tell, the nonlinear part of the spec can
            if mismatch is None and attrs.get("operator") is not None:
                try:
                    recorded = operator_from_spec(attrs["operator"])
                except (KeyError, TypeError, ValueError):
                    recorded = None  # an operator class not registered here: nothing to compare
                if recorded is not None and _transforms(recorded) != _transforms(operator):
                    mismatch = (f"the observations were made by {attrs['operator']}, which "
                                "transforms the observed sites otherwise")
        elif attrs.get("operator") is not None:
            if _spec(attrs["operator"]) != _spec(operator.spec()):
                mismatch = f"the observations were made by {attrs['operator']}"
        if mismatch is not None:
            raise ValueError(
                f"operator {operator.spec()} does not match the observations ({mismatch}); it "
                "would assimilate them at the wrong places. Pass operator=None to use the "
                "operator recorded in their attrs")

    def _noise(self, obs, n_obs, system):
        if self.R is not None and self.noise_std is not None:
            raise ValueError("give noise_std or R, not both (R would be used and noise_std "
                             "ignored)")
        if self.R is not None:
            R = np.asarray(self.R, dtype=float)
            if R.shape != (n_obs, n_obs):
                raise ValueError(f"R must have shape ({n_obs}, {n_obs}), got {R.shape}")
            _check_symmetric(R, "R")  # Cholesky would read one triangle only
            var = np.diag(R)
            if np.any(var <= 0):
                raise ValueError("R must have a positive diagonal")
            # diagonal: every correlation R_ij / sqrt(R_ii R_jj) below 1e-12 (rounding), judged
            # relative to the variances, not absolutely: R in small units (humidity in kg/kg,
            # variances 1e-8) keeps its correlations
            if np.all(np.abs(R - np.diag(var)) <= 1e-12 * np.sqrt(np.outer(var, var))):
                return system.as_tensor(np.sqrt(var)), None
            try:  # (R + R^T) / 2 is R itself when R is exactly symmetric
                return None, torch.linalg.cholesky(system.as_tensor(0.5 * (R + R.T)))
            except torch.linalg.LinAlgError as err:
                raise ValueError("R must be symmetric positive definite") from err
        if self.noise_std is not None:
            std = np.asarray(self.noise_std, dtype=float)
            if std.ndim == 1 and std.shape[0] != n_obs:
                raise ValueError(f"noise_std has {std.shape[0]} entries; the operator makes "
                                 f"{n_obs} observations (give a scalar or one per obs)")
            std = np.broadcast_to(std, (n_obs,))
        elif "noise_std" in obs:
            std = _recorded_noise(obs, n_obs)
        else:
            raise ValueError("give noise_std or R: the observations do not record their noise")
        if np.any(std <= 0) or not np.all(np.isfinite(std)):
            raise ValueError(f"noise_std must be positive and finite, got {std}")
        return system.as_tensor(np.array(std)), None

    def _check_batch_param(self, name, value, ctx):
        """A 1-D parameter array sweeps over the first batch dim: their sizes must match."""
        value = np.asarray(value)
        if value.ndim == 0:
            return
        if not ctx.batch_dims:
            raise ValueError(
                f"{name} has {value.shape[0]} values, but the observations have no batch dim "
                "to sweep it over (a 1-D value sweeps the first dim other than time and obs)")
        first = ctx.batch_dims[0]
        if value.shape[0] != ctx.y.shape[1]:
            raise ValueError(
                f"{name} has {value.shape[0]} values, but the first batch dim {first!r} of "
                f"the observations has size {ctx.y.shape[1]}")

    def _check_truth(self, truth):
        if not isinstance(truth, xr.Dataset):
            raise TypeError(f"truth must be a state Dataset, got {type(truth).__name__}")
        name = type(self.system_).__name__
        if "system" in truth.attrs and truth.attrs["system"] != name:
            raise ValueError(f"truth is a {truth.attrs['system']} run; {type(self).__name__} "
                             f"assimilates {name}")
        for v in self.system_.variables:
            if v.name not in truth:
                raise ValueError(f"truth lacks the state variable {v.name!r} of {name}")
            for d, size in zip(v.dims, v.shape):
                if truth[v.name].sizes.get(d) != size:
                    raise ValueError(
                        f"truth variable {v.name!r} has {d}={truth[v.name].sizes.get(d)}; "
                        f"{name} has {d}={size}: truth of another system")

    def _initial_ensemble(self, ctx, rng, n_members) -> torch.Tensor:
        """``(*batch, n_members, n_state)``: the given ensemble, ``initial_state`` plus
        ``initial_spread`` noise, or independent climatological states (the default)."""
        given = getattr(self, "initial_ensemble", None)
        if given is not None:
            return initial_ensemble_tensor(given, ctx, n_members)
        if self.initial_state is None:
            # pre-analysed at the first observed time, after the background is recorded
            ctx.preanalysis_pending = bool(self._preanalysis)
            return self._climatological_members(ctx, n_members, rng)
        mean = self._initial_mean(ctx, rng)
        noise = ctx.system.as_tensor(
            rng.standard_normal(tuple(mean.shape[:-1]) + (n_members, ctx.n_state)))
        return mean.unsqueeze(-2) + float(self.initial_spread) * noise

    # whether a climatological ensemble start assimilates its first observations with
    # the whole climatology first (_climatological_update), splitting their weight:
    # 1/(2R) there, 1/(2R) in the method's own analysis at that time (obs_error_scale)
    _preanalysis = False

    def _before_analysis(self, state, k, ctx, rng):
        """The state the analysis at ``k`` starts from, once the background is recorded.

        ``state`` itself, except at the first observed time of a climatological
        ensemble start: the pre-analysis acts there (:meth:`_preanalyze`), after
        the cycle has recorded ``state`` as the background (the prior).
        """
        return self._preanalyze(state, k, ctx, rng) if ctx.preanalysis_pending else state

    def _preanalyze(self, E, k, ctx, rng):
        """The climatological pre-analysis at the first time ``k`` with observations."""
        if ctx.preanalysis_pending and bool(ctx.mask[k].any()):
            ctx.preanalysis_pending = False
            ctx.obs_error_scale[k] = 2.0  # this update and the method's analysis at k
            return self._climatological_update(E, k, ctx, rng)
        return E

    def _climatological_update(self, E, k, ctx, rng):
        """Members ``E`` updated with the observations at ``k`` (weight ``1/(2R)``) and
        the whole climatology as prior; the methods with ``_preanalysis`` define it."""
        raise NotImplementedError

    def _climatological_members(self, ctx, n_members, rng) -> torch.Tensor:
        """``(*batch, n_members, n_state)`` independent states of the invariant measure."""
        members = climatological_sample(ctx.system, ctx.batch_shape + (int(n_members),),
                                        ctx.dt, rng)
        return ctx.system.as_tensor(members)

    def _climatology(self, ctx):
        """Mean ``(n_state,)`` of the cached climatological pool and its covariance factor.

        The factor ``A`` ``(n_pool, n_state)`` has ``A.T @ A`` = the pool covariance; it
        is never formed as an ``n_state x n_state`` matrix (a 64x64 two-field state
        would make that 0.5 GB).
        """
        pool = ctx.system.as_tensor(climatological_pool(ctx.system, ctx.dt))
        mean = pool.mean(0)
        return mean, (pool - mean) / (pool.shape[0] - 1) ** 0.5

    def _initial_mean(self, ctx: CycleContext, rng) -> torch.Tensor:
        batch_shape = ctx.batch_shape
        if self.initial_state is not None:
            x0 = np.asarray(self.initial_state, dtype=float)
            if x0.shape[-1] != ctx.n_state:
                raise ValueError(f"initial_state must have n_state={ctx.n_state} entries, "
                                 f"got shape {x0.shape}")
            try:
                x0 = np.broadcast_to(x0, batch_shape + (ctx.n_state,))
            except ValueError as err:
                raise ValueError(f"initial_state of shape {x0.shape} does not broadcast to the "
                                 f"batch shape {batch_shape} of the observations") from err
            return ctx.system.as_tensor(x0.copy())
        mean, _ = self._climatology(ctx)
        return mean.expand(batch_shape + (ctx.n_state,)).clone()

    # ------------------------------------------------------------ outputs
    def _to_dataset(self, callbacks, ctx: CycleContext, wall: float) -> xr.Dataset:
        recorder, divergence, lost = callbacks[0], callbacks[1], callbacks[2]
        system = ctx.system
        time_coord = ctx.obs["time"]
        coords = {"time": time_coord, **ctx.batch_coords}
        lead = ("time",) + ctx.batch_dims
        out = self._stack(recorder.analysis, system, lead, coords, suffix="")
        if self.return_background and recorder.backgrounds:
            bg = self._stack(recorder.backgrounds, system, lead, coords, suffix="_background")
            out = out.merge(bg)
        out["n_assimilated"] = ("time", ctx.mask.sum(-1).cpu().numpy().astype(np.int64),
                                {"long_name": "number of observations assimilated",
                                 "units": "1"})
        flags = lost.lost.copy()
        if divergence.time is not None:
            k = int(np.searchsorted(ctx.times, divergence.time))
            flags[k:] = True
        out["lost"] = (lead, flags, {
            "long_name": "filter no better than climatology (lost track) or diverged",
            "flag_values": "0 1", "flag_meanings": "ok lost"})
        out.attrs.update(system.describe())
        out.attrs.update({
            "method": type(self).__name__,
            "method_params": json.dumps(_params_for_attrs(self), sort_keys=True, default=str),
            "operator": ctx.operator.spec(),
            "dt": ctx.dt,
            "wall_time_s": wall,
            "diverged": int(divergence.time is not None),
            "diverged_time": np.nan if divergence.time is None else divergence.time,
            "lost_track": int(lost.lost_time is not None),
            "lost_track_time": np.nan if lost.lost_time is None else lost.lost_time,
        })
        return out

    def _stack(self, summaries, system, lead, coords, suffix):
        mean = torch.stack([s[0] for s in summaries])
        ens = summaries[0][1]
        std = summaries[0][2]
        ds = system.from_state(mean, dims=lead, coords=coords)
        if ens is not None and getattr(self, "return_ensemble", False):
            ens = torch.stack([s[1] for s in summaries])
            ds = system.from_state(ens, dims=lead + ("member",), coords=coords)
        elif std is not None:
            std = torch.stack([s[2] for s in summaries])
            sd = system.from_state(std, dims=lead, coords=coords)
            source = self._spread_source
            for name in list(sd.data_vars):
                ds[f"{name}_std"] = sd[name].assign_attrs(
                    long_name=f"standard deviation of {name} ({source})")
            spread = torch.sqrt((std**2).mean(-1)).cpu().numpy()
            ds["spread"] = (lead, spread, {"long_name": f"rms std over the state ({source})",
                                           "units": common_units(
                                               [v.attrs.get("units") for v in system.variables],
                                               unstated="1")})
        ds.attrs = {}
        if suffix:  # the background: its own label, not the analysis' one
            for v in ds.data_vars:  # a new dict: from_state may share the system's
                ds[v].attrs = {**ds[v].attrs, "long_name": "background (forecast) "
                               + ds[v].attrs.get("long_name", v)}
            ds = ds.rename({v: (f"{v[:-4]}{suffix}_std" if v.endswith("_std") else f"{v}{suffix}")
                            for v in ds.data_vars})
        return ds


def _positions(values):
    """Grid positions as floats, NaN where an observation has none (a variable without that
    dim: NaN since 2026-12-08, -1 in observations made before)."""
    pos = np.asarray(values, dtype=float)
    return np.where(pos >= 0, pos, np.nan)


def _refuse_sites_in_another_order(operator, expected, shared, da):
    """Raise if the observations hold the operator's sites, each once, in another order.

    ``shared`` maps the operator's coordinates along ``obs`` to the data's
    names for them. The cycle pairs observations with sites by position; the
    error says how to sort them (a coordinate the operator's order ascends).
    """
    want = list(zip(*(np.asarray(expected[c][1]).astype(str) for c in shared)))
    got = list(zip(*(np.asarray(da.coords[n].values).astype(str) for n in shared.values())))
    if len(set(want)) != len(want) or sorted(want) != sorted(got):
        return
    order = sorted(shared, key=lambda c: c != "state_index")
    how = f"reorder them by their {list(shared.values())} coordinates into the operator's order"
    for c in order:
        values = np.asarray(expected[c][1])
        if np.issubdtype(values.dtype, np.number) and bool(np.all(np.diff(values) > 0)):
            how = f"sort them first: obs.sortby({shared[c]!r})"
            break
    c = order[0]
    raise ValueError(
        f"the observations hold the sites of operator {operator.spec()} in another order "
        f"(their {shared[c]!r} coordinates are {da.coords[shared[c]].values.tolist()[:8]}, the "
        f"operator's {np.asarray(expected[c][1]).tolist()[:8]}); observations are paired with "
        f"sites by position, so {how}")


def _refuse_missing_per_batch_element(mask, batch_dims):
    """Raise the error for a mask ``(T, n_batch, n_obs)`` that differs between batch elements.

    The cycle assimilates every batch element at once with one set of observed
    sites per time (``CycleContext.mask``, ``(T, n_obs)``): every method's
    analysis, whitening and monitors select the same sites for the whole batch.
    """
    differ = int((mask != mask[:, :1]).any(-1).any(-1).sum())
    dims = list(batch_dims)
    raise ValueError(
        f"missing observations (NaN) differ between the elements of the batch dims {dims} "
        f"(at {differ} of {mask.shape[0]} times): the cycle assimilates the batch at once, "
        "with one set of observed sites per time, so a site must be missing in every element "
        "or in none (observe(..., missing_fraction=...) draws a pattern per trajectory). Run "
        f"the elements separately (obs.isel({dims[0]}=i)), or hide in every element what is "
        "missing in any: obs.assign(observation=obs.observation.where("
        f"obs.observation.notnull().all({dims})))")


def _recorded_noise(obs, n_obs) -> np.ndarray:
    """The ``noise_std`` variable of observations as one error std per obs, ``(n_obs,)``.

    It may not vary along a dim other than ``obs``. NaN where the observation
    is missing (``obs.where(cond)`` masks every variable) stands for no value:
    the finite ones are taken. NaN beside a present observation is refused.
    """
    var = obs["noise_std"]
    if bool(var.isnull().any()):
        unexplained = var.isnull() & obs["observation"].notnull()
        if bool(unexplained.any()):
            raise ValueError(
                "the observations' noise_std is NaN where an observation is present "
                f"({int(unexplained.sum())} entries); a NaN noise_std may only mark a missing "
                "observation: give the error std of every observation")
    extra = [d for d in var.dims if d != "obs"]
    values = np.asarray(var.transpose(*extra, ...).values, dtype=float)
    flat = values.reshape(-1, var.sizes["obs"]) if "obs" in var.dims else values.reshape(-1, 1)
    given = ~np.isnan(flat)
    first = flat[given.argmax(0), np.arange(flat.shape[1])]  # NaN where a column has none
    if not np.allclose(flat[given], np.broadcast_to(first, flat.shape)[given]):
        raise ValueError(
            f"the observations' noise_std varies along {extra}; one observation error per "
            "obs is supported, the same at every time and in every batch element (run batch "
            "elements with other errors separately)")
    never = np.flatnonzero(~given.any(0))
    if never.size:
        raise ValueError(
            f"the observations' noise_std is NaN at every time for obs {never[:8].tolist()}, "
            "whose observations are all missing: their error is unknown. Mask the "
            "'observation' variable only (obs.assign(observation=obs.observation.where(...))) "
            "or give noise_std")
    return np.broadcast_to(first, (n_obs,))


def _transforms(operator) -> list:
    """The nonlinear functions an operator applies to its observed sites, outermost first.

    A linear operator selects sites (``[]``); a wrapper with a ``base`` (``Squared``,
    ``Arctan``, ``ScaledOperator``) adds its own spec without the base.
    """
    if operator.linear:
        return []
    spec = _spec(operator.spec())
    base = getattr(operator, "base", None)
    if "base" not in spec:
        return [spec]
    spec.pop("base")
    inner = Identity() if base is None else base
    return [spec] + (_transforms(inner) if isinstance(inner, ObservationOperator) else [])


def _spec(spec) -> dict:
    """An operator spec as a dict, for comparison (JSON key order does not matter)."""
    try:
        return json.loads(spec)
    except (TypeError, ValueError):
        return {"spec": str(spec)}


def _params_for_attrs(est) -> dict:
    out = {}
    for k, v in est.get_params(deep=False).items():
        if isinstance(v, BaseEstimator):
            v = repr(v)
        elif isinstance(v, (xr.Dataset, xr.DataArray)):  # an initial ensemble: too big for attrs
            v = f"<{type(v).__name__} {dict(v.sizes)}>"
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        out[k] = v
    return out


# keep the names importable from their old home (used by experiments and user code)
_ = (state_rmse, mean_after_burn_in, LostTrackWarning)
