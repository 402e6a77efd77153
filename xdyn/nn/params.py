"""Parameters of the estimators that train a net: their constraints, and the routed ones.

:data:`TRAINING_CONSTRAINTS` are the scikit-learn constraints of the training
parameters every learned estimator shares (``max_epochs``, ``lr``,
``batch_size``, ``device``, ``dtype``, ``random_state``, ``progress``): an
estimator spreads them into its ``_parameter_constraints`` and adds its own.
:class:`RoutedParamsMixin` passes ``module__*`` / ``optimizer__*`` through to
the net, as skorch names them.
"""

from __future__ import annotations

from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval

from xdyn.utils._validation import FiniteInterval

__all__ = ["ROUTED_PREFIXES", "RoutedParamsMixin", "TRAINING_CONSTRAINTS"]

ROUTED_PREFIXES = ("module__", "optimizer__")

#: Constraints of the training parameters shared by every learned estimator
#: (``max_epochs=0`` initialises the net without training it).
TRAINING_CONSTRAINTS = {
    "max_epochs": [Interval(Integral, 0, None, closed="left")],
    "lr": [FiniteInterval(Real, 0, None, closed="neither")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "device": [str, torch.device],
    "dtype": [str, torch.dtype],
    "random_state": ["random_state"],
    "progress": ["boolean"],
}


class RoutedParamsMixin:
    """``module__*`` / ``optimizer__*`` parameters of an estimator that builds an XdynNet.

    The estimator's ``__init__`` takes ``**kwargs`` and calls
    :meth:`_set_routed`; ``get_params`` / ``set_params`` then include those
    names, so ``clone`` and ``GridSearchCV`` reach the network's arguments
    through the estimator, and :meth:`_routed` hands them to the net in ``fit``.
    Put it before :class:`sklearn.base.BaseEstimator` in the bases.

    Examples
    --------
    >>> from sklearn.base import BaseEstimator, clone
    >>> class Model(RoutedParamsMixin, BaseEstimator):
    ...     def __init__(self, lr=0.01, **kwargs):
    ...         self.lr = lr
    ...         self._set_routed(kwargs)
    >>> model = Model(module__hidden_size=8)
    >>> clone(model).set_params(module__hidden_size=16)._routed()
    {'module__hidden_size': 16}
    >>> Model(hidden_size=8)
    Traceback (most recent call last):
    ...
    TypeError: Model got an unexpected parameter 'hidden_size'; network parameters are passed as module__<name> or optimizer__<name>
    """

    def _set_routed(self, kwargs):
        for key, value in kwargs.items():
            if not key.startswith(ROUTED_PREFIXES):
                raise TypeError(
                    f"{type(self).__name__} got an unexpected parameter {key!r}; network "
                    f"parameters are passed as {' or '.join(p + '<name>' for p in ROUTED_PREFIXES)}")
            setattr(self, key, value)

    def _routed(self, prefix=ROUTED_PREFIXES):
        """The routed parameters starting with ``prefix`` (all of them by default)."""
        return {k: v for k, v in vars(self).items() if k.startswith(prefix)}

    def _refuse_routed_set_by_fit(self, set_by_fit):
        """Refuse routed ``module__*`` parameters that ``fit`` sets itself (skorch failed
        with "got multiple values for keyword argument" at the end of training).

        ``set_by_fit`` maps each such routed name to the estimator's own parameter that
        sets it, or None where the value comes from the data.
        """
        for key in sorted(set(self._routed()) & set(set_by_fit)):
            own = set_by_fit[key]
            how = (f"use {type(self).__name__}'s own parameter {own!r}" if own is not None
                   else "it is set from the training data")
            raise ValueError(f"{type(self).__name__} sets {key} itself ({how}), so it cannot "
                             f"be passed as a routed parameter: remove {key}")

    def get_params(self, deep=True):
        """Parameters, the routed ``module__*`` / ``optimizer__*`` ones included."""
        return {**super().get_params(deep=deep), **self._routed()}

    def set_params(self, **params):
        """Set parameters, routed ones included; returns self."""
        for key in [k for k in params if k.startswith(ROUTED_PREFIXES)]:
            setattr(self, key, params.pop(key))
        return super().set_params(**params)
