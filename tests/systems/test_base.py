"""The shared DynamicalSystem machinery: simulate, Dataset <-> state, netCDF, validation."""

import json
import pickle
import warnings

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.base import clone

from xdyn.exceptions import DivergenceError
from xdyn.systems.kuramoto_sivashinsky import KuramotoSivashinsky
from xdyn.systems.lorenz63 import Lorenz63
from xdyn.systems.lorenz96 import Lorenz96
from xdyn.systems.two_scale_lorenz96 import TwoScaleLorenz96


# --- simulate: layout ----------------------------------------------------------


def test_simulate_dims_shapes_and_trajectory_dim():
    model = Lorenz96(n=10)
    many = model.simulate(n_trajectories=3, n_steps=20, dt=0.05, random_state=0)
    assert many.x.dims == ("trajectory", "time", "k") and many.x.shape == (3, 21, 10)
    np.testing.assert_array_equal(many.trajectory.values, [0, 1, 2])
    one = model.simulate(n_trajectories=1, n_steps=20, dt=0.05, random_state=0)
    assert one.x.dims == ("time", "k") and "trajectory" not in one.dims
    # a single x0 drops the dim, a (1, n) x0 keeps it
    x0 = np.full(10, 8.0) + np.eye(10)[0]
    assert "trajectory" not in model.simulate(n_steps=2, x0=x0).dims
    assert model.simulate(n_steps=2, x0=x0[None]).sizes["trajectory"] == 1


def test_simulate_time_coordinate_save_every_and_t_span():
    model = Lorenz63()
    full = model.simulate(n_steps=20, dt=0.01, random_state=0)
    sparse = model.simulate(n_steps=20, dt=0.01, save_every=5, random_state=0)
    assert sparse.sizes["time"] == 5
    np.testing.assert_allclose(sparse.time.values, [0.0, 0.05, 0.1, 0.15, 0.2])
    xr.testing.assert_allclose(sparse.x, full.x.isel(time=slice(None, None, 5)), rtol=1e-14)
    assert sparse.time.attrs["units"] == "1" and sparse.attrs["save_every"] == 5
    spanned = model.simulate(t_span=1.0, dt=0.05, random_state=0)
    assert spanned.sizes["time"] == 21 and spanned.time.values[-1] == pytest.approx(1.0)
    shifted = model.simulate(t_span=(2.0, 3.0), dt=0.05, random_state=0)
    np.testing.assert_allclose(shifted.time.values, 2.0 + 0.05 * np.arange(21))
    xr.testing.assert_allclose(shifted.x.drop_vars("time"), spanned.x.drop_vars("time"))


def test_simulate_burn_in_discards_the_start():
    model = Lorenz96(n=8)
    x0 = model.random_initial_state(2, np.random.RandomState(0))
    whole = model.simulate(n_steps=30, dt=0.05, x0=x0)
    burnt = model.simulate(n_steps=10, dt=0.05, burn_in=1.0, x0=x0)  # 20 steps discarded
    np.testing.assert_allclose(burnt.x.values, whole.x.isel(time=slice(20, None)).values, rtol=1e-13)
    assert burnt.time.values[0] == 0.0 and burnt.attrs["burn_in"] == 1.0


def test_burn_in_off_the_step_grid_warns_and_records_what_was_integrated():
    model, x0 = Lorenz63(), np.array([1.0, 2.0, 20.0])
    with pytest.warns(UserWarning, match=r"burn_in=0.25 .* dt=0.1: 2 steps integrate 0.2"):
        off = model.simulate(n_steps=3, dt=0.1, burn_in=0.25, x0=x0)
    assert off.attrs["burn_in"] == pytest.approx(0.2)
    xr.testing.assert_equal(off, model.simulate(n_steps=3, dt=0.1, burn_in=0.2, x0=x0))
    with pytest.warns(UserWarning, match="0 steps integrate 0"):
        none = model.simulate(n_steps=3, dt=0.1, burn_in=0.04, x0=x0)
    assert none.attrs["burn_in"] == 0.0 and none.x.values[0] == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # whole numbers of steps, up to round-off: silent
        assert model.simulate(n_steps=1, dt=0.1, burn_in=0.3, x0=x0).attrs["burn_in"] == 0.3
        assert model.simulate(n_steps=1, dt=0.01, burn_in=5, x0=x0).attrs["burn_in"] == 5.0
        model.simulate(t_span=(0.1, 0.7), dt=0.1, save_every=3, x0=x0)


def test_a_run_shortened_to_whole_saving_intervals_warns():
    model = Lorenz63()
    with pytest.warns(UserWarning, match=r"t_span covers 1.*dt \* save_every = 0.3.*0.9"):
        ds = model.simulate(t_span=1.0, dt=0.1, save_every=3, random_state=0)
    assert ds.time.values[-1] == pytest.approx(0.9)
    with pytest.warns(UserWarning, match="t_span covers 1.05"):
        model.simulate(t_span=1.05, dt=0.1, random_state=0)
    with pytest.warns(UserWarning, match="n_steps=10 is not a multiple of save_every=3"):
        assert model.simulate(n_steps=10, save_every=3, random_state=0).sizes["time"] == 4


def test_simulate_attrs_record_how_it_was_made():
    ds = Lorenz96(n=12, F=9.5).simulate(n_steps=3, dt=0.02, random_state=42)
    assert ds.attrs["system"] == "Lorenz96" and ds.attrs["integrator"] == "rk4"
    params = json.loads(ds.attrs["system_params"])
    assert params["n"] == 12 and params["F"] == 9.5 and params["dtype"] == "float64"
    assert ds.attrs["dt"] == 0.02 and ds.attrs["random_state"] == 42
    assert ds.x.attrs["units"] == "1" and "long_name" in ds.x.attrs
    assert Lorenz96().simulate(n_steps=1, random_state=None).attrs["random_state"] == "None"
    assert Lorenz96().simulate(n_steps=1).attrs["dt"] == Lorenz96.default_dt


def test_same_seed_same_output_different_seed_different():
    model = TwoScaleLorenz96(K=4, J=3)
    a = model.simulate(n_trajectories=2, n_steps=10, random_state=5)
    b = model.simulate(n_trajectories=2, n_steps=10, random_state=5)
    c = model.simulate(n_trajectories=2, n_steps=10, random_state=6)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a.x.values, c.x.values)
    # the trajectories of one call differ from each other
    assert not np.allclose(a.x.isel(trajectory=0).values, a.x.isel(trajectory=1).values)


def test_simulate_accepts_a_torch_x0_and_float32():
    model = Lorenz63(dtype="float32")
    ds = model.simulate(n_steps=5, x0=torch.tensor([1.0, 2.0, 20.0]))
    assert ds.x.dtype == np.float32 and ds.x.values[0] == 1.0


# --- Dataset <-> state --------------------------------------------------------------


def test_to_state_from_state_round_trip_with_several_variables():
    model = TwoScaleLorenz96(K=5, J=3)
    ds = model.simulate(n_trajectories=2, n_steps=4, random_state=0)
    state = model.to_state(ds)
    assert state.shape == (2, 5, model.n_state) and state.dtype == torch.float64
    coords = {"time": ds.time, "trajectory": ds.trajectory}
    back = model.from_state(state, dims=("trajectory", "time"), coords=coords)
    xr.testing.assert_allclose(back, ds, rtol=0, atol=0)
    # the flat layout is x first, then y in (k, j) order
    np.testing.assert_array_equal(state[1, 2, :5].numpy(), ds.x.values[1, 2])
    np.testing.assert_array_equal(state[1, 2, 5:].numpy(), ds.y.values[1, 2].ravel())
    # dims are found by name, not by position
    transposed = ds.transpose("j", "k", "time", "trajectory")
    expected = model.to_state(ds.transpose("time", "trajectory", ...))
    torch.testing.assert_close(model.to_state(transposed), expected)


def test_to_state_and_from_state_reject_mismatches():
    model = Lorenz63()
    ds = model.simulate(n_steps=2, random_state=0)
    with pytest.raises(ValueError, match="missing"):
        model.to_state(ds.drop_vars("z"))
    with pytest.raises(ValueError, match="n_state=3"):
        model.from_state(np.zeros((4, 5)), dims=("time",))
    with pytest.raises(ValueError, match="dims"):
        Lorenz96(n=4).to_state(xr.Dataset({"x": (("time", "site"), np.zeros((2, 4)))}))


def test_netcdf_round_trip_keeps_values_coords_and_attrs(tmp_path):
    ds = TwoScaleLorenz96(K=4, J=2).simulate(n_trajectories=2, n_steps=6, save_every=2, random_state=3)
    path = tmp_path / "two_scale.nc"
    ds.to_netcdf(path)
    with xr.open_dataset(path) as loaded:
        loaded = loaded.load()
    xr.testing.assert_identical(loaded, ds)
    assert loaded.attrs["random_state"] == 3 and json.loads(loaded.attrs["system_params"])["K"] == 4
    assert loaded.time.attrs["units"] == "1"
    # what was written is enough to rebuild the system and continue the run
    rebuilt = TwoScaleLorenz96(**{k: v for k, v in json.loads(loaded.attrs["system_params"]).items()})
    np.testing.assert_allclose(
        rebuilt.step(rebuilt.to_state(loaded.isel(time=0)), loaded.attrs["dt"]).numpy(),
        TwoScaleLorenz96(K=4, J=2).step(rebuilt.to_state(ds.isel(time=0)), ds.attrs["dt"]).numpy(),
    )


# --- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_steps": 5, "dt": 0.0}, "dt must be a positive"),
        ({"n_steps": 5, "dt": -0.01}, "dt must be a positive"),
        ({"n_steps": 5, "dt": float("nan")}, "dt must be a positive"),
        ({"n_steps": 5, "t_span": 1.0}, "only one of t_span and n_steps"),
        ({}, "either t_span or n_steps"),
        ({"n_steps": -1}, "n_steps must be an integer >= 0"),
        ({"n_steps": 5, "burn_in": -5}, "burn_in must be a finite number >= 0"),
        ({"n_steps": 5, "burn_in": float("inf")}, "burn_in"),
        ({"n_steps": 5, "n_trajectories": 0}, "n_trajectories must be an integer >= 1"),
        ({"n_steps": 5, "n_trajectories": -1}, "n_trajectories must be an integer >= 1"),
        ({"t_span": (3.0, 1.0)}, "t1 >= t0"),
        ({"t_span": -1.0}, "t_span must be a finite number >= 0"),
        ({"n_steps": 5, "x0": np.zeros((0, 3))}, "no state"),
        ({"n_steps": 5, "save_every": 0}, "save_every"),
        ({"n_steps": 5, "x0": np.zeros(4)}, "n_state=3"),
        ({"n_steps": 5, "x0": np.zeros((2, 2, 3))}, "n_state=3"),
        ({"n_steps": 5, "x0": np.array([1.0, np.nan, 3.0])}, "non-finite"),
        ({"n_steps": 5, "x0": np.zeros((2, 3)), "n_trajectories": 4}, "n_trajectories=4"),
    ],
)
def test_simulate_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Lorenz63().simulate(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_steps": 2.5}, "n_steps must be an integer"),
        ({"n_steps": 5, "n_trajectories": 1.5}, "n_trajectories must be an integer"),
        ({"n_steps": 5, "n_trajectories": True}, "n_trajectories must be an integer"),
        ({"n_steps": 5, "save_every": "2"}, "save_every must be an integer"),
        ({"n_steps": 5, "dt": "0.01"}, "dt must be a number"),
        ({"n_steps": 5, "burn_in": None}, "burn_in must be a number"),
        ({"n_steps": 5, "x0": "abc"}, "x0 must be an array of numbers"),
    ],
)
def test_simulate_rejects_wrong_types_naming_the_parameter(kwargs, match):
    with pytest.raises(TypeError, match=match):
        Lorenz63().simulate(**kwargs)


def test_whole_number_floats_are_integers():
    # what a JSON/YAML config gives back for an integer
    ds = Lorenz63().simulate(n_steps=4.0, save_every=2.0, n_trajectories=2.0, random_state=0)
    assert dict(ds.sizes) == {"trajectory": 2, "time": 3}


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: Lorenz96(n=0), ValueError, "Lorenz96: n must be an integer >= 4, got 0"),
        (lambda: Lorenz96(n=-3), ValueError, "n must be an integer >= 4"),
        (lambda: Lorenz96(n=10.5), TypeError, "n must be an integer"),
        (lambda: Lorenz96(F=float("nan")), ValueError, "F must be a finite number"),
        (lambda: Lorenz96(F="8"), TypeError, "F must be a number"),
        (lambda: TwoScaleLorenz96(K=8, J=0), ValueError, "J must be an integer >= 1"),
        (lambda: TwoScaleLorenz96(K=8, b=0.0), ValueError, "b must be a positive"),
        (lambda: KuramotoSivashinsky(N=0), ValueError, "N must be an integer >= 4"),
        (lambda: KuramotoSivashinsky(L=-1.0), ValueError, "L must be a positive"),
        (lambda: _system("KolmogorovFlow", N=0), ValueError, "N must be an integer >= 4"),
        (lambda: _system("KolmogorovFlow", Re=-1.0), ValueError, "Re must be a positive"),
        (lambda: _system("ReactionDiffusion", N=-2), ValueError, "N must be an integer >= 2"),
        (lambda: _system("ReactionDiffusion", tau=0.0), ValueError, "tau must be a positive"),
        (lambda: _system("RLCCircuit", C=0.0), ValueError, "C must be a positive"),
        (lambda: _system("DampedPendulum", damping=None), TypeError, "damping must be a number"),
    ],
)
def test_bad_system_parameters_are_refused_at_use_naming_the_parameter(make, exc, match):
    system = make()  # like scikit-learn, __init__ only stores (clone/set_params work)
    with pytest.raises(exc, match=match):
        system.simulate(n_steps=1, random_state=0)
    with pytest.raises(exc, match=match):
        system.n_state  # noqa: B018 - every use goes through ``variables``


def test_forecast_and_integrate_refuse_negative_steps():
    model = Lorenz63()
    x = model.as_tensor(model.random_initial_state(2, 0))
    with pytest.raises(ValueError, match="n_steps must be an integer >= 0"):
        model.forecast(x, 0.01, -3)
    with pytest.raises(ValueError, match="save_every must be an integer >= 1"):
        model.integrate(x, 0.01, 10, save_every=0)
    with pytest.raises(ValueError, match="n_steps must be an integer >= 0"):
        model.integrate(x, 0.01, -1)


def test_set_params_to_a_bad_value_is_refused_at_use():
    model = Lorenz96(n=8).set_params(n=0)
    with pytest.raises(ValueError, match="n must be an integer >= 4"):
        model.simulate(n_steps=1)
    assert clone(model).n == 0  # stored unchanged


def test_tensor_parameters_are_left_to_the_system():
    from xdyn.systems import DampedPendulum

    # a learnable (tensor) parameter is not a scalar constraint's business
    model = DampedPendulum(omega0=torch.tensor(1.5, dtype=torch.float64))
    assert model.simulate(n_steps=2, random_state=0).sizes["time"] == 3


def test_pendulum_parameter_ranges_check_n_trajectories():
    from xdyn.systems import DampedPendulum

    with pytest.raises(ValueError, match="n_trajectories must be an integer >= 1"):
        DampedPendulum().simulate(n_trajectories=-1, n_steps=2, parameter_ranges={"damping": (0, 1)})


def _system(name, **params):
    import xdyn.systems

    return getattr(xdyn.systems, name)(**params)


def test_unknown_preset_names_the_available_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'nope'.*sakov2008"):
        Lorenz96.preset("nope")
    with pytest.raises(ValueError, match="unknown preset"):
        TwoScaleLorenz96.preset_settings("nope")


def test_divergence_raises_with_the_time():
    with pytest.raises(DivergenceError) as err:
        Lorenz96(n=10, F=8.0).simulate(n_steps=200, dt=0.5, random_state=0)
    assert err.value.time is not None and 0 < err.value.time <= 100.0


# --- estimator behaviour ---------------------------------------------------------------


def test_systems_clone_and_pickle_after_use():
    model = KuramotoSivashinsky(L=22.0, N=32)
    u = model.as_tensor(model.random_initial_state(1, np.random.RandomState(0)))
    out = model.step(u, 0.25)  # fills the coefficient cache
    restored = pickle.loads(pickle.dumps(model))
    torch.testing.assert_close(restored.step(u, 0.25), out)
    cloned = clone(model)
    assert cloned.get_params() == model.get_params()
    two = clone(TwoScaleLorenz96.preset("wilks2005")).set_params(h=0.5)
    assert two.h == 0.5 and two.J == 32
