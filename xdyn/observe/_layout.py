"""The state layout an operator reads: a system's variables, or those of a state Dataset."""

from __future__ import annotations

from typing import Sequence

import xarray as xr

from xdyn.systems.base import StateVariable

__all__ = ["SAMPLE_DIMS", "layout_from_dataset"]

SAMPLE_DIMS = ("time", "member", "trajectory")


def _state_variables(ds: xr.Dataset) -> xr.Dataset:
    """The state part of ``ds``: its data variables with a ``time`` dim.

    The variables without one (a per-trajectory parameter such as a Reynolds
    number) are not state: :func:`~xdyn.observe.observe` does not observe them
    and an operator given ``ds`` as its layout does not count them. A Dataset
    without a ``time`` dim (one state) is returned as it is: all its data
    variables are state.

    Parameters
    ----------
    ds : xarray.Dataset

    Returns
    -------
    xarray.Dataset
        ``ds`` with only its state variables.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"Re": ("trajectory", [40.0]),
    ...                  "u": (("trajectory", "time", "x"), np.zeros((1, 2, 3)))})
    >>> list(_state_variables(ds).data_vars)
    ['u']
    """
    if "time" not in ds.dims:
        return ds
    return ds[[k for k, v in ds.data_vars.items() if "time" in v.dims]]


def layout_from_dataset(ds: xr.Dataset, sample_dims: Sequence[str] = SAMPLE_DIMS):
    """State variables of ``ds``, their non-sample dims as state dims.

    The state variables are the data variables with a ``time`` dim (all of
    them when ``ds`` has no ``time``), as :func:`~xdyn.observe.observe` reads
    them: a variable without one (a per-trajectory parameter) is not state.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        A state Dataset (an unnamed DataArray is called ``"state"``).
    sample_dims : sequence of str, default ("time", "member", "trajectory")
        Dims that index states rather than locate a value inside one.

    Returns
    -------
    list of xdyn.systems.base.StateVariable
        In the order of the data variables, with their attrs.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"x": ("time", np.zeros(4)),
    ...                  "w": (("time", "y"), np.zeros((4, 3)), {"units": "m"}),
    ...                  "Re": ((), 40.0)})  # no time: a parameter, not state
    >>> layout_from_dataset(ds)
    [StateVariable(name='x', dims=(), shape=(), attrs={}), StateVariable(name='w', dims=('y',), shape=(3,), attrs={'units': 'm'})]
    """
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "state")
    out = []
    for name, da in _state_variables(ds).data_vars.items():
        dims = tuple(d for d in da.dims if d not in sample_dims)
        out.append(StateVariable(str(name), dims, tuple(da.sizes[d] for d in dims), dict(da.attrs)))
    return out


def _layout(system_or_layout):
    # a Dataset first: it also has a ``variables`` attribute (its names, coords included)
    if isinstance(system_or_layout, (xr.Dataset, xr.DataArray)):
        return layout_from_dataset(system_or_layout)
    if hasattr(system_or_layout, "variables"):
        return list(system_or_layout.variables)
    return list(system_or_layout)


def _names(variables, layout, who):
    """``variables`` as a list of names (None: all), each checked to be in ``layout``."""
    if variables is None:
        return None
    names = [variables] if isinstance(variables, str) else list(variables)
    known = [v.name for v in layout]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{who}: unknown variable(s) {unknown}; the state has {known}")
    return names
