"""Look systems up by class name, e.g. to rebuild one from a Dataset's attrs."""

from __future__ import annotations

import json

from xdyn.systems.base import DynamicalSystem

__all__ = ["get_system", "system_from_attrs"]


def _all_subclasses(cls):
    out = {}
    for sub in cls.__subclasses__():
        out[sub.__name__] = sub
        out.update(_all_subclasses(sub))
    return out


def get_system(name: str, **params) -> DynamicalSystem:
    """Instantiate a system by class name (``"Lorenz96"``) or short name (``"lorenz96"``).

    Examples
    --------
    >>> get_system("Lorenz96", n=10).n
    10
    """
    import xdyn.systems  # noqa: F401  (import every system module)

    classes = _all_subclasses(DynamicalSystem)
    by_short = {getattr(c, "name", ""): c for c in classes.values()}
    cls = classes.get(name) or by_short.get(name)
    if cls is None:
        raise ValueError(f"unknown system {name!r}; known: {sorted(classes)}")
    return cls(**params)


def system_from_attrs(attrs: dict) -> DynamicalSystem:
    """Rebuild the system recorded in a Dataset's attrs by :meth:`DynamicalSystem.describe`.

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
    return get_system(attrs["system"], **params)
