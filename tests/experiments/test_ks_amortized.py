"""The ks-amortized experiment: Kuramoto-Sivashinsky setup, differentiable model, a short cycle."""

import dataclasses

import numpy as np
import pytest
import torch

from xdyn.experiments import get_experiment
from xdyn.experiments.amortized import AmortizedSetup, _baselines, _scores, make_twins

# the KS physics of the original, tiny data: 2 trajectories of 60 observation times.
# lr 3e-3: after 2 epochs at the quick run's 1e-3 the network's analyses were still rough.
# One fixed draw of sequences, so that the epochs' losses are of the same data
TINY_KS = dataclasses.replace(
    AmortizedSetup.ks(quick=True), n_train_trajectories=2, n_train_times=60, n_valid_times=30,
    n_test_times=20, test_burn_in_times=10, hidden_size=4, seq_len=10, n_sequences=16,
    redraw_sequences=False, batch_size=8, max_epochs=4, lr=3e-3, curve_times=20,
    inflations=(1.05,), radii=(8.0,), b_scales=(0.1,))


def test_ks_setup_is_the_originals():
    full, quick = AmortizedSetup.ks(), AmortizedSetup.ks(quick=True)
    for s in (full, quick):
        assert (s.system, s.n_sites, s.dt, s.steps_per_obs, s.noise_std, s.cases) == \
            ("ks", 128, 0.5, 2, 2.5, ("full",))
        assert np.isclose(s.domain_length, 32 * np.pi)
    assert full.n_train_times == AmortizedSetup().n_train_times and full.letkf30
    # the original's KS network reads no model tendency (its Lorenz-96 network does)
    assert not full.tendency and not quick.tendency and AmortizedSetup().tendency
    assert "McCabe" in get_experiment("ks-amortized").reference


def test_ks_forecast_is_differentiable():
    # the amortized loss backpropagates through the ETDRK4 forecast: compare autograd
    # with central differences on a small grid (float64)
    from xdyn.systems import KuramotoSivashinsky

    model = KuramotoSivashinsky(L=6.0, N=16)
    x = torch.as_tensor(model.random_initial_state(2, random_state=0)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: model.forecast(z, 0.5, 2), (x,), eps=1e-6,
                                    atol=1e-5)


def test_ks_twins_and_a_short_cycle_of_every_method():
    twins = make_twins(TINY_KS, seed=0)
    truth, obs = twins["truth"], twins["obs"]["full"]
    assert truth["train"]["u"].sizes == {"trajectory": 2, "time": 60, "x": 128}
    assert obs["test"].sizes["time"] == 30 and obs["test"].sizes["obs"] == 128
    np.testing.assert_allclose(np.diff(truth["test"]["time"]), 1.0)  # 2 ETDRK4 steps of 0.5
    # on the attractor after the spin-up: KS amplitude ~1.3, not the near-cosine start
    assert 1.0 < float(truth["test"]["u"].std()) < 1.7
    noise = obs["test"]["observation"].values - truth["test"]["u"].values
    assert 2.3 < noise.std() < 2.7
    from xdyn.experiments.amortized import _amortized

    est, amort = _amortized(TINY_KS, obs, truth, 10.0, seed=0, device="cpu", progress=False)
    # the self-supervised loss falls towards its floor, the observation noise of the 128
    # sites (800): its excess fell 221 -> 151 here (seeds 1 and 2: 331 -> 160, 498 -> 165)
    losses = np.array([h["train_loss"] for h in est.history_])
    floor = 128 * TINY_KS.noise_std ** 2
    assert np.isfinite(losses).all() and losses[-1] - floor < 0.8 * (losses[0] - floor)
    assert np.isfinite(amort["rmse"])
    assert amort["analysis"]["u"].sizes["member"] == 10
    base = _baselines(TINY_KS, obs, truth, 10.0, 10.0, seed=0, progress=False)
    assert list(base) == ["EnKF-10", "LETKF-10", "3D-Var"]
    # the tuned LETKF-10 must beat both the observations (2.5) and climatology (~1.8)
    assert base["LETKF-10"]["rmse"] < 0.8 and base["LETKF-10"]["lost"] == 0
    assert _scores(base["LETKF-10"]["analysis"], truth["test"], 10.0)["spread"] > 0


@pytest.mark.slow
def test_quick_run():
    # ~5-6 min on 2 cores; the quick run measured 0.654, 0.620 with sequences redrawn, then
    # 0.513 without the tendency input on 4 x 3000 times at rate 3e-3 (2026-12-04; seeds
    # 1 and 2: 0.502, 0.524; LETKF-10 0.549, 3D-Var 0.861, climatology 1.33): the learned
    # filter must beat 3D-Var by 30% (it did by 40%)
    import matplotlib.pyplot as plt

    result = get_experiment("ks-amortized").func(quick=True, progress=False)
    res = result.results
    assert list(res["method"].values) == ["amortized", "EnKF-10", "LETKF-10", "3D-Var"]
    amortized = float(res.analysis_rmse.sel({"case": "full", "method": "amortized"}))
    assert amortized < 0.6
    assert float(res.analysis_rmse.sel({"case": "full", "method": "LETKF-10"})) < 0.6
    # 2026-12-06 with ensemble_dropout: 0.541, spread 0.399 (2e-7 without: collapsed); with
    # the rotating baselines 0.549 / 0.407 against LETKF-10's 0.459
    assert float(res.spread.sel({"case": "full", "method": "amortized"})) > 0.3 * amortized
    plt.close("all")
