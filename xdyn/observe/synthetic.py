"""Noisy synthetic observations of a labelled state: :func:`observe`."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import xarray as xr
from sklearn.utils import check_random_state

from xdyn._units import common_units
from xdyn.observe._layout import SAMPLE_DIMS, layout_from_dataset, _state_variables
from xdyn.observe.operators import make_operator
from xdyn.preprocessing.stacking import flatten_variables
from xdyn.systems._validation import _check_int, _check_real

__all__ = ["observe"]

def observe(
    ds: xr.Dataset,
    operator="identity",
    noise_std=1.0,
    every: int = 1,
    times=None,
    missing_fraction: float = 0.0,
    random_state=None,
    sample_dims: Sequence[str] = SAMPLE_DIMS,
) -> xr.Dataset:
    """Draw noisy synthetic observations of a state Dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        Truth, with a ``time`` dim (and optionally ``trajectory`` / ``member``).
        Its data variables with a ``time`` dim are the state; others (a
        per-trajectory parameter) are not observed.
    operator : ObservationOperator or spec, default="identity"
        See :func:`make_operator`.
    noise_std : float or array of shape (n_obs,), default=1
        Standard deviation of the additive Gaussian observation error.
    every : int, default=1
        Observe every ``every``-th state time (ignored when ``times`` is given).
    times : array-like, optional
        Explicit (possibly irregular) subset of ``ds.time`` to observe.
    missing_fraction : float, default=0
        Fraction of observations randomly set missing (NaN), drawn for each
        trajectory (or other sample dim) on its own; the assimilators cycle a
        batch with one set of observed sites per time, so they take such
        observations one trajectory at a time.
    random_state : int, RandomState or None
        Seed for the noise and the missing pattern.
    sample_dims : sequence of str, default=("time", "member", "trajectory")
        Dims that index states rather than locate a value inside one. Those of
        them that the first state variable has are kept as the leading dims of
        the output, in its order; every other dim is a state dim, flattened
        into ``obs`` (see :func:`~xdyn.observe.layout_from_dataset`). Add a
        dim here to observe each of its entries as a separate state (e.g. an
        ensemble dim called ``"realization"``).

    Returns
    -------
    xarray.Dataset
        Variable ``observation`` with dims ``(..., time, obs)``, clean values in
        ``observation_clean``, the per-observation ``noise_std``, coordinates
        ``variable``, ``state_index`` and the spatial position of each
        observation: for each spatial dim ``<dim>``, its coordinate label
        (``truth.sel(<dim>=obs.<dim>)``) and its grid position ``<dim>_index``
        (``isel``). An observation of a variable without that dim (a scalar
        beside fields) has NaN in both (NaT or None for such labels), so both
        are floats then: select one variable (``obs.where(obs["variable"] ==
        name, drop=True)``) before indexing with them. The ``units`` attr of the
        variables: the observed variables' (``"mixed"`` if they differ) as the
        operator leaves them (see
        :meth:`~xdyn.observe.ObservationOperator.obs_units`); none when the
        operator does not say. Dataset attrs: those of ``ds``, plus
        ``operator`` (its JSON spec, which ``operator=`` takes back),
        ``obs_every``, ``missing_fraction``, ``obs_random_state`` (the int
        seed; ``"None"``; or, for a ``RandomState`` instance, a note that the
        seed is not recorded) and ``obs_noise_std`` (the noise std when it is
        the same for every observation; otherwise ``obs_noise_std_rms``, the
        root mean square of the per-observation stds, in its place).

    Notes
    -----
    The observed times of a dask-backed state are read into memory (computed)
    and the result is in memory: the noise is drawn in one fixed order, so that
    the same ``random_state`` gives the same observations whatever the
    chunking. Select the times first (``times`` or ``every``) for a long record.

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> truth = Lorenz96().simulate(n_steps=20, random_state=0)
    >>> obs = observe(truth, "every4", noise_std=1.0, every=2, random_state=0)
    >>> dict(obs.sizes)
    {'time': 11, 'obs': 10}

    A dim outside ``sample_dims`` is part of the state; listed, it is kept:

    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"u": (("realization", "time", "x"), np.zeros((2, 5, 4)))})
    >>> dict(observe(ds, random_state=0).sizes)
    {'time': 5, 'obs': 8}
    >>> dict(observe(ds, sample_dims=("time", "realization"), random_state=0).sizes)
    {'realization': 2, 'time': 5, 'obs': 4}
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"observe expects an xarray.Dataset, got {type(ds).__name__}")
    if "time" not in ds.dims:
        raise ValueError(f"the Dataset has no 'time' dim (dims: {tuple(ds.dims)})")
    if not 0.0 <= _check_real(missing_fraction, "missing_fraction", "real", "observe") <= 1.0:
        raise ValueError(f"missing_fraction must be in [0, 1], got {missing_fraction}")
    op = make_operator(operator)
    rng = check_random_state(random_state)
    if times is not None:
        try:
            ds = ds.sel(time=np.atleast_1d(np.asarray(times)))
        except KeyError as exc:
            raise ValueError(
                f"observe: some of times are not times of the Dataset ({exc}; it runs "
                f"{ds['time'].values[0]} .. {ds['time'].values[-1]}); pick them from ds.time"
            ) from exc
    else:
        every = _check_int(every, "every", 1, "observe")
        ds = ds.isel(time=slice(None, None, every))
    ds = _state_variables(ds)  # the same variables an operator given ``ds`` counts
    layout = layout_from_dataset(ds, sample_dims)
    lead = [d for d in ds[layout[0].name].dims if d in sample_dims]
    values, lead = flatten_variables(ds, layout, lead)
    x = torch.as_tensor(np.array(values))  # a copy: the view may be read-only
    clean = op.apply(x, layout).numpy()
    if clean.shape[-1] == 0:
        raise ValueError(f"observe: operator {op!r} observes nothing of this state")
    try:
        std = np.asarray(noise_std, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"observe: noise_std must be a number or an array of numbers, got {noise_std!r}"
        ) from exc
    if std.ndim > 1 or (std.ndim == 1 and std.shape[0] not in (1, clean.shape[-1])):
        raise ValueError(
            f"noise_std must be a scalar or have one value per observation ({clean.shape[-1]}), "
            f"got shape {std.shape}")
    std = np.broadcast_to(std, clean.shape[-1:])
    if np.any(std < 0) or not np.all(np.isfinite(std)):
        raise ValueError(f"noise_std must be finite and >= 0, got {noise_std}")
    y = clean + std * rng.standard_normal(clean.shape)
    if missing_fraction:
        y[rng.uniform(size=y.shape) < float(missing_fraction)] = np.nan
    coords = op.obs_coords(layout)
    # Spatial coords along ``obs`` carry the state's coordinate *values* (so that
    # ``truth.sel(x=obs.x)`` is right on physical grids); ``<dim>_index`` keeps
    # the grid position for ``isel``. An observation of a variable without that
    # dim gets NaN (NaT, None) in both: -1 would be a label or the last position.
    for v in layout:
        for d in v.dims:
            if d in coords and f"{d}_index" not in coords:
                pos = coords[d][1]
                coords[f"{d}_index"] = ("obs", pos)
                if d in ds.coords:
                    coords[d] = ("obs", _labels_at(ds[d].values, pos), dict(ds[d].attrs))
    coords.update({d: ds[d] for d in lead if d in ds.coords})
    # the observed variables' units, as the operator leaves them (no attr when unknown)
    units = op.obs_units(_common_units([v for v in layout if v.name in coords["variable"][1]]))
    attrs_common = {} if units is None else {"units": units}
    out = xr.Dataset(
        {
            "observation": (tuple(lead) + ("obs",), y, {**attrs_common, "long_name": "noisy observation"}),
            "observation_clean": (tuple(lead) + ("obs",), clean, {**attrs_common, "long_name": "observation without noise"}),
            "noise_std": ("obs", np.array(std), {**attrs_common, "long_name": "observation error standard deviation"}),
        },
        coords=coords,
    )
    out.attrs.update({k: v for k, v in ds.attrs.items()})
    out.attrs.update({
        "operator": op.spec(),
        **_noise_std_attrs(std),
        "obs_every": int(every) if times is None else "irregular",
        "obs_random_state": _seed_attr(random_state),
        "missing_fraction": float(missing_fraction),
    })
    return out


def _noise_std_attrs(std) -> dict:
    """The Dataset attr that sums up per-observation noise stds ``std``.

    ``{"obs_noise_std": s}`` when every observation has the same std ``s``
    (to 12 decimals); otherwise ``{"obs_noise_std_rms": r}``, the root mean
    square: a mean written as ``obs_noise_std`` would be the std of no
    observation. The per-observation values are the ``noise_std`` variable.

    Examples
    --------
    >>> _noise_std_attrs([0.5, 0.5]), _noise_std_attrs([0.1, 0.1, 10.0])
    ({'obs_noise_std': 0.5}, {'obs_noise_std_rms': 5.774...})
    """
    std = np.asarray(std, dtype=float)
    std = std[np.isfinite(std)]  # masked out (obs.where): no observation's std
    if not std.size:
        return {}
    if np.unique(std.round(12)).size == 1:
        return {"obs_noise_std": float(std.flat[0])}
    return {"obs_noise_std_rms": float(np.sqrt(np.mean(std ** 2)))}


def _seed_attr(random_state):
    """What the attrs can say about ``random_state``: an int seed, ``"None"``, or that an
    instance was given (its seed is unknown, though the draw was reproducible)."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    if random_state is None:
        return "None"
    return f"{type(random_state).__name__} instance (seed not recorded)"


def _labels_at(labels, pos):
    """``labels[pos]``, with a missing value where ``pos`` is NaN (float if numeric)."""
    missing = np.isnan(pos) if pos.dtype.kind == "f" else np.zeros(len(pos), bool)
    out = labels[np.where(missing, 0, pos).astype(np.int64)]
    if not missing.any():
        return out
    if out.dtype.kind in "iub":
        out = out.astype(float)
    elif out.dtype.kind not in "fcmM":
        out = out.astype(object)
    fill = {"m": np.timedelta64("NaT"), "M": np.datetime64("NaT"), "O": None}
    out[missing] = fill.get(out.dtype.kind, np.nan)
    return out


def _common_units(layout):
    """The observed variables' units compared as units (``"K"`` is ``"kelvin"``): the
    first variable's spelling, ``"mixed"`` where they differ; a variable that states
    none (no attr, blank) is read as dimensionless (``"1"``)."""
    return common_units([v.attrs.get("units") for v in layout], unstated="1")
