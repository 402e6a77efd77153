"""The conditional DDPM's sampler, with the exact noise predictor of a Gaussian conditional."""

import numpy as np
import pytest
import torch

from xdyn.nn.generative import ConditionalDenoiser


class _ExactGaussianDenoiser(ConditionalDenoiser):
    """Predicts the noise exactly for ``y | cond ~ N(cond, sigma^2)``: the sampler's own error."""

    def __init__(self, sigma, **kwargs):
        super().__init__(1, 1, hidden=4, **kwargs)
        self.sigma = sigma

    def eps(self, y_t, cond, t):
        ab = self.alpha_bar[t].to(y_t.dtype)[:, None]
        # y_t = sqrt(ab) y + sqrt(1 - ab) eps: E[eps | y_t] for Gaussian y
        return (1 - ab).sqrt() * (y_t - ab.sqrt() * cond) / (ab * self.sigma**2 + 1 - ab)


def _sample_moments(sigma, n_steps, reverse_variance, clip=None):
    den = _ExactGaussianDenoiser(sigma, n_diffusion_steps=n_steps, clip=clip,
                                 reverse_variance=reverse_variance)
    cond = torch.tensor([[1.5], [-0.5]])
    draws = den.sample(cond, 20_000, torch.Generator().manual_seed(0))[..., 0].numpy()
    return draws.mean(0) - cond[:, 0].numpy(), draws.std(0) / sigma


@pytest.mark.parametrize("sigma", [0.1, 0.3, 1.0])
@pytest.mark.parametrize("n_steps", [20, 30, 100])
def test_beta_variance_draws_the_conditional_spread(sigma, n_steps):
    # the default reverse variance keeps the draws' std within 8% of the true one at the
    # closures' step counts (measured 1.00-1.06); the mean is unbiased
    bias, ratio = _sample_moments(sigma, n_steps, "beta")
    np.testing.assert_allclose(ratio, 1.0, atol=0.08)
    np.testing.assert_allclose(bias / sigma, 0.0, atol=0.05)


def test_clipped_sampler_draws_the_same_spread():
    # the bounded update writes the same mean through the predicted clean target
    bias, ratio = _sample_moments(0.1, 30, "beta", clip=10.0)
    np.testing.assert_allclose(ratio, 1.0, atol=0.08)
    np.testing.assert_allclose(bias / 0.1, 0.0, atol=0.05)


def test_posterior_variance_under_disperses_narrow_conditionals():
    # beta_tilde at 20 steps: about 0.64 of sigma = 0.1 (why it is not the default)
    _, ratio = _sample_moments(0.1, 20, "posterior")
    assert np.all(ratio < 0.8)


def test_reverse_variance_is_checked():
    with pytest.raises(ValueError, match="reverse_variance"):
        ConditionalDenoiser(1, 1, reverse_variance="tilde")


@pytest.mark.parametrize("time_features", [7, 0, 2.0])
def test_time_features_must_be_an_even_integer(time_features):
    # an odd count was accepted and failed at the first forward pass on a shape mismatch
    with pytest.raises(ValueError, match="time_features must be an even integer"):
        ConditionalDenoiser(1, 1, time_features=time_features)
