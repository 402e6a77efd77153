"""Parametrised Kolmogorov-flow trajectories for latent dynamics networks and LD-EnSF.

The setup of Xiao, Si & Chen (LD-EnSF, ICLR 2026), Kolmogorov case: forcing
wavenumber 4 with linear drag 0.1, ``Re ~ U(500, 1500)`` drawn per trajectory,
``dt = 0.04``, 100 burn-in steps, 200 saved steps of which every 5th is kept,
on a 150 x 150 grid. Here every trajectory starts from one shared field (a
random field spun up for the burn-in at the mean Re), so that the parameter
alone tells the trajectories apart, as an LDNet started from a zero latent
state assumes. The defaults are CPU-sized (32 x 32, 16 trajectories, 40 kept
steps); :func:`kolmogorov_ldensf_full_config` gives the original's sizes.

The state is the vorticity (the :class:`~xdyn.systems.KolmogorovFlow` state);
the original's velocity follows from it (``KolmogorovFlow.velocity``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xdyn.datasets.catalog import register_generated

__all__ = ["kolmogorov_ldensf", "kolmogorov_ldensf_full_config"]


def kolmogorov_ldensf(n_trajectories=16, N=32, Re_low=500.0, Re_high=1500.0, drag=0.1,
                      n_forcing=4, dt=0.04, burn_in_steps=100, n_saved=40, save_every=5,
                      random_state=0, *, client=None, parts_dir=None) -> xr.Dataset:
    """Kolmogorov trajectories with ``Re ~ U(Re_low, Re_high)`` each, from one shared start.

    Parameters
    ----------
    n_trajectories : int
    N : int
        Grid points per side.
    Re_low, Re_high : float
        Range of the uniformly drawn Reynolds number.
    drag : float
    n_forcing : int
    dt : float
        Model time step.
    burn_in_steps : int
        Steps spinning up the shared initial field (at the mean Re).
    n_saved : int
        Kept states per trajectory (the first is the shared start).
    save_every : int
        Model steps between kept states.
    random_state : int
        Seed of the Reynolds numbers and of the shared start (both drawn here,
        before any task).
    client : distributed.Client, optional
        Integrate the trajectories as dask tasks on this client (default: here);
        the numbers are those of the serial run.
    parts_dir : str or Path, optional
        Folder for the tasks' part files (see
        :func:`~xdyn.datasets.trajectories.generate_trajectories`).

    Returns
    -------
    xarray.Dataset
        ``vorticity`` (trajectory, time, y, x) and ``Re`` (trajectory).

    Examples
    --------
    >>> ds = kolmogorov_ldensf(n_trajectories=2, N=16, n_saved=3, burn_in_steps=2)
    >>> dict(ds.vorticity.sizes), ds.Re.dims
    ({'trajectory': 2, 'time': 3, 'y': 16, 'x': 16}, ('trajectory',))
    >>> bool((ds.vorticity.isel(time=0, trajectory=0) == ds.vorticity.isel(time=0, trajectory=1)).all())
    True
    """
    import functools

    from xdyn.datasets.trajectories import generate_trajectories
    from xdyn.systems import KolmogorovFlow

    rng = np.random.RandomState(random_state)
    Re = rng.uniform(Re_low, Re_high, size=int(n_trajectories))
    spin = KolmogorovFlow(Re=0.5 * (Re_low + Re_high), N=N, drag=drag, n_forcing=n_forcing)
    x0 = spin.random_initial_state(1, rng)[0]
    x0 = spin.forecast(spin.as_tensor(x0), dt, int(burn_in_steps)).cpu().numpy()
    make = functools.partial(_ldensf_chunk, Re=Re, x0=x0, N=N, drag=drag, n_forcing=n_forcing,
                             dt=dt, n_saved=int(n_saved), save_every=int(save_every))
    record = {"generator": "kolmogorov_ldensf", "n_trajectories": int(n_trajectories), "N": N,
              "Re_low": Re_low, "Re_high": Re_high, "drag": drag, "n_forcing": n_forcing,
              "dt": dt, "burn_in_steps": int(burn_in_steps), "n_saved": int(n_saved),
              "save_every": int(save_every), "random_state": random_state}
    ds = generate_trajectories(make, int(n_trajectories), record=record, client=client,
                               parts_dir=parts_dir)
    ds["Re"] = ("trajectory", Re, {"long_name": "Reynolds number", "units": "1"})
    ds.attrs.update({"title": "Kolmogorov flow, Re ~ U(Re_low, Re_high) per trajectory",
                     "reference": "Xiao, Si & Chen (2026), LD-EnSF, ICLR", "drag": drag,
                     "dt": dt, "save_every": save_every, "random_state": random_state})
    ds.attrs.pop("Re", None)
    return ds


def _ldensf_chunk(indices, *, Re, x0, N, drag, n_forcing, dt, n_saved, save_every):
    """Trajectories ``indices`` (one per Reynolds number, from the shared start): one task."""
    from xdyn.systems import KolmogorovFlow

    runs = []
    for i in indices:
        flow = KolmogorovFlow(Re=float(Re[i]), N=N, drag=drag, n_forcing=n_forcing)
        runs.append(flow.simulate(n_steps=(n_saved - 1) * save_every, dt=dt,
                                  save_every=save_every, x0=x0))
    ds = xr.concat(runs, dim="trajectory", coords="minimal", compat="override",
                   combine_attrs="drop_conflicts")
    ds.attrs.pop("Re", None)
    return ds


def kolmogorov_ldensf_full_config() -> dict:
    """The original's sizes: 200 trajectories of 40 kept states on 150 x 150.

    Examples
    --------
    >>> kolmogorov_ldensf_full_config()["N"]
    150
    """
    return {"n_trajectories": 200, "N": 150, "n_saved": 40, "save_every": 5,
            "burn_in_steps": 100}


def _register():
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(kolmogorov_ldensf).parameters.items()
                if p.kind is not p.KEYWORD_ONLY}  # client, parts_dir: how, not what
    register_generated("kolmogorov-ldensf", kolmogorov_ldensf, defaults, replace=True,
                       description="Kolmogorov flow (drag 0.1, n_f=4) trajectories with "
                       "Re ~ U(500, 1500) each from one shared start, 32x32, 16 x 40 states "
                       "(the original's 150x150, 200 trajectories: one config away)")


_register()
