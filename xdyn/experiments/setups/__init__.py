"""Published twin-experiment setups, one module per paper (as DAPPER's ``mods``).

Each setup gives the system, the observation operator, ``noise_std``,
``obs_every``, ``dt``, the initial spread and default spin-up, a function
making the truth and observations for a seed, and a tuning table of method
configurations with reference analysis RMSEs. Twin experiments
(:mod:`xdyn.experiments.twin`), ``xdyn bench da`` and the tests read them
from here.

Examples
--------
>>> sorted(SETUPS)
['sakov2008', 'sakov2008-every4', 'sakov2012']
>>> get_setup("sakov2008").make_system()
Lorenz96()
"""

from __future__ import annotations

from xdyn.experiments.setups._base import MethodConfig, TwinSetup, twin_data
from xdyn.experiments.setups.sakov2008 import SAKOV2008, SAKOV2008_EVERY4
from xdyn.experiments.setups.sakov2012 import SAKOV2012

__all__ = ["MethodConfig", "TwinSetup", "twin_data", "SAKOV2008", "SAKOV2008_EVERY4",
           "SAKOV2012", "SETUPS", "get_setup"]

SETUPS = {s.name: s for s in (SAKOV2008, SAKOV2008_EVERY4, SAKOV2012)}


def get_setup(name: str) -> TwinSetup:
    """The published setup called ``name`` (a key of :data:`SETUPS`).

    Parameters
    ----------
    name : str
        ``"sakov2008"``, ``"sakov2008-every4"`` or ``"sakov2012"``.

    Returns
    -------
    TwinSetup

    Raises
    ------
    ValueError
        If ``name`` is not a known setup (the closest names are suggested).

    Examples
    --------
    >>> get_setup("sakov2012").obs_every
    25
    >>> get_setup("sakov2009")
    Traceback (most recent call last):
    ...
    ValueError: unknown setup 'sakov2009'; did you mean 'sakov2008' or 'sakov2012'? Known: ['sakov2008', 'sakov2008-every4', 'sakov2012']
    """
    import difflib

    if name in SETUPS:
        return SETUPS[name]
    close = difflib.get_close_matches(str(name), list(SETUPS), n=2)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown setup {name!r}{hint} Known: {sorted(SETUPS)}"
                     if hint else f"unknown setup {name!r}; known: {sorted(SETUPS)}")
