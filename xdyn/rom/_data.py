"""Trajectories of snapshots <-> ``(n_trajectories, n_times, n_features)`` arrays.

A ROM's samples are the snapshots of ``sample_dim`` (time) of one or several
independent trajectories (``trajectory_dim``): windows of consecutive snapshots
must not cross from one trajectory into the next, so the trajectories are kept
apart as a leading axis. The trajectories (and an ensemble's members) are stacked
together by :func:`xdyn.preprocessing.stacking.flatten_variables` (the one place
Dataset <-> matrix happens) in the layout :func:`xdyn.preprocessing.stack_samples`
records, and unstacked as :func:`xdyn.preprocessing.unstack_samples` unstacks
(its code, with the members' and trajectories' dims leading), so unseen data
round-trip too.
"""

from __future__ import annotations

import dask
import dask.array as dsa
import numpy as np
import xarray as xr

from xdyn._labels import (MEMBER_DIM, check_trajectory_dim, even_step, format_step, is_datetime,
                          is_time, same_step)
from xdyn._units import other_units, stated_units
from xdyn.metrics import relative_l2
from xdyn.model_selection import unwrap
from xdyn.preprocessing.stacking import (_as_dataset, _check_compatible, _in_layout,
                                         _internal_name, _is_xarray, _layout, flatten_variables)


class Layout:
    """How the input was given, to return the same kind (private)."""

    def __init__(self, info, kind, trajectory_dim=None, trajectory_coord=None, time_coord=None):
        self.info = info
        self.kind = kind  # "xarray" or "array"
        self.trajectory_dim = trajectory_dim  # None when the input had no trajectory dim
        self.trajectory_coord = trajectory_coord
        self.time_coord = time_coord


def to_trajectories(X, sample_dim, trajectory_dim, info=None, name="X", lazy=False):
    """``X`` as a float array ``(n_trajectories, n_times, n_features)`` and its :class:`Layout`.

    Without ``info`` (``fit``), ``X`` may not have a ``member`` dim: ``fit`` would read it
    as a feature, ``transform`` as an ensemble. With a fitted ``info``, an ensemble's
    ``member`` dim that is no feature dim of it is stacked like the trajectories (members
    outermost): ``Layout.trajectory_dim`` is then a :class:`LeadDims`, which
    :func:`latent_output` and :func:`from_trajectories` give back, with the coordinates
    along ``member``. All of it is one :func:`~xdyn.preprocessing.stacking.flatten_variables`.
    ``lazy``: dask-backed ``X`` stays a dask array, its finite check runs at compute time.
    """
    # the ROMs keep 'member' for an ensemble's members (their forecasts' runs would sit there)
    check_trajectory_dim(trajectory_dim, (MEMBER_DIM,), "the ROMs")
    X = unwrap(X)
    if info is not None and isinstance(info, int) == _is_xarray(X):
        raise ValueError(f"{name} is {_kind(X)}; the estimator was fitted on "
                         f"{'a bare array' if isinstance(info, int) else _kind(info)}: give "
                         f"it the same kind of data")
    if not _is_xarray(X):
        if isinstance(X, (xr.Dataset, xr.DataArray)) or not hasattr(X, "__array__"):
            raise TypeError(f"{name} must be an xarray Dataset/DataArray or a 2-D array; "
                            f"got {type(X).__name__}")
        keep = lazy and isinstance(X, dsa.Array)
        values = X if keep else np.asarray(X)
        if values.ndim != 2 or not np.issubdtype(values.dtype, np.number):
            raise ValueError(f"{name}: a bare array must be a numeric (n_samples, n_features) "
                             f"matrix; got shape {values.shape} and dtype {values.dtype}")
        if info is not None and values.shape[1] != info:
            raise ValueError(f"{name} has {values.shape[1]} features; the estimator was fitted "
                             f"on {info}")
        if keep:
            return _finite_lazily(values[None].astype(np.float64), name), \
                Layout(values.shape[1], "array")
        _check_finite(values, name)
        # no copy of a float64 matrix (a reducer's training set can be gigabytes)
        return np.asarray(values[None], dtype=np.float64), Layout(values.shape[1], "array")
    if sample_dim not in X.dims:
        raise ValueError(f"{name} lacks the sample dim {sample_dim!r} (sample_dim); its dims "
                         f"are {tuple(X.dims)}")
    if trajectory_dim is not None and trajectory_dim == sample_dim:
        raise ValueError(f"trajectory_dim and sample_dim must differ; both are {sample_dim!r}")
    if info is None and MEMBER_DIM in X.dims and sample_dim != MEMBER_DIM:
        runs = trajectory_dim or "trajectory"
        how = "" if trajectory_dim else f" with trajectory_dim={runs!r}"
        raise ValueError(
            f"{name} has a {MEMBER_DIM!r} dim (an ensemble): fit would read it as a feature "
            f"dim (joint modes of the members) while transform and predict read it as an "
            f"ensemble's members. To fit on the members' snapshots, make them trajectories "
            f"first: xr.concat([X.sel({MEMBER_DIM}=m, drop=True) for m in "
            f"X.{MEMBER_DIM}.values], {runs!r}){how}; to fit the members as features, "
            f"rename the dim")
    has_traj = trajectory_dim is not None and trajectory_dim in X.dims
    lead = _ensemble_dims_to_stack(X, info, sample_dim, trajectory_dim)
    outer = lead + ([trajectory_dim] if has_traj else [])  # members outermost
    # one part (the first trajectory of the first member) sets or checks the layout: the
    # others share its variables, dims, grid and attrs
    one = X.isel({d: 0 for d in outer}, drop=True) if outer else X
    if info is None:
        info = _layout(one, sample_dim)
    else:
        _check_compatible(one, info)
    ds, _ = _as_dataset(X, _internal_name(info))
    # a variable without a trajectory (or member) dim is the same in every one, as in a part
    ds = ds.assign({v.name: ds[v.name].expand_dims(
        {d: X.sizes[d] for d in outer if d not in ds[v.name].dims})
        for v in info.variables if not set(outer) <= set(ds[v.name].dims)})
    values, _ = flatten_variables(ds, info.variables, lead_dims=(*outer, sample_dim))
    values = values.reshape((-1,) + values.shape[-2:])  # (n_members * n_traj, n_times, n_f)
    if lazy and dask.is_dask_collection(values):
        values = _finite_lazily(values.astype(np.float64), name, info)
    else:
        values = np.asarray(values, dtype=np.float64)
        _check_finite(values, name, info)
    time = X[sample_dim] if sample_dim in X.coords else None
    traj_dim = trajectory_dim if has_traj else None
    if lead:
        traj_dim = LeadDims(lead, [X.sizes[d] for d in lead], _coords_along(X, lead), traj_dim)
    return values, Layout(info, "xarray", traj_dim,
                          X[trajectory_dim] if has_traj and trajectory_dim in X.coords else None,
                          time)


def _kind(data):
    """What ``data`` is, or what a fitted layout was stacked from, in words."""
    if getattr(data, "is_dataarray", isinstance(data, xr.DataArray)):
        return "an xarray DataArray"
    return "an xarray Dataset" if hasattr(data, "variables") else "a bare array"


def _coords_along(X, dims):
    """The coordinates of ``X`` along ``dims`` only (index or not: a ``seed(member)``)."""
    return {k: c.variable for k, c in X.coords.items() if c.dims and set(c.dims) <= set(dims)}


def _label_coords(coord, dim):
    """``{name: Variable}``: ``coord`` as the coordinate of ``dim``, with the coordinates it
    carries along ``dim`` only when it is a DataArray taken from the input (a
    ``seed(trajectory)``, a ``valid_hour(time)``), which a DataArray constructor drops."""
    if not isinstance(coord, xr.DataArray):
        return {dim: coord}
    return {**_coords_along(coord, [dim]), dim: coord.variable}


def _ensemble_dims_to_stack(X, info, sample_dim, trajectory_dim):
    """``[MEMBER_DIM]`` where ``X`` has it and the fitted layout ``info`` reads it as no
    feature (nor is it the sample or trajectory dim), else ``[]``."""
    features = {d for v in getattr(info, "variables", ()) for d in v.feature_dims}
    if info is None or MEMBER_DIM not in X.dims or MEMBER_DIM in features \
            or MEMBER_DIM in (sample_dim, trajectory_dim):
        return []
    return [MEMBER_DIM]


def member_dims(layout):
    """The dims stacked into the trajectory axis besides the trajectories (``member``)."""
    lead = layout.trajectory_dim
    return lead.dims if isinstance(lead, LeadDims) else ()


def time_step(time, name="X"):
    """The step of an evenly spaced, increasing time coordinate.

    Returns a float for numeric times, a ``timedelta64`` for datetime64 (or
    timedelta64) ones, and None when there is none to read (no coordinate, a
    single snapshot, or times of another kind). Raises when the times are
    unevenly spaced or do not increase: a ROM steps one snapshot at a time.
    """
    if time is None:
        return None
    return even_step(time, f"{name}'s {time.name!r} coordinate",
                     "the model steps one snapshot at a time and needs evenly spaced snapshots")


def time_units(time, fitted=None, name="X", model="the model"):
    """The ``units`` a time coordinate states (None where it states none, or is None).

    With ``fitted`` (the training ``time_units_``), raises where both state units
    and they are not the same unit (:func:`xdyn._units.same_units`: ``"hours"``
    is ``"h"``): a model fitted on steps of 1 hour would step 1 day on times in
    days, and label them so.
    """
    units = None if time is None else stated_units(time.attrs.get("units"))
    if other_units(units, fitted):
        raise ValueError(f"{model} was fitted on {time.name!r} in units {fitted!r}; {name}'s "
                         f"{time.name!r} is in {units!r}: convert its times to {fitted!r} first")
    return units


def rollout_times(time, step, n_steps, sample_dim, name="X", units=None, model="the model"):
    """Times of ``n_steps`` snapshots after the last one of ``time``, ``step`` apart.

    ``step`` is the training time step (``time_step_``): a model fitted on
    snapshots ``dt`` apart steps ``dt`` whatever its context's spacing, so a
    context ``time`` spaced otherwise raises, and so does one in other
    ``units`` than the training ``units`` (``time_units_``; see
    :func:`time_units`). Without a training step (fitted without a time
    coordinate) the context's own step labels the rollout.
    Returns None when there is nothing to label with.
    """
    if time is None or time.size == 0 or not is_time(time.values):
        return None
    time_units(time, units, name, model)
    values = np.asarray(time.values)
    if step is not None and is_datetime(values) != isinstance(step, np.timedelta64):
        kind = "datetime" if isinstance(step, np.timedelta64) else "numeric"
        raise ValueError(f"{name}'s {time.name!r} coordinate has dtype {values.dtype}; the "
                         f"model was fitted on {kind} times (time step {format_step(step)})")
    own = time_step(time, name)
    if step is None:
        step = own
    elif own is not None:
        if not same_step(step, own, values):
            raise ValueError(f"{name}'s time step {format_step(own)} differs from the training "
                             f"time step {format_step(step)} (time_step_): the model steps "
                             f"{format_step(step)} at a time; give {name} at that step")
    if step is None:
        return None
    return xr.DataArray(values[-1] + step * np.arange(1, n_steps + 1), dims=sample_dim,
                        attrs=dict(time.attrs))


def from_trajectories(values, layout, time_coord=None, member_dim=None):
    """Inverse of :func:`to_trajectories` for ``(n_traj, n_times, n_features)`` values.

    ``values`` may carry a leading member axis (``member_dim`` names it). All the
    trajectories (and members) are unstacked at once, as
    :func:`~xdyn.preprocessing.unstack_samples` unstacks samples (the same code, with
    their dims leading).
    """
    lead = layout.trajectory_dim
    ensemble = lead if isinstance(lead, LeadDims) else None
    traj_dim = ensemble.trajectory_dim if ensemble else lead
    if layout.kind == "array":
        if ensemble:
            n_traj = () if traj_dim is None else (-1,)
            return values.reshape(ensemble.sizes + n_traj + values.shape[1:])
        return values[:, 0] if member_dim else values[0]
    dims = ([member_dim] if member_dim else []) + list(ensemble.dims if ensemble else ()) \
        + ([traj_dim] if traj_dim else [])
    members = list(ensemble.sizes) if ensemble else []
    sizes = list(values.shape[:1] if member_dim else ()) + members
    if traj_dim:  # the trajectory axis holds the members' trajectories, members outermost
        sizes.append(values.shape[-3] // int(np.prod(members)))
    sd, (n_times, n_features) = layout.info.sample_dim, values.shape[-2:]
    coords = dict(ensemble.coords) if ensemble else {}
    if layout.trajectory_coord is not None:
        coords.update(_label_coords(layout.trajectory_coord, traj_dim))
    if time_coord is not None:
        labelled = isinstance(time_coord, xr.DataArray)
        coords.update(_label_coords(time_coord, sd))
        coords[sd] = xr.Variable((sd,), time_coord.data if labelled else np.asarray(time_coord),
                                 dict(time_coord.attrs if labelled else layout.info.sample_attrs))
    values = values.reshape(tuple(sizes) + (n_times, n_features))
    return _in_layout(values, layout.info, (*dims, sd), coords)


def latent_output(z, layout, sample_dim, time_coord=None, name="z", units="1"):
    """Latent coordinates ``(n_traj, n_times, n_latent)`` as the kind the input was.

    ``units``: their ``units`` attr, ``"1"`` for dimensionless latents (a VAE's);
    None writes none (POD coefficients: their fields', :func:`xdyn._units.common_units`).
    """
    if layout.kind == "array":
        return z[0]
    traj_dim, lead = layout.trajectory_dim, None
    if isinstance(traj_dim, LeadDims):  # an ensemble's members, outermost
        lead, traj_dim = traj_dim, traj_dim.trajectory_dim
        z = z.reshape(lead.sizes + ((-1,) if traj_dim else ()) + z.shape[-2:])
    elif not traj_dim:
        z = z[0]
    dims = list(lead.dims if lead else ()) + ([traj_dim] if traj_dim else []) + \
        [sample_dim, "latent"]
    coords = {"latent": np.arange(z.shape[-1]), **(lead.coords if lead else {})}
    if time_coord is not None:
        coords.update(_label_coords(time_coord, sample_dim))
    if layout.trajectory_coord is not None:
        coords.update(_label_coords(layout.trajectory_coord, traj_dim))
    attrs = {"long_name": "latent coordinates"}
    if units is not None:
        attrs["units"] = units
    da = xr.DataArray(z, dims=dims, coords=coords, name=name, attrs=attrs)
    return da if layout.info.is_dataarray else da.to_dataset()


def relative_error(prediction, truth):
    """:func:`xdyn.metrics.relative_l2` of two arrays of one shape, over all of them (0 for
    an exact prediction of an all-zero truth, where the ratio is 0 / 0)."""
    if not np.any(truth) and np.array_equal(prediction, truth):
        return 0.0
    return float(relative_l2(xr.DataArray(prediction), xr.DataArray(truth)))


class LeadDims:
    """Dims of latent coordinates before ``(trajectory_dim, sample_dim, "latent")``, an
    ensemble's ``member`` say, flattened into the trajectory axis by :func:`latent_input`
    and restored by :func:`from_trajectories` (private)."""

    def __init__(self, dims, sizes, coords, trajectory_dim):
        self.dims = tuple(dims)
        self.sizes = tuple(sizes)
        self.coords = coords  # {name: Variable}: the coordinates along these dims only
        self.trajectory_dim = trajectory_dim  # the inner trajectory dim, or None


def latent_input(Z, sample_dim, trajectory_dim, n_latent, name="z", lazy=False):
    """Latent coordinates given to ``inverse_transform`` -> array and output layout bits.

    ``lazy``: dask-backed ``Z`` stays a dask array.
    """
    # the ROMs keep 'member' for an ensemble's members (their forecasts' runs would sit there)
    check_trajectory_dim(trajectory_dim, (MEMBER_DIM,), "the ROMs")
    Z = unwrap(Z)
    if isinstance(Z, xr.Dataset):
        if name not in Z:
            raise ValueError(f"expected latent variable {name!r} (from transform); got "
                             f"{sorted(Z.data_vars)}")
        Z = Z[name]
    if isinstance(Z, xr.DataArray):
        if "latent" not in Z.dims or sample_dim not in Z.dims:
            raise ValueError(f"latent coordinates need dims ({sample_dim!r}, 'latent'); got "
                             f"{Z.dims}")
        Z = latent_in_order(Z)
        has_traj = trajectory_dim in Z.dims
        order = ([trajectory_dim] if has_traj else []) + [sample_dim, "latent"]
        # other dims (an ensemble's member ...) are kept: flattened into the trajectory axis
        lead = [d for d in Z.dims if d not in order]
        values = Z.transpose(*lead, *order).data
        values = values.astype(np.float64) if lazy and dask.is_dask_collection(values) \
            else np.asarray(values, dtype=np.float64)
        values = values.reshape((int(np.prod(values.shape[:-2])),) + values.shape[-2:])
        time = Z[sample_dim] if sample_dim in Z.coords else None
        traj = Z[trajectory_dim] if has_traj and trajectory_dim in Z.coords else None
        traj_dim = trajectory_dim if has_traj else None
        if lead:
            traj_dim = LeadDims(lead, [Z.sizes[d] for d in lead], _coords_along(Z, lead),
                                traj_dim)
        meta = (traj_dim, traj, time)
    else:
        values = Z.astype(np.float64) if lazy and isinstance(Z, dsa.Array) \
            else np.asarray(Z, dtype=np.float64)
        if values.ndim != 2:
            raise ValueError(f"latent coordinates must be (n_samples, n_latent); got shape "
                             f"{values.shape}")
        values, meta = values[None], None
    if values.shape[-1] != n_latent:
        raise ValueError(f"latent coordinates have {values.shape[-1]} values per sample; the "
                         f"estimator has {n_latent}")
    return values, meta


def _check_finite(values, name, info=None):
    if not np.isfinite(values).all():
        bad = [] if info is None else info.nonfinite_names(values)
        where = f" (variable(s) {bad})" if bad else ""
        raise ValueError(f"{name} holds NaN or infinite values{where}; fill or drop them first")


def _finite_lazily(values, name, info=None):
    """``values`` (dask) checked by :func:`_check_finite` block by block when computed: all the
    features in one chunk, to name the variables at fault."""
    values = values.rechunk({values.ndim - 1: -1})
    return values.map_blocks(_finite_block, what=name, info=info, dtype=values.dtype)


def _finite_block(block, what, info):
    _check_finite(block, what, info)
    return block


def latent_in_order(Z):
    """``Z`` with its ``latent`` entries in label order 0, 1, ...: coefficients are read by
    position, so reordered ones (``isel(latent=[2, 0, 1])``) would decode to other fields.
    Labels that are not a permutation of 0 .. n-1 are an error."""
    if "latent" not in Z.indexes:
        return Z
    labels = np.asarray(Z.indexes["latent"])
    n = Z.sizes["latent"]
    if np.array_equal(labels, np.arange(n)):
        return Z
    if sorted(labels.tolist()) != list(range(n)):
        raise ValueError(f"the 'latent' labels {labels.tolist()[:8]} are not 0 .. {n - 1}: "
                         "coefficients are read by position (selected some?)")
    return Z.sortby("latent")
