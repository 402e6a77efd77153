"""The forecast-analysis cycle, written once, and the callbacks that watch it.

:func:`run_cycle` runs any :class:`~xdyn.assimilation.BaseAssimilator` over
the observation times: ``_initialize``, then per analysis window a
``_forecast`` to its first time and an ``_analyze`` (a filter's window is one
observation time; 4D-Var's holds several). What is done around the loop --
recording the output, the progress bar, the divergence and lost-track
monitors -- is a :class:`CycleCallback` with no-op hooks
``on_cycle_begin``/``on_forecast``/``on_analysis``/``on_failure``/``on_cycle_end``,
as skorch's callbacks are around its training loop (``skorch/callbacks/base.py``).

A filter that has lost the truth but stays finite (DAPPER's silent 3.9 on
Lorenz-96) is recognised without the truth by :class:`LostTrackMonitor`: the
background error its misfit to the observations reveals (beyond their noise)
is as large as that of a climatological guess, or its own analysis spread is
as large as the climatological spread, or its analysis mean has left the
attractor while the observations have not.

The experiments of a batch (the leading batch dims of every tensor) share one
cycle: a failure of any one of them (a non-finite analysis mean, a
``LinAlgError`` in its forecast or analysis) ends the cycle for all. With
``raise_on_divergence=False`` every element is NaN from that time on, healthy
ones included; run a failing element separately
(:func:`xdyn.experiments.sweep.sweep` reruns its NaN cells itself, by bisection).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

from xdyn.assimilation._linalg import observation_jacobian
from xdyn.exceptions import DivergenceError
from xdyn.systems.climatology import climatological_pool, pool_variance_drift

__all__ = ["CycleContext", "CycleStep", "CycleCallback", "Recorder", "ProgressBar",
           "DivergenceMonitor", "LostTrackMonitor", "LostTrackWarning", "run_cycle"]


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _user_stacklevel():
    """``stacklevel`` of a ``warnings.warn`` in the caller that names the first frame outside
    xdyn: the user's ``predict`` call, however many xdyn frames lie between (a subclass's
    ``predict``, the cycle and its callbacks), as pandas' ``find_stack_level``."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


# pool_variance_drift inside which a system's pool is taken as its invariant measure:
# Lorenz-63 / -96, Kuramoto-Sivashinsky, Kolmogorov flow 0.98-1.10; shallow water after a
# day, tsunami preset 0.83 (judged), atmosphere preset 0.56 (still settling: not judged);
# a damped rotation at damping 0.05 0.37
_DRIFT_BAND = (0.8, 1.25)
# how much further from the climatological mean than its observations an analysis must sit
_OFF_ATTRACTOR_FACTOR = 1.5


class LostTrackWarning(RuntimeWarning):
    """An assimilation run that is no better than climatology, or that diverged.

    Issued instead of raising :class:`xdyn.DivergenceError` when the
    assimilator was made with ``raise_on_divergence=False``; the analysis then
    carries a ``lost`` flag per time and the attrs ``lost_track`` and
    ``lost_track_time``.

    Examples
    --------
    Optimal interpolation (a static ``B``) with every fourth site of
    Lorenz-96 observed cannot follow the truth:

    >>> import warnings
    >>> from xdyn.assimilation import OptimalInterpolation
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz96
    >>> truth = Lorenz96().simulate(n_steps=400, burn_in=10.0, random_state=0)
    >>> obs = observe(truth, "every4", noise_std=1.0, random_state=1)
    >>> oi = OptimalInterpolation(raise_on_divergence=False).fit(obs)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     analysis = oi.predict(obs)
    >>> [w.category.__name__ for w in caught], analysis.attrs["lost_track"]
    (['LostTrackWarning'], 1)
    >>> bool(analysis.lost.any())
    True
    """


@dataclasses.dataclass
class CycleContext:
    """Everything a cycle needs, resolved once from the observations and parameters.

    An assimilator builds it from the observation Dataset in ``fit`` and
    ``predict``; its hooks (``_initialize``, ``_forecast``, ``_analyze`` ...)
    receive it as ``ctx``.

    Parameters
    ----------
    system : DynamicalSystem
        The model being cycled (the fitted ``system_`` or the one resolved from the attrs).
    operator : ObservationOperator
        The observation operator that made the observations.
    times : numpy.ndarray of float, shape (T,)
        Model times of the T observation times, strictly increasing.
    n_steps : numpy.ndarray of int, shape (T,)
        Model steps of size ``dt`` from the previous observation time to each one
        (0 for the first).
    dt : float
        Model time step.
    y : torch.Tensor, shape (T, ..., p)
        The observations (``...`` the batch dims) in the system's dtype, NaN where missing.
    mask : torch.Tensor of bool, shape (T, p)
        True for the entries observed at each time (the same across batch dims).
    obs_std : torch.Tensor of shape (p,) or None
        Observation-error standard deviations when ``R`` is diagonal, else None.
    R_chol : torch.Tensor of shape (p, p) or None
        Lower Cholesky factor of a full ``R``; None when ``R`` is diagonal.
    batch_dims : tuple of str
        Dims of the observations other than ``time`` and ``obs`` (cycled together).
    batch_coords : dict
        ``{dim: coordinate}`` of those batch dims that have a coordinate.
    obs : xarray.DataArray
        The observation DataArray, transposed to ``(time, *batch_dims, obs)``.

    Other Parameters
    ----------------
    _h_index, _H, _W_full : torch.Tensor or None, default=None
        Caches of the observed state indices, the linear operator's matrix and the
        whitening of a complete observation vector, filled on first use; leave them None.
    obs_error_scale : dict, default={}
        ``{time index k: factor}`` multiplying ``R`` at observation k (2.0 where a
        climatological pre-analysis takes half of the first observations' weight).
    n_windows : int, default=0
        Number of analysis windows; set by the cycle.
    k : int, default=0
        First observation index of the window being cycled; set by the cycle.
    preanalysis_pending : bool, default=False
        True from a climatological ensemble start until its pre-analysis is done.
    scratch : dict, default={}
        What a method computes once per run and its hooks share (e.g. LETKF's local
        geometry, 4D-Var's ``B^1/2``); it belongs to the run, not to the estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from xdyn.assimilation import EnKF
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz63
    >>> truth = Lorenz63().simulate(n_steps=20, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=2.0, every=10, random_state=1)
    >>> obs["observation"][1, 2] = np.nan  # z missing at the second time
    >>> ctx = EnKF()._context(obs)
    >>> ctx.times.tolist(), ctx.n_steps.tolist(), ctx.dt
    ([0.0, 0.1, 0.2], [0, 10, 10], 0.01)
    >>> tuple(ctx.y.shape), ctx.mask[1].tolist(), ctx.obs_std.tolist()
    ((3, 3), [True, True, False], [2.0, 2.0, 2.0])
    >>> ctx.whitening(1).tolist()  # W R W^T = I on the two observed entries
    [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]
    >>> float(ctx.innovation_data(1)[2])  # a missing entry gets zero weight
    0.0
    >>> ctx.jacobian_h(ctx.y[0]).tolist()  # the identity operator
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """

    system: object
    operator: object
    times: np.ndarray            # (T,) model times of the observations
    n_steps: np.ndarray          # (T,) model steps from the previous obs time (0 first)
    dt: float
    y: torch.Tensor              # (T, *batch, p), NaN where missing
    mask: torch.Tensor           # (T, p) bool, observed entries
    obs_std: torch.Tensor | None  # (p,) when R is diagonal
    R_chol: torch.Tensor | None  # (p, p) Cholesky factor of a full R
    batch_dims: tuple
    batch_coords: dict
    obs: object                  # the observation DataArray (time, *batch, obs)
    # caches, filled on first use (they depend only on the fields above)
    _h_index: torch.Tensor | None = dataclasses.field(default=None, repr=False)
    _H: torch.Tensor | None = dataclasses.field(default=None, repr=False)
    _W_full: torch.Tensor | None = dataclasses.field(default=None, repr=False)
    # observation-error variance multipliers by time index: the climatological
    # pre-analysis of an ensemble start splits the first observations' weight
    # 1/R into two halves, 1/(2R) in the pre-analysis and 1/(2R) in the method's own
    # first analysis (see BaseEnsembleAssimilator._preanalyze)
    obs_error_scale: dict = dataclasses.field(default_factory=dict, repr=False)
    # set by run_cycle: the number of analysis windows, and the first observation
    # index of the window being cycled (for hooks that act at a given time)
    n_windows: int = 0
    k: int = 0
    # True from a climatological ensemble start until its pre-analysis is done
    preanalysis_pending: bool = False
    # what a method computes once per run and its hooks share (LETKF's local
    # geometry, 4D-Var's B^1/2 and cost counter): it belongs to the run, not to
    # the estimator, so predict leaves no state behind
    scratch: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def n_state(self) -> int:
        return self.system.n_state

    @property
    def batch_shape(self) -> tuple:
        return tuple(self.y.shape[1:-1])

    @property
    def obs_variance(self) -> torch.Tensor:
        """Error variance of each observation (the diagonal of ``R``)."""
        if self.obs_std is not None:
            return self.obs_std**2
        return (self.R_chol**2).sum(-1)

    def h(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the observation operator to flat states ``(..., n_state)``."""
        if self._h_index is None or self._h_index.device != x.device:
            self._h_index = torch.as_tensor(self.operator.indices(self.system.variables),
                                            device=x.device)
        return self.operator._transform(x.index_select(-1, self._h_index))

    def jacobian_h(self, x: torch.Tensor) -> torch.Tensor:
        """Jacobian of the operator at ``x``; a linear operator's matrix is built once."""
        if not self.operator.linear:
            return observation_jacobian(self.operator, self.system, x)
        if self._H is None:
            self._H = observation_jacobian(self.operator, self.system, x)
        return self._H

    def whitening(self, k: int) -> torch.Tensor:
        """Matrix ``W`` (q, p) with ``W R W^T = I`` on the q entries observed at time k.

        ``R`` is scaled by ``obs_error_scale[k]`` where that is set.
        """
        W = self._whitening(k)
        return W if k not in self.obs_error_scale else W * self.whitening_factor(k)

    def whitening_factor(self, k: int) -> float:
        """``obs_error_scale[k] ** -1/2`` (1 where unset): what whitens the scaled ``R``."""
        return float(self.obs_error_scale.get(k, 1.0)) ** -0.5

    def _whitening(self, k: int) -> torch.Tensor:
        m = self.mask[k]
        if self._W_full is None:  # the whitening of a complete observation vector, built once
            self._W_full = torch.diag(1.0 / self.obs_std) if self.obs_std is not None \
                else torch.linalg.inv(self.R_chol)
        W = self._W_full
        if bool(m.all()):
            return W
        if self.obs_std is None:
            idx = torch.nonzero(m).squeeze(-1)
            Rm = (self.R_chol @ self.R_chol.T)[idx][:, idx]
            Wm = torch.linalg.inv(torch.linalg.cholesky(Rm))
            full = torch.zeros(len(idx), m.numel(), dtype=Wm.dtype, device=Wm.device)
            full[:, idx] = Wm
            return full
        return W[m]

    def innovation_data(self, k: int) -> torch.Tensor:
        """Observations at time k with missing entries set to 0 (they get zero weight)."""
        return torch.nan_to_num(self.y[k], nan=0.0)


class CycleStep:
    """One analysis window of the cycle, as the callbacks see it.

    ``ks`` are its observation-time indices, ``state`` the method's state
    after the forecast (``background=True``) or after the analysis.
    :meth:`summaries` gives ``(mean, ensemble_or_None, std_or_None)`` per time
    of the window, computed once however many callbacks ask.
    """

    def __init__(self, estimator, ctx, ks, state, background):
        self.estimator, self.ctx, self.ks = estimator, ctx, ks
        self.state, self.background = state, background
        self._summaries = None

    def summaries(self):
        if self._summaries is None:
            self._summaries = self.estimator._window_summaries(
                self.state, self.ks, self.ctx, self.background)
        return self._summaries


class CycleCallback:
    """Base class of the cycle callbacks; every hook is a no-op.

    A callback sees the cycle without changing it: pass instances to
    ``predict(obs, callbacks=[...])`` of any assimilator.

    Examples
    --------
    Record the analysis spread of every cycle while an EnKF runs:

    >>> from xdyn.assimilation import EnKF
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz63
    >>> class SpreadLog(CycleCallback):
    ...     def on_cycle_begin(self, estimator, ctx, state):
    ...         self.spread = []
    ...     def on_analysis(self, estimator, step):
    ...         self.spread += [float(std.mean()) for _, _, std in step.summaries()]
    >>> truth = Lorenz63().simulate(n_steps=200, burn_in=5, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=1.0, every=10, random_state=1)
    >>> log = SpreadLog()
    >>> _ = EnKF(n_members=10, random_state=0).fit(obs).predict(obs, callbacks=[log])
    >>> len(log.spread), bool(log.spread[-1] < log.spread[0])
    (21, True)
    """

    def on_cycle_begin(self, estimator, ctx, state):
        """Before the first window (``state`` is the initial state)."""

    def on_forecast(self, estimator, step):
        """After the forecast to a window's first observation time."""

    def on_analysis(self, estimator, step):
        """After a finite analysis of a window."""

    def on_failure(self, estimator, ctx, k, message):
        """The analysis at observation time ``k`` failed or became non-finite; the cycle stops."""

    def on_cycle_end(self, estimator, ctx):
        """After the last window (also after a failure)."""

    def on_abort(self, estimator, ctx):
        """An exception is leaving the cycle (a raised divergence, a bug): release resources."""


class Recorder(CycleCallback):
    """Keeps the analysis (and background) summaries; NaN after a failure.

    Every run has one (it builds the analysis Dataset); pass another to keep
    the background summaries of one run without ``return_background``.

    Parameters
    ----------
    background : bool, default=False
        Also keep the summaries after each forecast in :attr:`backgrounds`
        (empty otherwise). Whether the returned Dataset holds the background
        still depends on the estimator's ``return_background`` alone.

    Attributes
    ----------
    analysis : list of tuple
        After the run, one ``(mean, ensemble_or_None, std_or_None)`` of tensors
        per observation time; NaN-filled for the times after a failure.
    backgrounds : list of tuple
        The same for the forecasts when ``background=True``, else ``[]``.

    Examples
    --------
    >>> from xdyn.assimilation import EnKF
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz63
    >>> truth = Lorenz63().simulate(n_steps=50, burn_in=5, random_state=0)
    >>> obs = observe(truth, "identity", every=10, random_state=1)
    >>> rec = Recorder(background=True)
    >>> _ = EnKF(n_members=5, random_state=0).fit(obs).predict(obs, callbacks=[rec])
    >>> len(rec.backgrounds), tuple(rec.backgrounds[1][0].shape)  # 6 times, (mean, ens, std)
    (6, (3,))
    """

    def __init__(self, background=False):
        self.background = background

    def on_cycle_begin(self, estimator, ctx, state):
        self.analysis = {}
        self.backgrounds = {}
        self._template = estimator._summarize(state)

    def on_forecast(self, estimator, step):
        if self.background:
            self.backgrounds.update(zip(step.ks, step.summaries()))

    def on_analysis(self, estimator, step):
        self.analysis.update(zip(step.ks, step.summaries()))

    def _padded(self, records, n):
        nan = tuple(None if t is None else torch.full_like(t, float("nan"))
                    for t in self._template)
        return [records.get(k, nan) for k in range(n)]

    def on_cycle_end(self, estimator, ctx):
        n = len(ctx.times)
        self.analysis = self._padded(self.analysis, n)
        self.backgrounds = self._padded(self.backgrounds, n) if self.background else []


class ProgressBar(CycleCallback):
    """A tqdm bar over the analysis windows (what ``progress=True`` adds).

    Parameters
    ----------
    disable : bool, default=False
        Passed to :class:`tqdm.auto.tqdm`: True shows no bar.

    Examples
    --------
    >>> from xdyn.assimilation import OptimalInterpolation
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz63
    >>> truth = Lorenz63().simulate(n_steps=50, random_state=0)
    >>> obs = observe(truth, "identity", every=10, random_state=1)
    >>> out = OptimalInterpolation().fit(obs).predict(obs, callbacks=[ProgressBar(disable=True)])
    >>> out.sizes["time"]
    6
    """

    def __init__(self, disable=False):
        self.disable = disable

    def on_cycle_begin(self, estimator, ctx, state):
        self.bar = tqdm(total=ctx.n_windows, desc=type(estimator).__name__, leave=False,
                        disable=self.disable)

    def on_analysis(self, estimator, step):
        self.bar.update(1)

    def on_cycle_end(self, estimator, ctx):
        self.bar.close()

    on_abort = on_cycle_end


class DivergenceMonitor(CycleCallback):
    """Raises :class:`~xdyn.DivergenceError` at a failed analysis, or records it and warns.

    A failed analysis is a ``torch.linalg.LinAlgError`` in a forecast or an
    analysis, or a non-finite analysis mean (see :func:`run_cycle`).

    Parameters
    ----------
    raise_on_divergence : bool, default=True
        Raise :class:`~xdyn.DivergenceError` at the failure; False: warn with a
        :class:`LostTrackWarning`, keep the cycle's NaN analysis from then on,
        and flag the run with the ``diverged`` attr. An instance passed to
        ``predict(callbacks=...)`` replaces the built-in monitor, so its value,
        not the estimator's ``raise_on_divergence``, decides.

    Examples
    --------
    >>> import warnings
    >>> from xdyn.assimilation import EnKF
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz63
    >>> truth = Lorenz63().simulate(n_steps=50, burn_in=5, random_state=0)
    >>> obs = observe(truth, "identity", every=10, random_state=1)
    >>> absurd = EnKF(n_members=5, inflation=1e200, random_state=0).fit(obs)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     out = absurd.predict(obs, callbacks=[DivergenceMonitor(raise_on_divergence=False)])
    >>> int(out.attrs["diverged"]), bool(out.x.isnull().any())
    (1, True)
    """

    def __init__(self, raise_on_divergence=True):
        self.raise_on_divergence = raise_on_divergence

    def on_cycle_begin(self, estimator, ctx, state):
        self.time = None
        self.message = None

    def on_failure(self, estimator, ctx, k, message):
        name = type(estimator).__name__
        if self.raise_on_divergence:
            raise DivergenceError(f"{name} {message}", time=float(ctx.times[k]))
        self.time, self.message = float(ctx.times[k]), message
        warnings.warn(f"{name} {message} at time {self.time}; the analysis is NaN from then "
                      "on (flagged by the 'diverged' attr)", LostTrackWarning,
                      stacklevel=_user_stacklevel())


class LostTrackMonitor(CycleCallback):
    """Flags a filter that is no better than climatology, from the observations alone.

    One ratio is tracked per observation time and batch element:

    * for methods whose background is a model forecast, the background error
      variance the observations reveal, ``|y - h(x_b)|^2 - sigma^2`` per
      observed entry, over the climatological variance ``var_clim(h(x))``
      (0 for a perfect background, 1 for the climatological mean, about 2
      for an unrelated attractor state, whatever the noise: with ``sigma``
      above the climatological std, as Kuramoto-Sivashinsky observed with
      noise 2.5, a ratio of raw misfits flagged even a perfect background);
    * for the others (OI with its climatological background), the method's own
      analysis variance over the climatological variance of the state.

    Both read the observed entries, or the spread, only; a filter whose analysis
    has left the attractor where nothing is observed (an extended Kalman filter
    with inflation 1e6 reaching 52 at unobserved Lorenz-96 sites, whose observed
    misfit fell back under the threshold) is caught by a second statistic, the
    analysis mean's squared distance to the climatological mean per entry in
    units of the climatological variance: about 1 on the attractor (Lorenz-96:
    0.74-1.38 over the pool of states; Lorenz-63: 0.02-3.85). The filter is lost
    when its trailing median exceeds the largest value of any pool state and 1.5
    times the observations' own (beyond their noise, in observation space): a
    filter that follows observations off the attractor (a truth more energetic
    than a misspecified model) is not lost for that. The monitor stands aside
    for a system whose pool has no invariant measure to offer
    (:func:`xdyn.systems.climatology.pool_variance_drift` outside 0.8-1.25: a
    damped linear system, waves released from rest).

    The filter is lost at time ``k`` when the median of the ratio over the
    trailing ``window`` cycles exceeds ``threshold`` (the median, because a
    healthy chaotic filter has rare bad spells of huge misfit). The first half of the run
    so far is never in the window (a filter started from climatology is allowed
    that much spin-up), and no decision is made before ``min_cycles``. A
    shorter run is judged at its end on its second half; it is then flagged and
    warned about, never raised (spin-up and a lost filter look alike so early). The
    climatological variances come from independent states of the invariant
    measure (:func:`xdyn.systems.climatology.climatological_sample`).

    A healthy filter stays far below the threshold (see the report numbers in
    ``tests/assimilation/test_divergence.py``), while the lost filters of
    issue 8 (EnKF with 2 members, 3D-Var, ExtKF and OI with every 4th
    Lorenz-96 site observed) sit above it.

    Parameters
    ----------
    raise_on_divergence : bool, default=True
        Raise :class:`~xdyn.DivergenceError` when the filter is found lost;
        False: warn with a :class:`LostTrackWarning` and flag the run (the
        ``lost`` variable, the ``lost_track`` attr). A run shorter than
        ``min_cycles`` only ever warns. An instance passed to
        ``predict(callbacks=...)`` replaces the built-in monitor, so its value,
        not the estimator's ``raise_on_divergence``, decides.
    window : int, default=100
        Number of trailing observation times whose median is judged (fewer
        while the run is young: its first half is never in the window).
    threshold : float, default=0.5
        The filter is lost when the trailing median of the ratio (background
        error variance, or analysis variance, over the climatological
        variance) exceeds this; the off-attractor test above has no threshold
        to set.
    min_cycles : int, default=40
        No decision before this many observation times; a shorter run is
        judged once, at its end, on its second half.

    Attributes
    ----------
    ratio : list
        Per observation time, the judged trailing median of the ratio (an
        array over the batch dims), or None where nothing was judged.
    lost : numpy.ndarray of bool, shape (n_times, *batch_shape)
        Whether the filter was found lost at each time.
    lost_time : float or None
        The first time it was found lost.

    Examples
    --------
    Judge a run with other settings, and read the statistic it tracked:

    >>> import numpy as np
    >>> from xdyn.assimilation import EnKF
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz63
    >>> truth = Lorenz63().simulate(n_steps=1000, burn_in=5, random_state=0)
    >>> obs = observe(truth, "identity", every=10, random_state=1)
    >>> monitor = LostTrackMonitor(window=50, threshold=0.3)
    >>> out = EnKF(n_members=10, random_state=0).fit(obs).predict(obs, callbacks=[monitor])
    >>> int(out.attrs["lost_track"]), bool(np.nanmax([r for r in monitor.ratio if r is not None]) < 0.3)
    (0, True)
    """

    def __init__(self, raise_on_divergence=True, window=100, threshold=0.5, min_cycles=40):
        self.raise_on_divergence = raise_on_divergence
        self.window, self.threshold, self.min_cycles = int(window), float(threshold), min_cycles

    def on_cycle_begin(self, estimator, ctx, state):
        self.name = type(estimator).__name__
        n = len(ctx.times)
        self.active = True
        try:
            pool = ctx.system.as_tensor(climatological_pool(ctx.system, ctx.dt))
            pool_var = pool.var(0)
            self.state_var = pool_var.mean()
            h_pool = ctx.h(pool)
            self.clim_obs, self.clim_obs_mean = h_pool.var(0), h_pool.mean(0)  # (p,)
            self.obs_var = ctx.obs_variance                             # (p,)
        except (ValueError, RuntimeError):  # no finite climatology (a non-chaotic system)
            self.active = False
        else:
            # a pool still shrinking or growing (a damped linear system, a tsunami's waves
            # from rest) is no invariant measure: its variance is no scale to judge by
            drift = pool_variance_drift(ctx.system, ctx.dt)
            self.active = (bool(torch.isfinite(self.clim_obs).all())
                           and float(self.state_var) > 0 and float(self.clim_obs.min()) > 0
                           and _DRIFT_BAND[0] < drift < _DRIFT_BAND[1])
        if self.active:
            # entries that vary on the attractor (a constant entry has no scale to judge by);
            # in float64 numpy: a small state's distance costs microseconds, not torch calls
            var = pool_var.double().cpu().numpy()
            varying = var > 1e-12 * var.max()
            self._clim_mean = pool.mean(0).double().cpu().numpy()
            # the mean over varying entries of the squared anomaly over the variance: one dot
            self._clim_weights = np.where(varying, 1.0 / np.maximum(var, 1e-300), 0.0)
            self._clim_weights /= varying.sum()
            self.state_limit = float(self._distance(pool.double().cpu().numpy()).max())
        self.ratio = [None] * n    # trailing decision statistic per time
        # the judged ratio per time (background misfit, or analysis spread without a
        # forecast background) in one float64 array, so that each cycle's trailing median
        # is one partition, not a stack of up to `window` tensors (0.2 ms a cycle)
        self._series = np.zeros((n,) + tuple(ctx.batch_shape))
        self._present = np.zeros(n, dtype=bool)
        self._distances = np.zeros((n,) + tuple(ctx.batch_shape))
        self._has_distance = np.zeros(n, dtype=bool)
        # above[k]: the distance at k exceeds every pool state's (somewhere in the batch);
        # their count tells, without a median, whether the trailing median can
        self._above = np.zeros(n, dtype=bool)
        # the judged off-attractor statistic per time: the trailing median of the analysis'
        # climatological distance, 0 where the observations sit as far off (None: not judged)
        self.distance = [None] * n
        if self.active:
            self._obs_distances, self._has_obs_distance = self._observation_distances(ctx)
            # per time, the mask and the mean observation and climatological variances over
            # what it observes, in numpy: each cycle's misfit is then a few numpy calls on
            # the innovation, not a dozen torch calls on tiny tensors (0.13 ms a cycle)
            self._mask = ctx.mask.cpu().numpy()                                 # (T, p)
            count = np.maximum(self._mask.sum(-1), 1)
            self._obs_var_mean = self._mask @ self.obs_var.double().cpu().numpy() / count
            self._clim_obs_mean = self._mask @ self.clim_obs.double().cpu().numpy() / count
        self.lost = np.zeros((n,) + ctx.batch_shape, dtype=bool)
        self.lost_time = None
        self.uses_background = estimator._uses_forecast_background()

    def on_forecast(self, estimator, step):
        if not (self.uses_background and self.active):
            return
        ctx = step.ctx
        for k, (mean, _, _) in zip(step.ks, step.summaries()):
            m = self._mask[k]
            if m.any():
                d = (ctx.y[k] - ctx.h(mean)).detach().double().cpu().numpy()[..., m]
                excess = np.square(d).mean(-1) - self._obs_var_mean[k]
                self._record(k, excess / self._clim_obs_mean[k])

    def on_analysis(self, estimator, step):
        if not self.active:
            return
        for k, (mean, _, std) in zip(step.ks, step.summaries()):
            if not self.uses_background and std is not None:
                self._record(k, ((std**2).mean(-1) / self.state_var).double().cpu().numpy())
            d = self._distance(mean.detach().double().cpu().numpy())
            self._distances[k] = d
            self._has_distance[k] = True
            self._above[k] = d.max() > self.state_limit
        self._judge(step.ctx, step.ks[-1], final=False)

    def _distance(self, x):
        """Mean squared anomaly from the climatological mean, in climatological variances."""
        z = x - self._clim_mean
        return np.square(z, out=z) @ self._clim_weights

    def _observation_distances(self, ctx):
        """The observations' own distance per time (beyond their noise, in observation
        space): are they on the attractor? All times at once."""
        m = ctx.mask                                                    # (T, p)
        mb = m.reshape(m.shape[:1] + (1,) * len(ctx.batch_shape) + m.shape[1:])
        excess = (ctx.y - self.clim_obs_mean)**2 - self.obs_var
        z = torch.where(mb, excess / self.clim_obs, torch.zeros_like(excess))
        count = m.sum(-1).reshape((-1,) + (1,) * len(ctx.batch_shape))
        value = z.sum(-1) / count.clamp_min(1)
        return value.double().cpu().numpy(), m.any(-1).cpu().numpy()

    def _record(self, k, value):
        self._series[k] = value
        self._present[k] = True

    def _window_start(self, k):
        """First time of the window judged at ``k``: never in the first half of the run."""
        return max(k + 1 - self.window, (k + 1) // 2)

    def _trailing_median(self, series, present, k):
        start = self._window_start(k)
        vals = series[start:k + 1][present[start:k + 1]]
        if not len(vals) or np.isnan(vals).any():
            return None  # nothing to judge yet; a NaN is the divergence monitor's business
        # the median, not the mean: a healthy chaotic filter has short bad spells
        # (Lorenz-63 near its saddle) whose misfits are huge but rare. The lower median
        # of an even count, as torch.median (what this was before)
        mid = (len(vals) - 1) // 2
        median = np.asarray(np.partition(vals, mid, axis=0)[mid])
        # a non-finite analysis is the divergence monitor's business
        return median if np.all(np.isfinite(median)) else None

    def _judge(self, ctx, k, final):
        if k + 1 < self.min_cycles and not final:
            return
        ratio = self._trailing_median(self._series, self._present, k)
        distance = obs_distance = None
        start = self._window_start(k)
        n_judged = int(self._has_distance[start:k + 1].sum())
        # the lower median of n values exceeds the limit only if n - (n - 1) // 2 of them do:
        # only then is it computed
        n_above = int(self._above[start:k + 1].sum())
        if n_judged and n_above >= n_judged - (n_judged - 1) // 2:
            distance = self._trailing_median(self._distances, self._has_distance, k)
            obs_distance = self._trailing_median(self._obs_distances, self._has_obs_distance, k)
        if distance is not None and obs_distance is not None:
            # off the attractor, and well further off than the observations: a filter that
            # follows observations off it (a truth more energetic than a misspecified
            # model's) is not lost for that (Lorenz-96 truth at F = 12, model at 8: analysis
            # 1.68, observations 1.94; the ExtKF wild where unobserved: 2.7 and about 1)
            distance = np.where(distance > _OFF_ATTRACTOR_FACTOR * obs_distance, distance, 0.0)
        else:
            distance = None
        self.ratio[k], self.distance[k] = ratio, distance
        lost = np.zeros(tuple(ctx.batch_shape), dtype=bool)
        if ratio is not None:
            lost |= ratio > self.threshold
        if distance is not None:
            lost |= distance > self.state_limit
        self.lost[k] = lost
        if np.any(lost) and self.lost_time is None:
            self.lost_time = float(ctx.times[k])
            if ratio is not None and np.any(ratio > self.threshold):
                self._report(ctx, k, float(ratio.max()), short=final)
            else:
                self._report(ctx, k, float(distance.max()), short=final, off_attractor=True)

    def _report(self, ctx, k, worst, short=False, off_attractor=False):
        name = self.name
        message = (f"{name} has lost track of the observations: over the last cycles the "
                   f"median background error variance its observations reveal (or its "
                   f"analysis spread) was {worst:.2f} of the climatological variance "
                   f"(threshold {self.threshold}; healthy filters stay below 0.2); increase "
                   "inflation or members, or pass raise_on_divergence=False")
        if off_attractor:
            message = (f"{name} has lost track of the observations: over the last cycles its "
                       f"analysis mean sat off the attractor, a median squared distance to "
                       f"the climatological mean of {worst:.2f} climatological variances per "
                       f"entry (no attractor state exceeds {self.state_limit:.2f}), wild where "
                       "nothing is observed; increase the observations or lower the "
                       "inflation, or pass raise_on_divergence=False")
        if short:
            message = (f"{name} is no better than climatology after {k + 1} cycles (median "
                       f"background error variance or analysis spread, or distance from the "
                       f"climatological mean, {worst:.2f} climatological variances over the "
                       "second half of the run): too short a run to tell spin-up from a lost "
                       f"filter (under {self.min_cycles} cycles)")
        elif self.raise_on_divergence:
            raise DivergenceError(message, time=float(ctx.times[k]))
        warnings.warn(f"{message} (at time {float(ctx.times[k])}; flagged by the 'lost' "
                      "variable)", LostTrackWarning, stacklevel=_user_stacklevel())

    def on_cycle_end(self, estimator, ctx):
        n = len(ctx.times)
        if self.active and n < self.min_cycles and n > 0 and self.lost_time is None:
            self._judge(ctx, n - 1, final=True)


def run_cycle(estimator, ctx, rng, callbacks=()):
    """Run the forecast-analysis cycle of ``estimator`` over ``ctx``; returns the last state.

    Parameters
    ----------
    estimator : BaseAssimilator
        Provides the hooks ``_initialize``, ``_forecast``, ``_analyze``,
        ``_summarize`` (and ``_windows``, ``_window_summaries``,
        ``_before_analysis``: what acts on the state between the recording
        of the background and the analysis).
    ctx : CycleContext
    rng : numpy.random.RandomState
    callbacks : sequence of CycleCallback
        Called in order at each hook; what they collect is read from them.

    Notes
    -----
    A ``torch.linalg.LinAlgError`` inside a forecast or an analysis, or a
    non-finite analysis mean, ends the cycle and is passed to
    ``on_failure`` (which raises :class:`~xdyn.DivergenceError` or records it);
    it never escapes as a linear-algebra exception. It ends the cycle of the
    whole batch, whichever element failed.

    Examples
    --------
    >>> from xdyn.assimilation import EnKF
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz63
    >>> truth = Lorenz63().simulate(n_steps=100, burn_in=5, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=1.0, every=25, random_state=1)
    >>> est = EnKF(n_members=5, random_state=0).fit(obs)
    >>> ctx = est._context(obs, fitted=True)
    >>> rec = Recorder()
    >>> _ = run_cycle(est, ctx, np.random.RandomState(0), [rec])
    >>> len(rec.analysis), tuple(rec.analysis[0][1].shape)
    (5, (5, 3))
    """
    windows = list(estimator._windows(ctx))
    ctx.n_windows = len(windows)
    state = estimator._initialize(ctx, rng)
    try:
        return _cycle(estimator, ctx, rng, callbacks, windows, state)
    except BaseException:
        for cb in callbacks:  # a raised divergence must not leave a progress bar open
            cb.on_abort(estimator, ctx)
        raise


def _cycle(estimator, ctx, rng, callbacks, windows, state):
    for cb in callbacks:
        cb.on_cycle_begin(estimator, ctx, state)
    for ks in windows:
        k0 = ks[0]
        ctx.k = k0  # the window being cycled, for hooks that act at a given time
        failure = None
        try:
            if ctx.n_steps[k0] > 0:
                state = estimator._forecast(state, int(ctx.n_steps[k0]), ctx, rng)
            step = CycleStep(estimator, ctx, ks, state, background=True)
            for cb in callbacks:
                cb.on_forecast(estimator, step)
            at = ks if estimator._windowed else k0
            state = estimator._analyze(estimator._before_analysis(state, at, ctx, rng), at, ctx,
                                       rng)
            step = CycleStep(estimator, ctx, ks, state, background=False)
            for k, summary in zip(ks, step.summaries()):
                if not bool(torch.isfinite(summary[0]).all()):
                    failure = (k, "analysis became non-finite")
                    break
        except torch.linalg.LinAlgError as err:  # singular or non-finite: the filter is lost
            failure = (k0, f"analysis failed ({str(err).splitlines()[0]})")
        if failure is not None:
            for cb in callbacks:
                cb.on_failure(estimator, ctx, *failure)
            break
        for cb in callbacks:
            cb.on_analysis(estimator, step)
    for cb in callbacks:
        cb.on_cycle_end(estimator, ctx)
    return state
