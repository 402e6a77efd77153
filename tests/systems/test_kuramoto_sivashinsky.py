"""Kuramoto-Sivashinsky: ETDRK4 accuracy and order, invariants, Jacobians, autograd, batching."""

import numpy as np
import pytest
import torch

from xdyn.systems.integrators import rk4_step
from xdyn.systems.kuramoto_sivashinsky import KuramotoSivashinsky


@pytest.fixture(scope="module")
def chaotic_state():
    """A state on the Kassam-Trefethen attractor (100 time units of spin-up)."""
    model = KuramotoSivashinsky()
    u = model.as_tensor(model.random_initial_state(1, np.random.RandomState(0)))
    with torch.no_grad():
        return model.forecast(u, 0.25, 400)[0]


def _central_difference(f, x, eps=1e-6):
    cols = []
    for i in range(x.shape[-1]):
        e = torch.zeros_like(x)
        e[i] = eps
        cols.append((f(x + e) - f(x - e)) / (2 * eps))
    return torch.stack(cols, dim=-1)


def test_etdrk4_at_default_dt_matches_small_step_references(chaotic_state):
    model = KuramotoSivashinsky()
    t_end = 5.0
    with torch.no_grad():
        coarse = model.forecast(chaotic_state, 0.25, 20)
        fine = model.forecast(chaotic_state, 0.25 / 64, 1280)
        # an independent scheme on the same semi-discrete ODE: RK4 on rhs, dt
        # below its stability limit ~2.8 / max|k^2 - k^4| = 0.0116
        u = chaotic_state
        for _ in range(int(t_end / 0.0025)):
            u = rk4_step(model.rhs, 0.0, u, 0.0025)
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    assert rel(fine, u) < 1e-9  # the two references agree: rhs and step solve the same ODE
    assert rel(coarse, fine) < 5e-4  # Kassam & Trefethen's dt = 1/4 is accurate
    assert rel(coarse, fine) > 1e-7  # ... but not exact (the comparison has teeth)


def test_etdrk4_is_fourth_order_where_the_linear_part_is_not_stiff():
    # N=32 on L=32 pi keeps |k| <= 1, so |dt L(k)| is O(dt): classical order 4.
    model = KuramotoSivashinsky(N=32)
    u0 = model.as_tensor(model.random_initial_state(4, np.random.RandomState(0)))
    dts = np.array([0.5, 0.25, 0.125, 0.0625, 0.03125])
    with torch.no_grad():
        finals = [model.forecast(u0, dt, int(round(4.0 / dt))) for dt in dts]
    diffs = np.array([float((finals[i] - finals[i + 1]).norm()) for i in range(len(dts) - 1)])
    slope = np.polyfit(np.log(dts[:-1]), np.log(diffs), 1)[0]
    assert 3.7 <= slope <= 4.3, (slope, diffs)


def test_etdrk4_order_on_the_stiff_problem_tends_to_four(chaotic_state):
    # On the full N=128 problem Cox-Matthews ETDRK4 shows the stiff order
    # reduction analysed by Hochbruck & Ostermann (2005): ~3 at dt ~ 0.1, rising
    # to 4 as dt * max|L| shrinks. Local orders over successive halvings:
    model = KuramotoSivashinsky()
    dts = np.array([1 / 16, 1 / 32, 1 / 64, 1 / 128, 1 / 256])
    with torch.no_grad():
        finals = [model.forecast(chaotic_state, dt, int(round(1.0 / dt))) for dt in dts]
    diffs = np.array([float((finals[i] - finals[i + 1]).norm()) for i in range(len(dts) - 1)])
    orders = np.diff(np.log(diffs)) / np.log(0.5)
    assert np.all(np.diff(orders) > 0), orders  # increasing towards 4
    assert 3.0 < orders[0] and 3.6 < orders[-1] < 4.2, orders


def test_spatial_mean_is_conserved_and_energy_stays_bounded():
    model = KuramotoSivashinsky()
    x0 = model.random_initial_state(2, np.random.RandomState(1))
    x0 += np.array([[0.0], [0.3]])  # a non-zero mean must be kept too
    ds = model.simulate(t_span=500.0, x0=x0, save_every=4)
    mean = ds.u.mean("x")
    np.testing.assert_allclose((mean - mean.isel(time=0)).values, 0.0, atol=1e-10)
    np.testing.assert_allclose(mean.isel(time=-1).values, [0.0, 0.3], atol=1e-10)
    energy = (ds.u**2).mean("x").isel(time=slice(200, None))  # after 100 time units
    assert float(abs(ds.u).max()) < 6.0
    # on the L = 32 pi attractor <u^2> ~ 1.7 (about 1.1 .. 2.4 instantaneously)
    assert 1.2 < float((energy - ds.u.mean("x") ** 2).mean()) < 2.4


def test_rhs_matches_the_pde_on_a_single_mode():
    L, N = 22.0, 64
    model = KuramotoSivashinsky(L=L, N=N)
    x = L * np.arange(N) / N
    q = 2 * np.pi * 3 / L
    u = 0.7 * np.sin(q * x)
    ux, uxx, uxxxx = 0.7 * q * np.cos(q * x), -(q**2) * u, q**4 * u
    expected = -u * ux - uxx - uxxxx
    # round-off in the Nyquist coefficient is amplified by its k^4 ~ 7e3
    np.testing.assert_allclose(model.rhs(0.0, torch.tensor(u)).numpy(), expected, atol=1e-11)


def test_small_modes_grow_at_the_linear_rate():
    L, N, dt = 22.0, 64, 0.25
    model = KuramotoSivashinsky(L=L, N=N)
    x = L * np.arange(N) / N
    for m in (1, 2, 5):
        q = 2 * np.pi * m / L
        u = 1e-9 * np.cos(q * x)
        out = model.step(torch.tensor(u), dt).numpy()
        np.testing.assert_allclose(out, np.exp(dt * (q**2 - q**4)) * u, rtol=1e-7, atol=1e-20)


@pytest.mark.parametrize("dt", [0.05, 0.25])
def test_jacobians_match_central_differences(dt):
    model = KuramotoSivashinsky(L=22.0, N=16)
    u = model.as_tensor(model.random_initial_state(2, np.random.RandomState(3)))
    jac, step_jac = model.jacobian(u), model.step_jacobian(u, dt)
    for b in range(2):
        fd = _central_difference(lambda z: model.rhs(0.0, z), u[b])
        np.testing.assert_allclose(jac[b].numpy(), fd.numpy(), atol=1e-6 * float(fd.abs().max()))
        fd_step = _central_difference(lambda z: model.step(z, dt), u[b])
        scale = float(fd_step.abs().max())
        np.testing.assert_allclose(step_jac[b].numpy(), fd_step.numpy(), atol=1e-7 * scale)


def test_autograd_flows_through_several_steps():
    model = KuramotoSivashinsky(L=22.0, N=32)
    u0 = model.as_tensor(model.random_initial_state(1, np.random.RandomState(4))[0])
    direction = torch.tensor(np.random.RandomState(5).normal(size=32))

    def loss(u):
        return (model.forecast(u, 0.25, 8) ** 2).sum()

    u = u0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(u), u)
    eps = 1e-6
    with torch.no_grad():
        fd = (loss(u0 + eps * direction) - loss(u0 - eps * direction)) / (2 * eps)
    assert float(grad @ direction) == pytest.approx(float(fd), rel=1e-6)


def test_step_is_batched_over_leading_dims():
    model = KuramotoSivashinsky(L=22.0, N=32)
    u = model.as_tensor(model.random_initial_state(6, np.random.RandomState(6)))
    out = model.step(u.reshape(2, 3, 32), 0.25)
    for i in range(6):
        np.testing.assert_allclose(out.reshape(6, 32)[i].numpy(), model.step(u[i], 0.25).numpy(), atol=1e-14)


def test_coefficients_are_cached_per_dt_dtype_and_size():
    model = KuramotoSivashinsky(L=22.0, N=32)
    u = model.as_tensor(model.random_initial_state(1, np.random.RandomState(0)))
    model.step(u, 0.25)
    first = model._coefficients(0.25)
    assert model._coefficients(0.25) is first
    assert model._coefficients(0.1) is not first
    model.set_params(N=64)  # a changed grid must not reuse stale coefficients
    assert model._coefficients(0.25)[0].shape == (33,)
    model32 = KuramotoSivashinsky(L=22.0, N=32, dtype="float32")
    out32 = model32.forecast(model32.as_tensor(u), 0.25, 4)
    assert out32.dtype == torch.float32
    out64 = KuramotoSivashinsky(L=22.0, N=32).forecast(u, 0.25, 4)
    np.testing.assert_allclose(out32.numpy(), out64.numpy(), atol=1e-4)


def test_presets_coords_and_validation():
    model = KuramotoSivashinsky.preset("kassam2005")
    assert model.N == 128 and model.L == pytest.approx(32 * np.pi)
    assert KuramotoSivashinsky.preset_settings("kassam2005") == {"dt": 0.25}
    assert KuramotoSivashinsky.preset("cvitanovic2010").L == 22.0
    ds = KuramotoSivashinsky(L=22.0, N=64).simulate(n_steps=3, random_state=0)
    assert ds.u.dims == ("time", "x") and ds.attrs["integrator"] == "etdrk4" and ds.attrs["dt"] == 0.25
    np.testing.assert_allclose(ds.x.values, 22.0 * np.arange(64) / 64)
    assert ds.x.attrs["units"] == "1" and ds.u.attrs["units"] == "1"
    np.testing.assert_allclose(ds.u.isel(time=0).mean().item(), 0.0, atol=1e-14)
    with pytest.raises(ValueError, match="N must be an even integer"):
        KuramotoSivashinsky(N=31).step(torch.zeros(31, dtype=torch.float64), 0.25)
    with pytest.raises(ValueError, match="unknown preset"):
        KuramotoSivashinsky.preset("pathak")
