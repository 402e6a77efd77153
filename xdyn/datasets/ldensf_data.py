"""Parametrised trajectories for latent dynamics networks and LD-EnSF: three cases.

The setups of Xiao, Si & Chen (LD-EnSF, ICLR 2026). Kolmogorov case: forcing
wavenumber 4 with linear drag 0.1, ``Re ~ U(500, 1500)`` drawn per trajectory,
``dt = 0.04``, 100 burn-in steps, 200 saved steps of which every 5th is kept,
on a 150 x 150 grid (here with a model step of 0.01 at that size, the same
times: see :func:`kolmogorov_ldensf_full_config`). Here every trajectory
starts from one shared field (a random field spun up for the burn-in at the
mean Re), so that the parameter
alone tells the trajectories apart, as an LDNet started from a zero latent
state assumes. The defaults are CPU-sized (32 x 32, 16 trajectories, 40 kept
steps); :func:`kolmogorov_ldensf_full_config` gives the original's sizes.

The state is the vorticity (the :class:`~xdyn.systems.KolmogorovFlow` state);
the original's velocity follows from it (``KolmogorovFlow.velocity``).

:func:`tsunami_ldensf`: linearised shallow water (:class:`~xdyn.systems.ShallowWater`,
the original's tsunami case), a Gaussian surface bump released at rest at an
unknown location. :func:`shallow_water_ldensf`: the planar beta-plane analogue
of the original's forced spherical "atmosphere" (Dedalus, 512 x 256), with the
forcing amplitude and width drawn per trajectory from one shared start.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from xdyn.datasets.catalog import register_generated

__all__ = ["kolmogorov_ldensf", "kolmogorov_ldensf_full_config", "shallow_water_ldensf",
           "shallow_water_ldensf_full_config", "tsunami_ldensf", "tsunami_ldensf_full_config"]


def kolmogorov_ldensf(n_trajectories=16, N=32, Re_low=500.0, Re_high=1500.0, drag=0.1,
                      n_forcing=4, dt=0.04, burn_in_steps=100, n_saved=40, save_every=5,
                      random_state=0, n_held_out=0, *, client=None,
                      parts_dir=None) -> xr.Dataset:
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
    n_held_out : int, default=0
        More trajectories after the ``n_trajectories``, from the same start,
        their parameters drawn after everything else: the first
        ``n_trajectories`` are those of ``n_held_out=0`` (a calibration set
        that leaves the training and test ones as they were).
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
    Re = np.concatenate([Re, rng.uniform(Re_low, Re_high, size=int(n_held_out))])
    n_trajectories = len(Re)
    make = functools.partial(_ldensf_chunk, Re=Re, x0=x0, N=N, drag=drag, n_forcing=n_forcing,
                             dt=dt, n_saved=int(n_saved), save_every=int(save_every))
    record = {"generator": "kolmogorov_ldensf", "n_trajectories": int(n_trajectories), "N": N,
              "Re_low": Re_low, "Re_high": Re_high, "drag": drag, "n_forcing": n_forcing,
              "dt": dt, "burn_in_steps": int(burn_in_steps), "n_saved": int(n_saved),
              "save_every": int(save_every), "random_state": random_state,
              **({"n_held_out": int(n_held_out)} if n_held_out else {})}
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

    The original's times (kept states 0.2 apart after a burn-in of 4), with a
    model step of 0.01 instead of 0.04: on 150 x 150 the explicit RK4 step of
    0.04 has a Courant number near 3 and blew up within 45 steps (0.02 at Re
    1500 within 190; 0.0133 kept the Courant number at 1.5 over the run; measured
    2026-12-03).

    Examples
    --------
    >>> cfg = kolmogorov_ldensf_full_config()
    >>> cfg["N"], round(cfg["dt"] * cfg["save_every"], 3)
    (150, 0.2)
    """
    return {"n_trajectories": 200, "N": 150, "n_saved": 40, "dt": 0.01, "save_every": 20,
            "burn_in_steps": 400}


def tsunami_ldensf(n_trajectories=16, N=32, bump_low=0.0, bump_high=0.5, bump_width=0.06,
                   bump_amplitude=1.0, L=1e6, depth=100.0, dt=60.0, n_saved=30, save_every=9,
                   batch_size=16, random_state=0, n_held_out=0, *, client=None,
                   parts_dir=None) -> xr.Dataset:
    """Tsunami-like releases: a Gaussian bump at ``(bump_x, bump_y) ~ U(bump_low, bump_high)^2``.

    Linearised rotating shallow water on a periodic beta-plane (the
    ``"tsunami"`` preset of :class:`~xdyn.systems.ShallowWater`): a square of
    side ``L`` = 1000 km, depth 100 m (wave speed ``sqrt(g H)`` = 31.3 m/s), a
    surface bump released at rest. Its centre, in fractions of ``L``, is the
    unknown parameter pair. The kept states are ``save_every * dt`` = 540 s
    apart, so that 30 of them span 4.4 h, over which the front runs 490 km, half
    the domain (the original's 40 kept states: 6 h, 660 km).

    Parameters
    ----------
    n_trajectories : int
    N : int
        Grid points per side (the original: 150).
    bump_low, bump_high : float
        Range of each bump coordinate, fractions of ``L`` (the original: 0, 0.5).
    bump_width : float
        Gaussian std of the bump, fraction of ``L``. The preset's 0.03 (30 km,
        4.5 cells at 150 x 150) is one cell at 32 x 32; the CPU default 0.06
        keeps two cells across it.
    bump_amplitude : float
        Bump height (m).
    L, depth : float
        Domain side and resting depth (m).
    dt : float
        Model time step (s): ``sqrt(g H) k_max dt`` = 0.9 at 150 x 150, inside
        RK4's 2.8.
    n_saved : int
        Kept states per trajectory (the first is the release).
    save_every : int
        Model steps between kept states.
    batch_size : int
        Releases integrated in one batched call (one task; one at a time took
        the quick experiment's 76 trajectories 66 s); see
        :func:`~xdyn.datasets.trajectories.generate_trajectories` on round-off.
    random_state : int
        Seed of the bump locations (drawn here, before any task).
    n_held_out, client, parts_dir
        As :func:`kolmogorov_ldensf` (held-out bumps drawn after the others).

    Returns
    -------
    xarray.Dataset
        ``u``, ``v``, ``eta`` (trajectory, time, y, x), ``bump_x`` and
        ``bump_y`` (trajectory).

    Examples
    --------
    >>> ds = tsunami_ldensf(n_trajectories=2, N=16, n_saved=3)
    >>> dict(ds.eta.sizes), ds.bump_x.dims, float(ds.time[-1])
    ({'trajectory': 2, 'time': 3, 'y': 16, 'x': 16}, ('trajectory',), 1080.0)
    >>> bool(((ds.bump_x >= 0) & (ds.bump_x <= 0.5)).all())
    True
    """
    import functools

    from xdyn.datasets.trajectories import generate_trajectories

    rng = np.random.RandomState(random_state)
    n = int(n_trajectories)
    bump = rng.uniform(bump_low, bump_high, size=(2, n))
    bump = np.concatenate([bump, rng.uniform(bump_low, bump_high, size=(2, int(n_held_out)))], 1)
    n = bump.shape[1]
    system = {"N": int(N), "L": float(L), "depth": float(depth), "bump_width": float(bump_width),
              "bump_amplitude": float(bump_amplitude)}
    make = functools.partial(_tsunami_chunk, bump_x=bump[0], bump_y=bump[1], system=system,
                             dt=dt, n_saved=int(n_saved), save_every=int(save_every))
    record = {"generator": "tsunami_ldensf", "n_trajectories": n, **system,
              "bump_low": bump_low, "bump_high": bump_high, "dt": dt, "n_saved": int(n_saved),
              "save_every": int(save_every), "batch_size": int(batch_size),
              "random_state": random_state,
              **({"n_held_out": int(n_held_out)} if n_held_out else {})}
    ds = generate_trajectories(make, n, record=record, batch_size=int(batch_size), client=client,
                               parts_dir=parts_dir)
    attrs = _shallow_water_parameter_attrs()
    for name, values in (("bump_x", bump[0]), ("bump_y", bump[1])):
        ds[name] = ("trajectory", values,
                    {**attrs[name], "comment": f"drawn from U({bump_low}, {bump_high})"})
    ds.attrs.update({"title": "linearised shallow water: a Gaussian bump released at an "
                     "unknown location", "reference": "Xiao, Si & Chen (2026), LD-EnSF, ICLR",
                     "dt": dt, "save_every": save_every, "random_state": random_state})
    return ds


def _tsunami_chunk(indices, *, bump_x, bump_y, system, dt, n_saved, save_every):
    """Trajectories ``indices`` (one per bump location): one batched task."""
    from xdyn.systems import ShallowWater

    idx = np.asarray(indices)
    sw = ShallowWater.preset("tsunami", **system)
    ds = sw.simulate(n_steps=(n_saved - 1) * save_every, dt=dt, save_every=save_every,
                     x0=sw.bump_state(bump_x[idx], bump_y[idx]))
    # the system's own bump location (its preset's) released none of these: the drawn
    # ones are the bump_x / bump_y variables
    params = json.loads(ds.attrs["system_params"])
    ds.attrs["system_params"] = json.dumps({k: v for k, v in params.items()
                                            if k not in ("bump_x", "bump_y")}, sort_keys=True)
    return ds if "trajectory" in ds.dims else ds.expand_dims("trajectory")


def tsunami_ldensf_full_config() -> dict:
    """The original's sizes: 200 trajectories on 150 x 150 (40 kept states).

    Examples
    --------
    >>> tsunami_ldensf_full_config()["N"]
    150
    """
    return {"n_trajectories": 200, "N": 150, "bump_width": 0.03, "n_saved": 40}


_DAY = 86400.0


def shallow_water_ldensf(n_trajectories=16, N=32, hf0_low=0.1, hf0_high=30.0, sigma_low=1.0,
                         sigma_high=4.0, dt=600.0, burn_in_days=10.0, n_saved=30,
                         save_every=36, batch_size=16, random_state=0, n_held_out=0, *,
                         client=None, parts_dir=None) -> xr.Dataset:
    """Forced "atmosphere-like" shallow water with hf0 and sigma drawn per trajectory.

    The planar beta-plane analogue of the original's forced spherical shallow
    water (Dedalus, 512 x 256): the ``"atmosphere"`` preset of
    :class:`~xdyn.systems.ShallowWater` (nonlinear, 6000 km square, depth
    1000 m, height relaxed in 1 day towards a Gaussian at the centre, drag
    1/5 day, viscosity 1e5 m2/s). Per trajectory ``hf0 ~ U(0.1, 30)`` and
    ``sigma ~ U(1, 4)`` (the original's ranges). The forcing width is
    ``sigma L / 16`` (375 to 1500 km, about the deformation radius, 990 km).
    The amplitude is ``hf0`` per cent of the resting depth,
    ``forcing_amplitude = hf0 * depth / 100`` = 1 m to 300 m: the planar model
    has no sphere's scale to carry the original's units over, and a depth
    fraction keeps the range's meaning, from an almost unforced layer to a
    forcing of 30 % of the depth, whose response (10 m/s, Rossby number 0.1)
    is clearly nonlinear yet stable at ``dt``.

    Every trajectory starts from one shared field: a smooth random surface of
    1 m rms spun up for ``burn_in_days`` under the mean forcing (hf0 15.05,
    sigma 2.5), so that the parameters alone tell the trajectories apart, as an
    LDNet started from the zero latent state assumes. Kept states are 6 h apart
    (``save_every * dt``); over the 30 kept states (7.25 days, several
    relaxation times) each flow adjusts to its own forcing.

    Parameters
    ----------
    n_trajectories : int
    N : int
        Grid points per side.
    hf0_low, hf0_high : float
        Range of hf0 (per cent of the resting depth).
    sigma_low, sigma_high : float
        Range of the forcing width sigma (units of ``L / 16``).
    dt : float
        Model time step (s); 600 s is stable to N = 64, 300 s to N = 128.
    burn_in_days : float
        Spin-up of the shared start.
    n_saved : int
        Kept states per trajectory (the first is the shared start).
    save_every : int
        Model steps between kept states.
    batch_size : int
        Trajectories integrated in one batched call (one task); see
        :func:`~xdyn.datasets.trajectories.generate_trajectories` on round-off.
    random_state : int
        Seed of the parameters and of the shared start (drawn here).
    n_held_out, client, parts_dir
        As :func:`kolmogorov_ldensf` (held-out parameters drawn after the start).

    Returns
    -------
    xarray.Dataset
        ``u``, ``v``, ``eta`` (trajectory, time, y, x), ``forcing_amplitude``
        (m) and ``forcing_width`` (trajectory).

    Examples
    --------
    >>> ds = shallow_water_ldensf(n_trajectories=2, N=16, n_saved=3, save_every=2,
    ...                           burn_in_days=0.1)
    >>> dict(ds.eta.sizes), ds.forcing_amplitude.attrs["units"]
    ({'trajectory': 2, 'time': 3, 'y': 16, 'x': 16}, 'm')
    >>> bool((ds.eta.isel(time=0, trajectory=0) == ds.eta.isel(time=0, trajectory=1)).all())
    True
    """
    import functools

    from xdyn.datasets.trajectories import generate_trajectories
    from xdyn.systems import ShallowWater

    rng = np.random.RandomState(random_state)
    n = int(n_trajectories)
    hf0 = rng.uniform(hf0_low, hf0_high, size=n)
    sigma = rng.uniform(sigma_low, sigma_high, size=n)
    depth = float(ShallowWater.presets["atmosphere"]["depth"])
    spin = ShallowWater.preset("atmosphere", N=int(N),
                               forcing_amplitude=0.5 * (hf0_low + hf0_high) * depth / 100,
                               forcing_width=0.5 * (sigma_low + sigma_high))
    x0 = spin.random_initial_state(1, rng)[0]
    x0 = spin.forecast(spin.as_tensor(x0), dt, int(round(burn_in_days * _DAY / dt))).cpu().numpy()
    held = int(n_held_out)
    hf0 = np.concatenate([hf0, rng.uniform(hf0_low, hf0_high, size=held)])
    sigma = np.concatenate([sigma, rng.uniform(sigma_low, sigma_high, size=held)])
    amplitude, n = hf0 * depth / 100, n + held
    make = functools.partial(_atmosphere_chunk, amplitude=amplitude, width=sigma, x0=x0,
                             N=int(N), dt=dt, n_saved=int(n_saved), save_every=int(save_every))
    record = {"generator": "shallow_water_ldensf", "n_trajectories": n, "N": int(N),
              "hf0_low": hf0_low, "hf0_high": hf0_high, "sigma_low": sigma_low,
              "sigma_high": sigma_high, "dt": dt, "burn_in_days": burn_in_days,
              "n_saved": int(n_saved), "save_every": int(save_every),
              "batch_size": int(batch_size), "random_state": random_state,
              **({"n_held_out": held} if held else {})}
    ds = generate_trajectories(make, n, record=record, batch_size=int(batch_size), client=client,
                               parts_dir=parts_dir)
    attrs = _shallow_water_parameter_attrs()
    ds["forcing_amplitude"] = ("trajectory", amplitude, {
        **attrs["forcing_amplitude"],
        "comment": f"hf0 * depth / 100 with hf0 ~ U({hf0_low}, {hf0_high}), depth {depth} m"})
    ds["forcing_width"] = ("trajectory", sigma, {
        **attrs["forcing_width"], "comment": f"sigma ~ U({sigma_low}, {sigma_high})"})
    ds.attrs.update({"title": "forced beta-plane shallow water (planar analogue of the forced "
                     "spherical atmosphere), hf0 and sigma per trajectory",
                     "reference": "Xiao, Si & Chen (2026), LD-EnSF, ICLR", "dt": dt,
                     "save_every": save_every, "random_state": random_state})
    for name in ("forcing_amplitude", "forcing_width"):
        ds.attrs.pop(name, None)
    return ds


def _atmosphere_chunk(indices, *, amplitude, width, x0, N, dt, n_saved, save_every):
    """Trajectories ``indices`` (one forcing each), from the shared start: one batched task."""
    from xdyn.systems import ShallowWater

    idx = np.asarray(indices)
    sw = ShallowWater.preset("atmosphere", N=N)
    # one value per batch member (ShallowWater.parameter broadcasts them)
    sw.forcing_amplitude = sw.as_tensor(amplitude[idx])
    sw.forcing_width = sw.as_tensor(width[idx])
    ds = sw.simulate(n_steps=(n_saved - 1) * save_every, dt=dt, save_every=save_every,
                     x0=np.repeat(x0[None], len(idx), 0))
    if "trajectory" not in ds.dims:
        ds = ds.expand_dims("trajectory")
    ds.attrs.pop("system_params", None)   # the parameters are data variables
    return ds


def shallow_water_ldensf_full_config() -> dict:
    """The issue's 200 trajectories on 128 x 128 (dt 300 s, 40 kept states 6 h apart).

    Examples
    --------
    >>> shallow_water_ldensf_full_config()["N"]
    128
    """
    return {"n_trajectories": 200, "N": 128, "dt": 300.0, "save_every": 72, "n_saved": 40}


def _shallow_water_parameter_attrs():
    from xdyn.systems import ShallowWater

    return ShallowWater.parameter_attrs


def _defaults(generator):
    import inspect

    return {k: p.default for k, p in inspect.signature(generator).parameters.items()
            if p.kind is not p.KEYWORD_ONLY}  # client, parts_dir: how, not what


def _register():
    register_generated("kolmogorov-ldensf", kolmogorov_ldensf, _defaults(kolmogorov_ldensf),
                       replace=True,
                       description="Kolmogorov flow (drag 0.1, n_f=4) trajectories with "
                       "Re ~ U(500, 1500) each from one shared start, 32x32, 16 x 40 states "
                       "(the original's 150x150, 200 trajectories: one config away)")
    register_generated("tsunami-ldensf", tsunami_ldensf, _defaults(tsunami_ldensf),
                       replace=True,
                       description="linearised beta-plane shallow water over 1000 km, depth "
                       "100 m: a Gaussian surface bump released at rest at (bump_x, bump_y) "
                       "~ U(0, 0.5)^2, 32x32, 16 x 30 states (the original's 150x150, 200 "
                       "trajectories: one config away)")
    register_generated("shallow-water-ldensf", shallow_water_ldensf,
                       _defaults(shallow_water_ldensf), replace=True,
                       description="forced nonlinear beta-plane shallow water (the planar "
                       "analogue of the forced spherical atmosphere), hf0 ~ U(0.1, 30) % of "
                       "the depth and sigma ~ U(1, 4) per trajectory from one shared start, "
                       "32x32, 16 x 30 states (200 trajectories on 128x128: one config away)")


_register()
