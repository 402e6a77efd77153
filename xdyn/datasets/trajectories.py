"""Many trajectories as dask tasks, each chunk written atomically into the data cache.

Training sets of the learned families are many independent trajectories
(Kolmogorov flow, shallow water, Lorenz systems). :func:`generate_trajectories`
makes them chunk by chunk with a ``make_chunk(indices)`` function: one after
the other in this process by default, or as one task per chunk on a
``dask.distributed`` client. Three rules make both paths give the same numbers
and make the distributed one safe to interrupt:

- a trajectory's random draws come from its own seed, spawned from the
  ``random_state`` by its index (:func:`trajectory_seeds`), and a chunk is a
  pure function of its indices, so where, in which order, and how often the
  chunks run does not change a bit. (The ``batch_size`` trajectories of a
  chunk are integrated in one batched call, whose vectorised kernels may
  round differently from one trajectory at a time: a different ``batch_size``
  starts from the same states but may differ by round-off, which chaos
  amplifies, as on another machine. It is part of the configuration.);
- every task writes its chunk to its own netCDF file through a temporary name
  and :func:`os.replace` (:func:`~xdyn.datasets.registry.write_netcdf_atomic`),
  with the configuration's record in its attrs, so a worker killed mid-write
  leaves no half file under a part's name (its temporary file is removed by the
  retried task), and a complete part from an earlier, interrupted run is reused;
- dask reschedules a task whose worker died (the scheduler's
  ``allowed-failures``) and retries one that raised (``retries``).

The files are chunked netCDF (one trajectory and a few MiB per HDF5 chunk),
so ``chunks={}`` opens them lazily along the same blocks. The part files must
be visible to the workers: on a real cluster, ``$XDYN_DATA_DIR`` on a shared
file system.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from xdyn.datasets._atomic import remove_stale_parts, write_netcdf_atomic
from xdyn.datasets._chunking import chunk_encoding
from xdyn.utils._validation import is_integer

__all__ = ["chunk_encoding", "generate_trajectories", "system_trajectories",
           "system_trajectory_set", "trajectory_seeds"]

PART_ATTR = "xdyn_part"


def trajectory_seeds(random_state, indices) -> list[int]:
    """One integer seed per trajectory index, spawned from ``random_state``.

    Trajectory ``i`` gets the seed of ``SeedSequence(random_state).spawn(...)[i]``
    whatever the other indices are, so chunking and order never change it.

    Parameters
    ----------
    random_state : int
        The set's seed (>= 0).
    indices : int or sequence of int
        Trajectory indices, or their number (``range(n)``).

    Returns
    -------
    list of int

    Examples
    --------
    >>> trajectory_seeds(0, 3)[2] == trajectory_seeds(0, [2])[0]
    True
    >>> trajectory_seeds(0, [0]) != trajectory_seeds(1, [0])
    True
    """
    if not is_integer(random_state) or random_state < 0:
        raise TypeError(f"random_state must be an integer >= 0, got {random_state!r}")
    indices = range(indices) if isinstance(indices, (int, np.integer)) else indices
    return [int(np.random.SeedSequence(int(random_state), spawn_key=(int(i),))
                .generate_state(1)[0]) for i in indices]


def generate_trajectories(make_chunk, n_trajectories, *, record=None, batch_size=1,
                          client=None, parts_dir=None, retries=2) -> xr.Dataset:
    """Make ``n_trajectories`` chunk by chunk, here or as dask tasks, and gather them.

    Parameters
    ----------
    make_chunk : callable
        ``make_chunk(indices) -> xarray.Dataset`` with a ``trajectory`` dim of
        ``len(indices)``; deterministic given the indices (draw trajectory
        ``i``'s randomness from ``trajectory_seeds(random_state, [i])``).
        Pickled to the workers with a client: a module-level function or a
        :func:`functools.partial` of one.
    n_trajectories : int
    record : dict, optional
        What identifies the set (its configuration); written into every part
        file, which is reused only when its record matches.
    batch_size : int, default=1
        Trajectories per chunk (one task, one batched call, one part file).
        The numbers may depend on it in the last bits (the module notes),
        never on ``client``.
    client : distributed.Client, optional
        Run every chunk as a task on this client; None runs them here.
    parts_dir : str or Path, optional
        Folder of the part files (one per chunk, ``part-<first>-<stop>.nc``).
        Default: none with no client (the chunks stay in memory); a client
        needs one only if the chunks should not travel back in memory.
    retries : int, default 2
        Times a chunk that raises is retried on the cluster.

    Returns
    -------
    xarray.Dataset
        The chunks concatenated along ``trajectory`` (coordinate ``0..n-1``),
        the same numbers with or without a client. With ``parts_dir`` it is
        dask-backed, reading the part files (keep them while it is used);
        otherwise in memory.

    Examples
    --------
    >>> import functools
    >>> from xdyn.systems import Lorenz63
    >>> make = functools.partial(system_trajectories, Lorenz63(), n_steps=5, random_state=0)
    >>> a = generate_trajectories(make, 3, batch_size=2)
    >>> b = generate_trajectories(make, 2, batch_size=2)
    >>> dict(a.sizes), bool(a.x[:2].equals(b.x))
    ({'trajectory': 3, 'time': 6}, True)
    """
    n = int(n_trajectories)
    if n < 1:
        raise ValueError(f"n_trajectories must be >= 1, got {n_trajectories!r}")
    size = int(batch_size)
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    chunks = [list(range(i, min(i + size, n))) for i in range(0, n, size)]
    tag = json.dumps(record, sort_keys=True, default=_tag_str) if record is not None else None
    paths = [None] * len(chunks)
    if parts_dir is not None:
        Path(parts_dir).mkdir(parents=True, exist_ok=True)
        paths = [Path(parts_dir) / f"part-{c[0]:06d}-{c[-1] + 1:06d}.nc" for c in chunks]
    if client is None:
        parts = [_chunk_task(make_chunk, c, p, tag) for c, p in zip(chunks, paths)]
    else:
        futures = [client.submit(_chunk_task, make_chunk, c, p, tag, retries=int(retries),
                                 pure=False, key=f"xdyn-trajectories-{c[0]}-{c[-1] + 1}-"
                                 f"{_token(tag, c, p)}")
                   for c, p in zip(chunks, paths)]
        parts = client.gather(futures)
        for path in paths:  # what writers killed on this host left, once they are reaped
            if path is not None:
                remove_stale_parts(path)
    loaded = [_open_part(p) if isinstance(p, (str, Path)) else p for p in parts]
    ds = xr.concat(loaded, dim="trajectory", coords="minimal", compat="override",
                   combine_attrs="drop_conflicts") if len(loaded) > 1 else loaded[0]
    ds.attrs.pop(PART_ATTR, None)
    return ds.assign_coords(trajectory=np.arange(n))


def system_trajectories(system, indices, *, random_state=0, n_steps, dt=None, save_every=1,
                        burn_in=0.0, **simulate_kwargs) -> xr.Dataset:
    """Trajectories ``indices`` of ``system``, each from its own seeded random start.

    A ``make_chunk`` for :func:`generate_trajectories` (bind everything but
    ``indices`` with :func:`functools.partial`): trajectory ``i`` starts from
    ``system.random_initial_state`` drawn with ``trajectory_seeds(random_state, [i])``,
    and the chunk is integrated in one batched call.

    Parameters
    ----------
    system : xdyn.systems.DynamicalSystem
    indices : sequence of int
    random_state : int, default=0
    n_steps, dt, save_every, burn_in
        As :meth:`~xdyn.systems.DynamicalSystem.simulate`.
    **simulate_kwargs
        Other keywords of the system's ``simulate`` (``output_grid``,
        ``diagnostics`` for Kolmogorov flow).

    Returns
    -------
    xarray.Dataset
        With a ``trajectory`` dim of ``len(indices)``.

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> ds = system_trajectories(Lorenz96(n=8), [0, 1], n_steps=4, dt=0.05)
    >>> dict(ds.x.sizes)
    {'trajectory': 2, 'time': 5, 'k': 8}
    """
    x0 = np.concatenate([system.random_initial_state(1, seed)
                         for seed in trajectory_seeds(random_state, list(indices))])
    ds = system.simulate(x0=x0, n_steps=n_steps, dt=dt, save_every=save_every, burn_in=burn_in,
                         **simulate_kwargs)
    ds.attrs["random_state"] = int(random_state)
    return ds


def system_trajectory_set(system="lorenz96", system_params=None, n_trajectories=64,
                          n_steps=1000, dt=None, save_every=1, burn_in=10.0, random_state=0,
                          batch_size=16, *, client=None, parts_dir=None) -> xr.Dataset:
    """Independent trajectories of any registered system, from seeded random starts.

    The ``system-trajectories`` generated set (``xdyn.datasets.load("system-trajectories",
    system="shallow-water", n_trajectories=200, client=client)``): training data
    for the learned families, made here or as one dask task per trajectory.

    Parameters
    ----------
    system : str, default "lorenz96"
        A name :func:`xdyn.systems.registry.make_system` knows.
    system_params : dict, optional
        The system's parameters (its defaults if omitted).
    n_trajectories, n_steps, dt, save_every, burn_in
        As :meth:`~xdyn.systems.DynamicalSystem.simulate` (``dt``: the
        system's default if None); ``burn_in`` puts each start on the attractor.
    random_state : int, default=0
        Trajectory ``i`` starts from a state drawn with
        ``trajectory_seeds(random_state, [i])``.
    batch_size : int, default=16
        Trajectories integrated together, one task each with a client (part
        of the configuration: see :func:`generate_trajectories`). Batching
        pays on small states (Lorenz systems); use 1 for large fields.
    client, parts_dir
        See :func:`generate_trajectories`.

    Returns
    -------
    xarray.Dataset
        Dims ``(trajectory, time, <system dims>)``.

    Examples
    --------
    >>> ds = system_trajectory_set("lorenz63", n_trajectories=3, n_steps=10, burn_in=0.0)
    >>> dict(ds.x.sizes), ds.attrs["system"]
    ({'trajectory': 3, 'time': 11}, 'Lorenz63')
    """
    import functools

    from xdyn.systems.registry import make_system

    model = make_system(system, **dict(system_params or {}))
    make = functools.partial(system_trajectories, model, random_state=int(random_state),
                             n_steps=int(n_steps), dt=dt, save_every=int(save_every),
                             burn_in=float(burn_in))
    record = {"generator": "system_trajectory_set", "system": system,
              "system_params": dict(system_params or {}), "n_steps": int(n_steps), "dt": dt,
              "save_every": int(save_every), "burn_in": float(burn_in),
              "random_state": int(random_state), "batch_size": int(batch_size)}
    return generate_trajectories(make, n_trajectories, record=record, batch_size=batch_size,
                                 client=client, parts_dir=parts_dir)


def _register() -> None:
    import inspect

    from xdyn.datasets.catalog import register_generated

    defaults = {k: p.default for k, p in inspect.signature(system_trajectory_set).parameters.items()
                if p.kind is not p.KEYWORD_ONLY}
    register_generated("system-trajectories", system_trajectory_set, defaults, replace=True,
                       script="make_generated.py", resolve=_resolve_config,
                       description="independent trajectories of any system (default 64 "
                       "Lorenz-96 runs of 1000 steps), batches of them as dask tasks with a "
                       "client")


# --- private -----------------------------------------------------------------
def _resolve_config(config: dict) -> dict:
    """The ``system-trajectories`` config with what the system defaults spelled out.

    The system by its short name, every parameter of it (a number as the type
    of the system's default) and ``dt`` (the system's ``default_dt`` for None):
    a default left out and one spelled out make the same numbers, so they name
    one cache file.
    """
    from xdyn.datasets.generated import _like
    from xdyn.systems.registry import make_system

    defaults = make_system(config["system"]).get_params(deep=False)
    given = {k: _like(v, defaults.get(k)) for k, v in (config["system_params"] or {}).items()}
    model = make_system(config["system"], **given)
    dt = model.default_dt if config["dt"] is None else config["dt"]
    return {**config, "system": model.name, "dt": _like(dt, 0.0),
            "system_params": json.loads(model.describe()["system_params"])}


def _token(tag, chunk, path) -> str:
    import hashlib

    return hashlib.sha256(repr((tag, chunk, str(path))).encode()).hexdigest()[:16]


def _chunk_task(make_chunk, indices, path, tag):
    """One task: make a chunk, or reuse its complete part file; write it atomically."""
    if path is not None and tag is not None and _part_ok(path, tag):
        return path  # made by an earlier, interrupted run of the same configuration
    ds = make_chunk(indices)
    if not isinstance(ds, xr.Dataset) or ds.sizes.get("trajectory") != len(indices):
        raise ValueError(f"make_chunk({indices}) must return a Dataset with a 'trajectory' dim "
                         f"of {len(indices)}, got {type(ds).__name__} "
                         f"{dict(getattr(ds, 'sizes', {}))}")
    if path is None:
        return ds
    ds = ds.copy()
    if tag is not None:
        ds.attrs[PART_ATTR] = tag
    write_netcdf_atomic(ds, path, encoding=chunk_encoding(ds))
    return path


def _part_ok(path, tag) -> bool:
    path = Path(path)
    remove_stale_parts(path)  # what a killed writer of this part left
    if not path.is_file():
        return False
    try:
        with xr.open_dataset(path, decode_times=False) as ds:
            return ds.attrs.get(PART_ATTR) == tag
    except Exception:  # noqa: BLE001 - an unreadable part is made again
        return False


def _open_part(path) -> xr.Dataset:
    # lazily, one dask chunk per HDF5 chunk: a set larger than the driver's memory
    # streams from the parts into the cache file
    return xr.open_dataset(path, chunks={})


def _tag_str(value):
    """A record value JSON cannot hold, in full: ``str`` of an array over 1000 elements
    abbreviates it with "...", and two configurations would share a tag (and parts)."""
    if isinstance(value, np.ndarray):
        return np.array2string(value, threshold=sys.maxsize)  # == str(value) below 1000
    return str(value)
