"""Audit s62 C2 and C6: noise_std beside R is refused; the background has its own labels."""

from __future__ import annotations

import numpy as np
import pytest

from xdyn.assimilation import EnKF, Var3D
from xdyn.observe import observe
from xdyn.systems import Lorenz96


@pytest.fixture(scope="module")
def twin():
    truth = Lorenz96(n=8).simulate(n_trajectories=2, n_steps=30, burn_in=5, random_state=0)
    return truth, observe(truth, "identity", noise_std=1.0, every=3, random_state=1)


def test_noise_std_and_R_together_are_refused(twin):
    """R won and noise_std was dropped without a word (EnKF(noise_std=0.01, R=4 I)
    assimilated with std 2)."""
    _, obs = twin
    kw = dict(n_members=6, random_state=0, raise_on_divergence=False)
    with pytest.raises(ValueError, match="give noise_std or R, not both"):
        EnKF(noise_std=0.01, R=4.0 * np.eye(8), **kw).fit(obs)
    est = EnKF(R=4.0 * np.eye(8), **kw).fit(obs)  # each alone is fine
    EnKF(noise_std=0.5, **kw).fit(obs)
    with pytest.raises(ValueError, match="give noise_std or R, not both"):
        est.set_params(noise_std=0.01).predict(obs)  # set after fit: predict checks too


@pytest.mark.parametrize("method", [
    EnKF(n_members=6, random_state=0, return_ensemble=False),
    Var3D(random_state=0),
])
def test_background_variables_have_their_own_long_name(twin, method):
    """x_background, x_background_std and spread_background carried the analysis' labels."""
    _, obs = twin
    est = method.set_params(return_background=True, raise_on_divergence=False).fit(obs)
    for _ in range(2):  # the system's own attrs are not changed (no prefix piling up)
        out = est.predict(obs)
        pairs = {"x": "x_background", "x_std": "x_background_std",
                 "spread": "spread_background"}
        for analysis, background in pairs.items():
            label = out[analysis].attrs["long_name"]
            assert not label.startswith("background")
            assert out[background].attrs["long_name"] == f"background (forecast) {label}"
        assert out["x_background"].attrs["units"] == out["x"].attrs["units"]
