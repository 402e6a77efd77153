"""Physics and contract tests of :class:`xdyn.systems.shallow_water.ShallowWater`."""

import json
import math

import numpy as np
import pytest
import torch
import xarray as xr

from xdyn.systems import ShallowWater
from xdyn.systems.registry import make_system


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _volume_change(sw, x0, x1):
    """Change of the water volume relative to the volume of the initial bump.

    The resting volume is constant; summing ``eta`` alone keeps the round-off of
    the large ``depth * area`` term out of the comparison.
    """
    _, _, eta0 = sw._split(x0)
    _, _, eta1 = sw._split(x1)
    return ((eta1.sum((-2, -1)) - eta0.sum((-2, -1))).abs() / eta0.abs().sum((-2, -1))).max()


def test_linear_tsunami_conserves_mass_to_round_off_and_energy():
    sw = ShallowWater.preset("tsunami", N=48)
    x0 = sw.as_tensor(sw.bump_state([0.1, 0.4], [0.3, 0.05]))
    x1 = sw.forecast(x0, 30.0, 150)  # 75 minutes: the wave crosses ~140 km
    assert float(_volume_change(sw, x0, x1)) < 1e-12
    # energy is a quadratic invariant of the spatial scheme; RK4 loses O((c k dt)^6)
    drift = ((sw.energy(x1) - sw.energy(x0)) / sw.energy(x0)).abs().max()
    assert float(drift) < 1e-6
    assert float(x1[..., -sw.N ** 2:].abs().max()) < 0.5  # the bump has spread out


def test_nonlinear_energy_conserved_unforced_and_mass_with_forcing():
    # unforced, inviscid nonlinear flow from a smooth surface (geostrophic adjustment)
    sw = ShallowWater(N=32, L=6e6, depth=1000.0, initial="random", bump_amplitude=5.0,
                      topography_height=100.0, topography_width=0.15)
    x0 = sw.as_tensor(sw.random_initial_state(2, random_state=0))
    x1 = sw.forecast(x0, 300.0, 100)
    drift = ((sw.energy(x1) - sw.energy(x0)) / sw.energy(x0)).abs().max()
    assert float(drift) < 1e-5
    assert float(_volume_change(sw, x0, x1)) < 1e-12
    # forced, dissipative, per-trajectory forcing: the source is mass-neutral
    atm = ShallowWater.preset("atmosphere", N=32)
    ds = atm.simulate(n_trajectories=2, n_steps=60, dt=300.0, save_every=60, random_state=1,
                      parameter_ranges={"forcing_amplitude": (0.1, 30.0),
                                        "forcing_width": (1.0, 4.0)})
    x = atm.to_state(ds)
    assert float(_volume_change(atm, x[:, 0], x[:, -1])) < 1e-12
    assert float((atm.energy(x[:, -1]) - atm.energy(x[:, 0])).abs().min()) > 0  # forcing acts


def test_linear_gravity_wave_travels_at_sqrt_gH():
    sw = ShallowWater(N=32, L=1e6, depth=100.0, f0=0.0, beta=0.0, linear=True)
    n, c, k = sw.N, sw.wave_speed(), 2 * 2 * math.pi / sw.L
    x = np.asarray(sw.coords()["x"][1])
    eta = 0.1 * np.cos(k * x)[None, :].repeat(n, 0)
    u = math.sqrt(sw.g / sw.depth) * eta  # the eastward-travelling wave's velocity
    x0 = sw.as_tensor(np.stack([u, 0 * u, eta]).reshape(-1))
    T, dt = 3000.0, 30.0
    x1 = sw.forecast(x0, dt, int(T / dt))
    mode = torch.fft.rfft(x1[-n * n:].reshape(n, n)[0])[2]
    speed = -float(torch.angle(mode)) / (k * T)  # the phase moved by k c T
    assert speed == pytest.approx(c, rel=1e-6)
    assert float(mode.abs()) / (n / 2) == pytest.approx(0.1, rel=1e-6)  # no damping


def test_gradient_through_the_dynamics_matches_finite_differences():
    sw = ShallowWater.preset("atmosphere", N=16)
    x0 = sw.as_tensor(sw.random_initial_state(1, random_state=0))

    def final_energy(amplitude):
        sw.forcing_amplitude = amplitude
        return sw.energy(sw.forecast(x0, 600.0, 5)).sum()

    a = torch.tensor([12.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(final_energy(a), a)
    h = 1e-3
    with torch.no_grad():
        fd = (final_energy(torch.tensor([12.0 + h], dtype=torch.float64))
              - final_energy(torch.tensor([12.0 - h], dtype=torch.float64))) / (2 * h)
    assert float(grad) == pytest.approx(float(fd), rel=1e-6)
    assert float(grad) != 0


def test_simulate_returns_labelled_dataset_and_is_registered():
    sw = make_system("shallow-water", N=16, linear=True)
    assert isinstance(sw, ShallowWater)
    ds = sw.simulate(n_trajectories=3, n_steps=4, save_every=2, random_state=0,
                     parameter_ranges={"bump_x": (0.0, 0.5), "bump_y": (0.0, 0.5)})
    assert dict(ds.sizes) == {"trajectory": 3, "time": 3, "y": 16, "x": 16}
    assert {ds[v].attrs["units"] for v in ("u", "v", "eta")} == {"m s-1", "m"}
    assert ds.time.attrs["units"] == "s" and ds.x.attrs["units"] == "m"
    assert ds.bump_x.dims == ("trajectory",)
    assert np.all((ds.bump_x >= 0) & (ds.bump_x <= 0.5))
    # each trajectory's bump peaks where its drawn location says
    eta0 = ds.eta.isel(time=0)
    peak_x = eta0.max("y").argmax("x") / 16.0
    assert np.allclose(peak_x, ds.bump_x, atol=1 / 16)
    again = sw.simulate(n_trajectories=3, n_steps=4, save_every=2, random_state=0,
                        parameter_ranges={"bump_x": (0.0, 0.5), "bump_y": (0.0, 0.5)})
    assert ds.identical(again)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="N"):
        ShallowWater(N=2).simulate(n_steps=1)
    with pytest.raises(ValueError, match="initial"):
        ShallowWater(N=8, initial="flat").random_initial_state(1)
    with pytest.raises(ValueError, match="depth"):
        ShallowWater(N=8, depth=-1.0).simulate(n_steps=1)
    with pytest.raises(ValueError, match="gravity"):
        ShallowWater(N=8).simulate(n_steps=1, parameter_ranges={"gravity": (1.0, 2.0)})
    with pytest.raises(ValueError, match="x0"):
        ShallowWater(N=8).simulate(n_steps=1, x0=np.zeros(192),
                                   parameter_ranges={"bump_x": (0.0, 0.5)})


@pytest.mark.parametrize("linear", [True, False])
def test_jacobian_matches_finite_differences(linear):
    sw = ShallowWater(N=8, L=1e6, linear=linear, topography_height=10.0, forcing_amplitude=2.0,
                      viscosity=1e3, drag=1e-6, initial="random")
    x = sw.as_tensor(sw.random_initial_state(1, random_state=0)[0])
    x = x + 0.01 * sw.as_tensor(np.random.RandomState(1).standard_normal(x.shape))
    J = sw.jacobian(x)
    v = sw.as_tensor(np.random.RandomState(2).standard_normal(x.shape))
    h = 1e-6
    fd = (sw.rhs(0.0, x + h * v) - sw.rhs(0.0, x - h * v)) / (2 * h)
    assert torch.allclose(J @ v, fd, rtol=1e-6, atol=1e-9 * float(fd.abs().max()))


def test_random_bump_releases_follow_the_seed():
    sw = ShallowWater.preset("tsunami", N=16)
    a = sw.simulate(n_trajectories=3, n_steps=2, random_state=0)
    b = sw.simulate(n_trajectories=3, n_steps=2, random_state=1)
    eta0 = a.eta.isel(time=0)
    for i, j in ((0, 1), (0, 2), (1, 2)):  # each trajectory its own release
        assert float(abs(eta0.isel(trajectory=i) - eta0.isel(trajectory=j)).max()) > 0.5
    assert float(abs(a.eta - b.eta).max()) > 0.5
    xr.testing.assert_identical(a, sw.simulate(n_trajectories=3, n_steps=2, random_state=0))
    assert a.attrs["random_state"] == 0 and b.attrs["random_state"] == 1
    # centres within bump_spread of (bump_x, bump_y): U(0, 0.5)^2 for the defaults
    wide = ShallowWater(N=16, bump_width=0.1)   # resolved on the 16-point grid
    eta = wide.random_initial_state(200, 3)[:, -256:].reshape(200, 16, 16)
    iy, ix = np.unravel_index(eta.reshape(200, -1).argmax(1), (16, 16))
    assert ix.min() <= 1 and iy.min() <= 1 and 7 <= ix.max() <= 8 and 7 <= iy.max() <= 8
    np.testing.assert_allclose(eta.max((1, 2)), 1.0, atol=0.1)   # the bump's amplitude
    moved = ShallowWater(N=16, bump_width=0.1, bump_x=0.75).random_initial_state(200, 3)
    ix = moved[:, -256:].reshape(200, 16, 16).max(1).argmax(1)
    assert ((ix >= 7) | (ix == 0)).all() and len(np.unique(ix)) > 5   # x in (0.5, 1), periodic


def test_bump_range_run_records_the_seed_and_comments_only_draws():
    sw = ShallowWater.preset("tsunami", N=16)
    ds = sw.simulate(n_trajectories=2, n_steps=2, random_state=7,
                     parameter_ranges={"bump_x": (0.0, 0.5)})
    assert ds.attrs["random_state"] == 7
    assert ds.bump_x.attrs["comment"] == "drawn from U(0.0, 0.5)"
    assert "comment" not in ds.bump_y.attrs and (ds.bump_y == sw.bump_y).all()
    assert json.loads(ds.attrs["parameter_ranges"]) == {"bump_x": [0.0, 0.5]}
    gen = sw.simulate(n_steps=2, random_state=np.random.RandomState(7),
                      parameter_ranges={"bump_y": (0.0, 0.5)})
    assert gen.attrs["random_state"] == "None"   # a generator: no seed to record
