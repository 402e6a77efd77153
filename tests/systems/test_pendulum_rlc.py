"""Tests of the damped pendulum, the series RLC circuit and per-trajectory parameters."""

import numpy as np
import pytest
import torch
import xarray as xr

from xdyn.systems.pendulum import DampedPendulum
from xdyn.systems.rlc import RLCCircuit


def _damped_oscillator(x0, v0, gamma, omega0, t):
    """Solution of x'' + 2 gamma x' + omega0^2 x = 0 (underdamped)."""
    wd = np.sqrt(omega0**2 - gamma**2)
    return np.exp(-gamma * t) * (x0 * np.cos(wd * t) + (v0 + gamma * x0) / wd * np.sin(wd * t))


def test_undamped_pendulum_conserves_energy():
    p = DampedPendulum.preset("undamped", omega0=1.5)
    x0 = torch.tensor([[1.0, 0.0], [2.5, 0.3]], dtype=torch.float64)  # includes a large swing
    traj = p.integrate(x0, 0.01, int(5 * 2 * np.pi / 1.5 / 0.01))  # ~5 periods
    energy = p.energy(traj)
    drift = ((energy - energy[0]) / energy[0]).abs().max()
    assert float(drift) < 1e-6  # measured 8e-11 at omega0=1, dt=0.01


def test_small_angle_damped_pendulum_matches_analytic_solution():
    omega0, alpha = 2.0, 0.3
    p = DampedPendulum(omega0=omega0, damping=alpha)
    theta0, w0 = 1e-3, -5e-4
    ds = p.simulate(x0=[theta0, w0], t_span=10.0, dt=0.01)
    exact = _damped_oscillator(theta0, w0, alpha / 2, omega0, ds.time.values)
    # sin(theta) ~ theta up to theta^3/6: relative error ~ theta0^2 = 1e-6
    np.testing.assert_allclose(ds.theta, exact, atol=1e-5 * theta0)
    assert ds.theta.attrs["units"] == "rad" and ds.time.attrs["units"] == "s"


def test_rlc_matches_analytic_underdamped_solution():
    R, L, C, V = 0.4, 2.0, 0.5, 1.5
    rlc = RLCCircuit(R=R, L=L, C=C, voltage=V)
    q0, i0 = -0.2, 0.1
    ds = rlc.simulate(x0=[q0, i0], t_span=20.0, dt=0.01)
    gamma, omega0 = R / (2 * L), 1 / np.sqrt(L * C)
    exact_q = C * V + _damped_oscillator(q0 - C * V, i0, gamma, omega0, ds.time.values)
    np.testing.assert_allclose(ds.charge, exact_q, atol=1e-8)
    assert ds.charge.attrs["units"] == "C" and ds.current.attrs["units"] == "A"


def test_rlc_energy_decays_at_the_ohmic_rate():
    rlc = RLCCircuit(R=0.5, L=1.2, C=0.8)
    dt = 1e-3
    traj = rlc.integrate(torch.tensor([0.5, -0.3], dtype=torch.float64), dt, 2000)
    energy = rlc.energy(traj)
    de_dt = (energy[2:] - energy[:-2]) / (2 * dt)
    ohmic = rlc.R * traj[1:-1, 1] ** 2
    assert torch.allclose(de_dt, -ohmic, atol=1e-6 * float(ohmic.max()))
    assert float(energy[-1]) < 0.5 * float(energy[0])


def test_per_trajectory_parameters_are_recorded_and_used():
    p = DampedPendulum(omega0=1.0)
    x0 = np.array([[1e-3, 0.0], [1e-3, 0.0], [1e-3, 0.0]])  # identical initial states
    ds = p.simulate(t_span=20.0, x0=x0, random_state=0,
                    parameter_ranges={"damping": (0.0, 0.5), "omega0": (1.0, 2.0)})
    assert ds.damping.dims == ("trajectory",) and ds.omega0.dims == ("trajectory",)
    assert ds.damping.attrs["units"] == "s-1" and "parameter_ranges" in ds.attrs
    assert ds.attrs["system"] == "DampedPendulum" and "tensor" not in ds.attrs["system_params"]
    assert len(np.unique(ds.damping)) == 3 and ((0 <= ds.damping) & (ds.damping <= 0.5)).all()
    for traj in range(3):  # each run follows the analytic solution of its own parameters
        alpha, w0 = float(ds.damping[traj]), float(ds.omega0[traj])
        exact = _damped_oscillator(1e-3, 0.0, alpha / 2, w0, ds.time.values)
        np.testing.assert_allclose(ds.theta.isel(trajectory=traj), exact, atol=1e-8)
        alone = DampedPendulum(omega0=w0, damping=alpha).simulate(x0=x0[traj], t_span=20.0)
        np.testing.assert_allclose(ds.theta.isel(trajectory=traj), alone.theta, atol=1e-13)
    # the more damped trajectory has less energy left, as exp(-damping t) predicts
    energy = p.energy(torch.as_tensor(np.stack([ds.theta, ds.omega], -1)))
    energy = energy / (torch.as_tensor(ds.omega0.values)[:, None] ** 2 / 2 * 1e-6)  # E(0)
    order = np.argsort(ds.damping.values)
    assert (np.diff(energy[:, -1].numpy()[order]) < 0).all()


def test_parameter_draws_are_seeded_and_keep_initial_states():
    rlc = RLCCircuit()
    kw = {"n_trajectories": 4, "n_steps": 10, "random_state": 5}
    a = rlc.simulate(parameter_ranges={"R": (0.1, 1.0)}, **kw)
    b = rlc.simulate(parameter_ranges={"R": (0.1, 1.0)}, **kw)
    xr.testing.assert_identical(a, b)
    plain = rlc.simulate(**kw)
    xr.testing.assert_equal(a[["charge", "current"]].isel(time=0),
                            plain[["charge", "current"]].isel(time=0))
    assert a.attrs["random_state"] == 5
    one = rlc.simulate(n_steps=3, random_state=1, parameter_ranges={"C": (1.0, 2.0)})
    assert one.C.dims == () and one.charge.dims == ("time",)
    with pytest.raises(ValueError, match="no physical parameter"):
        rlc.simulate(n_steps=1, parameter_ranges={"dtype": (0, 1)})
    with pytest.raises(ValueError, match="low <= high"):
        rlc.simulate(n_steps=1, parameter_ranges={"R": (1.0, 0.1)})


def test_x0_and_n_trajectories_agree_with_parameter_ranges_as_without():
    rlc, ranges = RLCCircuit(), {"R": (0.1, 1.0)}
    x0 = np.array([[1.0, 0.0], [0.5, 0.0], [0.0, 1.0], [1.0, 1.0]])
    ds = rlc.simulate(n_trajectories=4, x0=x0, t_span=0.1, random_state=0, parameter_ranges=ranges)
    assert ds.sizes["trajectory"] == 4 and ds.R.shape == (4,)
    np.testing.assert_array_equal(ds.charge.isel(time=0), x0[:, 0])
    # one state for four trajectories is refused with ranges as it is without
    for kw in ({}, {"parameter_ranges": ranges}):
        with pytest.raises(ValueError, match="x0 holds 1 states but n_trajectories=4"):
            rlc.simulate(n_trajectories=4, x0=[1.0, 0.0], t_span=0.1, random_state=0, **kw)
    with pytest.raises(ValueError, match="n_state=2"):
        rlc.simulate(x0=np.zeros(3), t_span=0.1, parameter_ranges=ranges)


@pytest.mark.parametrize("name, bounds, match", [
    ("L", (-2.0, -1.0), r"RLCCircuit: parameter_ranges\['L'\] must be a positive finite number, "
                        r"got -2.0"),
    ("C", (0.0, 1.0), r"parameter_ranges\['C'\] must be a positive finite number, got 0.0"),
    ("R", (-0.5, 1.0), r"parameter_ranges\['R'\] must be a finite number >= 0, got -0.5"),
])
def test_parameter_ranges_obey_the_parameter_constraints(name, bounds, match):
    with pytest.raises(ValueError, match=match):
        RLCCircuit().simulate(n_trajectories=3, t_span=0.1, random_state=0,
                              parameter_ranges={name: bounds})
    # a range inside the constraint is drawn, its lower bound included where allowed
    ds = RLCCircuit().simulate(n_trajectories=3, t_span=0.1, random_state=0,
                               parameter_ranges={"R": (0.0, 1.0), "L": (0.5, 2.0)})
    assert ((ds.L >= 0.5) & (ds.L <= 2.0)).all() and (ds.R >= 0).all()


def test_rhs_broadcasts_per_batch_parameter_tensors():
    damping = torch.tensor([0.1, 0.3, 0.7], dtype=torch.float64)
    p = DampedPendulum(damping=damping)
    x = torch.rand(5, 3, 2, dtype=torch.float64)  # (member, trajectory, state)
    out = p.rhs(0.0, x)
    for j in range(3):
        ref = DampedPendulum(damping=float(damping[j])).rhs(0.0, x[:, j])
        assert torch.allclose(out[:, j], ref)
    rlc = RLCCircuit(R=torch.tensor([0.1, 0.2]), voltage=np.array([0.0, 1.0]))
    y = torch.rand(2, 2, dtype=torch.float64)
    ref = torch.stack([RLCCircuit(R=r, voltage=v).rhs(0.0, y[k])
                       for k, (r, v) in enumerate([(0.1, 0.0), (0.2, 1.0)])])
    assert torch.allclose(rlc.rhs(0.0, y), ref)


def test_jacobians_match_finite_differences():
    for system in (DampedPendulum(omega0=1.3, damping=0.2), RLCCircuit(R=0.3, L=0.7, C=1.1)):
        x = torch.tensor([[0.4, -0.2], [1.2, 0.5]], dtype=torch.float64)
        jac = system.jacobian(x)
        eps = 1e-6
        for col, e in enumerate(torch.eye(2, dtype=torch.float64)):
            fd = (system.rhs(0, x + eps * e) - system.rhs(0, x - eps * e)) / (2 * eps)
            assert torch.allclose(jac[..., col], fd, atol=1e-8)
