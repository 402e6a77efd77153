"""Forgetting a fit: what an estimator's ``fit`` does first, and again when it raises."""

from __future__ import annotations

__all__ = ["fit_anew", "forget_fit"]


def forget_fit(est):
    """Delete the fitted attributes of ``est``, so that it is unfitted again.

    A fitted attribute is one whose name ends with ``_``, does not start with
    ``_`` and holds no ``__`` (the routed ``module__*`` / ``optimizer__*``
    parameters are parameters, not fitted attributes). A ``fit`` that calls it
    first, and again on any exception, leaves the estimator either fitted
    anew or unfitted (``NotFittedError`` at ``predict``), never half updated:
    an old network with a new grid or observation interval.

    Parameters
    ----------
    est : object
        The estimator; changed in place.

    Returns
    -------
    object
        ``est``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> est = SimpleNamespace(lr=0.1, module__hidden=8, net_=1, grid_=2, _cache=3)
    >>> sorted(vars(forget_fit(est)))
    ['_cache', 'lr', 'module__hidden']
    """
    for name in [k for k in vars(est) if k.endswith("_") and not k.startswith("_")
                 and "__" not in k]:
        delattr(est, name)
    return est


def fit_anew(est, *args):
    """``est._fit(*args)`` on ``est`` unfitted first, and unfitted again if it raises.

    What a ``fit`` that builds everything anew returns: the estimator fitted
    anew, or, on any exception, unfitted (see :func:`forget_fit`).

    Parameters
    ----------
    est : object
        The estimator, with a ``_fit`` doing the work of its ``fit``.
    *args
        Passed on to ``est._fit``.

    Returns
    -------
    object
        What ``est._fit`` returns (``est``).

    Examples
    --------
    >>> class Est:
    ...     def _fit(self, x):
    ...         self.coef_ = 1.0 / x
    ...         return self
    >>> est = fit_anew(Est(), 2.0)
    >>> est.coef_
    0.5
    >>> try:
    ...     fit_anew(est, 0.0)
    ... except ZeroDivisionError:
    ...     hasattr(est, "coef_")
    False
    """
    forget_fit(est)
    try:
        return est._fit(*args)
    except BaseException:
        forget_fit(est)
        raise
