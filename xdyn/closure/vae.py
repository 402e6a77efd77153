"""Conditional-VAE closure."""

from __future__ import annotations

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval

from xdyn.closure._torch import NeuralClosure
from xdyn.nn.generative import ConditionalVAE, CVAENet

__all__ = ["VAEClosure"]


class VAEClosure(NeuralClosure):
    """Stochastic closure by a conditional variational autoencoder.

    The unresolved coefficients ``c`` given the resolved ones ``z_x`` are
    modelled as ``c = mu(z_x, z) + sigma(z_x, z) * eps`` with a latent
    ``z ~ N(0, I)`` (a conditional VAE, Sohn et al. 2015, as the VAE baseline
    closure of Zighed et al. 2025), trained on the negative ELBO (``beta``
    weighting the KL term). The decoder's own variance is kept when sampling,
    so the draws carry the aleatoric spread even when the latent is little used.
    One sample costs one decoder evaluation.

    Parameters
    ----------
    n_input_modes, n_output_modes : int, default=16
    latent : int, default=8
    beta : float, default=1.0
    hidden : int, default=128
    n_layers : int, default=2
    max_epochs : int, default=200
    lr : float, default=2e-3
    batch_size : int, default=256
    residual, n_residual_bank, spread_scale, sample_dim, trajectory_dim, random_state
        See :class:`~xdyn.closure.BaseClosure`.
    mean_model, prefit_mean_model
        A regressor of the unresolved field on the resolved one; the closure models
        what it leaves (see :class:`~xdyn.closure.BaseClosure`).
    device : str or torch.device, default="auto"
    dtype : str or torch.dtype, default="float32"
    progress : bool, default=False

    Attributes
    ----------
    net_ : xdyn.nn.CVAENet
    input_info_, output_info_, input_pca_, output_pca_, output_scale_, residual_var_, residual_bank_, n_samples_fit_
        See :class:`~xdyn.closure.BaseClosure`.
    mean_model_ : regressor or None
        The fitted ``mean_model`` (see :class:`~xdyn.closure.BaseClosure`).

    Examples
    --------
    >>> import numpy as np
    >>> from xdyn.closure import VAEClosure
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-2, 2, (400, 2))
    >>> Y = np.sin(2 * X) + 0.2 * rng.normal(size=X.shape)
    >>> vae = VAEClosure(2, 2, hidden=32, max_epochs=30, lr=1e-2, random_state=0).fit(X, Y)
    >>> vae.sample(X[:5], n_samples=4).shape
    (4, 5, 2)
    """

    _parameter_constraints = {
        **NeuralClosure._parameter_constraints,
        "latent": [Interval(Integral, 1, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
    }
    _net_class = CVAENet
    _module_class = ConditionalVAE

    def __init__(self, n_input_modes=16, n_output_modes=16, *, latent=8, beta=1.0, hidden=128,
                 n_layers=2, max_epochs=200, lr=2e-3, batch_size=256, residual="resample",
                 n_residual_bank=256, spread_scale=1.0, sample_dim="time",
                 trajectory_dim="trajectory", random_state=None, mean_model=None,
                 prefit_mean_model=False, device="auto",
                 dtype="float32", progress=False):
        super().__init__(n_input_modes, n_output_modes, residual=residual,
                         n_residual_bank=n_residual_bank, spread_scale=spread_scale,
                         sample_dim=sample_dim,
                         trajectory_dim=trajectory_dim, random_state=random_state,
                         mean_model=mean_model, prefit_mean_model=prefit_mean_model)
        self.latent = latent
        self.beta = beta
        self.hidden = hidden
        self.n_layers = n_layers
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.progress = progress

    def _net_params(self):
        return {"module__latent": int(self.latent), "beta": self.beta}
