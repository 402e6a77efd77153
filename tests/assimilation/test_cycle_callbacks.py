"""User callbacks in the one assimilation cycle: added, replacing a built-in monitor, closed on raise."""

import numpy as np
import pytest

from xdyn import DivergenceError
from xdyn.assimilation import (CycleCallback, EnKF, LostTrackMonitor, OptimalInterpolation,
                               ProgressBar)
from xdyn.observe import observe
from xdyn.systems import Lorenz96


@pytest.fixture(scope="module")
def every4():
    system = Lorenz96(n=40)
    truth = system.simulate(n_steps=400, dt=0.05, burn_in=10.0, random_state=11)
    return system, truth, observe(truth, "every4", noise_std=1.0, random_state=12)


class Counter(CycleCallback):
    def on_cycle_begin(self, estimator, ctx, state):
        self.forecasts = self.analyses = 0

    def on_forecast(self, estimator, step):
        self.forecasts += 1

    def on_analysis(self, estimator, step):
        self.analyses += 1


@pytest.mark.filterwarnings("ignore::xdyn.assimilation.LostTrackWarning")  # 30 cycles: spin-up
def test_user_callback_sees_every_window(every4):
    _, truth, obs = every4
    counter = Counter()
    EnKF(n_members=20, random_state=0).fit(obs).predict(obs.isel(time=slice(0, 30)),
                                                         callbacks=[counter])
    assert (counter.forecasts, counter.analyses) == (30, 30)


def test_a_monitor_instance_replaces_the_built_in_one(every4):
    """EnKF with 2 members and every 4th site loses track (issue 8; misfit ratio 2.0-2.3):
    the default monitor raises; one with a threshold above the ratio does not, and the
    ratio it measured is the lost one."""
    _, _, obs = every4
    enkf = EnKF(n_members=2, random_state=0).fit(obs)
    with pytest.raises(DivergenceError, match="lost track"):
        enkf.predict(obs)
    monitor = LostTrackMonitor(threshold=1e6)
    out = enkf.predict(obs, callbacks=[monitor])
    assert int(out.attrs["lost_track"]) == 0
    ratios = [r for r in monitor.ratio if r is not None]
    assert ratios and float(np.max(ratios)) > 0.5  # lost by the default rule


def test_progress_bar_closed_when_divergence_raises(every4):
    _, _, obs = every4
    bar = ProgressBar()
    with pytest.raises(DivergenceError):
        EnKF(n_members=2, random_state=0).fit(obs).predict(obs, callbacks=[bar])
    assert 0 < bar.bar.n < len(obs.time)  # stopped on the way
    assert bar.bar.disable is True  # what tqdm.close() sets


def test_callbacks_must_be_cycle_callbacks(every4):
    _, _, obs = every4
    oi = OptimalInterpolation().fit(obs)
    with pytest.raises(TypeError, match="CycleCallback instances; got function"):
        oi.predict(obs, callbacks=[lambda *a: None])
