"""The checked arguments of :meth:`DynamicalSystem.simulate`: how many steps, from where."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils import check_random_state

from xdyn.systems._validation import _check_int, _check_real

__all__ = ["saved_steps", "initial_states"]


def saved_steps(t_span, n_steps, dt, save_every):
    """``(t0, n_steps)`` of a run given by its length/interval or its step count.

    ``n_steps`` is rounded down to a multiple of ``save_every``.

    Examples
    --------
    >>> saved_steps((1.0, 2.0), None, 0.1, 3)
    (1.0, 9)
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
        n_steps = int(round((t1 - t0) / dt))
    n_steps = _check_int(n_steps, "n_steps", 0)
    return t0, n_steps - n_steps % save_every


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
