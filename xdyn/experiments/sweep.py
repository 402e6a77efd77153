"""Many independent assimilation experiments in batched calls, on one machine or a cluster.

Independent truths (seeds) come as a batch dim of the observations (e.g. the
``trajectory`` dim of ``simulate(n_trajectories=...)``); a grid of inflation
factors becomes a leading ``inflation`` batch dim. The filter then runs every
combination at once: one forecast and one batched analysis per cycle.
Parameters that change array shapes (``n_members``, a localization radius)
cannot share a batch: each value of ``param_grid`` is its own batched call.

A grid too large for one batch is cut into chunks of at most ``batch_size``
experiments; with a ``dask.distributed`` client the chunks run as tasks on its
workers, without one they run one after the other here. The chunks, and so the
random draws of each, are the same either way: a sweep on a cluster returns
exactly the numbers of the same sweep run serially.

The experiments of one batched call share one cycle: one that fails (a
non-finite analysis) ends it for all, and every cell of that call reads NaN.
The NaN cells of a call are therefore run again, by bisection: halves of the
call (along ``inflation`` first, then the batch dims) in batched calls, each
with the same ``random_state``, and again halves of any that still hold NaN,
down to a cell on its own. NaN in a sweep means the experiment fails alone.
One failing cell in a call of ``n`` costs about ``2 log2(n)`` rerun calls, and
each failing cell must end in a call of its own: a row of ``k`` failing cells
costs about ``2 log2(n) + 2 k``, not one call per cell of the call.
"""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr
from sklearn.base import clone

from xdyn.metrics import mean_after_burn_in, state_rmse
from xdyn.model_selection import unwrap

__all__ = ["sweep"]


def _sweep_batch(estimator, obs, truth, inflation):
    """One batched call: RMSE with dims ``(inflation, <batch dims of obs>)``."""
    est = clone(estimator)
    if inflation is not None:
        grid = np.asarray(inflation, dtype=float)
        noise = obs["noise_std"] if "noise_std" in obs else None
        obs = obs.drop_vars([v for v in ("noise_std",) if v in obs])
        obs = obs.expand_dims(inflation=grid).transpose("inflation", ...)
        if noise is not None:  # the noise is the same for every grid point
            obs["noise_std"] = noise
        est.set_params(inflation=grid)
    if hasattr(est, "return_ensemble"):
        est.set_params(return_ensemble=False)
    analysis = est.fit(obs).predict(obs)
    batch = [d for d in obs["observation"].dims if d not in ("time", "obs")]
    out = mean_after_burn_in(state_rmse(analysis, truth, keep_dims=batch), est.burn_in)
    return out.transpose(*batch)


def _check_axis(name, values, flat=False):
    """Refuse a grid axis that is a single value (``inflation=1.05``) or empty: it has no
    length to make a dim of (a bare IndexError or TypeError deep in the sweep before)."""
    try:
        size = len(values)
    except TypeError:  # a number, a 0-d array
        size = 0
    if isinstance(values, str) or size == 0 or (flat and np.ndim(values) != 1):
        raise ValueError(f"{name}={values!r}: give a non-empty 1-D sequence of values (a "
                         "list of one for one value; a fixed value goes on the estimator)")


def _chunks(n_inflation, batch_sizes, batch_size):
    """Index pieces ``(inflation slice or None, slice of the first batch dim or None)``."""
    per_point = int(np.prod(batch_sizes)) if batch_sizes else 1
    total = per_point * max(n_inflation, 1)
    if batch_size is None or total <= batch_size:
        return [(None, None)]
    if n_inflation and per_point <= batch_size:
        step = max(1, batch_size // per_point)
        return [(slice(i, i + step), None) for i in range(0, n_inflation, step)]
    if not batch_sizes:
        return [(slice(i, i + 1), None) for i in range(n_inflation)]
    # one grid point is larger than a batch: cut the first batch dim (seeds) too
    rest = per_point // batch_sizes[0]
    step = max(1, batch_size // rest)
    pieces = [slice(j, j + step) for j in range(0, batch_sizes[0], step)]
    infl = [slice(i, i + 1) for i in range(n_inflation)] if n_inflation else [None]
    return [(i, j) for i in infl for j in pieces]


def sweep(estimator, obs, truth, inflation=None, *, param_grid=None, batch_size=None,
          client=None):
    """Time-averaged analysis RMSE of ``estimator`` for every grid point and truth.

    Parameters
    ----------
    estimator : ensemble assimilator
        An estimator with an ``inflation`` parameter (EnKF, LETKF).
    obs : xarray.Dataset
        Observations, possibly with extra batch dims (e.g. ``trajectory``).
    truth : xarray.Dataset
        The matching truth (same batch dims).
    inflation : sequence of float, optional
        Inflation factors, run together along a new ``inflation`` dim (a list of
        one for one factor; a single number is refused: set it on the estimator).
    param_grid : dict of str -> sequence, optional
        Other parameters of ``estimator`` (``n_members``, ``localization_radius``
        ...), one batched call per combination; each becomes a dim. Each value
        is a non-empty sequence, as ``inflation``.
    batch_size : int, optional
        Most experiments (inflation values x batch elements of ``obs``) in one
        batched call; a larger grid is cut into chunks (along ``inflation``,
        then the first batch dim). Default: the whole grid at once. Each chunk
        runs with the estimator's ``random_state``, so a stochastic filter's
        scores (EnKF perturbations, initial ensembles) change with how the
        grid is cut: compare cells of one ``batch_size``.
    client : distributed.Client, optional
        Run the chunks as tasks on this client's workers and gather them;
        the same numbers as without a client.

    Returns
    -------
    xarray.DataArray
        ``rmse`` with dims ``(*param_grid, inflation, <batch dims of obs>)``, in
        the units of the state; the time average excludes the estimator's
        ``burn_in``. NaN where the filter failed on its own (its analysis
        became non-finite) at any scored time. One failing experiment turns
        its whole batch NaN, so the NaN cells of a batched call are run again
        in halves (along ``inflation``, then the batch dims), and the halves
        that still hold NaN in halves again, down to a cell alone. A rerun
        cell's score is that of the smallest rerun batch that came back
        finite for it, whose random draws are not those of the first batch.
        The attr ``n_rerun`` counts the batched assimilation calls these reruns
        made (0 when no cell came back NaN or every NaN came from a call of one
        experiment).

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> from xdyn.observe import observe
    >>> from xdyn.assimilation import EnKF
    >>> truth = Lorenz96().simulate(n_trajectories=2, n_steps=100, burn_in=5, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    >>> enkf = EnKF(n_members=20, raise_on_divergence=False, random_state=0)  # 1.0 loses track
    >>> scores = sweep(enkf, obs, truth, inflation=[1.0, 1.05])
    >>> scores.dims, scores.attrs["units"], scores.attrs["n_rerun"]
    (('inflation', 'trajectory'), '1', 0)
    >>> sweep(enkf.set_params(inflation=1.05), obs, truth, param_grid={"n_members": [10, 20]}).dims
    ('n_members', 'trajectory')
    """
    obs, truth = unwrap(obs), unwrap(truth)
    param_grid = dict(param_grid or {})
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ValueError(f"batch_size={batch_size!r}: give a positive integer or None")
    bad = [k for k in param_grid if k not in estimator.get_params() or k == "inflation"]
    if bad:
        raise ValueError(f"param_grid: {bad} {'is' if len(bad) == 1 else 'are'} not a "
                         f"parameter of {type(estimator).__name__} to grid over "
                         "(inflation has its own argument, batched)")
    if inflation is not None:
        _check_axis("inflation", inflation, flat=True)
    for name, values in param_grid.items():
        _check_axis(f"param_grid[{name!r}]", values)
    grid = None if inflation is None else np.asarray(inflation, dtype=float)
    batch_dims = [d for d in obs["observation"].dims if d not in ("time", "obs")]
    chunks = _chunks(0 if grid is None else grid.size, [obs.sizes[d] for d in batch_dims],
                     batch_size)
    points = list(itertools.product(*param_grid.values()))
    jobs = []
    for values in points:
        est = clone(estimator).set_params(**dict(zip(param_grid, values)))
        for infl, piece in chunks:
            o, t = obs, truth
            if piece is not None:
                o, t = obs.isel({batch_dims[0]: piece}), truth.isel({batch_dims[0]: piece})
            jobs.append((est, o, t, None if grid is None else grid[infl or slice(None)]))
    parts = _run_batches(jobs, client)
    out = _assemble(parts, points, param_grid, chunks, batch_dims)
    out, n_rerun = _rerun_failed(out, estimator, obs, truth, param_grid, chunks, batch_dims,
                                 client)
    out.name = "rmse"
    # the state's units, from the chunks' scores (the grid's reassembly does not keep attrs)
    units = {"units": parts[0].attrs["units"]} if "units" in parts[0].attrs else {}
    out.attrs = {"long_name": "time-averaged analysis RMSE", **units,
                 "method": type(estimator).__name__, "n_rerun": n_rerun}
    return out


def _run_batches(jobs, client):
    """:func:`_sweep_batch` of every job: here one after the other, or as tasks of
    ``client``, gathered in order."""
    if client is None:
        return [_sweep_batch(*job) for job in jobs]
    return client.gather([client.submit(_sweep_batch, *job, pure=False) for job in jobs])


def _rerun_failed(out, estimator, obs, truth, param_grid, chunks, batch_dims, client):
    """``out`` with its NaN cells run again by bisection, and how many calls that took.

    A batch shares one cycle, which one failing experiment ends for all (every element
    NaN from then on), so a NaN from a batched call may be a healthy cell. Each call of
    the sweep (a grid point's chunk) that left NaN is split in halves, each cut to the
    bounding box of its NaN cells and run batched; halves that still hold NaN are split
    again, down to single cells, whose NaN is then their own. The calls of one level run
    together (as tasks of ``client``). Only NaN cells take a rerun's score.
    """
    values = out.values.copy()
    axes = out.dims[len(param_grid):]  # ([inflation], *batch_dims), as each call returns
    sizes = [out.sizes[d] for d in axes]
    todo = []
    for point in np.ndindex(*[len(v) for v in param_grid.values()]):
        for infl, piece in chunks:
            cut = dict(zip(["inflation", *batch_dims[:1]], [infl, piece]))
            box = tuple(np.arange(n)[cut.get(d) or slice(None)] for d, n in zip(axes, sizes))
            # the sweep's own call ran this box: what it left NaN is split at once
            todo += [(point, b) for b in _to_run(np.isnan(values[point + np.ix_(*box)]), box)]
    n_calls = 0
    while todo:
        jobs = []
        for point, box in todo:
            est = clone(estimator).set_params(**{k: list(v)[i] for (k, v), i
                                                 in zip(param_grid.items(), point)})
            at = dict(zip(axes, box))  # index lists keep each dim and its labels
            grid = out["inflation"].values[at["inflation"]] if "inflation" in at else None
            jobs.append((est, obs.isel({d: at[d] for d in batch_dims}),
                         truth.isel({d: at[d] for d in batch_dims if d in truth.dims}), grid))
        parts = _run_batches(jobs, client)
        n_calls += len(jobs)
        level, todo = todo, []
        for (point, box), part in zip(level, parts):
            index = point + np.ix_(*box)
            block = values[index]
            failed = np.isnan(block)
            block[failed] = part.values[failed]
            values[index] = block
            todo += [(point, b) for b in _to_run(np.isnan(block), box)]
    return out.copy(data=values), n_calls


def _to_run(failed, box):
    """The boxes to run next for the NaN cells ``failed`` (a mask over ``box``, index
    arrays per axis) that a call of ``box`` left: their bounding box where it is smaller,
    else the two halves of ``box`` along its first axis longer than one (inflation, the
    usual failing unit, then the batch dims), each cut to its NaN cells. None when
    ``box`` is one cell: its NaN is its own failure."""
    if not failed.any():
        return []
    tight = _bounds(failed, box)
    if any(len(t) < len(b) for t, b in zip(tight, box)):
        return [tight]
    axis = next((a for a, b in enumerate(box) if len(b) > 1), None)
    if axis is None:
        return []
    half = (len(box[axis]) + 1) // 2
    boxes = []
    for part in (slice(None, half), slice(half, None)):
        mask = failed[(slice(None),) * axis + (part,)]
        if mask.any():
            boxes.append(_bounds(mask, box[:axis] + (box[axis][part],) + box[axis + 1:]))
    return boxes


def _bounds(mask, box):
    """The indices of ``box`` along each axis that hold a True of ``mask``."""
    return tuple(b[mask.any(axis=tuple(o for o in range(mask.ndim) if o != a))]
                 for a, b in enumerate(box))


def _assemble(parts, points, param_grid, chunks, batch_dims):
    """The chunks back into one array: batch pieces, then inflation, then the grid."""
    per_point = []
    n = len(chunks)
    for p in range(len(points)):
        mine = parts[p * n:(p + 1) * n]
        rows = {}
        for (infl, piece), part in zip(chunks, mine):
            rows.setdefault(None if infl is None else infl.start, []).append(part)
        pieces = [xr.concat(r, batch_dims[0]) if len(r) > 1 else r[0] for r in rows.values()]
        per_point.append(xr.concat(pieces, "inflation") if len(pieces) > 1 else pieces[0])
    if not param_grid:
        return per_point[0]
    first = per_point[0]
    shape = [len(v) for v in param_grid.values()]
    data = np.stack([p.values for p in per_point]).reshape(shape + list(first.shape))
    coords = {name: np.asarray(values) for name, values in param_grid.items()}
    coords.update({k: v for k, v in first.coords.items()})
    return xr.DataArray(data, dims=[*param_grid, *first.dims], coords=coords)
