"""Units strings compared as units (``xdyn._units``): spellings of one unit agree, others not."""

import pytest

from xdyn._units import canonical_units, same_units


@pytest.mark.parametrize("a, b", [
    ("m s-1", "m s**-1"), ("m s-1", "m/s"), ("m s-1", "m s^-1"), ("m s-1", "m.s-1"),
    ("K", "kelvin"), ("degC", "degree_Celsius"), ("degC", "°C"), ("1", "dimensionless"),
    ("hours", "h"), ("Hours ", "hour"), ("days", "d"), ("seconds", "s"),
    ("m2 s-2", "m**2/s**2"), ("kg m-2 s-1", "kg/(m2 s)"), ("s-1", "(m s-1) m-1"),
    ("s-1", "(m/s) m-1"), ("kg m s-1", "m/s kg"), ("kg m-2 s-1", "kg/m2/s"),
    ("m2 s-2", "(m s-1)^2"), ("m-1 s", "1/(m s-1)"),
    ("hours since 2000-01-01", "hour  since 2000-01-01"), (None, "  "),
    ("hours since 2000-01-01", "hours since 2000-1-1 00:00:00"),
    ("degrees_north", "degree_N"), ("degrees_east", "degreeE"), ("degrees", "degree"),
    ("degrees", "degrees_north"), ("m/1 s", "m s"), ("m2.s-1", "m2 s-1")])
def test_spellings_of_one_unit_are_the_same(a, b):
    assert same_units(a, b)


@pytest.mark.parametrize("a, b", [
    ("m", "km"), ("K", "degC"), ("Pa", "hPa"), ("m s-1", "m s-2"), ("S", "s"), ("1", None),
    ("hours since 2000-01-01", "hours since 2001-01-01"), ("h", "d"), ("%", "1"),
    ("degrees_north", "degrees_east"), ("days since 1-1-1", "days since 2001-01-01"),
    # short symbols are case-sensitive; a number is no power unless against its bracket;
    # a "/" before a dimensionless 1 divides nothing else; "." is a product between letters
    ("pA", "Pa"), ("PA", "Pa"), ("kG", "kg"), ("(m s-1) 2", "m2 s-2"), ("m/1 s", "m s-1"),
    ("1.1", "1"), ("1.1 m", "m")])
def test_other_units_differ(a, b):
    assert not same_units(a, b)


def test_what_cannot_be_parsed_is_compared_as_written():
    assert canonical_units("0.01  m") == "0.01 m" and canonical_units("%") == "%"


@pytest.mark.parametrize("a, b", [
    ("hPa", "millibars"), ("hPa", "millibar"), ("hPa", "mbar"), ("hPa", "mb"),
    ("hPa", "Millibars"), ("%", "percent"), ("% s-1", "percent/s"), ("°N", "degrees_north"),
    ("°N", "degree_north"), ("°E", "degrees_east"),
    ("months since 2000-01-01", "month since 2000-01-01"),
    ("years since 2000-01-01", "year since 2000-1-1"),
    ("weeks since 2000-01-01", "week since 2000-01-01")])
def test_udunits_aliases_are_the_same_unit(a, b):
    # review finding A7: ERA5's pressure levels in 'millibars' (CDS netCDF) against 'hPa'
    # (cfgrib) were other units, as were '%' and 'percent', '°N' and 'degrees_north'
    assert same_units(a, b)


@pytest.mark.parametrize("a, b", [
    ("Pa", "hPa"), ("Pa", "mbar"), ("mb", "m"), ("MB", "hPa"), ("Mb", "mb"), ("Mbar", "mbar"),
    ("%", "1"), ("°N", "°E"), ("°S", "degrees_north"),
    ("months since 2000-01-01", "days since 2000-01-01"), ("month", "year")])
def test_udunits_aliases_keep_other_units_apart(a, b):
    # short symbols and 'mbar' are case-sensitive: 'Mbar' is a megabar
    assert not same_units(a, b)


def test_metrics_take_pressure_levels_in_millibars_against_hpa():
    import numpy as np
    import xarray as xr

    from xdyn.metrics import rmse

    def levels(units):
        return xr.DataArray(np.ones((2, 3)), dims=("level", "x"), name="z",
                            coords={"level": ("level", [500.0, 850.0], {"units": units})})

    assert float(rmse(levels("hPa"), levels("millibars"))) == 0.0
    with pytest.raises(ValueError, match="'level' coordinate is in 'Pa'"):
        rmse(levels("Pa"), levels("millibars"))
