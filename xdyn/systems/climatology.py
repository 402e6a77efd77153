"""A system's climatology: its invariant measure, sampled and summarised.

Two things a user without the truth can know about a chaotic system before
any observation: its climatological mean and covariance
(:func:`estimate_climatology`; DAPPER estimates both from the truth
trajectory, ``np.cov(xx.T)``, which it also does given ``truth``), and
independent states drawn from its invariant measure
(:func:`climatological_sample`), the default initial ensemble of the
assimilators (what a forecaster starts from with no information but the
model).
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch
import xarray as xr
from sklearn.utils import check_random_state

from xdyn.systems._validation import _check_real

__all__ = ["estimate_climatology", "climatological_sample", "climatological_pool",
           "pool_variance_drift"]

_FREE_RUN_TRAJECTORIES = 10   # independent free runs integrated in one batched call
# Model time discarded to reach the attractor, for a system without its own
# ``climatology_burn_in`` (every DynamicalSystem has one: 10 unless its time has units)
_FREE_RUN_BURN_IN = 10.0
# Default free-run length, in burn-ins: the time scale a system declares for losing
# its initial state (1000 time units for the nondimensional systems)
_FREE_RUN_BURN_INS = 100
_CHUNK = 500                  # steps accumulated per chunk (bounded memory)
_POOL_SIZE = 512              # independent attractor states cached per system configuration
# Model time from the initial draws to the pool, for a system without its own
# ``climatology_spin_up`` (DynamicalSystem's default is this): the draws of
# random_initial_state may sit close together (Lorenz-63's within ~1 of one point),
# and their spread reaches the climatological variance only after ~30 time units
# (measured: 46%, 90%, 99% of it after 10, 20, 30).
_POOL_SPIN_UP = 40.0
# Fewer spin-up steps than this leave pool_variance_drift NaN: its last quarter would
# hold a step or two, and no step at all gives exactly 1, "converged"
_MIN_DRIFT_STEPS = 20
# A fixed seed makes the pool a property of the system configuration; it is far
# from the small seeds of twin experiments, so no pool state is a truth's start.
_POOL_SEED = 2_026_120_211
_POOLS: dict = {}
_POOL_DRIFTS: dict = {}  # pool variance over its variance a quarter of the spin-up earlier


def estimate_climatology(system, truth=None, length=None, dt=None, random_state=None):
    """Climatological mean and covariance of a system's state.

    Parameters
    ----------
    system : DynamicalSystem
    truth : xarray.Dataset, numpy array of shape (n_samples, n_state), or None
        A state trajectory of ``system``. Every sample along every non-state dim
        (``time``, ``trajectory`` ...) is pooled, as DAPPER's ``np.cov(xx.T)``.
    length : float or None, default=None
        Without ``truth``: total model time of the free run (split over
        ``10`` batched trajectories, each started on the attractor after a
        burn-in of the system's ``climatology_burn_in``, 10 model time units
        for the nondimensional systems); every model step is one sample.
        None: 100 burn-ins, 1000 time units for the nondimensional systems and
        100 days for shallow water (a fixed 1000 would be 33 samples of shallow
        water's 30 s steps, in seconds).
    dt : float, optional
        Model step of the free run (the system's ``default_dt`` if omitted).
    random_state : int, RandomState or None
        Seed of the free run's initial states.

    Returns
    -------
    mean : ndarray of shape (n_state,)
    cov : ndarray of shape (n_state, n_state)
        Unbiased sample covariance (``ddof=1``).

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> truth = Lorenz63().simulate(n_steps=2000, burn_in=5, random_state=0)
    >>> mean, cov = estimate_climatology(Lorenz63(), truth)
    >>> cov.shape
    (3, 3)
    >>> bool(np.allclose(cov, np.cov(truth.to_array().values)))
    True
    """
    n = int(system.n_state)
    if truth is not None:
        if isinstance(truth, xr.Dataset):
            x = system.to_state(truth).detach().cpu().numpy()
        elif isinstance(truth, xr.DataArray):
            raise TypeError("truth must be a state Dataset (one variable per state variable)")
        else:
            x = np.asarray(truth, dtype=float)
        if x.shape[-1] != n:
            raise ValueError(f"truth has {x.shape[-1]} state entries, the system has {n}")
        x = x.reshape(-1, n).astype(float)
        if x.shape[0] < 2:
            raise ValueError("truth needs at least 2 samples to estimate a covariance")
        if not np.all(np.isfinite(x)):
            raise ValueError("truth contains non-finite values")
        return x.mean(0), np.atleast_2d(np.cov(x.T))
    length = _FREE_RUN_BURN_INS * _burn_in(system) if length is None else float(length)
    if not length > 0:
        raise ValueError(f"climatology_length must be > 0, got {length}")
    dt = _check_real(system.default_dt if dt is None else dt, "dt", "positive")
    rng = check_random_state(random_state)
    n_traj = _FREE_RUN_TRAJECTORIES
    n_steps = max(2, math.ceil(length / dt / n_traj))
    with torch.no_grad():
        x = system.as_tensor(system.random_initial_state(n_traj, rng))
        x = system.forecast(x, dt, int(round(_burn_in(system) / dt)))
        acc = _MomentAccumulator(x.reshape(-1, n).mean(0))
        done = 0
        while done < n_steps:
            m = min(_CHUNK, n_steps - done)
            states = system.integrate(x, dt, m)[1:]           # (m, n_traj, n)
            acc.add(states.reshape(-1, n))
            x = states[-1]
            done += m
    if not acc.finite:
        raise ValueError(f"the free run of {type(system).__name__} became non-finite; reduce dt")
    return acc.result()


def climatological_sample(system, n, dt=None, random_state=None) -> np.ndarray:
    """``n`` independent states drawn from the system's invariant measure.

    The states come from a pool of at least 512 (64 for large states) independent trajectories, each
    started from ``system.random_initial_state`` and run the system's
    ``climatology_spin_up`` onto the attractor (40 model time units for the
    nondimensional systems: the spread reaches the climatological variance of
    Lorenz-63 after ~30; a day for shallow water). The pool depends only on the
    system's configuration and ``dt``;
    it is built once per process and cached. ``random_state`` picks the
    members from it, without replacement.

    Parameters
    ----------
    system : DynamicalSystem
    n : int or tuple of int
        Number of states, or a shape ``(*batch, n_members)``: each batch
        element gets its own draw without replacement.
    dt : float, optional
        Model step of the free run (the system's ``default_dt`` if omitted).
    random_state : int, RandomState or None

    Returns
    -------
    ndarray of shape (*n, n_state)

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> members = climatological_sample(Lorenz63(), 5, random_state=0)
    >>> members.shape
    (5, 3)
    >>> bool(np.all(np.abs(members[:, 2] - 24) < 30))  # z on the attractor
    True
    """
    shape = (int(n),) if np.isscalar(n) else tuple(int(s) for s in n)
    n_members = shape[-1]
    pool = _pool(system, dt, n_members)
    rng = check_random_state(random_state)
    batch = int(np.prod(shape[:-1], dtype=int))
    idx = np.stack([rng.choice(len(pool), n_members, replace=False) for _ in range(batch)])
    return pool[idx].reshape(shape + (pool.shape[-1],))


def climatological_pool(system, dt=None, min_size=None) -> np.ndarray:
    """The cached pool of independent attractor states behind :func:`climatological_sample`.

    At least 512 states (64 for states of more than 1000 entries, whose free
    runs are costly), or ``min_size``; shape ``(n_pool, n_state)``. Do not
    modify it in place.

    Parameters
    ----------
    system : DynamicalSystem
        The system; the pool is cached per configuration (``system.describe()``), ``dt``,
        dtype and spin-up.
    dt : float, optional
        Model step of the free runs (the system's ``default_dt`` if omitted).
    min_size : int, optional
        Least number of states: a cached pool that is smaller is rebuilt with this many.
        None keeps the default size.

    Raises
    ------
    ValueError
        The free runs became non-finite, or the pool has no spread at all (a
        system whose ``random_initial_state`` draws one state, or whose dynamics
        collapse every state onto one): it cannot stand for a climatology.

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> climatological_pool(Lorenz63()).shape
    (512, 3)
    """
    return _pool(system, dt, 0 if min_size is None else int(min_size))


def pool_variance_drift(system, dt=None) -> float:
    """How much the pool's variance still moved over the last quarter of its spin-up.

    The ratio of the mean variance (over entries) of :func:`climatological_pool`
    to that of the same free runs a quarter of the system's
    ``climatology_spin_up`` earlier (10 model time units, after 30 of their 40,
    for the nondimensional systems): near 1 where the runs reached an invariant
    measure (Lorenz-63 and -96 within a few percent, Kuramoto-Sivashinsky's 1.11
    still growing into it), far from it for a system that has none (a damped
    linear system's states keep shrinking, as ``exp(-2 * damping * 10)``). NaN
    where the spin-up is fewer than 20 steps of ``dt`` (a quarter of it too few
    steps to judge) or the earlier variance is 0.

    Parameters
    ----------
    system : DynamicalSystem
        The system whose pool is judged (built and cached first if need be).
    dt : float, optional
        Model step of the free runs (the system's ``default_dt`` if omitted).

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> 0.8 < pool_variance_drift(Lorenz96()) < 1.25
    True
    """
    _pool(system, dt, 0)
    return _POOL_DRIFTS[_pool_key(system, dt)]


def _pool_key(system, dt):
    dt = _check_real(system.default_dt if dt is None else dt, "dt", "positive")
    return (type(system).__name__, json.dumps(system.describe(), sort_keys=True, default=str),
            dt, str(system.torch_dtype), _spin_up(system))


def _pool(system, dt, n_members) -> np.ndarray:
    key = _pool_key(system, dt)
    dt = key[2]
    pool = _POOLS.get(key)
    if pool is None or len(pool) < n_members:
        size = max(_POOL_SIZE if system.n_state <= 1000 else 64, n_members)
        n_steps = int(round(_spin_up(system) / dt))
        with torch.no_grad():
            x = system.as_tensor(system.random_initial_state(size, _POOL_SEED))
            x = system.forecast(x, dt, 3 * n_steps // 4)
            before = float(x.reshape(size, -1).var(0).mean())
            x = system.forecast(x, dt, n_steps - 3 * n_steps // 4)
        pool = x.reshape(size, -1).cpu().numpy().astype(float)
        if not np.all(np.isfinite(pool)):
            raise ValueError(f"the free run of {type(system).__name__} became non-finite; "
                             "reduce dt")
        if not np.ptp(pool, axis=0).max() > 1e-12 * np.abs(pool).max():
            # one state 512 times over, up to round-off: an ensemble drawn from it would
            # have no spread and ignore every observation
            raise ValueError(f"the climatological pool of {type(system).__name__} has no "
                             "spread: its random_initial_state gives no random initial states "
                             "(or the dynamics collapse them onto one); pass an initial "
                             "ensemble")
        _POOLS[key] = pool
        judged = before > 0 and n_steps >= _MIN_DRIFT_STEPS
        _POOL_DRIFTS[key] = float(pool.var(0).mean()) / before if judged else np.nan
    return pool


def _spin_up(system) -> float:
    """Time (in the system's units) from the initial draws to the pool."""
    return float(getattr(system, "climatology_spin_up", _POOL_SPIN_UP))


def _burn_in(system) -> float:
    """Time (in the system's units) a free run discards before its first sample."""
    return float(getattr(system, "climatology_burn_in", _FREE_RUN_BURN_IN))


class _MomentAccumulator:
    """Running mean and covariance, shifted by a reference to avoid cancellation."""

    def __init__(self, ref: torch.Tensor):
        self.ref = ref
        self.count = 0
        self.s1 = torch.zeros_like(ref)
        self.s2 = torch.zeros(ref.shape + ref.shape, dtype=ref.dtype, device=ref.device)

    def add(self, x: torch.Tensor):
        z = x - self.ref
        self.count += z.shape[0]
        self.s1 += z.sum(0)
        self.s2 += z.T @ z

    @property
    def finite(self) -> bool:
        return bool(torch.isfinite(self.s2).all())

    def result(self):
        c = self.count
        mean = self.ref + self.s1 / c
        cov = (self.s2 - torch.outer(self.s1, self.s1) / c) / (c - 1)
        cov = 0.5 * (cov + cov.T)
        return mean.cpu().numpy(), cov.cpu().numpy()
