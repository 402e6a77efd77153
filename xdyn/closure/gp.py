"""Gaussian-process closure: independent GPs from resolved to unresolved coefficients."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval

from xdyn.closure.base import BaseClosure
from xdyn.nn.gp import ExactGPNet, ExactMultiOutputGP, SparseGPNet, SparseMultiOutputGP
from xdyn.nn.params import TRAINING_CONSTRAINTS
from xdyn.utils._torch import resolve_dtype

__all__ = ["GPClosure"]

# initial noise variance of each (unit-variance) output coefficient
_INITIAL_NOISE = 0.05


class GPClosure(BaseClosure):
    """Stochastic closure by Gaussian-process regression (gpytorch, trained through skorch).

    One GP per output coefficient (an ARD Matern-5/2 kernel on the whitened
    resolved coefficients, a constant mean, its own noise level), as the GP
    closure of Zighed et al. (2025) maps the resolved latent state to the
    unresolved field in a POD basis. Exact GP regression up to
    ``exact_max_samples`` training samples (hyper-parameters by maximising the
    marginal likelihood, full batch); above it a sparse variational GP on
    ``n_inducing`` inducing points trained by mini-batches on the ELBO. The
    predictive distribution (latent GP + noise) is Gaussian, so ``predict``
    gives its mean and standard deviation exactly and ``sample`` draws from it.

    Parameters
    ----------
    n_input_modes, n_output_modes : int, default=8, 16
        See :class:`~xdyn.closure.BaseClosure`.
    exact_max_samples : int, default=2000
        Largest training size for the exact GP.
    n_inducing : int, default=256
        Inducing points of the sparse GP.
    max_epochs : int, default=100
    lr : float, default=0.1
    batch_size : int, default=512
        Mini-batch of the sparse GP (the exact GP trains on the full batch).
    residual, n_residual_bank, spread_scale, sample_dim, trajectory_dim, random_state
        See :class:`~xdyn.closure.BaseClosure`.
    mean_model, prefit_mean_model
        A regressor of the unresolved field on the resolved one; the closure models
        what it leaves (see :class:`~xdyn.closure.BaseClosure`).
    device : str or torch.device, default="auto"
    dtype : str or torch.dtype, default="float64"
        GP algebra (Cholesky factors) is safer in double precision.
    progress : bool, default=False

    Attributes
    ----------
    net_ : ExactGPNet or SparseGPNet
    sparse_ : bool
        Whether the sparse variational GP was used.
    input_info_, output_info_, input_pca_, output_pca_, output_scale_, residual_var_, residual_bank_, n_samples_fit_
        See :class:`~xdyn.closure.BaseClosure`.
    mean_model_ : regressor or None
        The fitted ``mean_model`` (see :class:`~xdyn.closure.BaseClosure`).

    See Also
    --------
    VAEClosure, DiffusionClosure : the same interface, other conditional laws.

    References
    ----------
    Zighed, Thome, Gallinari & Sayadi (2025), Leveraging scale separation and
    stochastic closure for data-driven prediction of chaotic dynamics,
    arXiv:2510.24583. Hensman, Fusi & Lawrence (2013), Gaussian processes for
    big data, UAI.

    Examples
    --------
    >>> import numpy as np
    >>> from xdyn.closure import GPClosure
    >>> rng = np.random.RandomState(0)
    >>> x = rng.uniform(-2, 2, (150, 1))
    >>> X = np.hstack([x, 0.1 * x])
    >>> Y = np.hstack([np.sin(2 * x), -np.sin(2 * x)]) + 0.1 * rng.normal(size=(150, 1))
    >>> gp = GPClosure(n_input_modes=1, n_output_modes=1, max_epochs=60,
    ...                random_state=0).fit(X, Y)
    >>> mean, std = gp.predict(X[:5], return_std=True)
    >>> mean.shape, bool(np.abs(mean - Y[:5]).mean() < 0.3), bool(np.allclose(std, 0.1, atol=0.03))
    ((5, 2), True, True)
    >>> gp.sample(X[:5], n_samples=3).shape
    (3, 5, 2)
    """

    _parameter_constraints = {
        **BaseClosure._parameter_constraints,
        **TRAINING_CONSTRAINTS,
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "exact_max_samples": [Interval(Integral, 1, None, closed="left")],
        "n_inducing": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, n_input_modes=8, n_output_modes=16, *, exact_max_samples=2000,
                 n_inducing=256, max_epochs=100, lr=0.1, batch_size=512, residual="resample",
                 n_residual_bank=256, spread_scale=1.0, sample_dim="time",
                 trajectory_dim="trajectory", random_state=None, mean_model=None,
                 prefit_mean_model=False, device="auto",
                 dtype="float64", progress=False):
        super().__init__(n_input_modes, n_output_modes, residual=residual,
                         n_residual_bank=n_residual_bank, spread_scale=spread_scale,
                         sample_dim=sample_dim,
                         trajectory_dim=trajectory_dim, random_state=random_state,
                         mean_model=mean_model, prefit_mean_model=prefit_mean_model)
        self.exact_max_samples = exact_max_samples
        self.n_inducing = n_inducing
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.progress = progress

    def _fit_reduced(self, Z, C):
        np_dtype = torch.empty((), dtype=resolve_dtype(self.dtype)).numpy().dtype
        Z, C = Z.astype(np_dtype), C.astype(np_dtype)
        n, k = C.shape
        common = dict(module__n_features=Z.shape[1], module__n_outputs=k, lr=self.lr, max_epochs=self.max_epochs,
                      device=self.device, dtype=self.dtype, random_state=self.random_state,
                      progress=self.progress)
        self.sparse_ = n > self.exact_max_samples
        if self.sparse_:
            # a RandomState instance seeds the inducing points too (not a fresh, unseeded RNG)
            rng = check_random_state(self.random_state)
            start = Z[rng.choice(n, min(n, self.n_inducing), replace=False)]
            self.net_ = SparseGPNet(SparseMultiOutputGP, module__inducing_points=torch.as_tensor(
                start), criterion__num_data=n, likelihood__num_tasks=k,
                batch_size=self.batch_size, **common)
        else:
            self.net_ = ExactGPNet(ExactMultiOutputGP, **common)
        # the outputs have unit variance; gpytorch's default noise (0.69) would
        # take hundreds of steps to fall to a well-resolved mode's level. The sparse
        # GP's likelihood adds a global noise, left at 0.69: starting it low as well
        # converged no better after 10-40 epochs (measured, stop 61)
        self.net_.set_params(warm_start=True).initialize()
        likelihood = self.net_.likelihood_
        if self.sparse_:
            likelihood.task_noises = torch.full((k,), _INITIAL_NOISE)
        else:
            likelihood.noise = torch.full((k, 1), _INITIAL_NOISE)
        self.net_.fit(Z, C)

    def _predict_reduced(self, Z):
        np_dtype = torch.empty((), dtype=resolve_dtype(self.dtype)).numpy().dtype
        mean, std = self.net_.predict(Z.astype(np_dtype), return_std=True)
        return mean.astype(np.float64), std.astype(np.float64) ** 2

    def _sample_reduced(self, Z, n_samples, rng):
        mean, var = self._predict_reduced(Z)
        return mean + np.sqrt(var) * rng.standard_normal((n_samples, *mean.shape))
