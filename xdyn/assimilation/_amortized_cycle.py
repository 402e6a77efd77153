"""Test-time pieces of :class:`~xdyn.assimilation.AmortizedAssimilator`: observations on the
state grid, the observation-informed start, and the clamp guard of the prediction cycle.

The clamp guard: training clamps every forecast and analysis ensemble to
``[-clamp, clamp]`` (as the original does, so that an untrained network cannot
leave the attractor), and the prediction cycle applies the same clamp, so that
:meth:`predict` runs exactly the cycle the network was trained in. A network
that stays on the attractor never reaches the bound (Lorenz-96 with F = 8
stays within about [-10, 15] against the default 20), so its analysis is
unchanged; a barely trained one that would overflow stays bounded and finite,
the lost-track monitor then judges it (flag, or DivergenceError), and the
cycles where the clamp acted are counted in the output's attrs
(``clamped_cycles``, ``clamped_first_time``) with a RuntimeWarning. The
original clamps in training only; at test time an unbounded update of such a
network overflows within a few cycles (measured: +30 per cycle, NaN at the
third observation time), and its NaN says nothing about how it got there.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = ["ClampWarning"]


class ClampWarning(RuntimeWarning):
    """The amortized analysis reached the training clamp at prediction time.

    The network was applied to states outside those it was trained on; the
    analysis is bounded by the clamp but may be poor (see the ``lost`` flag).

    Examples
    --------
    >>> issubclass(ClampWarning, RuntimeWarning)
    True
    """


def grid_observations(ctx, y, mask):
    """Observations ``(..., p)`` and mask ``(..., p)`` scattered onto the state grid (0 elsewhere)."""
    shape = tuple(y.shape[:-1]) + (ctx.n_state,)
    idx = ctx.grid_index.to(y.device)
    y_grid = y.new_zeros(shape).index_copy(-1, idx, torch.nan_to_num(y, nan=0.0))
    m_grid = y.new_zeros(tuple(mask.shape[:-1]) + (ctx.n_state,)).index_copy(
        -1, idx, mask.to(y.dtype))
    return y_grid, m_grid


def obs_std_grid(ctx):
    """Observation-error std on the state grid (0 at unobserved sites)."""
    std = ctx.obs_std if ctx.obs_std is not None else ctx.obs_variance.sqrt()
    return std.new_zeros(ctx.n_state).index_copy(0, ctx.grid_index.to(std.device), std)


def observation_start(y_grid, m_grid, std_grid, clim, noise):
    """Observed sites: observation plus noise of its error std; others: climatology."""
    return torch.where(m_grid.unsqueeze(-2) > 0, y_grid.unsqueeze(-2) + std_grid * noise, clim)


def bound(E, clamp, ctx):
    """``E`` clamped to ``[-clamp, clamp]``; the cycle being run is recorded if it acted.

    A NaN passes through (the divergence monitor reports it) and does not count as
    reaching the clamp: a cycle whose ensemble holds a NaN is recorded only if another
    value lies outside the clamp (an inf does, and the clamp bounds it).
    """
    if clamp is None:
        return E
    if not bool((E.abs() > clamp).any()):  # False for a NaN (aminmax would give NaN)
        return E
    ctx.scratch.setdefault("clamped", set()).add(int(ctx.k))
    return E.clamp(-clamp, clamp)


def report_clamp(out, ctx, clamp, name):
    """Add ``clamped_cycles`` / ``clamped_first_time`` to ``out.attrs``; warn if any."""
    clamped = sorted(ctx.scratch.get("clamped", ()))
    out.attrs["clamp"] = np.nan if clamp is None else float(clamp)
    out.attrs["clamped_cycles"] = len(clamped)
    out.attrs["clamped_first_time"] = float(ctx.times[clamped[0]]) if clamped else np.nan
    if clamped:
        warnings.warn(f"{name}: the forecast or analysis reached the training clamp "
                      f"[-{clamp:g}, {clamp:g}] in {len(clamped)} of {len(ctx.times)} cycles "
                      f"(first at time {float(ctx.times[clamped[0]]):g}): the network met "
                      "states outside those it was trained on, and the output is bounded there "
                      "(train longer, or check the observations' units; attrs "
                      "'clamped_cycles')", ClampWarning, stacklevel=5)  # the user's predict call
    return out
