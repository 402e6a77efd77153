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
A cell that comes back NaN is therefore run again on its own (its observations,
its parameter values, the same ``random_state``), so NaN in a sweep means the
experiment fails alone.
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
        became non-finite) at any scored time: a cell that a batched call
        returns NaN is run again alone, since one failing experiment turns its
        whole batch NaN; the rerun's score is that of the experiment alone,
        whose random draws are not those it had in the batch. The attr
        ``n_rerun`` counts these reruns (0 when no cell came back NaN).

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
    if client is None:
        parts = [_sweep_batch(*job) for job in jobs]
    else:
        parts = client.gather([client.submit(_sweep_batch, *job, pure=False) for job in jobs])
    out = _assemble(parts, points, param_grid, chunks, batch_dims)
    # a NaN from a call of one experiment is already that experiment's own failure
    shared = any(np.prod([o.sizes[d] for d in batch_dims]) * (1 if g is None else g.size) > 1
                 for _, o, _, g in jobs)
    n_rerun = 0
    if shared:
        out, n_rerun = _rerun_failed(out, estimator, obs, truth, param_grid, batch_dims, client)
    out.name = "rmse"
    # the state's units, from the chunks' scores (the grid's reassembly does not keep attrs)
    units = {"units": parts[0].attrs["units"]} if "units" in parts[0].attrs else {}
    out.attrs = {"long_name": "time-averaged analysis RMSE", **units,
                 "method": type(estimator).__name__, "n_rerun": n_rerun}
    return out


def _rerun_failed(out, estimator, obs, truth, param_grid, batch_dims, client):
    """``out`` with each NaN cell run again on its own, and how many were: a batch shares
    one cycle, which one failing experiment ends for all (every element NaN from then on),
    so a NaN from a batched call may be a healthy cell."""
    values = out.values.copy()
    failed = np.argwhere(np.isnan(values))
    if not failed.size:
        return out, 0
    jobs = []
    for index in failed:
        cell = dict(zip(out.dims, index))
        est = clone(estimator).set_params(**{k: list(v)[cell[k]] for k, v in param_grid.items()})
        one = {d: [cell[d]] for d in batch_dims}  # a list keeps the dim and its label
        grid = None if "inflation" not in cell else out["inflation"].values[[cell["inflation"]]]
        jobs.append((est, obs.isel(one), truth.isel({d: i for d, i in one.items()
                                                     if d in truth.dims}), grid))
    if client is None:
        parts = [_sweep_batch(*job) for job in jobs]
    else:
        parts = client.gather([client.submit(_sweep_batch, *job, pure=False) for job in jobs])
    for index, part in zip(failed, parts):
        values[tuple(index)] = float(part.values.reshape(-1)[0])
    return out.copy(data=values), len(jobs)


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
