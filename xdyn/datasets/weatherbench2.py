"""Adapter from WeatherBench 2 zarr naming to xdyn's WeatherBench short names.

WeatherBench 2 (Rasp et al. 2024, https://doi.org/10.1029/2023MS004019) serves
ERA5 as zarr stores, e.g.
``gs://weatherbench2/datasets/era5/1959-2023_01_10-6h-64x32_equiangular_conservative.zarr``
(the same 5.625° grid as WeatherBench 1). Its names are long
(``geopotential`` with a ``level`` dim, ``2m_temperature``), its grid is
``latitude``/``longitude``, and its variables are often stored as
``(time, [level,] longitude, latitude)``. :func:`from_weatherbench2` turns that
into the layout :func:`xdyn.datasets.load_weatherbench` returns: one variable
per level (``z500``, ``t850``), ``t2m``, ``u10``, ``v10``, on ``(time, lat, lon)``
with ascending ``lat``.

Most WeatherBench 2 ERA5 stores are 6-hourly while WeatherBench 1 is hourly.
The adapter does not resample: it only renames, so ``time`` keeps the store's
own step. Compare datasets at common times (``ds.sel(time=other.time)``) or
resample explicitly if you need a common step.
"""

from __future__ import annotations

import xarray as xr

from xdyn.datasets._fields import (
    CONSTANTS,
    MULTI_LEVEL,
    SINGLE_LEVEL,
    WB2_MULTI_LEVEL,
    WB2_SINGLE_LEVEL,
    set_attrs,
    standard_grid,
)

__all__ = ["from_weatherbench2"]


def from_weatherbench2(ds: xr.Dataset, variables=None) -> xr.Dataset:
    """Rename a WeatherBench 2 ERA5 dataset to WeatherBench 1 short names.

    ``geopotential`` at level 500 becomes ``z500``, ``temperature`` at 850
    ``t850`` (every level present gets its own variable), ``2m_temperature``
    ``t2m``, ``10m_u_component_of_wind`` ``u10``, ``10m_v_component_of_wind``
    ``v10``; ``latitude``/``longitude`` become ``lat``/``lon`` with ``lat``
    ascending, and each field is ordered ``(..., lat, lon)``. Variables the
    adapter does not know keep their name. Everything stays lazy; the time step
    is left as it is (6-hourly stores stay 6-hourly).

    Parameters
    ----------
    ds : xarray.Dataset
        An (opened, possibly dask-backed) WeatherBench 2 dataset.
    variables : str or sequence of str, optional
        Short names to return (``["z500", "t850", "t2m"]``); default all.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    ValueError
        A requested short name is not in ``ds`` (the message lists those that are).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> time = pd.date_range("2020-01-01", periods=2, freq="6h")
    >>> lat, lon = np.linspace(87.1875, -87.1875, 32), np.arange(64) * 5.625
    >>> wb2 = xr.Dataset(
    ...     {"geopotential": (("time", "level", "longitude", "latitude"), np.zeros((2, 2, 64, 32))),
    ...      "2m_temperature": (("time", "longitude", "latitude"), np.zeros((2, 64, 32)))},
    ...     coords={"time": time, "level": [500, 850], "latitude": lat, "longitude": lon})
    >>> ds = from_weatherbench2(wb2, ["z500", "t2m"])
    >>> ds.z500.dims, float(ds.lat[0])
    (('time', 'lat', 'lon'), -87.1875)
    """
    wanted = (
        None
        if variables is None
        else ([variables] if isinstance(variables, str) else list(variables))
    )
    ds = standard_grid(ds)
    out = {}
    for name, da in ds.data_vars.items():
        if name in WB2_MULTI_LEVEL and "level" in da.dims:
            short = WB2_MULTI_LEVEL[name]
            field = MULTI_LEVEL[short]
            for level in ds["level"].values.tolist():
                key = f"{short}{int(level)}"
                if wanted is None or key in wanted:
                    part = da.sel(level=level).drop_vars("level")
                    set_attrs(
                        part,
                        field.units,
                        f"{field.long_name} at {int(level)} hPa",
                        field.standard_name,
                    )
                    part.attrs.update(level=int(level), level_units="hPa")
                    out[key] = part
        elif name in WB2_SINGLE_LEVEL:
            key = WB2_SINGLE_LEVEL[name]
            if wanted is None or key in wanted:
                if key in SINGLE_LEVEL:
                    field = SINGLE_LEVEL[key]
                    set_attrs(da, field.units, field.long_name, field.standard_name)
                elif key in CONSTANTS:
                    set_attrs(da, *CONSTANTS[key])
                out[key] = da
        elif wanted is None or name in wanted:
            out[name] = da
    if wanted is not None:
        missing = [v for v in wanted if v not in out]
        if missing:
            available = sorted(from_weatherbench2(ds).data_vars)
            raise ValueError(
                f"{missing} not in this WeatherBench 2 dataset; available: {available}"
            )
        out = {k: out[k] for k in wanted}
    result = xr.Dataset(out, attrs=dict(ds.attrs))
    for name in result.data_vars:
        if {"lat", "lon"} <= set(result[name].dims):
            result[name] = result[name].transpose(..., "lat", "lon")
    return result
