"""Systems read data by label, keep learnable parameters differentiable and refuse bad inputs.

Kolmogorov diagnostics in the caller's layout, tensor parameters through ``forecast``,
floating dtypes only, dtype names in the attrs, whole-number counts, bool flags and the
time of a divergence during the burn-in.
"""

import json

import numpy as np
import pytest
import torch
import xarray as xr

from xdyn.exceptions import DivergenceError
from xdyn.systems import base as base_module
from xdyn.systems import lorenz96 as lorenz96_module
from xdyn.systems.kolmogorov import KolmogorovFlow
from xdyn.systems.kuramoto_sivashinsky import KuramotoSivashinsky
from xdyn.systems.lorenz63 import Lorenz63
from xdyn.systems.lorenz96 import Lorenz96
from xdyn.systems.lyapunov import lyapunov_exponents
from xdyn.systems.registry import system_from_attrs
from xdyn.systems.shallow_water import ShallowWater

# --- Kolmogorov diagnostics: the caller's layout ---------------------------------


@pytest.fixture(scope="module")
def kolmogorov_run():
    flow = KolmogorovFlow(N=16)
    ds = flow.simulate(n_trajectories=2, n_steps=2, random_state=0)
    return flow, ds, flow.diagnostics(ds)


@pytest.mark.parametrize("layout", ["transposed", "y_descending", "both_flipped_and_moved"])
def test_kolmogorov_diagnostics_follow_the_callers_layout(kolmogorov_run, layout):
    flow, ds, ref = kolmogorov_run
    other = {
        "transposed": ds.transpose("trajectory", "time", "x", "y"),
        "y_descending": ds.isel(y=slice(None, None, -1)),
        "both_flipped_and_moved": ds.isel(y=slice(None, None, -1), x=slice(None, None, -1))
        .transpose("x", "time", "y", "trajectory"),
    }[layout]
    out = flow.diagnostics(other)
    for name in ("u", "v"):
        assert out[name].dims == other["vorticity"].dims
        for d in ("x", "y"):
            np.testing.assert_array_equal(out[name][d].values, other[d].values)
        # label by label, the velocity of the same field (up to the FFT's round-off
        # on a field held in another memory order)
        np.testing.assert_allclose(out[name].transpose(*ref[name].dims)
                                   .sel(x=ref.x, y=ref.y).values, ref[name].values,
                                   rtol=1e-12, atol=1e-14)
    for name in ("kinetic_energy", "enstrophy", "dissipation", "energy_injection"):
        xr.testing.assert_allclose(out[name].transpose(*ref[name].dims), ref[name])


def test_kolmogorov_diagnostics_default_layout_unchanged(kolmogorov_run):
    flow, ds, out = kolmogorov_run
    w = flow.to_state(ds)
    u, v = flow.velocity(w)
    n = flow.N
    for name, val in (("u", u), ("v", v)):
        assert out[name].dims == ("trajectory", "time", "y", "x")
        np.testing.assert_array_equal(out[name].values, val.reshape(2, 3, n, n).numpy())
    np.testing.assert_array_equal(out.kinetic_energy.values, flow.kinetic_energy(w).numpy())


def test_kolmogorov_diagnostics_without_grid_labels(kolmogorov_run):
    flow, ds, ref = kolmogorov_run
    bare = ds.drop_vars(["x", "y"]).transpose("trajectory", "time", "x", "y")
    out = flow.diagnostics(bare)
    assert out.u.dims == ("trajectory", "time", "x", "y")
    np.testing.assert_array_equal(out.u.values, ref.u.values.transpose(0, 1, 3, 2))


# --- tensor (learnable) parameters go through torch ------------------------------


def _grad_by_steps(system, p, x, n):
    y = x
    for _ in range(n):
        y = system.step(y, 0.01)
    return torch.autograd.grad(y.sum(), p)[0]


@pytest.mark.parametrize("n_states", [1, 2, 40])
@pytest.mark.parametrize("make, value", [(lambda p: Lorenz63(rho=p), 28.0),
                                         (lambda p: Lorenz96(n=8, F=p), 8.0)])
def test_forecast_keeps_the_gradient_of_a_learnable_parameter(make, value, n_states):
    p = torch.nn.Parameter(torch.tensor(value, dtype=torch.float64))
    system = make(p)
    x = torch.ones(system.n_state, dtype=torch.float64) + 0.1 * torch.arange(system.n_state)
    x = x if n_states == 1 else x.expand(n_states, -1).clone()
    out = system.forecast(x, 0.01, 10)
    assert out.requires_grad
    (grad,) = torch.autograd.grad(out.sum(), p)
    torch.testing.assert_close(grad, _grad_by_steps(system, p, x, 10))


def test_fast_paths_still_taken_when_nothing_requires_grad(monkeypatch):
    calls = {"numpy": 0, "kernel": 0}
    numpy_step, kernel = base_module.rk4_step_numpy, lorenz96_module._rk4_site_major

    def counted_step(*args, **kwargs):
        calls["numpy"] += 1
        return numpy_step(*args, **kwargs)

    def counted_kernel(*args, **kwargs):
        calls["kernel"] += 1
        return kernel(*args, **kwargs)

    monkeypatch.setattr(base_module, "rk4_step_numpy", counted_step)
    monkeypatch.setattr(lorenz96_module, "_rk4_site_major", counted_kernel)
    x = torch.tensor([1.0, 2.0, 20.0], dtype=torch.float64)
    Lorenz63().forecast(x, 0.01, 5)
    assert calls["numpy"] == 5
    Lorenz96(n=8).forecast(torch.ones(40, 8, dtype=torch.float64), 0.01, 5)
    assert calls["kernel"] == 1
    # a tensor parameter takes torch instead
    Lorenz63(rho=torch.tensor(28.0, dtype=torch.float64)).forecast(x, 0.01, 5)
    Lorenz96(n=8, F=torch.tensor(8.0, dtype=torch.float64)).forecast(
        torch.ones(40, 8, dtype=torch.float64), 0.01, 5)
    assert calls == {"numpy": 5, "kernel": 1}


# --- dtype ------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda d: Lorenz63(dtype=d), lambda d: Lorenz96(n=8, dtype=d),
                                  lambda d: KuramotoSivashinsky(N=16, dtype=d)])
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool", torch.int64])
def test_non_floating_dtype_refused(make, dtype):
    with pytest.raises(ValueError, match="dtype must be a floating dtype"):
        make(dtype).simulate(n_steps=2, random_state=0)
    with pytest.raises(ValueError, match="dtype must be a floating dtype"):
        make(dtype).as_tensor([1.0])


def test_float32_systems_still_run():
    ds = Lorenz63(dtype="float32").simulate(n_steps=2, random_state=0)
    assert ds.x.dtype == np.float32


@pytest.mark.parametrize("dtype", [torch.float32, np.float32, np.dtype("float32"), "float32"])
def test_dtype_recorded_by_name_and_rebuilt(dtype):
    system = Lorenz63(dtype=dtype)
    ds = system.simulate(n_steps=3, random_state=0)
    assert json.loads(ds.attrs["system_params"])["dtype"] == "float32"
    rebuilt = system_from_attrs(ds.attrs)
    assert rebuilt.torch_dtype == torch.float32
    xr.testing.assert_equal(rebuilt.simulate(n_steps=3, random_state=0), ds)


@pytest.mark.parametrize("recorded, dtype", [
    ("torch.float32", torch.float32), ("<class 'numpy.float32'>", torch.float32),
    ("float32", torch.float32), ("<class 'float'>", torch.float64)])  # Python's float
def test_system_from_attrs_reads_older_dtype_records(recorded, dtype):
    attrs = {"system": "Lorenz63", "system_params": json.dumps({"dtype": recorded, "rho": 20.0})}
    system = system_from_attrs(attrs)
    assert system.torch_dtype == dtype and system.rho == 20.0


@pytest.mark.parametrize("linear", [np.bool_(False), np.bool_(True)])
def test_numpy_bools_recorded_as_bools(linear):
    # np.bool_(False) was recorded as the string "False" (true when read back)
    ds = ShallowWater(N=8, linear=linear).simulate(n_steps=1, random_state=0)
    assert system_from_attrs(ds.attrs).linear is bool(linear)


def test_a_forcing_per_site_takes_the_torch_path_of_every_size():
    # an array F took Lorenz-96's ensemble kernel from 32 members and failed there
    forcing = 6.0 + 0.1 * np.arange(40)
    system = Lorenz96(F=forcing)
    for n in (2, 40):
        x = 8.0 + torch.rand(n, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        out, ref = system.forecast(x, 0.01, 5), x
        for _ in range(5):
            ref = system.step(ref, 0.01)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("as_type", [list, np.array, torch.tensor])
def test_lorenz63_takes_one_parameter_per_trajectory(as_type):
    # a list or numpy array of sigmas failed in torch (numpy on the left of a tensor)
    x = torch.tensor([[1.0, 2.0, 20.0], [-3.0, 1.0, 25.0]], dtype=torch.float64)
    out = Lorenz63(sigma=as_type([10.0, 14.0])).forecast(x, 0.01, 5)
    for row, sigma in enumerate((10.0, 14.0)):
        alone = Lorenz63(sigma=sigma).forecast(x[row:row + 1], 0.01, 5)
        torch.testing.assert_close(out[row:row + 1], alone, rtol=1e-12, atol=1e-12)


def test_an_array_forcing_keeps_a_float32_state_float32():
    # a float64 numpy F promoted the float32 state of the torch path to float64
    system = Lorenz96(F=np.full(40, 8.0), dtype="float32")
    x = torch.full((2, 40), 8.0, dtype=torch.float32)
    x[:, 0] += 0.01
    out = system.forecast(x, 0.01, 3)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, Lorenz96(F=8.0, dtype="float32").forecast(x, 0.01, 3))


def test_a_parameter_per_site_is_recorded_as_numbers_and_rebuilt():
    # describe() wrote a numpy array with str() ("[6.  6.1 ...]"): the system rebuilt from a
    # Dataset's attrs had a string for F
    forcing = 6.0 + 0.1 * np.arange(40)
    rebuilt = system_from_attrs(Lorenz96(F=forcing).describe())
    np.testing.assert_array_equal(rebuilt.F, forcing)
    x = torch.full((2, 40), 8.0, dtype=torch.float64)
    torch.testing.assert_close(rebuilt.forecast(x, 0.01, 3),
                               Lorenz96(F=forcing).forecast(x, 0.01, 3))


# --- whole-number counts, bool flags -----------------------------------------------


@pytest.mark.parametrize("kwargs", [{"n_exponents": 2.7}, {"n_steps": 50.9},
                                    {"renormalize_every": 1.5}, {"n_trajectories": 2.5},
                                    {"tangent_burn_in": 3.5}])
def test_lyapunov_refuses_non_integer_counts(kwargs):
    name = next(iter(kwargs))
    args = {"n_steps": 20, "burn_in": 0.1, "random_state": 0, **kwargs}
    with pytest.raises(TypeError, match=f"{name} must be an integer"):
        lyapunov_exponents(Lorenz63(), **args)


def test_lyapunov_accepts_whole_floats():
    lam = lyapunov_exponents(Lorenz63(), n_exponents=2.0, n_steps=20.0, burn_in=0.1,
                             random_state=0)
    assert lam.sizes["exponent"] == 2 and lam.attrs["n_steps"] == 20


def test_kolmogorov_output_grid_and_diagnostics_checked():
    flow = KolmogorovFlow(N=16)
    with pytest.raises(TypeError, match="output_grid must be an integer"):
        flow.simulate(n_steps=1, random_state=0, output_grid=8.7)
    with pytest.raises(TypeError, match="diagnostics must be True or False"):
        flow.simulate(n_steps=1, random_state=0, diagnostics="no")
    ds = flow.simulate(n_steps=1, random_state=0, output_grid=8.0)
    assert ds.sizes["x"] == 8 and ds.attrs["output_grid"] == 8


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None])
def test_shallow_water_linear_must_be_a_bool(value):
    with pytest.raises(TypeError, match="linear must be True or False"):
        ShallowWater(N=8, linear=value).validate_params()


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_shallow_water_linear_bools_accepted(value):
    ShallowWater(N=8, linear=value).validate_params()


# --- divergence during the burn-in -------------------------------------------------


def test_divergence_in_burn_in_reports_its_time():
    system = Lorenz96(n=8)
    x0 = system.random_initial_state(1, 0)[0]
    x, k = torch.tensor(x0), 0
    while torch.isfinite(x).all():
        x, k = system.step(x, 0.3), k + 1
    assert 0 < k < 10
    with pytest.raises(DivergenceError, match="during the burn-in") as err:
        system.simulate(dt=0.3, x0=x0, n_steps=20, burn_in=3.0)
    # the burn-in (10 steps) ends where the saved run starts (t0 = 0)
    assert err.value.time == pytest.approx(-3.0 + 0.3 * k)
    assert f"at step {k} of 10" in str(err.value)
    with pytest.raises(DivergenceError) as err:
        system.simulate(dt=0.3, x0=x0, t_span=(5.0, 11.0), burn_in=3.0)
    assert err.value.time == pytest.approx(5.0 - 3.0 + 0.3 * k)
