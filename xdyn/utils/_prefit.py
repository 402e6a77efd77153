"""``clone`` of an estimator that uses already fitted models as they are (private)."""

from __future__ import annotations


class PrefitCloneMixin:
    """A clone keeps the fitted models that a ``prefit`` flag says are used as they are.

    ``_prefit_models`` maps each flag parameter to the parameters it marks as
    fitted models rather than settings. With the flag on, ``sklearn.base.clone``
    gives the clone those same models, as scikit-learn's ``FrozenEstimator`` is
    kept by ``clone``; an unfitted copy of them (scikit-learn's default) could
    not be used as it is, and ``fit`` raised ``NotFittedError`` inside
    ``GridSearchCV`` and cross-validation. The estimator's ``fit`` must not
    change them (it copies them or reads them only). With the flag off the
    clone is scikit-learn's.
    """

    _prefit_models: dict[str, tuple[str, ...]] = {}

    def __sklearn_clone__(self):
        new = super().__sklearn_clone__()
        for flag, names in self._prefit_models.items():
            if getattr(self, flag):
                for name in names:
                    setattr(new, name, getattr(self, name))
        return new
