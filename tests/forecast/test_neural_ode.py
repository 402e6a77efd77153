"""NeuralODE: learns a damped pendulum by trajectory matching; the forecaster contract."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

from xdyn.forecast import NeuralODE, Persistence
from xdyn.preprocessing import StandardScaler
from xdyn.systems import DampedPendulum


@pytest.fixture(scope="module")
def pendulum():
    ds = DampedPendulum(omega0=1.5, damping=0.3).simulate(
        n_trajectories=12, t_span=4.0, dt=0.02, save_every=5, random_state=0)
    return ds.isel(trajectory=slice(0, 8)), ds.isel(trajectory=slice(8, None))


def test_neural_ode_learns_and_beats_persistence(pendulum):
    train, test = pendulum
    model = NeuralODE(hidden=32, window=6, max_epochs=25, lr=1e-2, random_state=0).fit(train)
    loss = model.net_.history[:, "train_loss"]
    assert loss[-1] < 0.2 * loss[0]
    leads = [0.5, 1.0]
    ours = -model.score(test, leads)
    persistence = -Persistence().fit(test.isel(trajectory=0)).score(test.isel(trajectory=0),
                                                                     leads)
    mine_one = -model.score(test.isel(trajectory=0), leads)
    assert mine_one < 0.5 * persistence, (mine_one, persistence)
    assert np.isfinite(ours)


def test_neural_ode_clone_pickle_pipeline_and_errors(pendulum):
    train, test = pendulum
    one = train.isel(trajectory=0)
    model = NeuralODE(hidden=8, window=4, max_epochs=2, random_state=0).fit(train)
    fc = model.predict(test.isel(time=[0, 3]), [0.1, 0.2])
    assert fc.theta.dims == ("trajectory", "time", "lead_time")
    again = pickle.loads(pickle.dumps(model)).predict(test.isel(time=[0, 3]), [0.1, 0.2])
    np.testing.assert_array_equal(fc.theta.values, again.theta.values)
    twin = clone(model).fit(train).predict(test.isel(time=[0, 3]), [0.1, 0.2])
    np.testing.assert_array_equal(fc.theta.values, twin.theta.values)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("node", NeuralODE(hidden=8, window=4, max_epochs=2, random_state=0))])
    out = pipe.fit(one).predict(one, lead_times=[0.1])
    assert out.theta.dims == ("time", "lead_time") and np.isfinite(out.theta).all()
    with pytest.raises(NotFittedError):
        NeuralODE().predict(one, [0.1])
    with pytest.raises(ValueError, match="window=50"):
        NeuralODE(window=50).fit(one)
    with pytest.raises(ValueError, match="window"):
        NeuralODE(window=1).fit(one)
    with pytest.raises(ValueError, match="sample_dim 'step' not found"):
        NeuralODE(sample_dim="step").fit(one)
    with pytest.raises(ValueError, match="consecutive samples as one fitted step"):
        NeuralODE(window=4).fit(train.isel(time=[0, 1, 2, 4, 5, 6, 7, 8]))  # uneven
    # fitted in seconds: data whose time is in minutes (with or without trajectories) is refused
    minutes = test.isel(time=[0, 3]).assign_coords(time=("time", [0.0, 0.25], {"units": "min"}))
    for data in (minutes, minutes.isel(trajectory=0)):
        with pytest.raises(ValueError, match="fitted on 'time' in units 's'; .* is in 'min'"):
            model.predict(data, [0.1])


@pytest.mark.parametrize("dim", ["member", "lead_time", "time"])
def test_a_trajectory_dim_the_forecasts_use_is_refused(pendulum, dim):
    # runs on 'member' were fitted, then forecast along the forecasts' ensemble dim
    train, test = pendulum
    runs = train.isel(time=slice(0, 20)).rename(trajectory="runs")
    if dim != "time":
        runs = runs.rename(runs=dim)
    model = NeuralODE(hidden=8, window=4, max_epochs=1, trajectory_dim=dim)
    with pytest.raises(ValueError, match=f"trajectory_dim='{dim}' names a dim"):
        model.fit(runs)
    fitted = NeuralODE(hidden=8, window=4, max_epochs=1).fit(train.isel(time=slice(0, 20)))
    with pytest.raises(ValueError, match=f"trajectory_dim='{dim}' names a dim"):
        fitted.set_params(trajectory_dim=dim).predict(runs, [0.1])
    array = np.stack([train.theta.values[0, :20], train.omega.values[0, :20]], axis=1)
    with pytest.raises(ValueError, match=f"trajectory_dim='{dim}' names a dim"):
        NeuralODE(hidden=8, window=4, max_epochs=1, trajectory_dim=dim).fit(array)


def test_training_does_not_depend_on_where_the_record_sits_in_time(pendulum):
    # window times went to float32 as absolute values: far from 0 the steps lost digits
    train, _ = pendulum
    late = train.assign_coords(time=train.time + 1e4)
    kw = dict(hidden=8, window=4, max_epochs=2, random_state=0)
    a, b = NeuralODE(**kw).fit(train), NeuralODE(**kw).fit(late)
    np.testing.assert_allclose(b.net_.history[:, "train_loss"], a.net_.history[:, "train_loss"],
                               rtol=1e-5)
