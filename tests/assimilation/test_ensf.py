"""Tests of the ensemble score filter: the sampler (``_score``) and the assimilator."""

import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone

from xdyn.assimilation import EnSF, make_assimilator
from xdyn.assimilation._score import ensf_analysis, gaussian_ensf_moments
from xdyn.observe import Arctan, EveryKth, Squared, observe
from xdyn.systems import Lorenz96

D = torch.float64
# a correlated 2-D Gaussian forecast, its first component observed
M0 = torch.tensor([1.0, -0.5], dtype=D)
P = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=D)
H = torch.tensor([[1.0, 0.0]], dtype=D)
R = torch.tensor([[0.5]], dtype=D)
Y = torch.tensor([2.0], dtype=D)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _kalman():
    K = P @ H.T @ torch.linalg.inv(H @ P @ H.T + R)
    return M0 + K @ (Y - H @ M0), P - K @ H @ P


def _prior_members(shape, generator):
    return M0 + torch.randn(*shape, 2, generator=generator, dtype=D) @ torch.linalg.cholesky(P).T


def _exact_gaussian_score(x, alpha, sigma2):
    V = alpha**2 * P + sigma2 * torch.eye(2, dtype=D)
    return -torch.linalg.solve(V, (x - alpha * M0).unsqueeze(-1)).squeeze(-1)


def _within_se(samples, mean, var, n_se=4.0, inflate=1.0):
    """Sample mean and variance of ``samples (n, d)`` within ``n_se`` standard errors."""
    n = samples.shape[0]
    se_mean = inflate * (var / n).sqrt()
    se_var = inflate * var * math.sqrt(2.0 / (n - 1))
    assert ((samples.mean(0) - mean).abs() < n_se * se_mean).all(), (samples.mean(0), mean)
    assert ((samples.var(0) - var).abs() < n_se * se_var).all(), (samples.var(0), var)


def test_sampler_with_exact_prior_score_has_the_predicted_gaussian_moments():
    # With the exact score of the Gaussian forecast every Euler-Maruyama step is
    # affine + Gaussian noise: the analysis is N(mean, cov) from gaussian_ensf_moments.
    # This checks schedule, drift, diffusion, damping and the autograd likelihood score.
    g = torch.Generator().manual_seed(0)
    members = _prior_members((100, 100), g)
    xa = ensf_analysis(members, Y, lambda x: x[..., :1], R.sqrt().squeeze(), n_pseudo_steps=50,
                       score=_exact_gaussian_score, generator=g)
    mean, cov = gaussian_ensf_moments(M0, P, H, R, Y, n_pseudo_steps=50)
    _within_se(xa.reshape(-1, 2), mean, cov.diagonal())


def test_mixture_score_from_members_reaches_the_gaussian_limit():
    # the Monte Carlo (ensemble-mixture) score of 200 forecast members: the same
    # moments, within Monte Carlo error (of the analysis and of the prior sample)
    g = torch.Generator().manual_seed(1)
    members = _prior_members((10, 200), g)
    xa = ensf_analysis(members, Y, lambda x: x[..., :1], R.sqrt().squeeze(), n_pseudo_steps=50,
                       score="mixture", generator=g)
    mean, cov = gaussian_ensf_moments(M0, P, H, R, Y, n_pseudo_steps=50)
    _within_se(xa.reshape(-1, 2), mean, cov.diagonal(), inflate=math.sqrt(2.0))


def test_kalman_posterior_up_to_the_bias_of_the_damping():
    # The damping h(t) = 1 - t is not Bayes: even with the exact prior score the
    # sampler misses the Kalman posterior (here mean 1.879 vs 1.667, var 0.290 vs
    # 0.333). With weak observations (R = 8) the bias is small (under 5% of the prior
    # std and variance) and EnSF recovers the Kalman mean and variance to within it plus
    # Monte Carlo error.
    mean, cov = gaussian_ensf_moments(M0, P, H, R, Y, n_pseudo_steps=100)
    ka, Pa = _kalman()
    assert float(mean[0] - ka[0]) == pytest.approx(0.212, abs=0.01)
    weak = torch.tensor([[8.0]], dtype=D)
    K = P @ H.T @ torch.linalg.inv(H @ P @ H.T + weak)
    ka, Pa = M0 + K @ (Y - H @ M0), P - K @ H @ P
    g = torch.Generator().manual_seed(2)
    members = _prior_members((10, 200), g)
    xa = ensf_analysis(members, Y, lambda x: x[..., :1], weak.sqrt().squeeze(), score="mixture",
                       generator=g)
    gm, gc = gaussian_ensf_moments(M0, P, H, weak, Y)
    bias_mean, bias_var = (gm - ka).abs(), (gc.diagonal() - Pa.diagonal()).abs()
    assert float((bias_mean / P.diagonal().sqrt()).max()) < 0.05  # of the prior std
    assert float((bias_var / P.diagonal()).max()) < 0.05          # of the prior variance
    samples = xa.reshape(-1, 2)
    se_mean = (Pa.diagonal() / samples.shape[0]).sqrt() * math.sqrt(2.0)
    se_var = Pa.diagonal() * math.sqrt(2.0 / samples.shape[0]) * math.sqrt(2.0)
    assert ((samples.mean(0) - ka).abs() < bias_mean + 4 * se_mean).all()
    assert ((samples.var(0) - Pa.diagonal()).abs() < bias_var + 4 * se_var).all()


def test_sampler_bad_input():
    x = torch.zeros(4, 2, dtype=D)
    with pytest.raises(ValueError, match="score"):
        ensf_analysis(x, Y, lambda z: z[..., :1], 1.0, score="gaussian")
    with pytest.raises(ValueError, match="eps"):
        ensf_analysis(x, Y, lambda z: z[..., :1], 1.0, eps=1.0)
    with pytest.raises(ValueError, match="n_pseudo_steps"):
        ensf_analysis(x, Y, lambda z: z[..., :1], 1.0, n_pseudo_steps=0)


def _l96_twin(seed, operator, noise_std, n_steps=120):
    system = Lorenz96(n=40)
    truth = system.simulate(n_steps=n_steps, burn_in=5.0, random_state=seed)
    obs = observe(truth, operator, noise_std=noise_std, every=2, random_state=seed + 100)
    return system, truth, obs


def _free(obs):
    free = obs.copy()
    free["observation"] = obs.observation * np.nan  # nothing assimilated: a free ensemble
    return free


@pytest.mark.parametrize("operator, noise_std", [(Arctan(EveryKth(2)), 0.1), (EveryKth(2), 0.5)],
                         ids=["arctan-half-the-sites", "half-the-sites"])
def test_lorenz96_sparse_or_nonlinear_beats_the_free_ensemble(operator, noise_std):
    # 40 sites, half of them observed (through arctan, or directly), 20 members,
    # every 0.1 time units; free ensemble and EnSF start from the same spread
    ratios = []
    for seed in (0, 1, 2):
        system, truth, obs = _l96_twin(seed, operator, noise_std)
        params = dict(system=system, n_members=20, n_pseudo_steps=50, random_state=seed,
                      initial_state=system.to_state(truth.isel(time=0)).numpy(),
                      initial_spread=1.0, raise_on_divergence=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the free run is flagged as lost, rightly
            free = -EnSF(**params).fit(_free(obs)).score(_free(obs), truth)
            ensf = -EnSF(**params).fit(obs).score(obs, truth)
        ratios.append(ensf / free)
    assert max(ratios) < 0.95, ratios
    assert np.mean(ratios) < 0.85, ratios


def test_missing_observations_leave_the_forecast():
    system, truth, obs = _l96_twin(0, EveryKth(2), 0.5, n_steps=20)
    obs = obs.copy(deep=True)
    obs["observation"][3] = np.nan
    params = dict(system=system, n_members=6, n_pseudo_steps=10, random_state=0,
                  return_background=True, initial_state=np.zeros(40) + 8.0)
    analysis = EnSF(**params).fit(obs).predict(obs)
    assert int(analysis.n_assimilated[3]) == 0 and int(analysis.n_assimilated[2]) == 20
    assert np.allclose(analysis.x[3], analysis.x_background[3])
    assert not np.allclose(analysis.x[2], analysis.x_background[2])


def test_nonlinear_operator_clone_pickle_and_registry():
    system, truth, obs = _l96_twin(0, Squared(EveryKth(2)), 4.0, n_steps=20)
    est = make_assimilator("ensf", system=system, n_members=6, n_pseudo_steps=60,
                           random_state=0, raise_on_divergence=False)
    assert isinstance(est, EnSF)
    a = est.fit(obs).predict(obs)
    b = pickle.loads(pickle.dumps(est)).predict(obs)
    c = clone(est).fit(obs).predict(obs)
    assert np.isfinite(a.x).all()
    assert a.x.equals(b.x) and a.x.equals(c.x)


@pytest.mark.parametrize("params, match", [
    ({"prior_score": "gaussian"}, "prior_score"),
    ({"n_pseudo_steps": 0}, "n_pseudo_steps"),
    ({"eps": 1.0}, "eps"),
    ({"n_members": 1}, "n_members"),
])
def test_bad_parameters_are_named_before_any_work(params, match):
    system, truth, obs = _l96_twin(0, EveryKth(2), 0.5, n_steps=4)
    with pytest.raises(ValueError, match=match):
        EnSF(system=system, **params).fit(obs)
