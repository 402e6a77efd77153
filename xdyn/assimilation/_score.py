"""The ensemble score filter (EnSF) analysis: a training-free score-based sampler.

Bao, Zhang & Zhang (2024), *An ensemble score filter for tracking
high-dimensional nonlinear dynamical systems*, CMAME 432; its latent use in
Xiao, Si & Chen (ICLR 2026, LD-EnSF). The forecast distribution is diffused by
the forward SDE with ``x_t = alpha_t x_0 + sigma_t z``, ``alpha_t = 1 - (1 -
eps) t``, ``sigma_t^2 = b + (1 - b) t`` with the variance floor ``b`` (the
released code's ``eps_b``; 0 in the first paper's script); its score is
estimated from the forecast members by Monte Carlo, with no training; the
analysis members are drawn by integrating the reverse-time SDE from pure noise
at ``t = 1`` to ``t = 0`` (Euler-Maruyama) with the score of the Gaussian
likelihood added under the damping ``h(t) = 1 - t``.

The damping is a heuristic: even with the exact prior score of a Gaussian
forecast the sampler is not the Bayesian posterior (one observation of a
standard normal with unit noise gives variance 0.447, not 0.5).
``guidance="gaussian"`` replaces it by the score of the *diffused* likelihood
``E[p(y | x_0) | x_t]`` under the Gaussian with the members' mean and
covariance (Tweedie's formula; the operator linearised by the ensemble where it
is nonlinear), and starts the sampler from the forecast's law at ``t = 1``:
then, with the exact or the ``"gaussian"`` prior score, the sampler draws the
Kalman posterior of a Gaussian forecast and a linear operator, up to the time
step. :func:`gaussian_ensf_moments` gives the moments the sampler converges to
in the linear-Gaussian case for either guidance, so that the implementation can
be checked against them.

Everything is pure torch, batched over leading dims; nothing here knows the
assimilation cycle (``xdyn.assimilation.ensf`` and ``ldensf`` call it).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

__all__ = ["ensf_analysis", "gaussian_ensf_moments", "SCORES", "GUIDANCES", "INTEGRATORS"]

SCORES = ("kernel", "mixture", "gaussian")
GUIDANCES = ("damped", "gaussian")
INTEGRATORS = ("explicit", "semi-implicit")


def _schedule(t: float, eps: float, floor: float = 0.0):
    """``alpha_t``, ``sigma_t^2``, the drift ``f = d log(alpha)/dt`` and ``g^2``."""
    alpha = 1.0 - (1.0 - eps) * t
    sigma2 = floor + (1.0 - floor) * t
    f = -(1.0 - eps) / alpha
    g2 = (1.0 - floor) - 2.0 * f * sigma2  # d sigma^2/dt - 2 f sigma^2
    return alpha, sigma2, f, g2


def _prior_score(x, x0, alpha, sigma2, score):
    """Monte Carlo score of the diffused forecast at ``x`` ``(..., N, n)``.

    ``"kernel"``: member ``i`` of the sampler sees only forecast member ``i``,
    ``-(x_i - alpha x0_i) / sigma^2`` (the original code). ``"mixture"``: the
    score of the Gaussian mixture ``(1/N) sum_j N(alpha x0_j, sigma^2 I)``,
    the softmax-weighted average of the member kernels (the paper's estimator).
    """
    if callable(score):
        return score(x, alpha, sigma2)
    if score == "kernel":
        return -(x - alpha * x0) / sigma2
    # squared distances |x_i - alpha x0_j|^2 without an (N, N, n) tensor
    d2 = ((x * x).sum(-1, keepdim=True) - 2.0 * alpha * x @ x0.transpose(-1, -2)
          + alpha**2 * (x0 * x0).sum(-1).unsqueeze(-2))
    w = torch.softmax(-d2 / (2.0 * sigma2), dim=-1)            # (..., N_samples, N_members)
    return -(x - alpha * (w @ x0)) / sigma2


def _over_members(noise_std):
    """``noise_std`` ``(..., n_obs)`` (no member dim) as ``(..., 1, n_obs)``; a scalar as is."""
    return noise_std.unsqueeze(-2) if noise_std.dim() else noise_std


def _likelihood_score(x, y, h, noise_std):
    """Gradient of ``log N(y; h(x), diag(noise_std^2))`` with respect to ``x``."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        sd = _over_members(noise_std)
        # a missing observation (infinite noise_std, its y NaN by xdyn's convention) is
        # ignored: nan / inf is NaN, and its zero gradient from where() keeps x finite
        r = torch.where(torch.isfinite(sd), (y.unsqueeze(-2) - h(xg)) / sd, 0.0)
        logp = -0.5 * (r * r).sum()
        # each member's log-likelihood depends on its own state only, so the
        # gradient of the sum is the per-member score
        (grad,) = torch.autograd.grad(logp, xg)
    return grad


def _likelihood_curvature(x0, h, noise_std):
    """The stiff part of the damped likelihood score, ``G^T G`` with ``G = R^-1/2 dh/dx``.

    The damped likelihood score's Jacobian is ``-(1 - t) G^T G``: stiff when
    the noise is small. ``dh/dx`` is taken at the members' mean, by one
    vectorised backward pass per observation (all leading batch entries at
    once, since each depends on its own state only), once per analysis.
    Returns ``(support, Vh, s2, G_s)``: the state entries any observation reads
    (all of a dense operator's; ``p`` of ``n`` for point observations), and
    the right singular vectors ``Vh`` ``(..., r, len(support))`` and squared
    singular values ``s2`` ``(..., r)`` of ``G`` restricted to them, so that
    ``G^T G = Vh^T diag(s2) Vh`` there and 0 elsewhere, and ``G_s``, ``G`` there.
    """
    if h is None:  # the identity: G = R^-1/2 is diagonal, its SVD known
        w = torch.where(torch.isfinite(noise_std), 1.0 / noise_std, 0.0)
        w = w.expand(x0.shape[:-2] + x0.shape[-1:])
        support = torch.arange(x0.shape[-1], device=x0.device)
        eye = torch.eye(x0.shape[-1], dtype=x0.dtype, device=x0.device)
        return support, eye.expand(w.shape + w.shape[-1:]), w * w, torch.diag_embed(w)
    with torch.enable_grad():
        m = x0.detach().mean(-2, keepdim=True).requires_grad_(True)      # (..., 1, n)
        hm = h(m)                                                       # (..., 1, p)
        p = hm.shape[-1]
        eye = torch.eye(p, dtype=hm.dtype, device=hm.device)
        basis = eye.reshape((p,) + (1,) * (hm.dim() - 1) + (p,)).expand((p,) + hm.shape)
        try:
            (J,) = torch.autograd.grad(hm, m, grad_outputs=basis, is_grads_batched=True)
            J = J[..., 0, :].movedim(0, -2)                             # (..., p, n)
        except RuntimeError:  # an operator vmap cannot batch: one pass per observation
            J = torch.stack([torch.autograd.grad(hm[..., 0, k].sum(), m, retain_graph=True)[0]
                             [..., 0, :] for k in range(p)], -2)
    w = torch.where(torch.isfinite(noise_std), 1.0 / noise_std, 0.0)
    G = J * w.expand(J.shape[:-1]).unsqueeze(-1)
    support = torch.nonzero((G != 0).reshape(-1, G.shape[-1]).any(0)).squeeze(-1)
    _, sv, Vh = torch.linalg.svd(G[..., support], full_matrices=False)
    return support, Vh, sv * sv, G[..., support]


def _kernel_coefficients(lam, K, eps, integrator, floor=0.0):
    """The damped kernel sampler composed over its ``K`` steps, per curvature ``lam``.

    For a coordinate whose likelihood curvature is ``lam`` (``s^2`` of
    :func:`_likelihood_curvature`, 0 where nothing is observed) step ``k`` is
    ``x <- a_k x + b_k x0 + c_k y_hat + d_k xi_k``; from the initial ``N(0, 1)``
    draw the steps compose into ``B x0 + C y_hat`` plus a Gaussian of standard
    deviation ``S``. Returns ``B, C, S`` as float64 tensors shaped and placed as ``lam``.
    Computed in NumPy and kept for the last few ``lam``: a filter's noise, hence
    ``lam``, is usually the same every cycle, and the few dozen tiny torch ops
    were most of a latent analysis (0.8 of 1.1 ms on 2026-12-06's 2-core machine).
    """
    lam64 = lam.detach().to("cpu", torch.float64).numpy()
    out = _kernel_coefficients_np(lam64.tobytes(), lam64.shape, int(K), float(eps), integrator,
                                  float(floor))
    return tuple(torch.tensor(v, device=lam.device) for v in out)  # copies: the cache stays


@functools.lru_cache(maxsize=16)
def _kernel_coefficients_np(lam_bytes, shape, K, eps, integrator, floor):
    lam = np.frombuffer(lam_bytes).reshape(shape)
    dt = 1.0 / K
    t = (1.0 - dt * np.arange(K)).reshape((K,) + (1,) * lam.ndim)
    alpha, sigma2, f, g2 = _schedule(t, eps, floor)
    e = 1.0 + dt * g2 * (1.0 - t) * lam if integrator == "semi-implicit" else np.ones_like(lam)
    a = 1.0 + (-dt * f - dt * g2 / sigma2 - dt * g2 * (1.0 - t) * lam) / e
    b = dt * g2 * alpha / sigma2 / e
    c = dt * g2 * (1.0 - t) / e
    d2 = dt * g2 / e**2
    # after[k] = a_{k+1} ... a_{K-1}: how step k's terms reach the end
    after = np.concatenate([np.cumprod(a[::-1], 0)[::-1][1:], np.ones_like(a[:1])], 0)
    B, C = (after * b).sum(0), (after * c).sum(0)
    V = after[0] ** 2 * a[0] ** 2 + (after**2 * d2).sum(0)
    return B, C, np.sqrt(V)


def _kernel_linear_analysis(x0, y, h, noise_std, K, eps, integrator, normal, floor):
    """:func:`ensf_analysis` with the kernel score, the damped guidance and a linear ``h``.

    In the coordinates ``u = Vh x`` (``G = U diag(s) Vh`` on the observed
    entries) and in the complement of ``Vh``'s rows, step ``k`` of the sampler
    is ``x <- a_k x + b_k x0 + c_k y_hat + d_k xi_k`` per coordinate, with
    scalars that depend on ``s^2`` only (``s^2 = 0`` in the complement) and
    ``y_hat = Vh G^T R^-1/2 (y - h(0))``: the likelihood score is
    ``G^T R^-1/2 (y - h(0)) - G^T G x``. Composed over the steps from the
    initial ``N(0, I)`` draw, the analysis is ``B x0 + C y_hat`` plus a
    Gaussian of variance ``V`` per coordinate (:func:`_kernel_coefficients`).
    The identity ``h`` (``h=None``: the latent analysis of LD-EnSF, a few
    dozen entries) is diagonal, ``Vh = I``: coordinate by coordinate, with
    no rotation.
    """
    dtype = x0.dtype
    sd = _over_members(noise_std)
    finite = torch.isfinite(sd)
    w = torch.where(finite, 1.0 / sd, 0.0)
    if h is None:
        w = w.expand(x0.shape[:-2] + (1,) + x0.shape[-1:])                 # (..., 1, n)
        B, C, S = (v.to(dtype) for v in _kernel_coefficients(w * w, K, eps, integrator, floor))
        with torch.no_grad():
            y_hat = torch.where(finite, y.unsqueeze(-2), 0.0) * w * w
            return B * x0 + C * y_hat + S * normal(x0.shape)
    support, Vh, s2, Gs = _likelihood_curvature(x0, h, noise_std)
    with torch.no_grad():
        b0 = h(torch.zeros_like(x0[..., :1, :]))                           # (..., 1, p)
        resid = torch.where(finite, y.unsqueeze(-2) - b0, 0.0) * w        # (..., 1, p)
        y_hat = (resid @ Gs) @ Vh.transpose(-1, -2)                        # (..., 1, r)
    lam = torch.cat([s2, s2.new_zeros(s2.shape[:-1] + (1,))], -1)         # (..., r + 1)
    B, C, S = (v.to(dtype=dtype, device=x0.device).unsqueeze(-2)
               for v in _kernel_coefficients(lam, K, eps, integrator, floor))
    r = Vh.shape[-2]
    z = normal(x0.shape)
    rot = (x0[..., support] @ Vh.transpose(-1, -2)) * (B[..., :r] - B[..., r:]) \
        + y_hat * C[..., :r] \
        + (z[..., support] @ Vh.transpose(-1, -2)) * (S[..., :r] - S[..., r:])
    out = B[..., r:] * x0 + S[..., r:] * z
    return out.index_add(-1, support, rot @ Vh).detach()


def _ensemble_svd(x0):
    """Mean ``(..., 1, n)`` and thin SVD of the anomalies ``X = (x0 - m)^T / sqrt(N - 1)``."""
    scale = 1.0 / math.sqrt(max(x0.shape[-2] - 1, 1))
    mean = x0.mean(-2, keepdim=True)
    U, sv, Wt = torch.linalg.svd((x0 - mean).transpose(-1, -2) * scale, full_matrices=False)
    return mean, U, sv, Wt, scale


def _gaussian_prior_score(svd):
    """``score(x, alpha, sigma2)`` of ``N(alpha m, alpha^2 P + sigma^2 I)``, ``P`` from the members.

    ``V^-1 = (I - U diag(alpha^2 s^2 / (sigma^2 + alpha^2 s^2)) U^T) / sigma^2``
    with the SVD of the anomalies: no ``n x n`` matrix.
    """
    mean, U, sv, _, _ = svd
    s2 = sv * sv

    def score(x, alpha, sigma2):
        d = x - alpha * mean
        coef = (d @ U) * (alpha**2 * s2 / (sigma2 + alpha**2 * s2)).unsqueeze(-2)
        return -(d - coef @ U.transpose(-1, -2)) / sigma2

    return score


def _gaussian_guidance(x0, svd, y, h, noise_std):
    """The likelihood score of the diffused posterior for a Gaussian forecast.

    Returns ``guide(x, alpha, sigma2)``: the gradient with respect to ``x_t``
    of ``log E[p(y | x_0) | x_t]`` when ``x_0`` follows the Gaussian with the
    members' mean ``m`` and covariance ``P = X X^T`` (``X`` the anomalies over
    ``sqrt(N - 1)``), observed through ``h``. Given ``x_t``, ``x_0`` is Gaussian
    with Tweedie's mean ``m0 = m + alpha P V^-1 (x_t - alpha m)`` and covariance
    ``C_t = P - alpha^2 P V^-1 P``, ``V = alpha^2 P + sigma^2 I``, so ``y | x_t ~
    N(h(m0), R + H C_t H^T)``; ``H X`` is the members' observation anomalies
    (exact for a linear ``h``, the ensemble's linearisation otherwise). For a
    linear ``h`` the guidance is exact: with the exact prior score the sampler
    draws the Kalman posterior. With the thin SVD ``X = U diag(s) W^T`` (rank
    ``r <= min(n, N)``, computed once) every pseudo-time step costs one ``r x r``
    solve, whatever the sizes of the state and of ``y``. That Woodbury form
    subtracts two terms of size ``R^-1 r`` whose difference is smaller by
    ``R / (H C_t H^T)``: it is computed in float64 (in float32 the guidance was
    3x off at a spread 100 times the noise, and the sampler blew up at 1000).
    """
    mean, U, sv, Wt, scale = svd
    hx = h(x0).detach()
    Y = (hx - hx.mean(-2, keepdim=True)).transpose(-1, -2) * scale        # (..., p, N)
    Z = Y @ Wt.transpose(-1, -2)                             # H U diag(s): (..., p, r)
    p_shape = hx.shape[:-2] + hx.shape[-1:]
    finite = torch.isfinite(noise_std).expand(p_shape)
    y = torch.where(finite, y.expand(p_shape), 0.0).unsqueeze(-2)
    # the Woodbury algebra in float64 (see above); 0 weight where missing
    w64 = (1.0 / noise_std.double()**2).expand(p_shape).unsqueeze(-2)     # (..., 1, p)
    Z64 = Z.double()
    ZtW = Z64.transpose(-1, -2) * w64                                       # (..., r, p)
    ZtWZ = ZtW @ Z64                                                        # (..., r, r)
    s2 = sv * sv
    s2_64 = s2.double()

    def guide(x, alpha, sigma2):
        shrink = sigma2 + alpha**2 * s2
        # H C_t H^T = Z diag(d) Z^T with d = sigma^2 / shrink; S^-1 by Woodbury in r x r
        K = torch.linalg.inv(torch.diag_embed((sigma2 + alpha**2 * s2_64) / sigma2) + ZtWZ)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            coef = ((xg - alpha * mean) @ U) * (alpha * s2 / shrink).unsqueeze(-2)
            m0 = mean + coef @ U.transpose(-1, -2)
            r = torch.where(finite.unsqueeze(-2), y - h(m0), 0.0)           # (..., S, p)
            wr = r.detach().double() * w64
            s_inv_r = (wr - ((wr @ Z64) @ K) @ ZtW).to(r.dtype)
            # S is constant in x: the gradient of -r^T S^-1 r / 2 is -J^T S^-1 r
            (grad,) = torch.autograd.grad(-(r * s_inv_r.detach()).sum(), xg)
        return grad

    return guide


def ensf_analysis(forecast_ensemble, y, h, noise_std, *, n_pseudo_steps=100, eps=0.05,
                  variance_floor=0.0, score="kernel", guidance="damped", integrator="explicit",
                  generator=None, linear=False):
    """Draw the EnSF analysis ensemble from a forecast ensemble and observations.

    Parameters
    ----------
    forecast_ensemble : torch.Tensor of shape (..., n_members, n_state)
        The forecast members; their Monte Carlo score is the prior's.
    y : torch.Tensor of shape (..., n_obs)
        Observations (leading dims broadcast against the ensemble's).
    h : callable or None
        Differentiable observation function, ``(..., n_members, n_state) ->
        (..., n_members, n_obs)`` (torch ops only: its gradient is taken by autograd).
        None: the identity (``y`` observes the whole state; ``linear`` implied).
    noise_std : float or torch.Tensor broadcastable to (..., n_obs)
        Standard deviation of the Gaussian observation error. An entry with an
        infinite ``noise_std`` is ignored (a missing observation).
    n_pseudo_steps : int, default=100
        Euler-Maruyama steps of the reverse SDE over pseudo-time [0, 1]. The
        explicit scheme needs ``n_pseudo_steps`` above about ``|dh/dx|^2 /
        noise_std^2`` (the stiffness of the likelihood term near ``t = 0``).
    eps : float in (0, 1), default=0.05
        ``alpha_1 = eps``: how much of the forecast is left at ``t = 1``.
    variance_floor : float in [0, 1), default=0.0
        ``sigma_0^2``: the diffusion's variance never falls below it (the
        authors' released ``NoiseSchedule``'s ``eps_b``; their configurations
        use 0.025-0.05). Without it the kernel score's last steps, where
        ``sigma_t^2 = t`` is tiny, pull each member back onto its forecast: the
        gain towards the observation falls like ``1 / n_pseudo_steps`` (one
        observation of a standard normal with noise 0.5, Kalman gain 0.8: 0.21 /
        0.03 / 0.007 at 10 / 100 / 500 steps); with 0.025 it is 0.29 / 0.20 / 0.20.
        The analysis is then the posterior smoothed by ``N(0, variance_floor)``
        (the sampler stops at ``t = 0``, where the diffused law keeps that
        variance): an additive spread, in the units the sampler sees.
    score : {"kernel", "mixture", "gaussian"} or callable, default="kernel"
        The Monte Carlo prior score (see ``_prior_score``), the score of the
        Gaussian with the members' mean and covariance (``"gaussian"``: exact
        for a Gaussian forecast; in few members per dimension it keeps the
        analysis in the ensemble's span, as an EnKF does), or a function
        ``score(x, alpha_t, sigma_t2)`` giving the score of the diffused
        forecast at ``x`` (an exact one, to check the sampler). The mixture is
        the better Monte Carlo estimate for large ensembles in few dimensions;
        with 20 members in 40 dimensions its weights degenerate (one member
        wins, the analysis ensemble collapses), while the kernel keeps every
        member.
    guidance : {"damped", "gaussian"}, default="damped"
        The likelihood term of the posterior score. ``"damped"``: the score of
        the likelihood at ``x_t`` times ``h(t) = 1 - t`` (the paper's
        heuristic; biased, see :func:`gaussian_ensf_moments`). ``"gaussian"``:
        the score of the *diffused* likelihood ``E[p(y | x_0) | x_t]`` for the
        Gaussian with the members' mean and covariance (Tweedie's mean of
        ``x_0`` and its covariance, the observation operator linearised by the
        ensemble where it is nonlinear); exact for a Gaussian forecast and a
        linear operator, where the sampler then draws the Kalman posterior. It
        costs a few ``N x N`` solves per pseudo-time step.
    integrator : {"explicit", "semi-implicit"}, default="explicit"
        How each pseudo-time step is taken. ``"explicit"``: Euler-Maruyama (the
        paper's). With the damped guidance it is unstable unless
        ``n_pseudo_steps`` exceeds about ``|dh/dx|^2 / noise_std^2``: accurate
        observations make the likelihood term stiff near ``t = 0``.
        ``"semi-implicit"``: the damped likelihood term is taken implicitly,
        linearised at the forecast members' mean, so that the step solves ``(I
        + dt g^2 (1 - t) G^T G) dx = dx_explicit``, ``G = R^-1/2 dh/dx``; stable
        for any noise, of the same order, and equal to the explicit step as the
        noise grows. One backward pass per observation and an SVD of ``G``
        per analysis. Only with ``guidance="damped"``: the Gaussian guidance is
        not stiff (its curvature stays below about ``1 / t``).
    generator : torch.Generator, optional
        Source of the sampler's noise (initial draw and the SDE increments).
    linear : bool, default=False
        ``h`` is linear (``h(x) = H x + h(0)``). With ``score="kernel"`` and
        ``guidance="damped"`` every pseudo-time step is then affine in each
        member with isotropic Gaussian noise, and diagonal in the basis of the
        right singular vectors of ``G = R^-1/2 H``: the ``n_pseudo_steps``
        steps compose into one affine map of the member's forecast and ``y``
        plus one Gaussian draw, computed in closed form. The analysis has the
        same law as the step-by-step sampler's (not the same draws), at the
        cost of one SVD of ``G`` and a few passes over the ensemble instead
        of ``n_pseudo_steps`` (tested against the steps).

    Returns
    -------
    torch.Tensor of shape (..., n_members, n_state)
        The analysis ensemble.

    Examples
    --------
    One observation ``y = 2`` (noise 0.5) of the first entry of a 2-D state:

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> prior = torch.randn(500, 2, generator=g, dtype=torch.float64)
    >>> y = torch.tensor([2.0], dtype=torch.float64)
    >>> xa = ensf_analysis(prior, y, lambda x: x[..., :1], 0.5, score="mixture", generator=g)
    >>> xa.shape
    torch.Size([500, 2])
    >>> round(float(xa[:, 0].mean()), 1), round(float(xa[:, 1].mean()), 1)  # Kalman: 1.6, 0
    (1.6, 0.0)
    """
    if not callable(score) and score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}; got {score!r}")
    if guidance not in GUIDANCES:
        raise ValueError(f"guidance must be one of {GUIDANCES}; got {guidance!r}")
    _check_sampler_options(integrator, guidance, score if isinstance(score, str) else None)
    if not 0.0 < float(eps) < 1.0:
        raise ValueError(f"eps must be in (0, 1); got {eps!r}")
    floor = float(variance_floor)
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"variance_floor must be in [0, 1); got {variance_floor!r}")
    K = int(n_pseudo_steps)
    if K < 1:
        raise ValueError(f"n_pseudo_steps must be >= 1; got {n_pseudo_steps!r}")
    x0 = forecast_ensemble
    dtype, device = x0.dtype, x0.device
    y = torch.as_tensor(y, dtype=dtype, device=device)
    noise_std = torch.as_tensor(noise_std, dtype=dtype, device=device)
    _check_observation_sizes(x0, y, h, noise_std)

    def normal(shape):
        gdev = generator.device if generator is not None else device
        z = torch.randn(shape, generator=generator, dtype=dtype, device=gdev)
        return z.to(device)

    if (linear or h is None) and score == "kernel" and guidance == "damped":
        return _kernel_linear_analysis(x0, y, h, noise_std, K, float(eps), integrator, normal,
                                       floor)
    if h is None:
        def h(x):
            return x

    dt = 1.0 / K
    x = normal(x0.shape)
    t = 1.0
    guide = None
    # the members' mean and anomaly SVD, once for the Gaussian prior score and guidance
    svd = _ensemble_svd(x0) if "gaussian" in (guidance, score) else None
    if guidance == "gaussian":
        guide = _gaussian_guidance(x0, svd, y, h, noise_std)
        # start from the forecast's diffused law at t = 1, N(eps m, eps^2 P + I), not from
        # N(0, I): the sampler is then exact in the linear-Gaussian case up to the step
        # size and the O(eps) gap between the forecast's and the posterior's law at t = 1
        x = x + float(eps) * x0
    if score == "gaussian":
        score = _gaussian_prior_score(svd)
    if integrator == "semi-implicit":
        support, Vh, s2, _ = _likelihood_curvature(x0, h, noise_std)
    for _ in range(K):
        alpha, sigma2, f, g2 = _schedule(t, float(eps), floor)
        s = _prior_score(x, x0, alpha, sigma2, score)
        if guide is None:
            s = s + (1.0 - t) * _likelihood_score(x, y, h, noise_std)
        else:
            s = s + guide(x, alpha, sigma2)
        dx = -dt * (f * x - g2 * s) + math.sqrt(dt * g2) * normal(x.shape)
        if integrator == "semi-implicit":
            # (I + c Vh^T diag(s2) Vh)^-1 dx = dx - Vh^T diag(c s2 / (1 + c s2)) Vh dx,
            # on the observed entries only (elsewhere G^T G is 0)
            c = dt * g2 * (1.0 - t)
            d = dx[..., support]
            d = d - ((d @ Vh.transpose(-1, -2)) * (c * s2 / (1.0 + c * s2)).unsqueeze(-2)) @ Vh
            dx = dx.index_copy(-1, support, d)
        x = x + dx
        t -= dt
    return x.detach()


def _check_observation_sizes(x0, y, h, noise_std):
    """Refuse ``y`` or ``noise_std`` whose last dim is not ``h``'s number of observations
    (broadcasting would apply one value to several observations)."""
    if h is None:
        n_obs, what = x0.shape[-1], "the state (h=None observes all of it)"
    else:
        with torch.no_grad():
            n_obs, what = h(x0[..., :1, :]).shape[-1], "h"
    n_y = y.shape[-1] if y.dim() else 1
    if n_y != n_obs:
        raise ValueError(f"y has {n_y} observation(s) along its last dim and {what} gives "
                         f"{n_obs}: give one value per observation")
    if noise_std.dim() and noise_std.shape[-1] not in (1, n_obs):
        raise ValueError(f"noise_std has {noise_std.shape[-1]} entries along its last dim and "
                         f"{what} gives {n_obs} observations: give a scalar or one per "
                         "observation")


def _check_sampler_options(integrator, guidance, score=None):
    if guidance == "gaussian" and score == "kernel":
        # the guidance conditions on the members' Gaussian, the kernel score on each member
        # alone: one observation of N(0, 1) members with unit noise moved the mean 0.018
        # where the Kalman mean is 0.5
        raise ValueError("guidance='gaussian' needs the score of the whole forecast ensemble "
                         "(score 'gaussian' or 'mixture', or a callable); with 'kernel' the "
                         "analysis barely moves towards the observations")
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator must be one of {INTEGRATORS}; got {integrator!r}")
    if integrator == "semi-implicit" and guidance != "damped":
        raise ValueError("integrator='semi-implicit' treats the damped likelihood term "
                         "implicitly; with guidance='gaussian' use integrator='explicit' "
                         "(that guidance is not stiff)")


def gaussian_ensf_moments(prior_mean, prior_cov, H, R, y, *, n_pseudo_steps=100, eps=0.05,
                          variance_floor=0.0, guidance="damped", integrator="explicit"):
    """Mean and covariance of the EnSF sampler for a Gaussian prior and linear observations.

    With the exact score of a Gaussian forecast ``N(m, P)`` and ``y = H x + e``,
    ``e ~ N(0, R)``, every Euler-Maruyama step of :func:`ensf_analysis` is an
    affine map plus Gaussian noise, so the analysis is Gaussian with the mean and
    covariance returned here: the limit of the ``"mixture"`` sampler for a large
    ensemble of a Gaussian forecast. With ``guidance="damped"`` they differ from
    the Kalman posterior by the bias of the damping ``h(t) = 1 - t``; with
    ``"gaussian"`` only by the time discretisation (``O(1 / n_pseudo_steps)``).

    Parameters
    ----------
    prior_mean : torch.Tensor (n,)
    prior_cov : torch.Tensor (n, n)
    H : torch.Tensor (p, n)
    R : torch.Tensor (p, p)
    y : torch.Tensor (p,)
    n_pseudo_steps, eps, variance_floor, guidance, integrator
        As in :func:`ensf_analysis` (the semi-implicit step with the exact ``H``).

    Returns
    -------
    mean : torch.Tensor (n,)
    cov : torch.Tensor (n, n)

    Examples
    --------
    >>> import torch
    >>> one = torch.ones(1, 1, dtype=torch.float64)
    >>> m, C = gaussian_ensf_moments(torch.zeros(1, dtype=torch.float64), one, one, one,
    ...                              torch.ones(1, dtype=torch.float64))
    >>> round(float(m), 3), round(float(C), 3)  # Kalman: 0.5, 0.5
    (0.517, 0.447)
    >>> m, C = gaussian_ensf_moments(torch.zeros(1, dtype=torch.float64), one, one, one,
    ...                              torch.ones(1, dtype=torch.float64), guidance="gaussian")
    >>> round(float(m), 3), round(float(C), 3)
    (0.5, 0.5)
    """
    if guidance not in GUIDANCES:
        raise ValueError(f"guidance must be one of {GUIDANCES}; got {guidance!r}")
    _check_sampler_options(integrator, guidance)
    n = prior_mean.shape[-1]
    eye = torch.eye(n, dtype=prior_mean.dtype, device=prior_mean.device)
    HtRinv = H.T @ torch.linalg.inv(R)
    m = torch.zeros_like(prior_mean)
    C = eye.clone()
    if guidance == "gaussian":  # the start of ensf_analysis: N(eps m, eps^2 P + I)
        m, C = eps * prior_mean, eps**2 * prior_cov + eye
    dt = 1.0 / int(n_pseudo_steps)
    t = 1.0
    for _ in range(int(n_pseudo_steps)):
        alpha, sigma2, f, g2 = _schedule(t, float(eps), float(variance_floor))
        Vinv = torch.linalg.inv(alpha**2 * prior_cov + sigma2 * eye)
        if guidance == "damped":
            # score(x) = -Vinv (x - alpha m0) + (1 - t) H^T R^-1 (y - H x) = -S x + b
            S = Vinv + (1.0 - t) * HtRinv @ H
            b = alpha * Vinv @ prior_mean + (1.0 - t) * HtRinv @ y
        else:
            # Tweedie: E[x0 | x] = J x + c; y | x ~ N(H (J x + c), R + H C_t H^T)
            J = alpha * prior_cov @ Vinv
            c = prior_mean - alpha * J @ prior_mean
            Ct = prior_cov - alpha * J @ prior_cov
            HJ = H @ J
            Sinv = torch.linalg.inv(R + H @ Ct @ H.T)
            S = Vinv + HJ.T @ Sinv @ HJ
            b = alpha * Vinv @ prior_mean + HJ.T @ Sinv @ (y - H @ c)
        # x_new = x + P (-dt (f x - g2 (b - S x)) + sqrt(dt g2) z), P = I explicitly
        P = eye
        if integrator == "semi-implicit":
            P = torch.linalg.inv(eye + dt * g2 * (1.0 - t) * HtRinv @ H)
        A = eye - dt * P @ (f * eye + g2 * S)
        m = A @ m + dt * g2 * P @ b
        C = A @ C @ A.T + dt * g2 * P @ P.T
        t -= dt
    return m, C
