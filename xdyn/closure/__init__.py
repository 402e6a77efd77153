"""Stochastic closures of unresolved scales conditioned on the resolved state.

Every closure keeps the interface of :class:`BaseClosure`:
``fit(X_resolved, Y_unresolved)``, ``predict(X, return_std=True)`` and
``sample(X, n_samples, random_state)`` (a ``member`` dim), with outputs on the
grid of ``Y``. :class:`ClosedModel` combines a resolved-scale forecast (a ROM)
with a closure into an ensemble forecast of the full field.
:class:`ConvFieldRegressor` can carry a closure's conditional mean (``mean_model``).

Examples
--------
>>> from xdyn.closure import GPClosure, VAEClosure, DiffusionClosure
>>> [c().get_params()["n_output_modes"] for c in (GPClosure, VAEClosure, DiffusionClosure)]
[16, 16, 16]
"""

from xdyn.closure.base import BaseClosure
from xdyn.closure.closed import ClosedModel
from xdyn.closure.diffusion import DiffusionClosure
from xdyn.closure.field_regressor import ConvFieldRegressor
from xdyn.closure.gp import GPClosure
from xdyn.closure.vae import VAEClosure

__all__ = ["BaseClosure", "GPClosure", "VAEClosure", "DiffusionClosure", "ClosedModel",
           "ConvFieldRegressor"]
