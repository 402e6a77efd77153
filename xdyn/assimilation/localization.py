"""Localization geometry: where state and observations sit, and how far apart.

Local ensemble filters (:class:`xdyn.assimilation.LETKF`) weight each
observation by a taper of its distance to the analysed grid point. This module
holds that geometry, computed once with numpy:

* :func:`state_positions` and :func:`obs_positions` give integer grid
  positions read off the system's :class:`~xdyn.systems.base.StateVariable`
  dims (Lorenz-96 sites ``k`` on a ring, ``(y, x)`` points of a periodic grid);
* :func:`periodic_distance` measures Euclidean distance on the periodic grid,
  in grid units;
* :func:`gaspari_cohn` is the compactly supported taper of Gaspari & Cohn
  (1999, eq. 4.10), and :func:`taper_coefficients` applies it with DAPPER's
  definition of the localization radius;
* :func:`local_observations` lists, for every state point, the observations
  within reach and their taper coefficients.

Radius convention (DAPPER's ``dist2coeff``): ``radius`` is the length scale
``L`` of the Gaussian ``exp(-d**2 / (2 L**2))`` that the taper imitates, so
every taper is close to ``exp(-1/2)`` at ``d = radius``. For Gaspari-Cohn the
half-width is ``c = 1.82 * radius`` (DAPPER's rounding of ``sqrt(10/3)``, which
matches the Gaussian's curvature at 0) and the support is ``d < 2c = 3.64 *
radius``. Coefficients at or below ``1e-3`` are dropped (DAPPER's
``inds_and_coeffs`` cut-off).

References
----------
Gaspari, G. & Cohn, S. E. (1999). Construction of correlation functions in two
and three dimensions. Q. J. R. Meteorol. Soc., 125, 723-757.
Sakov, P. & Bertino, L. (2011). Relation between two common localisation
methods for the EnKF. Comput. Geosci., 15, 225-237.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "TAPERS",
    "gaspari_cohn",
    "taper_coefficients",
    "spatial_grid",
    "state_positions",
    "obs_positions",
    "periodic_distance",
    "local_observations",
]

TAPERS = ("gaspari-cohn", "gaussian", "step")

# DAPPER's GC half-width per unit radius (rounded sqrt(10/3)), see the module docstring.
_GC_HALF_WIDTH = 1.82
# Coefficients at or below this are dropped, as DAPPER's inds_and_coeffs does.
_CUTOFF = 1e-3
# Bound on the (chunk, n_obs) distance blocks built at once.
_MAX_BLOCK = 2**22


def gaspari_cohn(r):
    """Gaspari & Cohn (1999) 5th-order piecewise rational taper, eq. (4.10).

    Parameters
    ----------
    r : array-like
        Distance divided by the half-width ``c``; the taper is 1 at ``r = 0``,
        decreases smoothly (it is twice continuously differentiable) and is
        exactly 0 for ``r >= 2``.

    Returns
    -------
    numpy.ndarray
        Coefficients in [0, 1], same shape as ``r``.

    Examples
    --------
    >>> gaspari_cohn([0.0, 1.0, 2.0, 3.0]).round(4).tolist()
    [1.0, 0.2083, 0.0, 0.0]
    """
    r = np.abs(np.asarray(r, dtype=float))
    out = np.zeros_like(r)
    inner = r <= 1.0
    ri = r[inner]
    out[inner] = (((-0.25 * ri + 0.5) * ri + 0.625) * ri - 5.0 / 3.0) * ri**2 + 1.0
    outer = (r > 1.0) & (r < 2.0)
    ro = r[outer]
    out[outer] = (
        ((((ro / 12.0 - 0.5) * ro + 0.625) * ro + 5.0 / 3.0) * ro - 5.0) * ro + 4.0
        - 2.0 / (3.0 * ro)
    )
    return out


def taper_coefficients(distance, radius, taper="gaspari-cohn"):
    """Taper coefficients of distances for a localization ``radius`` (DAPPER's convention).

    Parameters
    ----------
    distance : array-like
        Non-negative distances (grid units).
    radius : float
        Localization length scale ``L``: every taper is about ``exp(-1/2)`` at
        ``distance = radius``; ``numpy.inf`` gives 1 everywhere.
    taper : {"gaspari-cohn", "gaussian", "step"}
        ``gaspari-cohn`` with half-width ``1.82 * radius`` (support ``3.64 *
        radius``), ``gaussian`` ``exp(-d**2 / (2 radius**2))``, or ``step`` (1
        up to ``radius``, then 0).

    Examples
    --------
    >>> taper_coefficients([0.0, 4.0, 15.0], radius=4.0).round(4).tolist()
    [1.0, 0.6336, 0.0]
    """
    d = np.asarray(distance, dtype=float)
    if taper not in TAPERS:
        raise ValueError(f"taper must be one of {TAPERS}, got {taper!r}")
    radius = float(radius)
    if not radius > 0:
        raise ValueError(f"localization radius must be > 0, got {radius}")
    if np.isinf(radius):
        return np.ones_like(d)
    if taper == "gaspari-cohn":
        return gaspari_cohn(d / (_GC_HALF_WIDTH * radius))
    if taper == "gaussian":
        return np.exp(-0.5 * (d / radius) ** 2)
    return (d <= radius).astype(float)


def _layout(system_or_layout):
    return list(getattr(system_or_layout, "variables", system_or_layout))


def spatial_grid(system) -> tuple[tuple, tuple]:
    """Names and sizes of the spatial dims shared by every state variable.

    Dims that only some variables have (the fast sub-sites ``j`` of the
    two-scale Lorenz-96) do not count: those points sit at their site.

    Parameters
    ----------
    system : DynamicalSystem or list of StateVariable
        The system, or its state layout (``system.variables``).

    Returns
    -------
    dims : tuple of str
    sizes : tuple of int

    Raises
    ------
    ValueError
        When a state variable has no spatial dim (Lorenz-63) or the variables
        share none: localization needs a grid to measure distances on.

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> spatial_grid(Lorenz96(n=40))
    (('k',), (40,))
    """
    layout = _layout(system)
    flat = [v.name for v in layout if not v.dims]
    name = type(system).__name__ if hasattr(system, "variables") else "the state"
    if flat:
        raise ValueError(
            f"localization needs a spatial grid, but {name} variable(s) {flat} have no spatial "
            "dims; use a global method (EnKF) or localization_radius=numpy.inf"
        )
    dims = tuple(d for d in layout[0].dims if all(d in v.dims for v in layout))
    if not dims:
        raise ValueError(f"the variables of {name} share no spatial dim to localize along")
    shape = []
    for d in dims:
        sizes = {v.shape[v.dims.index(d)] for v in layout}
        if len(sizes) != 1:
            raise ValueError(f"state variables disagree on the size of dim {d!r}: {sorted(sizes)}")
        shape.append(sizes.pop())
    return dims, tuple(int(s) for s in shape)


def state_positions(system) -> np.ndarray:
    """Grid position of every flat state entry, shape ``(n_state, n_dims)``.

    Positions are integer indices along the dims of :func:`spatial_grid`.

    Parameters
    ----------
    system : DynamicalSystem or list of StateVariable
        The system, or its state layout (``system.variables``), in flat-state order.

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> state_positions(Lorenz96(n=5))[:, 0].tolist()
    [0, 1, 2, 3, 4]
    """
    layout = _layout(system)
    dims, _ = spatial_grid(layout)
    parts = []
    for v in layout:
        grid = np.indices(v.shape).reshape(len(v.shape), -1).T
        parts.append(grid[:, [v.dims.index(d) for d in dims]])
    return np.concatenate(parts, axis=0)


def obs_positions(operator, system) -> np.ndarray:
    """Grid position of every observation, shape ``(n_obs, n_dims)``.

    An observation sits where the state entry it observes sits
    (``operator.indices``).

    Parameters
    ----------
    operator : ObservationOperator
        The operator; ``operator.indices`` gives the flat state entry each observation sees.
    system : DynamicalSystem or list of StateVariable
        The system observed, or its state layout (``system.variables``).

    Examples
    --------
    >>> from xdyn.observe import EveryKth
    >>> from xdyn.systems import Lorenz96
    >>> obs_positions(EveryKth(4), Lorenz96(n=12))[:, 0].tolist()
    [0, 4, 8]
    """
    layout = _layout(system)
    return state_positions(layout)[np.asarray(operator.indices(layout))]


def periodic_distance(a, b, shape) -> np.ndarray:
    """Euclidean distance between points ``a`` and ``b`` on a periodic grid.

    Parameters
    ----------
    a : array of shape (n_a, n_dims)
    b : array of shape (n_b, n_dims)
    shape : tuple of int
        Grid size along each dim (the period).

    Returns
    -------
    numpy.ndarray of shape (n_a, n_b)

    Examples
    --------
    >>> periodic_distance([[0], [1]], [[39]], shape=(40,)).tolist()
    [[1.0], [2.0]]
    """
    a = np.atleast_2d(np.asarray(a, dtype=float))
    b = np.atleast_2d(np.asarray(b, dtype=float))
    period = np.asarray(shape, dtype=float)
    diff = np.abs(a[:, None, :] - b[None, :, :])
    diff = np.minimum(diff, period - diff)
    return np.sqrt((diff**2).sum(-1))


def local_observations(system, operator, radius, taper="gaspari-cohn"):
    """Observations within reach of every state entry and their taper coefficients.

    Parameters
    ----------
    system : DynamicalSystem or list of StateVariable
    operator : ObservationOperator
    radius : float
        Localization radius (see :func:`taper_coefficients`); ``numpy.inf``
        makes every observation local to every point (no grid needed).
    taper : str
        See :func:`taper_coefficients`.

    Returns
    -------
    index : ndarray of int, shape (n_state, n_local)
        Observation indices (along ``obs``), in ascending order, padded with 0.
    coeff : ndarray, shape (n_state, n_local)
        Their taper coefficients, 0 on the padding; ``n_local`` is the largest
        number of observations any point sees.

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> from xdyn.observe import Identity
    >>> index, coeff = local_observations(Lorenz96(n=40), Identity(), radius=2.0)
    >>> index.shape, index[0, :3].tolist()
    ((40, 13), [0, 1, 2])
    """
    layout = _layout(system)
    n_obs = len(operator.indices(layout))
    n_state = sum(v.size for v in layout)
    if np.isinf(float(radius)):
        taper_coefficients(0.0, radius, taper)  # validates taper and radius
        return np.tile(np.arange(n_obs), (n_state, 1)), np.ones((n_state, n_obs))
    _, shape = spatial_grid(layout)
    xpos = state_positions(layout)
    ypos = obs_positions(operator, layout)
    chunk = max(1, _MAX_BLOCK // max(n_obs, 1))
    blocks = []
    for start in range(0, n_state, chunk):  # memory bound only; one block for small grids
        coeff = taper_coefficients(periodic_distance(xpos[start:start + chunk], ypos, shape),
                                   radius, taper)
        blocks.append(np.where(coeff > _CUTOFF, coeff, 0.0))
    coeff = np.concatenate(blocks, axis=0)
    keep = coeff > 0
    n_local = max(int(keep.sum(1).max(initial=0)), 1)
    # kept observations first, each group in ascending obs order
    index = np.argsort(~keep, axis=1, kind="stable")[:, :n_local]
    coeff = np.take_along_axis(coeff, index, axis=1)
    index = np.where(coeff > 0, index, 0)
    return index.astype(np.int64), coeff
