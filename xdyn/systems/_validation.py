"""Checks of scalar parameters, shared by every system and by :mod:`xdyn.observe`.

One message format everywhere: ``"<who>: <name> must be ..., got <value>"``,
a ``TypeError`` for the wrong kind of value and a ``ValueError`` for one out of
range, so that a bad input names the parameter (DESIGN: Failure).
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from xdyn.utils._validation import is_integer

__all__: list[str] = []


def _check_int(value, name: str, minimum: int | None = None, who: str = "") -> int:
    """``value`` as an int, refusing bools, non-integers and values below ``minimum``.

    A float that is a whole number (``5.0``) is accepted: it is what a config file
    or a JSON round trip gives back for an integer.
    """
    where = f"{who}: " if who else ""
    ok = is_integer(value)
    if not ok and isinstance(value, Real) and not isinstance(value, bool):
        ok = bool(np.isfinite(value)) and float(value).is_integer()
    if not ok:
        raise TypeError(f"{where}{name} must be an integer, got {value!r}")
    if minimum is not None and int(value) < minimum:
        raise ValueError(f"{where}{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_bool(value, name: str, who: str = "") -> bool:
    """``value`` as a bool, refusing anything but ``True``/``False`` (numpy's too).

    A string (``"no"``, ``"False"``, what a config file or a command line gives) is
    true for Python, and an int is not a flag: both are refused, not read by truthiness.
    """
    if not isinstance(value, (bool, np.bool_)):
        where = f"{who}: " if who else ""
        raise TypeError(f"{where}{name} must be True or False, got {value!r}")
    return bool(value)


def _check_real(value, name: str, kind: str = "real", who: str = "") -> float:
    """``value`` as a finite float; ``kind`` is ``"real"``, ``"positive"`` or ``"nonnegative"``."""
    where = f"{who}: " if who else ""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{where}{name} must be a number, got {value!r}")
    value = float(value)
    bad = (
        not np.isfinite(value)
        or (kind == "positive" and value <= 0)
        or (kind == "nonnegative" and value < 0)
    )
    if bad:
        what = {
            "real": "a finite number",
            "positive": "a positive finite number",
            "nonnegative": "a finite number >= 0",
        }
        raise ValueError(f"{where}{name} must be {what[kind]}, got {value!r}")
    return value


def _check_constraint(value, name: str, kind: str, who: str = ""):
    """Check one parameter against a constraint of ``_parameter_constraints``.

    ``kind`` is ``"int>=N"`` (an integer of at least ``N``), ``"real"`` (finite),
    ``"real>0"`` (positive), ``"real>=0"`` (non-negative) or ``"bool"``.
    """
    if kind.startswith("int>="):
        return _check_int(value, name, int(kind[len("int>="):]), who)
    if kind == "bool":
        return _check_bool(value, name, who)
    reals = {"real": "real", "real>0": "positive", "real>=0": "nonnegative"}
    if kind not in reals:
        raise ValueError(f"unknown parameter constraint {kind!r} for {name!r}")
    return _check_real(value, name, reals[kind], who)
