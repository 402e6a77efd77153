"""A user's own system and observation operator, as the user guide writes them.

The classes come from ``docs/own_model.rst`` itself: its code blocks run here,
in order, inside a module registered in ``sys.modules`` (so that its classes
pickle by reference, as a user's module would). The tests then check what the
page promises: a hand-written Lorenz-84 runs as an EnKF's forecast model, a
hand-written operator is rebuilt from the observation attrs, both clone and
pickle, and the filter beats the observation noise.
"""

import pickle
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.base import clone
from sklearn.utils import check_random_state

from xdyn.assimilation import EnKF
from xdyn.metrics import rmse
from xdyn.observe import observe, operator_from_spec
from xdyn.systems.registry import system_from_attrs

PAGE = Path(__file__).resolve().parents[1] / "docs" / "own_model.rst"
NOISE_STD = 0.1  # the page's observation error


@pytest.fixture(scope="module")
def page():
    """The page's code blocks run in order, in an importable module."""
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", PAGE.read_text())
    assert len(blocks) >= 4, "the user guide page lost its code blocks"
    module = types.ModuleType("xdyn_own_model_page")
    sys.modules[module.__name__] = module
    try:
        for block in blocks:
            code = "\n".join(line[3:] for line in block.splitlines())
            exec(compile(code, str(PAGE), "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[module.__name__]


def _total_rmse(analysis, truth, after=10.0):
    late = analysis.time > after
    error = rmse(analysis[["x", "y", "z"]].mean("member").sel(time=late),
                 truth.sel(time=analysis.time[late]))
    return {k: float(error[k]) for k in "xyz"}


def test_the_page_runs_and_its_enkf_beats_the_noise(page):
    assert type(page.enkf.system_) is page.Lorenz84
    assert type(page.enkf.operator_) is page.FirstAndLast
    np.testing.assert_array_equal(page.obs.variable.values, ["x", "z"])
    # every component, y included (never observed), below the observation error
    errors = _total_rmse(page.analysis, page.truth)
    assert max(errors.values()) < NOISE_STD, errors


def test_more_seeds_and_explicit_model_equal_the_rebuilt_one(page):
    # an RMSE of a chaotic run moves with the last bits: check several seeds
    climate = float(np.sqrt(np.mean([page.truth[k].var() for k in "xyz"])))
    for seed in (2, 3):
        obs = observe(page.truth, page.FirstAndLast(), noise_std=NOISE_STD, every=5,
                      random_state=seed)
        rebuilt = EnKF(n_members=10, inflation=1.05, random_state=seed).fit(obs).predict(obs)
        explicit = EnKF(system=page.Lorenz84(), operator=page.FirstAndLast(), n_members=10,
                        inflation=1.05, random_state=seed).fit(obs).predict(obs)
        xr.testing.assert_identical(explicit.drop_attrs(), rebuilt.drop_attrs())
        errors = _total_rmse(rebuilt, page.truth)
        assert max(errors.values()) < NOISE_STD, (seed, errors)
        assert np.sqrt(np.mean(np.square(list(errors.values())))) < 0.15 * climate


def test_custom_system_round_trips_and_has_a_correct_jacobian(page):
    model = page.Lorenz84(F=6.0)
    ds = model.simulate(n_trajectories=2, n_steps=20, random_state=0)
    assert ds.x.dims == ("trajectory", "time") and ds.x.attrs["long_name"] == "westerly wind"
    state = model.to_state(ds)
    back = model.from_state(state, dims=("trajectory", "time"), attrs=ds.attrs,
                            coords={"trajectory": ds.trajectory, "time": ds.time})
    xr.testing.assert_identical(back[["x", "y", "z"]], ds[["x", "y", "z"]])
    rebuilt = system_from_attrs(ds.attrs)
    assert type(rebuilt) is page.Lorenz84 and rebuilt.get_params() == model.get_params()
    # autodiff Jacobian against central differences
    x = state[0, -1]
    jac = model.jacobian(x)
    eps = 1e-6
    fd = torch.stack([(model.rhs(0, x + eps * e) - model.rhs(0, x - eps * e)) / (2 * eps)
                      for e in torch.eye(3, dtype=x.dtype)], dim=-1)
    torch.testing.assert_close(jac, fd, rtol=1e-7, atol=1e-8)
    # the numpy fast path and the torch path integrate alike
    with torch.no_grad():
        fast = model.forecast(x.clone(), 0.05, 40)
    slow = model.forecast(x.clone().requires_grad_(True), 0.05, 40).detach()
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)


def test_custom_classes_clone_and_pickle_inside_a_fitted_enkf(page):
    system, operator = page.Lorenz84(G=1.2), page.FirstAndLast()
    for obj in (system, operator):
        assert clone(obj).get_params() == obj.get_params()
        assert type(pickle.loads(pickle.dumps(obj))) is type(obj)
    obs = page.obs.isel(time=slice(0, 40))
    start = system.to_state(page.truth.isel(time=0)).numpy()  # a short run: no spin-up
    enkf = EnKF(n_members=6, initial_state=start, initial_spread=0.1, random_state=1).fit(obs)
    restored = pickle.loads(pickle.dumps(enkf))
    assert type(restored.system_) is page.Lorenz84
    xr.testing.assert_identical(restored.predict(obs).drop_attrs(), enkf.predict(obs).drop_attrs())
    assert type(operator_from_spec(obs.attrs["operator"])) is page.FirstAndLast


def test_random_initial_state_gets_what_check_random_state_takes(page):
    model = page.Lorenz84()
    by_int = model.random_initial_state(3, 5)
    by_rng = model.random_initial_state(3, np.random.RandomState(5))
    np.testing.assert_array_equal(by_int, by_rng)
    # simulate hands it the RandomState made from its own random_state
    start = model.simulate(n_trajectories=3, n_steps=0, random_state=5)
    np.testing.assert_array_equal(model.to_state(start)[:, 0].numpy(),
                                  model.random_initial_state(3, check_random_state(5)))


def test_bad_parameters_of_a_custom_system_are_named(page):
    with pytest.raises(ValueError, match="Lorenz84: a must be a positive finite number"):
        page.Lorenz84(a=0.0).simulate(n_steps=1)
    with pytest.raises(TypeError, match="Lorenz84: G must be a number"):
        page.Lorenz84(G="1").n_state  # noqa: B018
