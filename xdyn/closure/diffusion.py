"""Conditional denoising-diffusion closure."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from xdyn.closure._torch import NeuralClosure
from xdyn.nn.generative import ConditionalDenoiser, DDPMNet

__all__ = ["DiffusionClosure"]


class DiffusionClosure(NeuralClosure):
    """Stochastic closure by a conditional denoising diffusion model (DDPM).

    A network ``eps(c_t, z_x, t)`` learns to predict the noise added to the
    unresolved coefficients ``c`` at step ``t`` of a cosine noise schedule,
    conditioned on the resolved coefficients ``z_x`` (Ho et al. 2020; the
    diffusion baseline closure of Zighed et al. 2025, here on the reduced
    basis rather than on the grid). Sampling runs ``n_diffusion_steps``
    ancestral reverse steps: **one network evaluation per step and sample**,
    so a batch of ``n`` states and ``m`` members costs ``n_diffusion_steps``
    forward passes of an MLP on ``n * m`` rows.

    Parameters
    ----------
    n_input_modes, n_output_modes : int, default=16
    n_diffusion_steps : int, default=100
    reverse_variance : {"beta", "posterior"}, default="beta"
        Variance of the reverse steps' noise (see
        :class:`~xdyn.nn.generative.ConditionalDenoiser`): ``"posterior"``
        (``beta_tilde``) under-disperses narrow conditionals at few steps.
    hidden : int, default=256
    n_layers : int, default=3
    max_epochs : int, default=400
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
    net_ : xdyn.nn.DDPMNet
    target_bound_ : float
        Bound on the sampler's predicted clean (unit-scaled) coefficients:
        1.5 x the largest training one.
    input_info_, output_info_, input_pca_, output_pca_, output_scale_, residual_var_, residual_bank_, n_samples_fit_
        See :class:`~xdyn.closure.BaseClosure`.
    mean_model_ : regressor or None
        The fitted ``mean_model`` (see :class:`~xdyn.closure.BaseClosure`).

    Examples
    --------
    >>> import numpy as np
    >>> from xdyn.closure import DiffusionClosure
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-2, 2, (400, 2))
    >>> Y = np.sin(2 * X) + 0.2 * rng.normal(size=X.shape)
    >>> dm = DiffusionClosure(2, 2, n_diffusion_steps=20, hidden=32, max_epochs=20,
    ...                       random_state=0).fit(X, Y)
    >>> dm.sample(X[:5], n_samples=4).shape
    (4, 5, 2)
    """

    _parameter_constraints = {
        **NeuralClosure._parameter_constraints,
        "n_diffusion_steps": [Interval(Integral, 1, None, closed="left")],
        "reverse_variance": [StrOptions({"beta", "posterior"})],
    }
    _net_class = DDPMNet
    _module_class = ConditionalDenoiser

    def __init__(self, n_input_modes=16, n_output_modes=16, *, n_diffusion_steps=100,
                 reverse_variance="beta", hidden=256, n_layers=3, max_epochs=400, lr=2e-3,
                 batch_size=256, residual="resample", n_residual_bank=256, spread_scale=1.0,
                 sample_dim="time",
                 trajectory_dim="trajectory", random_state=None, mean_model=None,
                 prefit_mean_model=False, device="auto", dtype="float32", progress=False):
        super().__init__(n_input_modes, n_output_modes, residual=residual,
                         n_residual_bank=n_residual_bank, spread_scale=spread_scale,
                         sample_dim=sample_dim, trajectory_dim=trajectory_dim,
                         random_state=random_state, mean_model=mean_model,
                         prefit_mean_model=prefit_mean_model)
        self.n_diffusion_steps = n_diffusion_steps
        self.reverse_variance = reverse_variance
        self.hidden = hidden
        self.n_layers = n_layers
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.progress = progress

    def _fit_reduced(self, Z, C):
        # sampling bounds each predicted clean coefficient (ConditionalDenoiser's
        # ``clip``) by 1.5 x the largest training one: far out for a trained model,
        # and a guard against the first reverse steps' amplified errors
        self.target_bound_ = 1.5 * float(np.abs(C).max())
        super()._fit_reduced(Z, C)

    def _net_params(self):
        return {"module__n_diffusion_steps": int(self.n_diffusion_steps),
                "module__clip": self.target_bound_,
                "module__reverse_variance": self.reverse_variance}
