"""KolSol side of the Kolmogorov-flow benchmark (the ``bench`` extra).

KolSol keeps the Fourier modes ``|k_x|, |k_y| <= nk``; our 2/3-rule grid of
``N`` points keeps ``|k| < N/3``, so the same resolved modes means
``nk = ceil(N/3) - 1`` (21 for 64x64, 42 for 128x128). Both are stepped with
their own 4th-order scheme (KolSol: explicit RK4; xdyn: ETDRK4), one float64
state, on one thread.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = ["kolsol_nk", "kolsol_stepper"]


def kolsol_nk(N: int) -> int:
    """KolSol's ``nk`` resolving the same modes as our ``N``-point dealiased grid.

    Parameters
    ----------
    N : int
        Grid points per side of xdyn's 2/3-rule dealiased Kolmogorov grid.

    Returns
    -------
    int
        KolSol's ``nk``: it keeps the modes ``|k_x|, |k_y| <= nk``.

    Examples
    --------
    >>> from xdyn.bench_kolsol import kolsol_nk
    >>> kolsol_nk(64), kolsol_nk(128)
    (21, 42)
    """
    return int(math.ceil(N / 3)) - 1


def kolsol_stepper(N: int, dt: float, re: float = 34.0, nf: int = 4):
    """A function ``advance(k)`` that runs ``k`` KolSol RK4 steps from one fixed random state.

    Every call starts from the same state, as xdyn's side of the benchmark does,
    so that repeated timings (:func:`xdyn.bench._rate`) time the same work.

    Parameters
    ----------
    N : int
        Grid points per side of the xdyn grid to match (see :func:`kolsol_nk`).
    dt : float
        Time step of KolSol's RK4.
    re : float, default 34.0
        Reynolds number.
    nf : int, default 4
        Forcing wavenumber.

    Returns
    -------
    callable
        ``advance(k)``; it raises :class:`RuntimeError` if KolSol's state
        becomes non-finite (``dt`` too large) instead of returning.

    Examples
    --------
    Needs the ``bench`` extra (KolSol):

    >>> import pytest
    >>> _ = pytest.importorskip("kolsol")
    >>> from xdyn.bench_kolsol import kolsol_stepper
    >>> kolsol_stepper(32, dt=0.005)(2)
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from kolsol.numpy.solver import KolSol
        from kolsol.utils.integrate import rk4_step

        solver = KolSol(nk=kolsol_nk(N), nf=nf, re=re, ndim=2)
        start = solver.random_field(magnitude=10.0, sigma=2.0)
    increment = rk4_step(solver.dynamics, dt)

    def advance(k):
        u_hat = start
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(k):
                u_hat = u_hat + increment(u_hat)
        if not np.all(np.isfinite(u_hat)):
            raise RuntimeError("KolSol diverged in the benchmark; reduce dt")

    return advance
