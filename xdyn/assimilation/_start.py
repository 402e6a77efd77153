"""Checking a user's initial ensemble (shared by every ensemble method, the particle filter too)."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

__all__ = ["initial_ensemble_tensor"]


def initial_ensemble_tensor(ensemble, ctx, n_members) -> torch.Tensor:
    """An ``initial_ensemble`` as a tensor ``(*batch, N, n_state)``, checked.

    Parameters
    ----------
    ensemble : xarray.Dataset or array of shape (..., N, n_state)
        A state Dataset with a ``member`` dim (and optionally the observations'
        batch dims), or the flat states.
    ctx : CycleContext
        The context built from the observations (system and batch shape).
    n_members : int
        The ``N`` the assimilator expects.

    Returns
    -------
    torch.Tensor of shape (*batch, N, n_state)

    Raises
    ------
    ValueError
        Wrong number of members or state entries, a non-finite value, dims that
        are neither batch nor state dims, or a shape that does not broadcast to
        the observations' batch shape.

    Examples
    --------
    >>> import numpy as np
    >>> from xdyn.assimilation import EnKF
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz63
    >>> system = Lorenz63()
    >>> truth = system.simulate(n_steps=20, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=1.0, every=10, random_state=1)
    >>> ctx = EnKF()._context(obs)  # what fit builds from the observations
    >>> members = system.simulate(n_trajectories=4, n_steps=0, random_state=2).isel(time=0)
    >>> ensemble = members.rename(trajectory="member")
    >>> initial_ensemble_tensor(ensemble, ctx, n_members=4).shape
    torch.Size([4, 3])
    >>> initial_ensemble_tensor(np.zeros((5, 3)), ctx, n_members=4)
    Traceback (most recent call last):
    ...
    ValueError: initial_ensemble has 5 members but n_members=4
    """
    system = ctx.system
    if isinstance(ensemble, xr.Dataset):
        if "member" not in ensemble.dims:
            raise ValueError("initial_ensemble needs a 'member' dim; it has "
                             f"{tuple(ensemble.dims)}")
        lead = [d for d in ctx.batch_dims if d in ensemble.dims]
        state_dims = {d for v in system.variables for d in v.dims}
        extra = [d for d in ensemble.dims if d not in (*lead, "member", *state_dims)]
        if extra:
            raise ValueError(f"initial_ensemble has dims {extra} that are neither batch dims "
                             f"of the observations {ctx.batch_dims} nor state dims")
        for dim in lead:  # batch members are matched by label, not by position
            if dim in ctx.batch_coords and dim in ensemble.indexes:
                want = ctx.batch_coords[dim].to_index()
                if not ensemble.indexes[dim].equals(want):
                    if not set(want) <= set(ensemble.indexes[dim]):
                        raise ValueError(f"initial_ensemble's {dim!r} labels "
                                         f"{ensemble.indexes[dim].tolist()[:5]} do not cover "
                                         f"the observations' {want.tolist()[:5]}")
                    ensemble = ensemble.sel({dim: want})
        # batch dims it lacks enter with size 1, so each dim broadcasts along itself (a
        # broadcast aligned from the right would spread a first dim along a second of the
        # same size)
        ensemble = ensemble.expand_dims([d for d in ctx.batch_dims if d not in lead])
        ensemble = ensemble.transpose(*ctx.batch_dims, "member", ...)
        E = system.to_state(ensemble)
    else:
        E = system.as_tensor(np.asarray(ensemble, dtype=float))
    if E.shape[-1] != ctx.n_state:
        raise ValueError(f"initial_ensemble has {E.shape[-1]} state entries; the system has "
                         f"{ctx.n_state}")
    if E.shape[-2] != n_members:
        raise ValueError(f"initial_ensemble has {E.shape[-2]} members but n_members="
                         f"{n_members}")
    if not bool(torch.isfinite(E).all()):
        raise ValueError("initial_ensemble contains non-finite values")
    try:
        return E.expand(ctx.batch_shape + tuple(E.shape[-2:])).clone()
    except RuntimeError as err:
        raise ValueError(f"initial_ensemble of shape {tuple(E.shape)} does not broadcast to the "
                         f"batch shape {ctx.batch_shape} of the observations") from err
