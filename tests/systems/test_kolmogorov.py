"""Physics and contract tests of :class:`xdyn.systems.kolmogorov.KolmogorovFlow`."""

import numpy as np
import pytest
import torch
import xarray as xr

from xdyn.systems.kolmogorov import KolmogorovFlow, spectral_truncate


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _y_grid(flow):
    n = int(flow.N)
    return torch.as_tensor(flow.coords()["y"][1])[:, None].expand(n, n).reshape(-1)


def _spectrum(flow, w):
    n = int(flow.N)
    return torch.fft.rfft2(w.reshape(*w.shape[:-1], n, n), norm="forward")


def _outside_two_thirds(n):
    k = np.abs(np.fft.fftfreq(n, 1.0 / n))
    kx = np.fft.rfftfreq(n, 1.0 / n)
    return torch.as_tensor((3 * k[:, None] >= n) | (3 * kx[None, :] >= n))


def test_laminar_fixed_point_is_attracting_below_instability():
    # Re=5 < Re_c ~ 10 for n_f=4: omega -> -(chi Re / n_f) cos(n_f y) on the 2pi box.
    flow = KolmogorovFlow.preset("laminar", forcing_amplitude=0.8)
    laminar = -(0.8 * 5.0 / 4) * torch.cos(4 * _y_grid(flow))
    assert float(flow.rhs(0.0, laminar).abs().max()) < 1e-12
    x0 = laminar + flow.as_tensor(flow.random_initial_state(1, 0))[0]
    x = flow.forecast(x0, 0.05, 2000)  # t = 100: slowest mode decays as exp(-t / Re)
    assert float((x - laminar).abs().max()) < 1e-6 * float(laminar.abs().max())


def test_energy_budget_holds_along_a_chaotic_trajectory():
    flow = KolmogorovFlow(Re=34.0, N=32)
    x = flow.as_tensor(flow.random_initial_state(1, 3, rms=3.0))[0]
    x = flow.forecast(x, 0.02, 100)
    # Exact for the Galerkin system: dE/dt from rhs equals injection - dissipation.
    u, v = flow.velocity(x)
    du, dv = flow.velocity(flow.rhs(0.0, x))
    exact = float((u * du + v * dv).mean())
    budget = float(flow.energy_injection(x) - flow.dissipation(x))
    assert abs(exact - budget) < 1e-12 * float(flow.energy_injection(x).abs())
    # Centred differences of E over a short trajectory, budget at the midpoints.
    dt = 1e-3
    traj = flow.integrate(x, dt, 20)
    energy = flow.kinetic_energy(traj)
    de_dt = (energy[2:] - energy[:-2]) / (2 * dt)
    mid = traj[1:-1]
    budget = flow.energy_injection(mid) - flow.dissipation(mid)
    injection = float(flow.energy_injection(mid).abs().max())
    rel_error = float((de_dt - budget).abs().max()) / injection
    # measured 1.3e-7 (N=32; 2.8e-7 at N=64): the O(dt^2) error of the centred difference
    assert rel_error < 1e-5
    assert float((de_dt).abs().max()) > 1e-3 * injection  # a non-trivial budget


def test_step_keeps_no_energy_beyond_two_thirds_cutoff_and_no_mean():
    flow = KolmogorovFlow(N=24)
    x = flow.as_tensor(flow.random_initial_state(2, 0, k_max=11, rms=2.0)) + 0.3
    high = _outside_two_thirds(24)
    assert float(_spectrum(flow, x)[..., high].abs().max()) > 1e-3  # input has some
    for _ in range(5):
        x = flow.step(x, 0.02)
        hat = _spectrum(flow, x)
        assert float(hat[..., high].abs().max()) < 1e-14 * float(hat.abs().max())
        assert float(hat[..., 0, 0].abs().max()) < 1e-15  # zero mode stays 0
    assert float(flow.rhs(0.0, x).mean(-1).abs().max()) < 1e-13


def test_jacobian_matches_finite_differences():
    flow = KolmogorovFlow(Re=20.0, N=16)
    x = flow.as_tensor(flow.random_initial_state(1, 1, k_max=5, rms=2.0))
    jac = flow.jacobian(x)[0]
    assert jac.shape == (256, 256)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        d = torch.randn(256, generator=gen, dtype=torch.float64)
        eps = 1e-6
        fd = (flow.rhs(0, x[0] + eps * d) - flow.rhs(0, x[0] - eps * d)) / (2 * eps)
        assert torch.allclose(jac @ d, fd, rtol=1e-6, atol=1e-7 * float(fd.abs().max()))
    step_jac = flow.step_jacobian(x, 0.02)[0]
    fd = (flow.step(x[0] + eps * d, 0.02) - flow.step(x[0] - eps * d, 0.02)) / (2 * eps)
    assert torch.allclose(step_jac @ d, fd, atol=1e-7 * float(fd.abs().max()))


def test_batched_members_equal_separate_steps():
    flow = KolmogorovFlow(N=32)
    x = flow.as_tensor(flow.random_initial_state(8, 4, rms=2.0))
    batched = flow.forecast(x, 0.02, 5)
    single = torch.stack([flow.forecast(m, 0.02, 5) for m in x])
    assert torch.allclose(batched, single, rtol=0, atol=1e-12)
    grid = x.reshape(2, 4, -1)  # two leading dims
    assert torch.allclose(flow.step(grid, 0.02).reshape(8, -1), flow.step(x, 0.02), atol=1e-13)


def test_spectral_truncation_keeps_low_modes_and_removes_high_ones():
    n = 32
    pts = 2 * np.pi * np.arange(n) / n
    low = np.sin(3 * pts)[None, :] + 0.5 * np.cos(2 * pts[:, None] - pts[None, :])
    high = np.cos(9 * pts)[None, :] + np.sin(8 * pts)[:, None]  # 9 aliases to -7 on 16 points
    coarse = spectral_truncate(low + high, 16)
    assert np.allclose(coarse, low[::2, ::2], atol=1e-13)
    assert spectral_truncate(np.cos(8 * pts)[None, :] * np.ones((n, 1)), 16).max() < 1e-14
    t = torch.as_tensor((low + high)[None])
    assert torch.allclose(spectral_truncate(t, 16)[0], torch.as_tensor(low[::2, ::2]))
    with pytest.raises(ValueError, match="n_out"):
        spectral_truncate(low, 64)


def test_simulate_output_grid_equals_truncated_full_run_and_diagnostics():
    flow = KolmogorovFlow(N=32)
    full = flow.simulate(n_trajectories=2, n_steps=4, dt=0.02, random_state=0, diagnostics=True)
    coarse = flow.simulate(n_trajectories=2, n_steps=4, dt=0.02, random_state=0,
                           output_grid=16, diagnostics=True)
    assert coarse.sizes == {"trajectory": 2, "time": 5, "y": 16, "x": 16}
    np.testing.assert_allclose(coarse.vorticity, spectral_truncate(full.vorticity.values, 16))
    np.testing.assert_allclose(coarse.u, spectral_truncate(full.u.values, 16))
    xr.testing.assert_allclose(coarse.kinetic_energy, full.kinetic_energy)  # from the full grid
    assert coarse.x.values[1] == pytest.approx(2 * np.pi / 16)
    assert coarse.attrs["output_grid"] == 16
    assert full.u.attrs["long_name"] == "x-component of velocity" and "units" in full.dissipation.attrs
    assert "standard_name" not in full.vorticity.attrs
    # diagnostics agree with the methods
    w = flow.to_state(full)
    np.testing.assert_allclose(full.dissipation, flow.dissipation(w).numpy())
    np.testing.assert_allclose(full.kinetic_energy, flow.kinetic_energy(w).numpy())


def test_netcdf_round_trip(tmp_path):
    flow = KolmogorovFlow.preset("re34", N=16)
    ds = flow.simulate(n_steps=3, random_state=7, diagnostics=True)
    path = tmp_path / "kolmogorov.nc"
    ds.to_netcdf(path)
    with xr.open_dataset(path) as back:
        xr.testing.assert_identical(back.load(), ds)
        assert torch.equal(flow.to_state(back), flow.to_state(ds))
    assert ds.attrs["integrator"] == "etdrk4" and ds.attrs["random_state"] == 7


def test_presets_defaults_and_validation():
    flow = KolmogorovFlow.preset("re34")
    assert (flow.Re, flow.n_forcing, flow.N) == (34.0, 4, 64)
    assert KolmogorovFlow.preset_settings("re34")["dt"] == 0.01
    # default-size run at the largest advertised dt stays finite and bounded
    x = flow.as_tensor(flow.random_initial_state(1, 0, rms=3.0))
    x = flow.forecast(x, 0.05, 200)
    assert torch.isfinite(x).all() and float(flow.kinetic_energy(x)) < 10
    with pytest.raises(ValueError, match="n_forcing"):
        KolmogorovFlow(N=12, n_forcing=4).rhs(0, torch.zeros(144, dtype=torch.float64))
    ds = KolmogorovFlow(N=16, dtype="float32").simulate(n_steps=2, random_state=0)
    assert ds.vorticity.dtype == np.float32


def test_random_initial_state_is_seeded_and_low_wavenumber():
    flow = KolmogorovFlow(N=32)
    a, b = flow.random_initial_state(3, 5), flow.random_initial_state(3, 5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.sqrt((a**2).mean(-1)), 1.0)
    hat = _spectrum(flow, torch.as_tensor(a))
    k = np.fft.fftfreq(32, 1 / 32)
    far = torch.as_tensor(np.hypot(k[:, None], np.fft.rfftfreq(32, 1 / 32)[None, :]) > 4)
    assert float(hat[..., far].abs().max()) < 1e-14
