"""Climatological background statistics shared by OI, 3D-Var and 4D-Var.

The climatology itself is estimated in :mod:`xdyn.systems.climatology` (a
property of the system, which forecasters use too); this module turns it into
the background covariance of the variational methods.

The static background error covariance ``B`` of the baseline methods is the
covariance of the system's climatology (its invariant measure), and OI's
background is its climatological mean. DAPPER (``da_methods/baseline.py``:
``OptInterp``, ``Var3D``; ``variational.py``: ``Var4D``) estimates both from
the *truth trajectory* of the twin experiment (``np.cov(xx.T)``): given a
truth, :func:`estimate_climatology` does exactly that; without one, it runs
the forecast model freely instead, which is what a user without the truth can
do.
"""

from __future__ import annotations

import numpy as np

from xdyn.assimilation._linalg import symmetric_sqrt
from xdyn.model_selection import unwrap
from xdyn.systems.climatology import estimate_climatology as _estimate_climatology

__all__ = ["estimate_climatology", "resolve_background_covariance", "fit_background_covariance",
           "symmetric_sqrt"]


def estimate_climatology(system, truth=None, length=None, dt=None, random_state=None):
    """Climatological mean and covariance (:func:`xdyn.systems.climatology.estimate_climatology`).

    This wrapper also accepts a :class:`~xdyn.model_selection.SampleView` as ``truth``.

    Parameters
    ----------
    system : DynamicalSystem
    truth : xarray.Dataset, SampleView, numpy array of shape (n_samples, n_state), or None
        A state trajectory of ``system`` whose samples are pooled; None runs the system
        freely instead.
    length, dt, random_state
        As in :func:`xdyn.systems.climatology.estimate_climatology` (``length=None``:
        100 times the system's ``climatology_burn_in``).

    Returns
    -------
    mean : ndarray of shape (n_state,)
    cov : ndarray of shape (n_state, n_state)

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> mean, cov = estimate_climatology(Lorenz63(), length=50.0, random_state=0)
    >>> cov.shape
    (3, 3)
    """
    return _estimate_climatology(system, unwrap(truth), length, dt, random_state)


def resolve_background_covariance(B, B_scale, n_state, climatology=None) -> np.ndarray:
    """``B_scale`` times the explicit ``B`` (validated) or the climatological covariance.

    Parameters
    ----------
    B : array-like of shape (n_state, n_state) or None
        Explicit background-error covariance; it must be finite, symmetric and positive
        semi-definite. None uses ``climatology``.
    B_scale : float
        Positive finite factor multiplying the covariance.
    n_state : int
        Size of the flat state, the shape ``B`` must have.
    climatology : array-like of shape (n_state, n_state), optional
        Climatological covariance used where ``B`` is None (required then).

    Returns
    -------
    ndarray of shape (n_state, n_state)

    Examples
    --------
    >>> resolve_background_covariance(None, 0.5, 2, np.eye(2)).tolist()
    [[0.5, 0.0], [0.0, 0.5]]
    """
    scale = float(B_scale)
    if not scale > 0 or not np.isfinite(scale):
        raise ValueError(f"B_scale must be a positive finite number, got {B_scale}")
    if B is None:
        if climatology is None:
            raise ValueError("B=None needs a climatological covariance")
        B = climatology
    B = np.array(B, dtype=float)
    if B.shape != (n_state, n_state):
        raise ValueError(f"B must have shape ({n_state}, {n_state}), got {B.shape}")
    if not np.all(np.isfinite(B)):
        raise ValueError("B contains non-finite values")
    _check_symmetric(B, "B")
    if np.linalg.eigvalsh(0.5 * (B + B.T)).min() < -1e-8 * np.abs(B).max():
        raise ValueError("B must be positive semi-definite")
    return scale * B


def _check_symmetric(M, name):
    """Raise ``ValueError`` unless the square matrix ``M`` is symmetric up to rounding.

    The covariance check shared by ``B`` (:func:`resolve_background_covariance`) and
    ``R`` (the assimilators' ``R`` parameter). The tolerance is relative: ``1e-8`` of
    each entry, and ``1e-12`` of the largest entry where an entry is near 0, so that a
    covariance in any units (variances of 1e-8 for a humidity in kg/kg) is judged alike.

    Parameters
    ----------
    M : ndarray of shape (n, n)
        Finite entries.
    name : str
        The matrix's name in the error message.

    Examples
    --------
    >>> _check_symmetric(1e-8 * np.array([[1.0, 0.5], [0.5, 1.0]]), "R")
    >>> _check_symmetric(1e-8 * np.array([[1.0, 0.5], [0.0, 1.0]]), "R")
    Traceback (most recent call last):
    ...
    ValueError: R must be symmetric (a covariance): R[0, 1] = 5e-09 but R[1, 0] = 0 ...
    """
    M = np.asarray(M, dtype=float)
    if np.allclose(M, M.T, rtol=1e-8, atol=1e-12 * np.abs(M).max(initial=0.0)):
        return
    i, j = np.unravel_index(np.argmax(np.abs(M - M.T)), M.shape)
    raise ValueError(f"{name} must be symmetric (a covariance): {name}[{i}, {j}] = "
                     f"{M[i, j]:.6g} but {name}[{j}, {i}] = {M[j, i]:.6g} (the largest "
                     "difference); give both triangles, not one")


def fit_background_covariance(estimator, ctx, truth=None) -> np.ndarray:
    """The ``B`` a variational estimator uses: its explicit ``B`` or the climatology's.

    Times its ``B_scale``: the shared ``fit`` step of Var3D and Var4D.

    Parameters
    ----------
    estimator : Var3D or Var4D
        Read for ``B``, ``B_scale``, ``climatology_length`` and ``random_state``.
    ctx : CycleContext
        The context built from the observations (its system, ``dt`` and ``n_state``).
    truth : xarray.Dataset, optional
        A run whose covariance is the climatology when ``B`` is None (else a
        free run of ``climatology_length`` is simulated).

    Returns
    -------
    ndarray of shape (n_state, n_state)

    Examples
    --------
    >>> import numpy as np
    >>> from xdyn.assimilation import Var3D
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz63
    >>> truth = Lorenz63().simulate(n_steps=1000, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=1.0, every=10, random_state=1)
    >>> var3d = Var3D(B=np.diag([1.0, 2.0, 3.0]), B_scale=0.5)
    >>> ctx = var3d._context(obs)  # what fit builds from the observations
    >>> np.diag(fit_background_covariance(var3d, ctx)).tolist()
    [0.5, 1.0, 1.5]
    >>> var3d = Var3D(B=None, B_scale=0.1)  # the covariance of the truth run, scaled
    >>> B = fit_background_covariance(var3d, ctx, truth)
    >>> bool(np.allclose(B, 0.1 * np.cov(truth.to_array().values)))
    True
    """
    clim = None
    if estimator.B is None:
        _, clim = estimate_climatology(ctx.system, truth, estimator.climatology_length,
                                       ctx.dt, estimator.random_state)
    return resolve_background_covariance(estimator.B, estimator.B_scale, ctx.n_state, clim)
