"""Gaussian-process modules and their skorch nets (gpytorch through :class:`XdynNet`).

Two multi-output GPs with one independent GP per output (a batch of GPs over
the outputs, each with its own ARD Matern-5/2 kernel and noise level):

* :class:`ExactMultiOutputGP` -- exact inference, O(n^3) in the training
  size, for small data;
* :class:`SparseMultiOutputGP` -- a sparse variational GP (SVGP, Hensman et
  al. 2013) on ``n_inducing`` learned inducing points, trained by mini-batches
  on the variational ELBO, for large data.

Their nets, :class:`ExactGPNet` and :class:`SparseGPNet`, are
:class:`XdynNet` (device, dtype, seeding) combined with skorch's own gpytorch
support (:mod:`skorch.probabilistic`), whose loss is the negative (variational)
marginal log-likelihood and whose ``predict(X, return_std=True)`` gives the
predictive mean and standard deviation (observation noise included).
"""

from __future__ import annotations

import warnings

import gpytorch
import torch
from skorch.probabilistic import ExactGPRegressor, GPRegressor

from xdyn.nn.net import XdynNet

__all__ = ["ExactMultiOutputGP", "SparseMultiOutputGP", "ExactGPNet", "SparseGPNet"]


def _kernel(n_features, n_outputs):
    batch = torch.Size([n_outputs])
    return gpytorch.kernels.ScaleKernel(
        gpytorch.kernels.MaternKernel(nu=2.5, ard_num_dims=n_features, batch_shape=batch),
        batch_shape=batch)


class ExactMultiOutputGP(gpytorch.models.ExactGP):
    """Independent exact GPs, one per output column (a batch of GPs).

    The GPs form a batch (``batch_shape=(n_outputs,)``): their marginal
    likelihoods are batched Cholesky solves of ``n x n`` matrices, not one
    ``(n n_outputs)``-square multitask system. Outputs are batch-first,
    ``(n_outputs, n)``; :class:`ExactGPNet` transposes to and from the
    ``(n, n_outputs)`` layout of its data.

    Parameters
    ----------
    likelihood : gpytorch.likelihoods.GaussianLikelihood
        With ``batch_shape=(n_outputs,)`` (one noise level per output).
    n_features, n_outputs : int
    train_inputs : torch.Tensor, optional
        ``(n, n_features)``.
    train_targets : torch.Tensor, optional
        ``(n_outputs, n)``; set by :meth:`ExactGPNet.fit`.

    Examples
    --------
    >>> import torch, gpytorch
    >>> lik = gpytorch.likelihoods.GaussianLikelihood(batch_shape=torch.Size([2]))
    >>> gp = ExactMultiOutputGP(lik, n_features=3, n_outputs=2,
    ...                         train_inputs=torch.zeros(5, 3), train_targets=torch.zeros(2, 5))
    >>> gp.eval()(torch.ones(4, 3)).mean.shape
    torch.Size([2, 4])
    """

    def __init__(self, likelihood, n_features, n_outputs, train_inputs=None, train_targets=None):
        super().__init__(train_inputs, train_targets, likelihood)
        batch = torch.Size([int(n_outputs)])
        self.mean_module = gpytorch.means.ConstantMean(batch_shape=batch)
        self.covar_module = _kernel(int(n_features), int(n_outputs))

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


class SparseMultiOutputGP(gpytorch.models.ApproximateGP):
    """Independent sparse variational GPs, one per output column.

    Parameters
    ----------
    n_features, n_outputs : int
    inducing_points : torch.Tensor
        ``(n_inducing, n_features)`` initial inducing inputs (e.g. a random
        subset of the training inputs), shared as the start of every output's.

    Examples
    --------
    >>> import torch
    >>> gp = SparseMultiOutputGP(n_features=3, n_outputs=2, inducing_points=torch.zeros(8, 3))
    >>> gp(torch.zeros(4, 3)).mean.shape
    torch.Size([4, 2])
    """

    def __init__(self, n_features, n_outputs, inducing_points):
        n_outputs = int(n_outputs)
        batch = torch.Size([n_outputs])
        inducing = torch.as_tensor(inducing_points).unsqueeze(0).repeat(n_outputs, 1, 1)
        distribution = gpytorch.variational.CholeskyVariationalDistribution(
            inducing.shape[-2], batch_shape=batch)
        strategy = gpytorch.variational.IndependentMultitaskVariationalStrategy(
            gpytorch.variational.VariationalStrategy(
                self, inducing, distribution, learn_inducing_locations=True),
            num_tasks=n_outputs)
        super().__init__(strategy)
        self.mean_module = gpytorch.means.ConstantMean(batch_shape=batch)
        self.covar_module = _kernel(int(n_features), n_outputs)

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


class ExactGPNet(XdynNet, ExactGPRegressor):
    """Exact GP regression trained by maximising the marginal likelihood (full batch).

    :class:`XdynNet`'s device, dtype and seeding on top of
    :class:`skorch.probabilistic.ExactGPRegressor`; the loss is the negative
    exact marginal log-likelihood (``gpytorch.mlls.ExactMarginalLogLikelihood``,
    averaged over the outputs). ``y`` is ``(n, n_outputs)``; the batched GP
    (:class:`ExactMultiOutputGP`) sees it transposed. ``X`` and ``y`` are cast
    to the net's ``dtype``, as every :class:`XdynNet` casts its inputs.

    Parameters
    ----------
    module : ExactMultiOutputGP class
    likelihood : gpytorch likelihood class, default=GaussianLikelihood
        Built with ``likelihood__batch_shape=(module__n_outputs,)`` unless given.
    criterion : gpytorch marginal log-likelihood class, default=ExactMarginalLogLikelihood
        The objective whose negative is the loss; built by skorch with the likelihood
        and the module (``criterion__*`` are its further arguments).
    batch_size : int, default=-1
        The whole training set per step, as exact inference needs (the training
        batches are not shuffled unless ``iterator_train__shuffle=True``).
    lr : float, default=0.05
        Learning rate of the optimizer (Adam by default, see :class:`XdynNet`).
    max_cholesky_size : int, default=4000
        Up to this many training points the marginal likelihood and the
        posterior use Cholesky factors (gpytorch's default switches to
        conjugate gradients and Lanczos above 800, which was measured many
        times slower here: a 2000-point, 32-output fit of 40 steps took over
        ten minutes on 2 cores).
    **kwargs
        As :class:`XdynNet` (``lr`` 0.05 and the full batch by default).

    Attributes
    ----------
    module_, device_, dtype_, seed_, history_
        As :class:`~xdyn.nn.XdynNet`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-2, 2, (60, 1)).astype("float32")
    >>> y = np.hstack([np.sin(2 * X), X ** 2]).astype("float32")
    >>> net = ExactGPNet(ExactMultiOutputGP, module__n_features=1, module__n_outputs=2,
    ...                  lr=0.1, max_epochs=40, random_state=0)
    >>> net = net.fit(X, y)
    >>> X_new = np.linspace(-1.5, 1.5, 7, dtype="float32")[:, None]
    >>> mean, std = net.predict(X_new, return_std=True)
    >>> y_new = np.hstack([np.sin(2 * X_new), X_new ** 2])
    >>> mean.shape, bool(np.abs(mean - y_new).mean() < 0.1), bool((std > 0).all())
    ((7, 2), True, True)
    """

    def __init__(self, module, *args, likelihood=gpytorch.likelihoods.GaussianLikelihood,
                 criterion=gpytorch.mlls.ExactMarginalLogLikelihood, batch_size=-1,
                 lr=0.05, max_cholesky_size=4000, **kwargs):
        kwargs.setdefault("iterator_train__shuffle", False)
        super().__init__(module, *args, likelihood=likelihood, criterion=criterion,
                         batch_size=batch_size, lr=lr, **kwargs)
        self.max_cholesky_size = max_cholesky_size

    def initialize_module(self):
        params = self.get_params_for("likelihood")
        if "batch_shape" not in params and "n_outputs" in self.get_params_for("module"):
            n_outputs = int(self.get_params_for("module")["n_outputs"])
            self.set_params(likelihood__batch_shape=torch.Size([n_outputs]))
        return super().initialize_module()

    def fit(self, X, y=None, **fit_params):
        # the GP's targets are batch-first (n_outputs, n) for its posterior
        with self._resolved_device():
            if not self.warm_start or not self.initialized_:
                self.initialize()
            # in the net's dtype, as the forward pass sees them: gpytorch refuses a forward
            # on inputs unequal to the training data ("You must train on the training inputs")
            self.module_.set_train_data(
                inputs=self._cast(torch.as_tensor(X)).to(self.device_),
                targets=self._cast(torch.as_tensor(y)).T.contiguous().to(self.device_),
                strict=False)
            with gpytorch.settings.max_cholesky_size(self.max_cholesky_size):
                self.partial_fit(X, y, **fit_params)
        return self

    def get_loss(self, y_pred, y_true, X=None, training=False):
        return super().get_loss(y_pred, torch.as_tensor(y_true).T, X=X, training=training)

    def predict(self, X, return_std=False, return_cov=False):
        with gpytorch.settings.max_cholesky_size(self.max_cholesky_size), \
                warnings.catch_warnings():
            # gpytorch warns on test inputs equal to the training inputs ("did you forget
            # to call model.train()?"): a training score or calibration asks exactly that
            warnings.simplefilter("ignore", gpytorch.utils.warnings.GPInputWarning)
            return super().predict(X, return_std=return_std, return_cov=return_cov)

    def _get_predict_nonlinearity(self):
        # each batch's posterior is (n_outputs, n_batch): points first before skorch joins
        # the batches along the first axis (after it, more than one batch was scrambled)
        nonlinearity = super()._get_predict_nonlinearity()
        return lambda posterior: nonlinearity(posterior).T


class SparseGPNet(XdynNet, GPRegressor):
    """Sparse variational GP regression trained on the negative ELBO by mini-batches.

    :class:`XdynNet` on top of :class:`skorch.probabilistic.GPRegressor`; pass
    ``criterion__num_data`` (the training size) so the ELBO weighs a
    mini-batch's likelihood against the KL term correctly.

    Parameters
    ----------
    module : SparseMultiOutputGP class
        With its arguments as ``module__n_features=...``, ``module__n_outputs=...``,
        ``module__inducing_points=...``.
    likelihood : gpytorch likelihood class, default=MultitaskGaussianLikelihood
        Pass ``likelihood__num_tasks`` (the number of outputs); ``likelihood__rank``
        is 0 unless given (no correlation between the outputs' noises).
    criterion : gpytorch variational objective class, default=VariationalELBO
        The objective whose negative is the loss; built by skorch with the likelihood
        and the module. ``criterion__num_data`` is the training size.
    lr : float, default=0.01
        Learning rate of the optimizer (Adam by default, see :class:`XdynNet`).
    **kwargs
        As :class:`XdynNet` (``max_epochs``, ``batch_size``, ``device``,
        ``random_state`` ...) and :class:`skorch.NeuralNet`.

    Attributes
    ----------
    module_, device_, dtype_, seed_, history_
        As :class:`~xdyn.nn.XdynNet`.

    Examples
    --------
    >>> import numpy as np, torch
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-2, 2, (200, 1)).astype("float32")
    >>> y = np.sin(2 * X).astype("float32")
    >>> net = SparseGPNet(SparseMultiOutputGP, module__n_features=1, module__n_outputs=1,
    ...                   module__inducing_points=torch.linspace(-2, 2, 12)[:, None],
    ...                   likelihood__num_tasks=1, criterion__num_data=200,
    ...                   lr=0.1, max_epochs=30, batch_size=-1, random_state=0).fit(X, y)
    >>> bool(np.abs(net.predict(X) - y).mean() < 0.15)
    True
    """

    def __init__(self, module, *args,
                 likelihood=gpytorch.likelihoods.MultitaskGaussianLikelihood,
                 criterion=gpytorch.mlls.VariationalELBO, lr=0.01, **kwargs):
        kwargs.setdefault("likelihood__rank", 0)
        super().__init__(module, *args, likelihood=likelihood, criterion=criterion,
                         lr=lr, **kwargs)
