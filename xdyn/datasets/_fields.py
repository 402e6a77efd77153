"""Names, units and grid conventions shared by the WeatherBench 1 and 2 readers."""

from __future__ import annotations

import dataclasses

import xarray as xr

#: Pressure levels of the WeatherBench multi-level files, hPa.
LEVELS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)


@dataclasses.dataclass(frozen=True)
class _Field:
    folder: str
    var: str
    units: str
    long_name: str
    standard_name: str | None = None


# Single-level fields: short name -> folder and name inside the files.
SINGLE_LEVEL = {
    "t2m": _Field("2m_temperature", "t2m", "K", "2 metre temperature", "air_temperature"),
    "u10": _Field(
        "10m_u_component_of_wind", "u10", "m s**-1", "10 metre U wind component", "eastward_wind"
    ),
    "v10": _Field(
        "10m_v_component_of_wind", "v10", "m s**-1", "10 metre V wind component", "northward_wind"
    ),
    "tp": _Field("total_precipitation", "tp", "m", "Total precipitation (hourly)"),
    "tisr": _Field(
        "toa_incident_solar_radiation", "tisr", "J m**-2", "TOA incident solar radiation (hourly)"
    ),
    "tcc": _Field(
        "total_cloud_cover", "tcc", "(0 - 1)", "Total cloud cover", "cloud_area_fraction"
    ),
}
# Pressure-level fields: in-file name -> multi-level folder.
MULTI_LEVEL = {
    "z": _Field("geopotential", "z", "m**2 s**-2", "Geopotential", "geopotential"),
    "t": _Field("temperature", "t", "K", "Temperature", "air_temperature"),
    "u": _Field("u_component_of_wind", "u", "m s**-1", "U component of wind", "eastward_wind"),
    "v": _Field("v_component_of_wind", "v", "m s**-1", "V component of wind", "northward_wind"),
    "q": _Field("specific_humidity", "q", "kg kg**-1", "Specific humidity", "specific_humidity"),
    "r": _Field("relative_humidity", "r", "%", "Relative humidity", "relative_humidity"),
    "pv": _Field(
        "potential_vorticity",
        "pv",
        "K m**2 kg**-1 s**-1",
        "Potential vorticity",
        "ertel_potential_vorticity",
    ),
    "vo": _Field(
        "vorticity", "vo", "s**-1", "Vorticity (relative)", "atmosphere_relative_vorticity"
    ),
}
# Pressure-level fields that WeatherBench also ships in their own folder.
SINGLE_PRESSURE_FOLDERS = {"z500": "geopotential_500", "t850": "temperature_850"}
CONSTANTS = {
    "orography": ("m", "Orography (surface height)", "surface_altitude"),
    "lsm": ("1", "Land-sea mask", "land_binary_mask"),
    "slt": ("1", "Soil type", None),
    "lat2d": ("degrees_north", "Latitude (2-D)", "latitude"),
    "lon2d": ("degrees_east", "Longitude (2-D)", "longitude"),
}
# WeatherBench 2 (zarr) variable names -> WeatherBench 1 short names.
WB2_MULTI_LEVEL = {
    "geopotential": "z",
    "temperature": "t",
    "u_component_of_wind": "u",
    "v_component_of_wind": "v",
    "specific_humidity": "q",
    "relative_humidity": "r",
    "potential_vorticity": "pv",
    "vorticity": "vo",
}
WB2_SINGLE_LEVEL = {
    "2m_temperature": "t2m",
    "10m_u_component_of_wind": "u10",
    "10m_v_component_of_wind": "v10",
    "total_cloud_cover": "tcc",
    "toa_incident_solar_radiation": "tisr",
    "land_sea_mask": "lsm",
}


def standard_grid(ds: xr.Dataset) -> xr.Dataset:
    """Name the grid ``lat``/``lon``, sort ``lat`` ascending, give both CF attrs (lazy).

    Works on a shallow copy: the caller's Dataset and its attrs are left untouched.
    """
    ds = ds.copy().rename(
        {k: v for k, v in {"latitude": "lat", "longitude": "lon"}.items() if k in ds.variables}
    )
    if "lat" in ds.indexes and not ds.indexes["lat"].is_monotonic_increasing:
        ds = ds.sortby("lat")
    if "lat" in ds.coords:
        set_attrs(ds["lat"], "degrees_north", "latitude", "latitude")
    if "lon" in ds.coords:
        set_attrs(ds["lon"], "degrees_east", "longitude", "longitude")
    return ds


def set_attrs(da, units, long_name, standard_name=None) -> None:
    """Set CF attrs in place; an existing ``units`` (the file's own) is kept."""
    da.attrs.setdefault("units", units)
    da.attrs["long_name"] = long_name
    if standard_name:
        da.attrs["standard_name"] = standard_name
