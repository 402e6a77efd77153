"""kolmogorov-closure: building blocks in the default run, the --quick run marked slow."""

import numpy as np
import pytest
import xarray as xr

from xdyn.closure import ClosedModel, GPClosure
from xdyn.experiments import get_experiment
from xdyn.experiments.kolmogorov_closure import _targets, _windows


def _toy(n=30):
    t = 0.1 * np.arange(n)
    u = np.sin(t)[:, None, None] + np.zeros((n, 2, 3))
    return xr.Dataset({"u": (("time", "y", "x"), u)}, coords={"time": t})


def test_registered():
    exp = get_experiment("kolmogorov-closure")
    assert "2510.24583" in exp.reference


def test_windows_and_targets_line_up():
    ds = _toy()
    starts = np.array([3, 10])
    ctx = _windows(ds, starts, 2)
    tgt = _targets(ds, starts, 4)
    assert ctx.sizes == {"trajectory": 2, "time": 2, "y": 2, "x": 3}
    # the last context state is the start, the first target the state after it
    np.testing.assert_array_equal(ctx.u.isel(time=-1).values, ds.u.isel(time=starts).values)
    np.testing.assert_array_equal(tgt.u.isel(time=0).values, ds.u.isel(time=starts + 1).values)
    np.testing.assert_allclose(tgt.time, [0.1, 0.2, 0.3, 0.4])


def test_closed_model_adds_closure_draws_to_a_trajectory_forecast():
    from xdyn.rom import PODLinearDynamics

    rng = np.random.RandomState(0)
    n, t = 3, 0.1 * np.arange(80)
    phase = rng.uniform(0, 6, n)[:, None] + t[None]
    x = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    resolved = xr.Dataset({"u": (("trajectory", "time", "x"),
                                 np.sin(x[None, None] - phase[..., None]))},
                          coords={"time": t})
    unresolved = 0.1 * resolved ** 2 + 0.01 * rng.normal(size=resolved.u.shape)
    closure = GPClosure(2, 2, max_epochs=20, random_state=0)
    model = ClosedModel(rom=PODLinearDynamics(2), closure=closure, n_members=4,
                        random_state=0).fit(resolved, unresolved)
    fc = model.predict(resolved.isel(time=slice(0, 40)), n_steps=5)
    assert fc.u.dims == ("member", "trajectory", "time", "x")
    assert fc.sizes["member"] == 4
    resolved_fc = model.predict_resolved(resolved.isel(time=slice(0, 40)), n_steps=5)
    spread = fc.u.std("member")
    assert float(spread.mean()) > 0.003
    # members scatter around the resolved forecast + the closure mean
    mean = model.closure_.predict(resolved_fc)
    np.testing.assert_allclose((fc.u.mean("member") - resolved_fc.u), mean.u, atol=0.05)
    with pytest.raises(ValueError, match="Y"):
        ClosedModel(rom=PODLinearDynamics(2), closure=closure).fit(resolved)


@pytest.mark.slow
def test_quick_run(tmp_path, monkeypatch):
    from xdyn.experiments import run

    result = run("kolmogorov-closure", quick=True, out=tmp_path, progress=False)
    scores = result.results.closure_scores
    assert set(scores.closure.values) == {"GP", "VAE", "diffusion"}
    assert np.isfinite(scores).all()
    assert (tmp_path.glob("**/summary.csv"))
