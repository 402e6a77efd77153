"""Look systems up by name, e.g. to rebuild one from a Dataset's attrs.

Every :class:`~xdyn.systems.DynamicalSystem` subclass that declares a
class-level ``name`` registers itself when it is defined (see
:class:`xdyn._registry.Registry`); this module only reads that table.
"""

from __future__ import annotations

import json
import re

from xdyn.systems.base import SYSTEMS, DynamicalSystem
from xdyn.utils._json import read_legacy_strings

__all__ = ["make_system", "get_system", "registered_systems", "system_from_attrs"]


def registered_systems() -> dict[str, type]:
    """The systems :func:`make_system` can build, by declared name.

    Examples
    --------
    >>> {"lorenz63", "lorenz96", "kolmogorov"} <= set(registered_systems())
    True
    """
    import xdyn.systems  # noqa: F401  (import every built-in system module)

    return SYSTEMS.classes()


def make_system(name: str, **params) -> DynamicalSystem:
    """Instantiate a system by short name (``"lorenz96"``), alias or class name (``"Lorenz96"``).

    Names are matched case-insensitively. A user's subclass of
    :class:`~xdyn.systems.DynamicalSystem` with a class-level ``name`` is found
    as soon as it is defined.

    Parameters
    ----------
    name : str
        Short name, alias or class name of the system (case-insensitive).
    **params
        Parameters of the system's constructor (``n=40``, ``F=8.0`` ...).

    Returns
    -------
    DynamicalSystem

    Raises
    ------
    ValueError
        An unknown name; the message suggests the closest known ones.

    Examples
    --------
    >>> make_system("Lorenz96", n=10).n
    10
    >>> make_system("lorenz63").name
    'lorenz63'
    >>> make_system("kolmogorv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown system 'kolmogorv'; did you mean 'kolmogorov'? Known: [...]
    """
    import xdyn.systems  # noqa: F401  (import every built-in system module)

    return SYSTEMS.get(name)(**params)


def get_system(name: str, **params) -> DynamicalSystem:
    """Same as :func:`make_system` (the older name).

    Parameters
    ----------
    name : str
        Short name, alias or class name of the system (case-insensitive).
    **params
        Parameters of the system's constructor.

    Returns
    -------
    DynamicalSystem

    Examples
    --------
    >>> get_system("Lorenz96", n=10).n
    10
    """
    return make_system(name, **params)


def system_from_attrs(attrs: dict) -> DynamicalSystem:
    """Rebuild the system recorded in a Dataset's attrs by :meth:`DynamicalSystem.describe`.

    Parameters
    ----------
    attrs : dict
        The attrs: ``"system"`` (the name, required) and ``"system_params"`` (the
        constructor's parameters as JSON; none when absent). A ``dtype`` recorded
        as ``"torch.float32"`` or ``"<class 'numpy.float32'>"`` (by older versions,
        for a system made with ``dtype=torch.float32``) is read as ``"float32"``.

    Returns
    -------
    DynamicalSystem

    Raises
    ------
    ValueError
        The attrs have no ``"system"`` (or name an unknown one), or record
        parameters drawn per trajectory (``"parameter_ranges"``): no one system
        made such data, and the recorded values are the undrawn defaults.

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> ds = Lorenz63(rho=20.0).simulate(n_steps=2)
    >>> system_from_attrs(ds.attrs).rho
    20.0
    """
    if "system" not in attrs:
        raise ValueError(
            "the Dataset does not record its system (no 'system' attr); pass system=... explicitly"
        )
    params = json.loads(attrs.get("system_params", "{}"))
    drawn = sorted(json.loads(attrs.get("parameter_ranges", "{}")))
    if drawn:
        raise ValueError(f"the data drew {drawn} per trajectory (their 'parameter_ranges' "
                         f"attr): no one {attrs['system']} made it; pass system=... explicitly")
    if isinstance(params.get("dtype"), str):
        params["dtype"] = _dtype_name(params["dtype"])
    import xdyn.systems  # noqa: F401  (import every built-in system module)

    cls = SYSTEMS.get(attrs["system"])
    return cls(**read_legacy_strings(cls, params, f"system {attrs['system']!r}"))


def _dtype_name(recorded: str) -> str:
    """The dtype name in a recorded ``dtype``: ``"float32"`` as written now, and from the
    ``str()`` of a ``torch.float32`` or ``numpy.float32`` that attrs written before
    recorded (``"torch.float32"``, ``"<class 'numpy.float32'>"``); Python's ``float`` as
    ``"float64"`` (``"<class 'float'>"``: torch reads ``"float"`` as float32)."""
    if recorded == "<class 'float'>":
        return "float64"
    match = re.fullmatch(r"torch\.(\w+)|<class 'numpy\.(\w+)'>|dtype\('(\w+)'\)", recorded)
    return next(g for g in match.groups() if g) if match else recorded
