"""Units strings compared as units: the one place that decides when two spellings
(``"m s-1"``, ``"m s**-1"``, ``"m/s"``; ``"K"``, ``"kelvin"``; ``"hours"``, ``"h"``) name
the same unit, so that every check of units (metrics, forecasters, ROMs) accepts and
refuses the same pairs. No unit algebra beyond products of powers: prefixes and scales
are other units (``"km"`` is not ``"m"``), and what cannot be parsed is compared as
written, whitespace collapsed."""

from __future__ import annotations

import re

__all__ = ["canonical_units", "same_units", "stated_units", "other_units", "common_units",
           "step_units"]

# spellings of one symbol (CF / UDUNITS names, their plurals, common abbreviations)
_SYMBOLS = {
    "K": ("K", "kelvin", "kelvins", "degk", "deg_k", "degree_k", "degrees_k", "degree_kelvin",
          "degrees_kelvin"),
    "degC": ("degC", "degc", "deg_c", "celsius", "degree_c", "degrees_c", "degree_celsius",
             "degrees_celsius", "°C"),
    "m": ("m", "meter", "meters", "metre", "metres"),
    "s": ("s", "sec", "secs", "second", "seconds"),
    "min": ("min", "mins", "minute", "minutes"),
    "h": ("h", "hr", "hrs", "hour", "hours"),
    "d": ("d", "day", "days"),
    # calendar units of CF times ("months since 2000-01-01"): UDUNITS' week, month, year
    "week": ("week", "weeks"),
    "month": ("month", "months"),
    "year": ("year", "years", "yr"),
    "Pa": ("Pa", "pascal", "pascals"),
    # UDUNITS' millibar is a hectopascal (pressure levels: cfgrib 'hPa', CDS 'millibars')
    "hPa": ("hPa", "millibar", "millibars", "mbar", "mb"),
    "%": ("%", "percent"),
    "kg": ("kg", "kilogram", "kilograms"),
    # CF's spellings of latitude and longitude units
    "degree_north": ("degree_north", "degrees_north", "degree_n", "degrees_n", "degreen",
                     "degreesn", "°N"),
    "degree_east": ("degree_east", "degrees_east", "degree_e", "degrees_e", "degreee",
                    "degreese", "°E"),
    "degree": ("degree", "degrees", "deg", "°"),
}
_ALIAS = {alias: symbol for symbol, aliases in _SYMBOLS.items() for alias in aliases}
# symbols of three letters or more whose case is a prefix's: "Mbar" is a megabar
_CASED = {"mbar"}
# UDUNITS reads latitude and longitude units as plane degrees
_DEGREES = ({"degree", "degree_north"}, {"degree", "degree_east"})
_DIMENSIONLESS = {"1", "dimensionless", "unitless"}
_FACTOR = re.compile(r"^((?:[^\W\d]|[°%])[\w°]*?)([+-]?\d+)?$")  # a symbol and its power


def _normal(text):
    return " ".join(str(text).split())


def _symbol(name):
    """One spelling of a symbol: short ones as written (``pA`` is not ``Pa``, ``S`` not
    ``s``), spelled-out names (three letters or more) in any case (not ``mbar``:
    ``Mbar`` is a megabar)."""
    if name in _ALIAS:
        return _ALIAS[name]
    if len(name) < 3 or name.lower() in _CASED:
        return name
    return _ALIAS.get(name.lower(), name)


def _factors(text):
    """``{symbol: power}`` of a product of powers, or None where the text is no such product.

    ``/`` divides by the factor (or bracketed group) after it, as in UDUNITS:
    ``m/s kg`` is ``m s-1 kg``, ``kg/(m2 s)`` is ``kg m-2 s-1``; a group may
    have a power written against its bracket (``(m s-1)^2``). A number that is
    no power (``1.1``, ``(kg) 1000``) makes the text no such product.
    """
    text = re.sub(r"\*\*|\^", "", text)  # s**-1, s^-1
    text = re.sub(r"(?<=[^\W_])\.(?=[^\W\d_])", " ", text)  # m.s-1, not 1.1
    tokens = re.findall(r"\)[+-]?\d*|[(/]|[^\s()/*·]+", text)
    powers, stack, sign = {}, [], 1
    for token in tokens:
        if token == "/":
            sign = -1
        elif token == "(":
            stack.append((powers, sign))
            powers, sign = {}, 1
        elif token.startswith(")"):
            if not stack:
                return None
            group, times = powers, int(token[1:] or 1)
            powers, group_sign = stack.pop()
            for symbol, power in group.items():
                powers[symbol] = powers.get(symbol, 0) + group_sign * times * power
            sign = 1
        elif token in _DIMENSIONLESS:
            sign = 1  # "m/1 s" is m s
        else:
            match = _FACTOR.match(token)
            if match is None:
                return None
            power = int(match.group(2) or 1)
            symbol = _symbol(match.group(1))
            powers[symbol] = powers.get(symbol, 0) + sign * power
            sign = 1
    if stack:
        return None
    return {s: p for s, p in powers.items() if p}


def canonical_units(units):
    """One spelling of ``units``: None where none is stated, ``"1"`` for dimensionless.

    Parameters
    ----------
    units : str or None
        A units attribute as written in a file (CF / UDUNITS style).

    Returns
    -------
    str or None
        Symbols in alphabetical order, each with its power (``"m s-1"``); the
        text with its whitespace collapsed where it is no product of powers
        (a time units string such as ``"hours since 2000-01-01"`` stays as written).

    Examples
    --------
    >>> canonical_units("m s**-1"), canonical_units("m/s"), canonical_units("kelvin")
    ('m s-1', 'm s-1', 'K')
    >>> canonical_units("(m s-1) m-1"), canonical_units("dimensionless"), canonical_units("  ")
    ('s-1', '1', None)
    """
    if units is None:
        return None
    text = _normal(units)
    if not text:
        return None
    if text.lower() in _DIMENSIONLESS:
        return "1"
    if " since " in text:  # a time axis's units: the epoch matters, spelled as written
        unit, _, epoch = text.partition(" since ")
        return f"{_symbol(unit)} since {_epoch(epoch)}"
    powers = _factors(text)
    if powers is None:
        return text
    return _product(powers)


def _product(powers):
    """``{symbol: power}`` written as units, symbols in alphabetical order; ``"1"`` of none."""
    if not powers:
        return "1"
    return " ".join(s if p == 1 else f"{s}{p}" for s, p in sorted(powers.items(),
                                                                  key=lambda kv: kv[0].lower()))


_EPOCH = re.compile(r"^(-?\d+)-(\d{1,2})-(\d{1,2})"  # year-month-day, then hh:mm[:ss.s], UTC
                    r"(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}(?:\.\d*)?))?)?"
                    r"\s*(?:Z|UTC|\+00:?00)?$")


def _epoch(text):
    """A CF epoch spelled one way (``2000-1-1`` and ``2000-01-01 00:00:00`` are one; the
    year as written: ``1-1-1`` is year 1), else as written."""
    match = _EPOCH.match(text)
    if match is None:
        return text
    year, month, day, hour, minute, second = match.groups()
    second = float(second or 0)
    return (f"{int(year):04d}-{int(month):02d}-{int(day):02d}T{int(hour or 0):02d}:"
            f"{int(minute or 0):02d}:{second:09.6f}")


def stated_units(units):
    """``units`` as written, whitespace collapsed; None where none is stated (None, blank).

    Examples
    --------
    >>> stated_units(" m  s-1 "), stated_units(""), stated_units(None)
    ('m s-1', None, None)
    """
    return None if canonical_units(units) is None else _normal(units)


def step_units(units):
    """The units of a step between times in ``units`` (a duration): ``"hours"`` of
    ``"hours since 2000-01-01"``; None where none is stated.

    Examples
    --------
    >>> step_units("hours since 1900-01-01 00:00:0.0"), step_units("days"), step_units("")
    ('hours', 'days', None)
    """
    units = stated_units(units)
    return None if units is None else units.partition(" since ")[0]


def spelled_dimensionless(units):
    """Whether ``units`` states none or is spelled as a pure number (``"1"``,
    ``"dimensionless"``, ``"unitless"``): the mark of standardized data. A ratio
    of units (``"kg kg-1"``), dimensionless as a unit, is a physical quantity.

    Examples
    --------
    >>> spelled_dimensionless("1"), spelled_dimensionless(None), spelled_dimensionless("kg kg-1")
    (True, True, False)
    """
    units = stated_units(units)
    return units is None or units.lower() in _DIMENSIONLESS


def power_units(units, n):
    """The units of a quantity in ``units`` raised to the integer power ``n``.

    In :func:`canonical_units`' spelling (``"m2 s-2"`` of ``"m s-1"`` squared,
    ``"1"`` of a spelling of dimensionless); ``units`` as given where none is
    stated and for ``"mixed"``; ``"(text)^n"`` where the text is no product of
    powers, or a ratio whose units cancel (``"(kg kg-1)^2"``: a physical
    quantity, not the ``"1"`` of standardized data, :func:`spelled_dimensionless`).

    Examples
    --------
    >>> power_units("m s-1", 2), power_units("kelvin", 2), power_units("dimensionless", 2)
    ('m2 s-2', 'K2', '1')
    >>> power_units("mixed", 2), power_units(None, 2), power_units("kg kg-1", 2)
    ('mixed', None, '(kg kg-1)^2')
    """
    text = stated_units(units)
    if text is None or text == "mixed":
        return units
    if spelled_dimensionless(text):
        return "1"
    powers = None if " since " in text else _factors(text)
    if not powers:
        return f"({text})^{n}"
    return _product({s: p * n for s, p in powers.items() if p * n})


def common_units(units, unstated=None):
    """The units of a number that mixes variables in ``units``, or ``"mixed"``.

    A units attr that states none (None, blank) is read as ``unstated``: ``"1"``
    where such a variable is dimensionless, None where it says nothing. Where
    all name one unit (spellings of it agreeing), the first as written (None
    where none is stated); else ``"mixed"``, the word observations of variables
    in other units carry. No units at all: ``unstated``.

    Examples
    --------
    >>> common_units(["K", "kelvin"]), common_units(["K", "m"]), common_units([None, ""])
    ('K', 'mixed', None)
    >>> common_units([None, "m"]), common_units([None, "1"], unstated="1")
    ('mixed', '1')
    """
    units = [unstated if stated_units(u) is None else u for u in units]
    if not units:
        return unstated
    first = units[0]
    if all(u is None for u in units):
        return None
    if any(u is None for u in units) or any(other_units(u, first) for u in units):
        return "mixed"
    return first


def other_units(a, b):
    """Whether ``a`` and ``b`` both state units and name different ones: what a check
    refuses (a side that states none is taken as in the other's units).

    Examples
    --------
    >>> other_units("K", "degC"), other_units("K", "kelvin"), other_units("K", None)
    (True, False, False)
    """
    return None not in (canonical_units(a), canonical_units(b)) and not same_units(a, b)


def same_units(a, b):
    """Whether units strings ``a`` and ``b`` name the same unit (see :func:`canonical_units`).

    Plane ``degrees`` are also ``degrees_north`` and ``degrees_east`` (as in
    UDUNITS; north and east are not one another). A millibar (``millibars``,
    ``mbar``, ``mb``) is a hectopascal, as in UDUNITS.

    Examples
    --------
    >>> same_units("m s-1", "m s^-1"), same_units("hours", "h"), same_units("K", "degC")
    (True, True, False)
    >>> same_units("hPa", "millibars"), same_units("%", "percent"), same_units("Pa", "hPa")
    (True, True, False)
    """
    a, b = canonical_units(a), canonical_units(b)
    return a == b or {a, b} in _DEGREES
