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
    clone is scikit-learn's. As ``FrozenEstimator`` refuses, ``set_params``
    refuses a nested parameter of a prefit model (``mean_model__alpha``): on
    a shared model it would change the user's own (and every clone's), and a
    parameter that acts at fit would change nothing, so that a grid search over
    it would score one model many times.
    """

    _prefit_models: dict[str, tuple[str, ...]] = {}

    def __sklearn_clone__(self):
        new = super().__sklearn_clone__()
        for flag, names in self._prefit_models.items():
            if getattr(self, flag):
                for name in names:
                    setattr(new, name, getattr(self, name))
        return new

    def set_params(self, **params):
        prefit = {name for flag, names in self._prefit_models.items()
                  if params.get(flag, getattr(self, flag, False)) for name in names}
        nested = sorted(key for key in params if key.partition("__")[0] in prefit and "__" in key)
        if nested:
            flags = [f for f, names in self._prefit_models.items() if set(names) & prefit]
            raise ValueError(
                f"{type(self).__name__}: cannot set {nested}: that model is prefit ({flags[0]}="
                "True), used as fitted and shared with this estimator's clones, so setting it "
                "would change the original and a parameter that acts at fit nothing. Set it on "
                f"the model and refit the model, or set {flags[0]}=False to fit a clone of it")
        return super().set_params(**params)
