"""The checked arguments of :meth:`DynamicalSystem.simulate`: how many steps, from where."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.utils import check_random_state

from xdyn.systems._validation import _check_int, _check_real

__all__ = ["saved_steps", "initial_states", "burn_in_steps", "seed_record"]


def _off_grid(steps: float, n: int) -> bool:
    """Whether ``steps`` (a length in units of ``dt``) differs from the ``n`` steps run by more
    than round-off: 1e-9 of a step, or of the length for long runs."""
    return abs(steps - n) > 1e-9 * max(1.0, abs(steps))


def saved_steps(t_span, n_steps, dt, save_every):
    """``(t0, n_steps)`` of a run given by its length/interval or its step count.

    ``n_steps`` is rounded down to a multiple of ``save_every``; a length not
    a whole number of saving intervals ``dt * save_every`` (or a step count not
    a multiple of ``save_every``) is changed with a ``UserWarning`` naming both.

    Examples
    --------
    >>> saved_steps((1.0, 2.0), None, 0.1, 2)
    (1.0, 10)
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     saved_steps((1.0, 2.0), None, 0.1, 3)
    (1.0, 9)
    >>> print(caught[0].message)
    t_span covers 1 (10 steps of dt=0.1), not a whole number of saving intervals
    dt * save_every = 0.3: the run covers 0.9 (9 steps)
    >>> saved_steps(None, None, 0.1, 1)
    Traceback (most recent call last):
    ...
    ValueError: give either t_span or n_steps
    """
    t0 = 0.0
    if t_span is None and n_steps is None:
        raise ValueError("give either t_span or n_steps")
    if t_span is not None and n_steps is not None:
        raise ValueError("give only one of t_span and n_steps")
    if t_span is not None:
        if np.ndim(t_span) == 1 and np.shape(t_span) == (2,):
            t0, t1 = (_check_real(t, "t_span") for t in t_span)
            if t1 < t0:
                raise ValueError(f"t_span=(t0, t1) needs t1 >= t0, got {tuple(t_span)}")
        elif np.ndim(t_span) == 0:
            t1 = t0 + _check_real(t_span, "t_span", "nonnegative")
        else:
            raise ValueError(f"t_span must be a length or a pair (t0, t1), got {t_span!r}")
        steps = (t1 - t0) / dt
        n_steps = int(round(steps))
        kept = n_steps - n_steps % save_every
        if _off_grid(steps, kept):
            warnings.warn(f"t_span covers {t1 - t0:g} ({steps:g} steps of dt={dt:g}), not a whole "
                          f"number of saving intervals dt * save_every = {dt * save_every:g}: "
                          f"the run covers {kept * dt:g} ({kept} steps)", UserWarning, stacklevel=3)
        return t0, kept
    n_steps = _check_int(n_steps, "n_steps", 0)
    kept = n_steps - n_steps % save_every
    if kept != n_steps:
        warnings.warn(f"n_steps={n_steps} is not a multiple of save_every={save_every}: "
                      f"{kept} steps are run", UserWarning, stacklevel=3)
    return t0, kept


def burn_in_steps(burn_in, dt):
    """``(n_burn, applied)``: the steps that integrate ``burn_in`` and the time they cover.

    A ``burn_in`` that is not a whole number of steps is rounded to the nearest
    one, with a ``UserWarning`` naming both times; ``applied`` is then
    ``n_burn * dt``, else ``burn_in`` itself (no round-off is recorded).

    Examples
    --------
    >>> burn_in_steps(0.3, 0.1)
    (3, 0.3)
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     burn_in_steps(0.25, 0.1)
    (2, 0.2)
    >>> print(caught[0].message)
    burn_in=0.25 is not a whole number of steps of dt=0.1: 2 steps integrate 0.2
    """
    n_burn = int(round(burn_in / dt))
    if not _off_grid(burn_in / dt, n_burn):
        return n_burn, float(burn_in)
    applied = n_burn * dt
    warnings.warn(f"burn_in={burn_in:g} is not a whole number of steps of dt={dt:g}: "
                  f"{n_burn} steps integrate {applied:g}", UserWarning, stacklevel=3)
    return n_burn, applied


def initial_states(system, x0, n_trajectories, random_state):
    """``(x0, squeeze)``: the checked ``(n_trajectories, n_state)`` starts, and whether
    the caller gave one state (no ``trajectory`` dim in the result).

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> x0, squeeze = initial_states(Lorenz63(), [1.0, 2.0, 3.0], 1, None)
    >>> x0.shape, squeeze
    ((1, 3), True)
    >>> initial_states(Lorenz63(), [1.0, 2.0], 1, None)
    Traceback (most recent call last):
    ...
    ValueError: x0 has shape (2,); lorenz63 needs (n_state,) or (n_trajectories, n_state) with n_state=3
    """
    squeeze = n_trajectories == 1
    if x0 is None:
        x0 = system.random_initial_state(int(n_trajectories), check_random_state(random_state))
    else:
        try:
            x0 = np.asarray(x0.detach().cpu() if isinstance(x0, torch.Tensor) else x0, dtype=float)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"x0 must be an array of numbers, got {x0!r}") from exc
        if x0.ndim not in (1, 2) or x0.shape[-1] != system.n_state:
            raise ValueError(
                f"x0 has shape {x0.shape}; {system.name} needs (n_state,) or "
                f"(n_trajectories, n_state) with n_state={system.n_state}"
            )
        squeeze = x0.ndim == 1
        x0 = x0.reshape(-1, system.n_state)
        if x0.shape[0] == 0:
            raise ValueError("x0 holds no state (shape (0, n_state)); give at least one")
        if n_trajectories != 1 and x0.shape[0] != n_trajectories:
            raise ValueError(f"x0 holds {x0.shape[0]} states but n_trajectories={n_trajectories}")
    if not np.all(np.isfinite(x0)):
        raise ValueError("x0 contains non-finite values")
    return x0, squeeze


def seed_record(random_state):
    """What ``attrs["random_state"]`` records: an int seed, or ``"None"`` (a generator or no
    seed: nothing to reproduce the run from)."""
    return int(random_state) if isinstance(random_state, (int, np.integer)) else "None"
