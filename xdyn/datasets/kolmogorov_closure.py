"""Kolmogorov-flow trajectories for scale separation and stochastic closure.

The reference protocol of "Scale Separation and Stochastic Closure for Chaotic
Dynamics" (arXiv 2510.24583): Kolmogorov flow at Re = 34 with forcing wavenumber
4 (:class:`xdyn.systems.KolmogorovFlow`), solved on a ``solve_grid**2`` grid and
stored as velocity ``(u, v)`` on a coarser ``output_grid**2`` grid (spectral
truncation, no aliasing) after a transient, several independent trajectories
split by trajectory into train / validation / test.

The set is made on demand from a recorded configuration and cached under
``$XDYN_DATA_DIR/generated`` keyed by that configuration
(:mod:`xdyn.datasets.generated`); ``datasets/make_generated.py`` makes it ahead of
time. :func:`load_kolmogorov_closure` returns one Dataset per split;
``quick=True`` gives a CPU-sized set (fewer, shorter trajectories on a coarser
grid) for tests and ``--quick`` runs.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xdyn._units import canonical_units, other_units

__all__ = [
    "FULL_CONFIG",
    "QUICK_CONFIG",
    "SPLITS",
    "kolmogorov_closure_trajectories",
    "load_kolmogorov_closure",
    "vorticity_from_velocity",
]

NAME = "kolmogorov-closure"
SPLITS = ("train", "val", "test")

# The original's protocol: 8 trajectories at 128^2 stored on 64^2, 800 snapshots
# for train/test and 1000 for validation.
FULL_CONFIG = {
    "Re": 34.0,
    "n_forcing": 4,
    "solve_grid": 128,
    "output_grid": 64,
    "dt": 0.01,
    "save_every": 10,
    "burn_in": 100.0,
    "n_train": 6,
    "n_val": 1,
    "n_test": 1,
    "n_snapshots": 800,
    "n_snapshots_val": 1000,
    "random_state": 0,
}

# CPU-sized: 64^2 solve stored on 32^2, fewer and shorter trajectories.
QUICK_CONFIG = {
    **FULL_CONFIG,
    "solve_grid": 64,
    "output_grid": 32,
    "burn_in": 60.0,
    "n_train": 3,
    "n_snapshots": 400,
    "n_snapshots_val": 400,
}


def kolmogorov_closure_trajectories(
    Re=34.0,
    n_forcing=4,
    solve_grid=128,
    output_grid=64,
    dt=0.01,
    save_every=10,
    burn_in=100.0,
    n_train=6,
    n_val=1,
    n_test=1,
    n_snapshots=800,
    n_snapshots_val=1000,
    random_state=0,
    *,
    client=None,
    parts_dir=None,
) -> xr.Dataset:
    """Simulate the trajectories of the closure set (one Dataset, ``split`` per trajectory).

    Every trajectory starts from its own random state (seeded by its index,
    :func:`~xdyn.datasets.trajectories.trajectory_seeds`), runs ``burn_in`` time
    units (the transient) and then ``max(n_snapshots, n_snapshots_val)``
    snapshots ``dt * save_every`` apart; fields are stored in float32. With a
    ``client`` every chunk of trajectories is a dask task writing its own file
    (:func:`~xdyn.datasets.trajectories.generate_trajectories`); the numbers
    are those of the serial run.

    Parameters
    ----------
    Re, n_forcing : float, int
        Reynolds number and forcing wavenumber of :class:`~xdyn.systems.KolmogorovFlow`.
    solve_grid, output_grid : int
        Grid points per side of the solver and of the stored fields.
    dt, save_every, burn_in : float, int, float
        Solver step, steps between snapshots, transient (model time units).
    n_train, n_val, n_test : int
        Trajectories per split.
    n_snapshots, n_snapshots_val : int
        Snapshots per train/test trajectory and per validation trajectory
        (the loader trims each split to its length).
    random_state : int
        Seed of the initial states.
    client : distributed.Client, optional
        Make the trajectories as dask tasks on this client (default: here).
    parts_dir : str or Path, optional
        Folder for the tasks' part files (:func:`load_kolmogorov_closure` puts
        it next to the cached file); reused after an interruption.

    Returns
    -------
    xarray.Dataset
        ``u`` and ``v`` with dims ``(trajectory, time, y, x)``, the energy-budget
        series ``kinetic_energy`` and ``dissipation`` (on the solver grid), and
        a ``split`` coordinate along ``trajectory``.

    Examples
    --------
    >>> ds = kolmogorov_closure_trajectories(solve_grid=16, output_grid=8, burn_in=0.0,
    ...                                      n_train=1, n_snapshots=2, n_snapshots_val=3)
    >>> dict(ds.u.sizes), ds.split.values.tolist()
    ({'trajectory': 3, 'time': 3, 'y': 8, 'x': 8}, ['train', 'val', 'test'])
    """
    import functools

    from xdyn.datasets.trajectories import generate_trajectories

    counts = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    if min(counts.values()) < 1:
        raise ValueError(f"every split needs at least one trajectory; got {counts}")
    if int(output_grid) > int(solve_grid):
        raise ValueError(f"output_grid ({output_grid}) must not exceed solve_grid ({solve_grid})")
    n_keep = max(int(n_snapshots), int(n_snapshots_val))
    make = functools.partial(
        _closure_chunk, Re=float(Re), n_forcing=int(n_forcing), solve_grid=int(solve_grid),
        output_grid=int(output_grid), dt=float(dt), save_every=int(save_every),
        burn_in=float(burn_in), n_steps=(n_keep - 1) * int(save_every),
        random_state=int(random_state))
    record = {"generator": "kolmogorov_closure_trajectories", "n_keep": n_keep,
              **make.keywords}
    # one trajectory per chunk (batch_size=1): a task each with a client, the same
    # numbers without
    out = generate_trajectories(make, sum(counts.values()), record=record, client=client,
                                parts_dir=parts_dir)
    out["time"].attrs.update({"units": "1", "long_name": "model time after the transient"})
    split = np.repeat(list(counts), list(counts.values()))
    out = out.assign_coords(split=("trajectory", split.astype(str)))
    out.attrs.update(
        {
            "title": "Kolmogorov flow trajectories for scale separation and closure",
            "reference": "arXiv 2510.24583 (data protocol)",
            "solve_grid": int(solve_grid),
        }
    )
    return out


def _closure_chunk(indices, *, Re, n_forcing, solve_grid, output_grid, dt, save_every, burn_in,
                   n_steps, random_state) -> xr.Dataset:
    """Trajectories ``indices`` of the closure set (a task of the distributed generation)."""
    from xdyn.datasets.trajectories import system_trajectories
    from xdyn.systems import KolmogorovFlow

    flow = KolmogorovFlow(Re=Re, n_forcing=n_forcing, N=solve_grid)
    ds = system_trajectories(flow, indices, random_state=random_state, n_steps=n_steps, dt=dt,
                             save_every=save_every, burn_in=burn_in, diagnostics=True,
                             output_grid=output_grid)
    out = ds[["u", "v", "kinetic_energy", "dissipation"]]
    return out.assign({k: out[k].astype(np.float32) for k in ("u", "v")})


def load_kolmogorov_closure(quick=True, random_state=0, *, force=False, client=None,
                            **overrides):
    """Load (making and caching it on first use) the Kolmogorov closure set, split by trajectory.

    Parameters
    ----------
    quick : bool, default=True
        The CPU-sized configuration (:data:`QUICK_CONFIG`: 64^2 solved, 32^2
        stored, 3/1/1 trajectories of 400 snapshots); False gives the original's
        protocol (:data:`FULL_CONFIG`: 128^2 solved, 64^2 stored, 6/1/1
        trajectories of 800/1000/800 snapshots).
    random_state : int, default=0
        Seed of the initial states (part of the cache key).
    force : bool, default=False
        Regenerate even if a cached file exists.
    client : distributed.Client, optional
        Make a missing set as dask tasks on this client, one per trajectory
        (same numbers as without).
    **overrides
        Any key of the configuration (e.g. ``burn_in=10.0``), for still smaller sets.

    Returns
    -------
    dict of str to xarray.Dataset
        ``{"train": ..., "val": ..., "test": ...}``, each with ``u`` and ``v``
        of dims ``(trajectory, time, y, x)`` (float32), and the configuration
        in ``attrs["xdyn_config"]``.

    Examples
    --------
    >>> import os, tempfile
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"XDYN_DATA_DIR": tempfile.mkdtemp()}):
    ...     data = load_kolmogorov_closure(solve_grid=16, output_grid=8, burn_in=0.0,
    ...                                    n_snapshots=3, n_snapshots_val=4)
    >>> {k: ds.u.shape for k, ds in data.items()}
    {'train': (3, 3, 8, 8), 'val': (1, 4, 8, 8), 'test': (1, 3, 8, 8)}
    """
    from xdyn.datasets.generated import load_generated

    config = {**(QUICK_CONFIG if quick else FULL_CONFIG), "random_state": random_state,
              **overrides}
    ds = load_generated(NAME, force=force, client=client, **config)
    out = {}
    for name in SPLITS:
        n = config["n_snapshots_val"] if name == "val" else config["n_snapshots"]
        part = ds.isel(trajectory=np.flatnonzero(ds["split"].values == name), time=slice(0, n))
        out[name] = part.assign_coords(trajectory=np.arange(part.sizes["trajectory"]))
    return out


def vorticity_from_velocity(ds, length=2 * np.pi) -> xr.DataArray:
    """Vorticity ``dv/dx - du/dy`` of periodic ``u``, ``v`` fields, spectrally.

    ``v`` is paired with ``u`` by dim name (its dims may come in another
    order). Coordinates ``y`` and ``x``, where present, locate the points: the
    derivative is taken with them ascending (a descending or shuffled axis is
    sorted first) and the result is returned in ``u``'s order.

    Parameters
    ----------
    ds : xarray.Dataset
        With ``u`` and ``v`` over the same dims, ``(..., y, x)``, on a uniform
        periodic grid.
    length : float, default=2*pi
        Side of the box.

    Returns
    -------
    xarray.DataArray
        Named ``vorticity``, same dims and coords as ``u``. Its ``units`` are
        ``u``'s (``"1"`` when absent) per the length unit of the ``y`` and
        ``x`` coords: ``"1"`` for dimensionless ones, ``"km-1 m s-1"`` for
        ``u`` in ``"m s-1"`` on a grid in ``"km"``, ``"s-1"`` on one in ``"m"``
        (canonical spellings, :func:`xdyn._units.canonical_units`). Without a length unit
        (coords without ``units``, or none) they are ``"1"`` if ``u`` is
        dimensionless and unknown (no ``units`` attr) otherwise.

    Raises
    ------
    ValueError
        ``u`` or ``v`` is missing, does not end with dims ``(y, x)``, or they
        have different dims or state different units.

    Examples
    --------
    >>> x = 2 * np.pi * np.arange(16) / 16
    >>> ds = xr.Dataset({"u": (("y", "x"), np.repeat(np.sin(x)[:, None], 16, 1)),
    ...                  "v": (("y", "x"), np.zeros((16, 16)))})
    >>> bool(np.allclose(vorticity_from_velocity(ds), -np.cos(x)[:, None]))
    True
    """
    for name in ("u", "v"):
        if name not in ds or ds[name].dims[-2:] != ("y", "x"):
            raise ValueError(f"vorticity_from_velocity needs variable {name!r} with trailing "
                             f"dims ('y', 'x')")
    if set(ds["v"].dims) != set(ds["u"].dims):
        raise ValueError(f"vorticity_from_velocity needs 'u' and 'v' over the same dims; got "
                         f"{ds['u'].dims} and {ds['v'].dims}")
    uu, vu = (ds[k].attrs.get("units") for k in ("u", "v"))
    if other_units(uu, vu):
        raise ValueError(f"vorticity_from_velocity needs 'u' and 'v' in the same units; got "
                         f"{uu!r} and {vu!r}")
    # v paired with u by dim name; y and x ascending (by their coords) for the derivative
    order = [np.argsort(ds[d].values, kind="stable") if d in ds.indexes
             else np.arange(ds.sizes[d]) for d in ("y", "x")]
    u, v = (np.asarray(ds[k].transpose(*ds["u"].dims).values, dtype=np.float64)
            [..., order[0], :][..., order[1]] for k in ("u", "v"))
    ny, nx = u.shape[-2:]
    ky = np.fft.fftfreq(ny, 1.0 / ny)[:, None] * (2 * np.pi / length)
    kx = np.fft.rfftfreq(nx, 1.0 / nx)[None, :] * (2 * np.pi / length)
    # an even size's Nyquist mode cos(pi j) has a zero derivative at every grid point:
    # fftfreq's -n/2 (and rfftfreq's n/2) would give it a spurious one
    if ny % 2 == 0:
        ky[ny // 2] = 0.0
    if nx % 2 == 0:
        kx[:, -1] = 0.0
    w_hat = 1j * kx * np.fft.rfft2(v) - 1j * ky * np.fft.rfft2(u)
    w = np.fft.irfft2(w_hat, s=(ny, nx)).astype(ds["u"].dtype)
    w = w[..., np.argsort(order[0]), :][..., np.argsort(order[1])]  # back to u's order
    # one length unit for both axes ("m" and "metre" are one), else unknown
    grid = {canonical_units(ds[d].attrs.get("units")) if d in ds.coords else None
            for d in ("y", "x")}
    units = _per_length(uu, grid.pop() if len(grid) == 1 else None)
    return xr.DataArray(w, dims=ds["u"].dims, coords=ds["u"].coords, name="vorticity",
                        attrs={**({"units": units} if units else {}), "long_name": "vorticity"})


def _per_length(units, length_units):
    """``units`` (``"1"`` when None) per ``length_units``, canonically spelled
    (:func:`xdyn._units.canonical_units`: ``"m s-1"`` per ``"m"`` is ``"s-1"``);
    None (unknown) where the length unit is."""
    units = canonical_units(units) or "1"
    if canonical_units(length_units) is None:
        return "1" if units == "1" else None
    return canonical_units(f"({units})/({length_units})")


def _register() -> None:
    from xdyn.datasets.catalog import register_generated

    register_generated(
        NAME,
        kolmogorov_closure_trajectories,
        dict(FULL_CONFIG),
        description="Kolmogorov flow Re=34, n_f=4: 8 trajectories solved at 128^2, (u, v) "
        "on 64^2, 800 snapshots (val 1000) every 0.1 after a transient of 100, split by "
        "trajectory (arXiv 2510.24583)",
        script="make_generated.py",
        version=2,  # 2: each trajectory seeded by its index (same numbers on a dask client)
        replace=True,
    )
