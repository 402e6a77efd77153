"""What the neural closures share: parameters, the net's input, seeded sampling."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from sklearn.utils._param_validation import Interval

from xdyn.closure.base import BaseClosure
from xdyn.nn.params import TRAINING_CONSTRAINTS
from xdyn.utils._torch import resolve_dtype, torch_generator

__all__ = ["NeuralClosure"]


class NeuralClosure(BaseClosure):
    """A closure whose conditional law is a torch generative module trained by an XdynNet.

    A subclass sets ``_net_class``, ``_module_class`` and returns its extra
    ``module__*`` arguments from ``_module_params``.
    """

    _parameter_constraints = {
        **BaseClosure._parameter_constraints,
        **TRAINING_CONSTRAINTS,
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "hidden": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 1, None, closed="left")],
    }

    def _net_params(self):
        return {}

    def _fit_reduced(self, Z, C):
        params = dict(module__cond_features=Z.shape[1], module__target_features=C.shape[1],
                      module__hidden=self.hidden, module__n_layers=self.n_layers,
                      lr=self.lr, max_epochs=self.max_epochs, batch_size=self.batch_size,
                      device=self.device, dtype=self.dtype, random_state=self.random_state,
                      progress=self.progress, **self._net_params())
        self.net_ = self._net_class(self._module_class, **params)
        self.net_.fit({"cond": Z, "target": C})

    def _sample_reduced(self, Z, n_samples, rng):
        net = self.net_
        with net._resolved_device():
            cond = torch.as_tensor(Z, dtype=resolve_dtype(self.dtype), device=net.device_)
            generator = torch_generator(rng, net.device_)
            module = net.module_.eval()
            with net._threads():
                out = module.sample(cond, n_samples, generator)
        return out.cpu().numpy().astype(np.float64)
