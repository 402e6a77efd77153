"""Shared machinery of every assimilator: input checks, the cycle, the output Dataset.

An assimilator is a scikit-learn estimator (see ``DESIGN.md``: Estimators):
``fit(obs, truth=None)`` learns what the method learns, ``predict(obs)`` runs
the forecast-analysis cycle over an observation Dataset made by
:func:`xdyn.observe.observe` and returns the analysis Dataset, and
``score(obs, truth)`` is minus the time-averaged analysis RMSE.

Subclasses implement four small hooks on a method-specific ``state`` (a mean
tensor, an ensemble tensor, a mean and covariance ...):
``_initialize``, ``_forecast``, ``_analyze`` and ``_summarize``.
Every tensor carries arbitrary leading *batch* dims, which come from the
observation Dataset's dims other than ``time`` and ``obs`` (independent
experiments run in one batched call).
"""

from __future__ import annotations

import dataclasses
import json
import time as _time

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from xdyn._threads import threads_for
from xdyn.exceptions import DivergenceError
from xdyn.model_selection import unwrap
from xdyn.observe import make_operator, operator_from_spec
from xdyn.systems.registry import system_from_attrs

__all__ = ["BaseAssimilator", "CycleContext", "analysis_rmse", "state_rmse", "mean_after_burn_in"]


@dataclasses.dataclass
class CycleContext:
    """Everything a cycle needs, resolved once from the observations and parameters."""

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
    obs: xr.DataArray

    @property
    def n_state(self) -> int:
        return self.system.n_state

    def h(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the observation operator to flat states ``(..., n_state)``."""
        # the observed indices are resolved once per cycle context, not once per call
        idx = self.__dict__.get("_h_index")
        if idx is None or idx.device != x.device:
            idx = torch.as_tensor(self.operator.indices(self.system.variables), device=x.device)
            self._h_index = idx
        return self.operator._transform(x.index_select(-1, idx))

    def jacobian_h(self, x: torch.Tensor) -> torch.Tensor:
        """Jacobian of the operator at ``x``; a linear operator's matrix is built once."""
        from xdyn.assimilation.var3d import observation_jacobian

        if not self.operator.linear:
            return observation_jacobian(self.operator, self.system, x)
        if getattr(self, "_H", None) is None:
            self._H = observation_jacobian(self.operator, self.system, x)
        return self._H

    def whitening(self, k: int) -> torch.Tensor:
        """Matrix ``W`` (q, p) with ``W R W^T = I`` on the q entries observed at time k."""
        m = self.mask[k]
        W = self.__dict__.get("_W_full")
        if W is None:  # the whitening of a complete observation vector, built once
            W = torch.diag(1.0 / self.obs_std) if self.obs_std is not None \
                else torch.linalg.inv(self.R_chol)
            self._W_full = W
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


class BaseAssimilator(BaseEstimator):
    """Base class for assimilators (not to be used directly).

    Common parameters (every subclass takes them):

    system : DynamicalSystem or None
        Forecast model. ``None`` rebuilds the system recorded in the observation
        attrs (a twin experiment's perfect model).
    operator : ObservationOperator, spec or None
        ``None`` rebuilds the operator recorded in the observation attrs.
    noise_std : float, array or None
        Observation error standard deviation; ``None`` reads the ``noise_std``
        variable of the observations.
    R : array of shape (n_obs, n_obs) or None
        Full observation error covariance (instead of ``noise_std``).
    dt : float or None
        Model step; ``None`` uses the ``dt`` attr of the observations, else the
        system's default.
    initial_state : array of shape (n_state,) or None
        Mean of the initial background; ``None`` draws a state on the attractor.
    initial_spread : float
        Standard deviation of the initial background error.
    burn_in : float
        Model time excluded from :meth:`score`.
    raise_on_divergence : bool
        Raise :class:`xdyn.DivergenceError` when the analysis becomes non-finite.
    """

    _ensemble = False

    # ------------------------------------------------------------------ API
    def fit(self, obs, truth=None):
        """Validate the observations and learn what the method learns; returns self."""
        ctx = self._context(obs)
        self._fit(ctx, truth)
        self.system_ = ctx.system
        self.operator_ = ctx.operator
        self.n_obs_ = int(ctx.mask.shape[-1])
        self.n_state_ = int(ctx.n_state)
        return self

    def predict(self, obs) -> xr.Dataset:
        """Run the forecast-analysis cycle over ``obs`` and return the analysis Dataset."""
        check_is_fitted(self, "n_obs_")
        ctx = self._context(obs)
        if ctx.mask.shape[-1] != self.n_obs_:
            raise ValueError(
                f"fitted on {self.n_obs_} observations per time, got {ctx.mask.shape[-1]}"
            )
        rng = check_random_state(self.random_state)
        start = _time.perf_counter()
        n_batch = int(np.prod(ctx.y.shape[1:-1], dtype=int))
        size = n_batch * ctx.n_state * int(getattr(self, "n_members", 1) or 1)
        with threads_for(size), (torch.no_grad() if self._no_grad else _null()):
            records = self._run_cycle(ctx, rng)
        wall = _time.perf_counter() - start
        return self._to_dataset(records, ctx, wall)

    def score(self, obs, truth) -> float:
        """Minus the time-averaged analysis RMSE against ``truth`` (after ``burn_in``)."""
        return -analysis_rmse(self.predict(obs), unwrap(truth), burn_in=self.burn_in)

    # ------------------------------------------------------------ hooks
    _no_grad = True

    def _fit(self, ctx: CycleContext, truth):
        """Learn from observations (and truth); nothing by default."""

    def _initialize(self, ctx: CycleContext, rng):
        raise NotImplementedError

    def _forecast(self, state, n_steps: int, ctx: CycleContext, rng):
        raise NotImplementedError

    def _analyze(self, state, k: int, ctx: CycleContext, rng):
        raise NotImplementedError

    def _summarize(self, state):
        """Return ``(mean, ensemble_or_None, std_or_None)`` tensors of the state."""
        raise NotImplementedError

    # ------------------------------------------------------------ the cycle
    # A filter that has lost the truth but stays finite (DAPPER's silent 3.8) is
    # caught by its skill: its background misfit to the observations grows to the
    # size of the observations' own variability in time (what a climatological
    # guess would make). A filter that is only transiently overconfident keeps a
    # misfit far below that, so this does not fire on a healthy filter's bad spell.
    lost_track_fraction = 0.75
    lost_track_window = 400  # long: a chaotic filter may have a bad spell and recover
    lost_track_every = 5  # cycles between checks (each check costs one observation of the mean)

    def _observation_climate(self, ctx: CycleContext):
        """Whitened variance in time of the observations, per batch element (or None)."""
        too_short = ctx.y.shape[0] < self.lost_track_window + self.lost_track_window // 4
        if not self._uses_forecast_background() or ctx.obs_std is None or too_short:
            return None
        yw = ctx.y / ctx.obs_std
        with np.errstate(all="ignore"):
            var = np.nanvar(yw.cpu().numpy(), axis=0)  # (*batch, p)
            clim = np.nanmean(var, axis=-1)
        return None if not np.all(np.isfinite(clim)) else torch.as_tensor(clim, dtype=yw.dtype)

    def _uses_forecast_background(self) -> bool:
        """False for methods whose background is not a model forecast (the check is moot)."""
        return True

    def _background_misfit(self, state, k: int, ctx: CycleContext):
        """Mean squared whitened misfit of the background mean to the observations."""
        mean = self._summarize(state)[0]
        m = ctx.mask[k]
        if not bool(m.any()):
            return None
        d = (ctx.y[k] - ctx.h(mean))[..., m] / ctx.obs_std[m]
        return (d**2).mean(-1).cpu()

    def _check_lost_track(self, misfits, climate, ctx, k):
        window = self.lost_track_window // self.lost_track_every
        if len(misfits) < window + window // 4:  # a quarter window of spin-up first
            return
        skill = torch.stack(misfits[-window:]).mean(0) / climate
        worst = float(skill.max())
        if worst > self.lost_track_fraction:
            raise DivergenceError(
                f"{type(self).__name__} has lost track of the observations: over the last "
                f"{self.lost_track_window} cycles its background misfit was {worst:.2f} of "
                "the observations' own variance (a healthy filter stays far below "
                f"{self.lost_track_fraction}); increase inflation or members, or pass "
                "raise_on_divergence=False", time=float(ctx.times[k]))

    def _run_cycle(self, ctx: CycleContext, rng):
        state = self._initialize(ctx, rng)
        records = {"analysis": [], "background": []}
        misfits = []
        climate = self._observation_climate(ctx) if self.raise_on_divergence else None
        iterator = range(len(ctx.times))
        if getattr(self, "progress", False):
            iterator = tqdm(iterator, desc=type(self).__name__, leave=False)
        for k in iterator:
            if ctx.n_steps[k] > 0:
                state = self._forecast(state, int(ctx.n_steps[k]), ctx, rng)
            if self.return_background:
                records["background"].append(self._summarize(state))
            if climate is not None and k % self.lost_track_every == 0:
                misfit = self._background_misfit(state, k, ctx)
                if misfit is not None:
                    misfits.append(misfit)
                    self._check_lost_track(misfits, climate, ctx, k)
            try:
                state = self._analyze(state, k, ctx, rng)
            except torch.linalg.LinAlgError as err:  # non-finite or singular: the filter is lost
                if self.raise_on_divergence:
                    raise DivergenceError(
                        f"{type(self).__name__} analysis failed ({err})", time=float(ctx.times[k])
                    ) from err
                raise
            summary = self._summarize(state)
            if self.raise_on_divergence and not bool(torch.isfinite(summary[0]).all()):
                raise DivergenceError(
                    f"{type(self).__name__} analysis became non-finite", time=float(ctx.times[k])
                )
            records["analysis"].append(summary)
        return records

    # ------------------------------------------------------------ inputs
    def _context(self, obs) -> CycleContext:
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
        batch_dims = tuple(d for d in da.dims if d not in ("time", "obs"))
        da = da.transpose("time", *batch_dims, "obs")
        attrs = {**obs.attrs, **da.attrs}
        system = self.system if self.system is not None else system_from_attrs(attrs)
        if self.operator is not None:
            operator = make_operator(self.operator)
        elif "operator" in attrs:
            operator = operator_from_spec(attrs["operator"])
        else:
            raise ValueError("no operator given and none recorded in the observation attrs")
        n_obs = operator.n_obs(system)
        if n_obs != da.sizes["obs"]:
            raise ValueError(
                f"operator {operator!r} makes {n_obs} observations of {type(system).__name__}, "
                f"but the Dataset has obs dim of size {da.sizes['obs']}"
            )
        times = np.asarray(da["time"].values)
        if not np.issubdtype(times.dtype, np.number):
            raise TypeError("assimilation needs a numeric model-time 'time' coordinate")
        times = times.astype(float)
        if np.any(np.diff(times) <= 0):
            raise ValueError("observation times must be strictly increasing")
        dt = float(self.dt if self.dt is not None else attrs.get("dt", system.default_dt))
        gaps = np.diff(times) / dt
        n_steps = np.concatenate([[0], np.rint(gaps)]).astype(int)
        if np.any(np.abs(gaps - n_steps[1:]) > 1e-6):
            raise ValueError(f"observation times are not multiples of the model step dt={dt}")
        y = system.as_tensor(np.asarray(da.values, dtype=float))
        finite = torch.isfinite(y)
        mask = finite.reshape(finite.shape[0], -1, finite.shape[-1])
        if not bool((mask == mask[:, :1]).all()):
            raise ValueError("missing observations (NaN) must be the same across batch dims")
        mask = mask[:, 0]
        obs_std, R_chol = self._noise(obs, n_obs, system)
        batch_coords = {d: da[d] for d in batch_dims if d in da.coords}
        return CycleContext(system, operator, times, n_steps, dt, y, mask, obs_std, R_chol,
                            batch_dims, batch_coords, da)

    def _noise(self, obs, n_obs, system):
        if self.R is not None:
            R = np.asarray(self.R, dtype=float)
            if R.shape != (n_obs, n_obs):
                raise ValueError(f"R must have shape ({n_obs}, {n_obs}), got {R.shape}")
            if np.allclose(R, np.diag(np.diag(R))):
                return system.as_tensor(np.sqrt(np.diag(R))), None
            return None, torch.linalg.cholesky(system.as_tensor(R))
        if self.noise_std is not None:
            std = np.broadcast_to(np.asarray(self.noise_std, dtype=float), (n_obs,))
        elif "noise_std" in obs:
            std = np.asarray(obs["noise_std"].values, dtype=float)
        else:
            raise ValueError("give noise_std or R: the observations do not record their noise")
        if np.any(std <= 0) or not np.all(np.isfinite(std)):
            raise ValueError(f"noise_std must be positive and finite, got {std}")
        return system.as_tensor(np.array(std)), None

    def _initial_mean(self, ctx: CycleContext, rng) -> torch.Tensor:
        batch_shape = tuple(ctx.y.shape[1:-1])
        if self.initial_state is not None:
            x0 = np.asarray(self.initial_state, dtype=float)
            if x0.shape[-1] != ctx.n_state:
                raise ValueError(f"initial_state must have n_state={ctx.n_state} entries")
            return ctx.system.as_tensor(np.broadcast_to(x0, batch_shape + (ctx.n_state,)).copy())
        n = int(np.prod(batch_shape, dtype=int))
        x = ctx.system.as_tensor(ctx.system.random_initial_state(n, rng))
        x = ctx.system.forecast(x, ctx.dt, int(round(10.0 / ctx.dt)))  # onto the attractor
        return x.reshape(batch_shape + (ctx.n_state,))

    # ------------------------------------------------------------ outputs
    def _to_dataset(self, records, ctx: CycleContext, wall: float) -> xr.Dataset:
        system = ctx.system
        time_coord = ctx.obs["time"]
        coords = {"time": time_coord, **ctx.batch_coords}
        lead = ("time",) + ctx.batch_dims
        out = self._stack(records["analysis"], system, lead, coords, suffix="")
        if self.return_background and records["background"]:
            bg = self._stack(records["background"], system, lead, coords, suffix="_background")
            out = out.merge(bg)
        out.attrs.update(system.describe())
        out.attrs.update({
            "method": type(self).__name__,
            "method_params": json.dumps(_params_for_attrs(self), sort_keys=True, default=str),
            "operator": ctx.operator.spec(),
            "dt": ctx.dt,
            "wall_time_s": wall,
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
            for name in list(sd.data_vars):
                ds[f"{name}_std"] = sd[name].assign_attrs(
                    long_name=f"ensemble standard deviation of {name}")
            spread = torch.sqrt((std**2).mean(-1)).cpu().numpy()
            ds["spread"] = (lead, spread, {"long_name": "ensemble spread (rms std over the state)",
                                           "units": system.variables[0].attrs.get("units", "1")})
        ds.attrs = {}
        if suffix:
            ds = ds.rename({v: (f"{v[:-4]}{suffix}_std" if v.endswith("_std") else f"{v}{suffix}")
                            for v in ds.data_vars})
        return ds


def state_rmse(analysis: xr.Dataset, truth: xr.Dataset, keep_dims=()) -> xr.DataArray:
    """RMSE over every state variable and spatial point, per analysis time.

    The ensemble mean is scored when there is a ``member`` dim; ``keep_dims``
    (e.g. batch dims of a sweep) are not reduced.
    """
    from xdyn.metrics import rmse

    names = [v for v in truth.data_vars if v in analysis.data_vars]
    if not names:
        raise ValueError("analysis and truth share no state variable")
    an = analysis[names]
    if "member" in an.dims:
        an = an.mean("member")
    an = an.to_array("variable")
    tr = truth[names].sel(time=an["time"]).to_array("variable")
    return rmse(an, tr, dim=[d for d in an.dims if d not in ("time", *keep_dims)])


def mean_after_burn_in(per_time: xr.DataArray, burn_in: float = 0.0) -> xr.DataArray:
    """Time mean of ``per_time`` from ``burn_in`` model time after its first time on."""
    t = per_time["time"]
    return per_time.where(t >= t[0] + burn_in, drop=True).mean("time")


def analysis_rmse(analysis: xr.Dataset, truth: xr.Dataset, burn_in: float = 0.0) -> float:
    """Time-averaged RMSE of an analysis against the truth at the analysis times.

    The RMSE is taken over every state variable and spatial point at each
    time (and member mean when a ``member`` dim is present), then averaged over
    time after ``burn_in`` (the DAPPER convention).
    """
    return float(mean_after_burn_in(state_rmse(analysis, truth), burn_in))


def _params_for_attrs(est) -> dict:
    out = {}
    for k, v in est.get_params(deep=False).items():
        if isinstance(v, BaseEstimator):
            v = repr(v)
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        out[k] = v
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
