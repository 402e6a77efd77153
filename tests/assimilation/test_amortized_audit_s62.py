"""AmortizedAssimilator, audit of session 62 (A1-A6): the validation curve of a network that
loses track, burn_in against the validation record, the documented history keys, the
experiment's device label, and where a LostTrackWarning points."""

import re
import types
import warnings

import numpy as np
import pytest
import torch

import xdyn.assimilation._amortized_training as training
from xdyn.assimilation import AmortizedAssimilator, EnKF, LostTrackWarning
from xdyn.experiments.amortized import AmortizedSetup, _results, _summary
from xdyn.observe import observe
from xdyn.systems import Lorenz96


def _twin(n_times, n_trajectories=1, seed=0):
    truth = Lorenz96(n=8).simulate(n_trajectories=n_trajectories, n_steps=2 * (n_times - 1),
                                   dt=0.05, save_every=2, burn_in=5.0, random_state=seed)
    return truth, observe(truth, "identity", noise_std=1.0, random_state=seed + 1)


def _tiny(**params):
    base = dict(n_members=4, hidden_size=8, seq_len=5, max_epochs=2, batch_size=8,
                device="cpu", random_state=0, warmup_epochs=1)
    base.update(params)
    return AmortizedAssimilator(**base)


@pytest.fixture(scope="module")
def data():
    _, obs = _twin(60, n_trajectories=2)
    truth_v, obs_v = _twin(80, seed=7)
    return obs, obs_v, truth_v


def test_early_stopping_scores_a_young_network_that_loses_track(data):
    """A1: the default raise_on_divergence=True made every validation cycle of the young
    network raise (lost track), the curve all NaN, and early stopping end the fit after
    n_iter_no_change epochs with no warning. The curve is now finite and falls."""
    obs, obs_v, truth_v = data
    est = _tiny(max_epochs=4, early_stopping=True, n_iter_no_change=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "never finite" warning either
        est.fit(obs, validation=(obs_v, truth_v))
    curve = [h["valid_rmse"] for h in est.history_]
    assert np.isfinite(curve).all()
    assert len(curve) == 4  # was 2: a NaN never improves
    assert np.isfinite(est.best_validation_rmse_) and est.best_validation_rmse_ < curve[0]
    assert est.raise_on_divergence is True  # restored after every validation cycle


def test_a_validation_rmse_never_finite_warns(data, monkeypatch):
    """A1: a curve with no finite epoch (a non-finite validation analysis) is said, and so
    is which weights early stopping kept."""
    obs, obs_v, truth_v = data
    monkeypatch.setattr(training, "analysis_rmse", lambda *args, **kwargs: np.nan)
    est = _tiny(max_epochs=6, early_stopping=True, n_iter_no_change=2)
    with pytest.warns(RuntimeWarning, match=r"never finite in 2 epochs.*last epoch \(2\)") as rec:
        est.fit(obs, validation=(obs_v, truth_v))
    assert {w.filename for w in rec if "never finite" in str(w.message)} == {__file__}


def test_burn_in_longer_than_the_validation_record_is_refused(data):
    """A2: burn_in >= the validation span left every valid_rmse NaN (early stopping then
    kept the third epoch, silently); it is refused before training, as score refuses it."""
    obs, _, _ = data
    truth_v, obs_v = _twin(20, seed=7)  # 1.9 time units
    est = _tiny(max_epochs=8, early_stopping=True, n_iter_no_change=3, burn_in=5.0)
    with pytest.raises(ValueError, match=r"the validation data: burn_in=5.0 leaves no "
                                         r"analysis time"):
        est.fit(obs, validation=(obs_v, truth_v))
    assert not hasattr(est, "net_")


def test_the_documented_history_keys_are_the_recorded_ones(data):
    """A3: history_'s docstring named an ``lr`` key the history does not hold."""
    obs, obs_v, truth_v = data
    est = _tiny(max_epochs=1).fit(obs, validation=(obs_v, truth_v))
    doc = AmortizedAssimilator.__doc__
    entry = doc[doc.index("history_ : list of dict"):doc.index("n_epochs_, best_")]
    named = set(re.findall(r"``(\w+)``", entry))
    assert named == set(est.history_[0])


def test_the_cost_ratio_says_where_the_amortized_predict_ran():
    """A5: the ratio compares the amortized predict on its network's device with LETKF on
    the CPU; the label and an attr name that device."""
    setup = AmortizedSetup.quick()
    methods = ("amortized", f"LETKF-{setup.n_members}")
    row = {"rmse": 1.0, "spread": 1.0, "lost": 0.0, "cost_ms": 2.0, "train_s": 1.0,
           "clamped": 0}
    rows = {case: {m: dict(row) for m in methods} for case in setup.cases}
    net = types.SimpleNamespace(net_=types.SimpleNamespace(module_=torch.nn.Linear(1, 1)))
    res = _results(setup, rows, {c: [{"valid_rmse": 1.0}] for c in rows}, 0,
                   {c: net for c in rows})
    ratio = res["cost_ratio_vs_letkf"]
    assert ratio.attrs["amortized_device"] == res["cost_per_cycle"].attrs["amortized_device"]
    assert ratio.attrs["amortized_device"] == "cpu"
    assert "amortized (predict on cpu)" in ratio.attrs["long_name"]
    assert "(on cpu)" in ratio.attrs["long_name"]
    ratio.attrs["amortized_device"] = "cuda:0"
    labels = [r["metric"] for r in _summary(res) if "cost ratio" in r["metric"]]
    assert set(labels) == {"test cost ratio vs LETKF-10 (amortized on cuda:0, LETKF on cpu)"}


def _warned_at(predict, obs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predict(obs)
    return [(w.filename, str(w.message)[:40]) for w in caught
            if issubclass(w.category, LostTrackWarning)]


def test_lost_track_warnings_point_at_the_users_predict_call(data):
    """A6: the warning named a line of xdyn/assimilation/base.py (a fixed stacklevel one
    frame short); it names the caller's line, whichever assimilator's predict it runs
    through (the amortized one adds a frame) and whichever monitor warns."""
    obs, _, _ = data
    system = Lorenz96(n=8)
    lost = _tiny(max_epochs=1, clamp=3.0, raise_on_divergence=False).fit(obs)
    # far from the observations, and too short a run to tell spin-up: the lost-track monitor
    enkf = EnKF(system=system, n_members=4, random_state=0, raise_on_divergence=False,
                initial_state=np.full(8, 1e30))
    # from an overflowing start the analysis fails: the divergence monitor's warning
    diverged = EnKF(system=system, n_members=4, random_state=0, raise_on_divergence=False,
                    initial_state=np.full(8, 1e200), initial_spread=1e200)
    short = obs.isel(trajectory=0, time=slice(0, 20))
    with np.errstate(over="ignore"):
        warned = {"amortized": _warned_at(lost.predict, obs),
                  "EnKF short": _warned_at(enkf.fit(short).predict, short),
                  "EnKF diverged": _warned_at(diverged.fit(short).predict, short)}
    for name, where in warned.items():
        assert where, name
        assert {filename for filename, _ in where} == {__file__}, (name, where)


def test_predict_takes_callbacks_as_every_assimilator(data):
    """G1: the docs say every predict takes callbacks=[...]; the amortized one raised a
    TypeError."""
    from xdyn.assimilation import CycleCallback

    class Count(CycleCallback):
        def __init__(self):
            self.n = 0

        def on_analysis(self, estimator, step):
            self.n += 1

    obs, _, _ = data
    est = _tiny(max_epochs=1, raise_on_divergence=False).fit(obs)
    count = Count()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.predict(obs, callbacks=[count])
    assert count.n == obs.sizes["time"]


def test_no_epoch_no_never_finite_warning(data):
    """Review W4: max_epochs=0 trains nothing and scores nothing: no warning about a curve."""
    obs, obs_v, truth_v = data
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _tiny(max_epochs=0).fit(obs, validation=(obs_v, truth_v))
