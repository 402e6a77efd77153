"""Tests of :class:`xdyn.systems.reaction_diffusion.ReactionDiffusion` (FitzHugh-Nagumo)."""

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.integrate import solve_ivp

from xdyn.systems.reaction_diffusion import ReactionDiffusion


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_jacobian_matches_finite_differences():
    rd = ReactionDiffusion(N=8, Du=0.05, Dv=0.1)  # diffusion large enough to matter at N=8
    x = rd.as_tensor(rd.random_initial_state(2, 0))
    jac = rd.jacobian(x)
    assert jac.shape == (2, 128, 128)
    eps = 1e-6
    fd = torch.stack([(rd.rhs(0, x[0] + eps * e) - rd.rhs(0, x[0] - eps * e)) / (2 * eps)
                      for e in torch.eye(128, dtype=torch.float64)], dim=-1)
    assert torch.allclose(jac[0], fd, atol=1e-7 * float(fd.abs().max()))
    # off the diagonal, the u-u block is D_u times the spectral Laplacian: symmetric
    lap = jac[0, :64, :64] - torch.diag(torch.diagonal(jac[0, :64, :64]))
    assert torch.allclose(lap, lap.T, atol=1e-12)


@pytest.mark.parametrize("tau", [1.0, 0.1])
def test_uniform_state_evolves_as_the_reaction_ode(tau):
    rd = ReactionDiffusion(N=16, tau=tau)
    u0, v0 = 0.7, -0.3
    x0 = torch.cat([torch.full((256,), u0), torch.full((256,), v0)]).double()

    def ode(t, y):
        u, v = y
        return [u - u**3 - rd.k - v, (u - v) / tau]

    sol = solve_ivp(ode, (0.0, 2.0), [u0, v0], rtol=1e-12, atol=1e-12)
    x = rd.forecast(x0, 0.01, 200)
    assert float(x[:256].std()) < 1e-13 and float(x[256:].std()) < 1e-13  # stays uniform
    # ETDRK4 error ~ dt^4: measured 3e-9 (tau=1)
    np.testing.assert_allclose([float(x[0]), float(x[-1])], sol.y[:, -1], atol=1e-6)


def test_diffusion_of_a_single_mode_is_exact():
    # Without reaction, a Fourier mode decays as exp(-D k^2 t): pure diffusion check via rhs.
    rd = ReactionDiffusion(N=16, L=2.0)
    xs = torch.as_tensor(rd.coords()["x"][1])
    mode = torch.cos(np.pi * 2 * xs)[None, :].expand(16, 16).reshape(-1)
    lap_u = rd.rhs(0, torch.cat([mode, torch.zeros(256, dtype=torch.float64)]))[:256]
    reaction = mode - mode**3 - rd.k
    assert torch.allclose(lap_u - reaction, -rd.Du * (2 * np.pi) ** 2 * mode, atol=1e-12)


def test_batched_equals_loop_and_is_deterministic():
    rd = ReactionDiffusion(N=16)
    x = rd.as_tensor(rd.random_initial_state(4, 1))
    batched = rd.forecast(x, 0.01, 10)
    loop = torch.stack([rd.forecast(m, 0.01, 10) for m in x])
    assert torch.allclose(batched, loop, rtol=0, atol=1e-12)
    a = rd.simulate(n_trajectories=2, n_steps=5, random_state=3)
    b = rd.simulate(n_trajectories=2, n_steps=5, random_state=3)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a.u.isel(time=0), rd.simulate(n_trajectories=2, n_steps=0,
                                                         random_state=4).u.isel(time=0))


def test_dataset_contract_and_stability(tmp_path):
    rd = ReactionDiffusion.preset("pdebench", N=32)
    settings = ReactionDiffusion.preset_settings("pdebench")
    ds = rd.simulate(t_span=1.0, dt=settings["dt"], save_every=settings["save_every"],
                     random_state=0)
    assert ds.u.dims == ("time", "y", "x") and ds.sizes["time"] == 21
    assert ds.attrs["integrator"] == "etdrk4" and ds.u.attrs["units"] == "1"
    assert ds.x.values[0] == pytest.approx(-1 + 1 / 32)  # cell centres on [-1, 1]
    assert np.isfinite(ds.u).all() and float(abs(ds.u.isel(time=-1)).max()) < 2
    ds.to_netcdf(tmp_path / "rd.nc")
    with xr.open_dataset(tmp_path / "rd.nc") as back:
        assert torch.equal(rd.to_state(back), rd.to_state(ds))
    # white-noise initial state at dt = 0.05 stays finite
    x = rd.forecast(rd.as_tensor(rd.random_initial_state(1, 0)), 0.05, 40)
    assert torch.isfinite(x).all()
