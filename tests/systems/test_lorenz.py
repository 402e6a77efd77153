"""Lorenz-63, Lorenz-96 and two-scale Lorenz-96: integrator order, Jacobians, batching, physics."""

import numpy as np
import pytest
import torch

from xdyn.systems.integrators import rk4_step
from xdyn.systems.lorenz63 import Lorenz63
from xdyn.systems.lorenz96 import Lorenz96
from xdyn.systems.two_scale_lorenz96 import TwoScaleLorenz96


def _on_attractor(system, n, dt, t_spin, seed):
    x = system.as_tensor(system.random_initial_state(n, np.random.RandomState(seed)))
    with torch.no_grad():
        return system.forecast(x, dt, int(round(t_spin / dt)))


def _central_difference(f, x, eps=1e-6):
    """Jacobian of ``f`` at the 1-D ``x`` by central differences, ``(n, n)``."""
    n = x.shape[-1]
    cols = []
    for i in range(n):
        e = torch.zeros_like(x)
        e[i] = eps
        cols.append((f(x + e) - f(x - e)) / (2 * eps))
    return torch.stack(cols, dim=-1)


# --- RK4 ----------------------------------------------------------------------


def test_rk4_is_fourth_order_on_lorenz63():
    # An ensemble of 16 states on the attractor (one batched run) smooths out the
    # trajectory-dependent error constant; successive differences x_dt - x_{dt/2}
    # scale like dt^4 as the error does.
    model = Lorenz63()
    x0 = _on_attractor(model, 16, 0.01, 5.0, seed=1)
    t_end = 0.5
    dts = np.array([0.01, 0.005, 0.0025, 0.00125, 0.000625])
    with torch.no_grad():
        finals = [model.forecast(x0, dt, int(round(t_end / dt))) for dt in dts]
    differences = np.array([float((finals[i] - finals[i + 1]).norm()) for i in range(len(dts) - 1)])
    slope = np.polyfit(np.log(dts[:-1]), np.log(differences), 1)[0]
    assert 3.7 <= slope <= 4.3, (slope, differences)
    # and RK4 at dt=0.01 is accurate to ~1e-5 over half a time unit
    assert float((finals[0] - finals[-1]).abs().max()) < 1e-4


def test_rk4_step_matches_exponential_on_linear_decay():
    x = torch.ones(3, dtype=torch.float64)
    out = rk4_step(lambda t, z: -2.0 * z, 0.0, x, 0.1)
    exact = np.exp(-0.2)
    taylor4 = 1 - 0.2 + 0.2**2 / 2 - 0.2**3 / 6 + 0.2**4 / 24
    np.testing.assert_allclose(out.numpy(), taylor4, rtol=1e-14)
    assert abs(float(out[0]) - exact) < 1e-4


# --- Jacobians ----------------------------------------------------------------


@pytest.mark.parametrize(
    "system, dt",
    [
        (Lorenz63(), 0.01),
        (Lorenz96(n=10), 0.05),
        (TwoScaleLorenz96(K=4, J=3), 0.005),
    ],
    ids=["lorenz63", "lorenz96", "two_scale"],
)
def test_jacobians_match_central_differences(system, dt):
    x = _on_attractor(system, 2, dt, 1.0, seed=1)
    jac = system.jacobian(x)
    step_jac = system.step_jacobian(x, dt)
    n = system.n_state
    assert jac.shape == (2, n, n) and step_jac.shape == (2, n, n)
    for b in range(2):
        fd = _central_difference(lambda z: system.rhs(0.0, z), x[b])
        np.testing.assert_allclose(jac[b].numpy(), fd.numpy(), rtol=1e-6, atol=1e-6 * float(fd.abs().max()))
        fd_step = _central_difference(lambda z: system.step(z, dt), x[b])
        np.testing.assert_allclose(
            step_jac[b].numpy(), fd_step.numpy(), rtol=1e-6, atol=1e-6 * float(fd_step.abs().max())
        )
    # one step's Jacobian is I + dt * J to first order
    np.testing.assert_allclose(
        step_jac[0].numpy(), np.eye(n) + dt * jac[0].numpy(), atol=5 * dt**2 * float(jac[0].abs().max()) ** 2
    )


def test_lorenz63_jacobian_is_the_analytic_one():
    model = Lorenz63(sigma=10.0, rho=28.0, beta=8 / 3)
    x, y, z = 1.5, -2.0, 20.0
    jac = model.jacobian(torch.tensor([x, y, z], dtype=torch.float64)).numpy()
    expected = np.array([[-10.0, 10.0, 0.0], [28.0 - z, -1.0, -x], [y, x, -8 / 3]])
    np.testing.assert_allclose(jac, expected, rtol=1e-14)


# --- batching -----------------------------------------------------------------


def test_lorenz96_ensemble_steps_in_one_batched_call():
    model = Lorenz96(n=40)
    ens = model.as_tensor(model.random_initial_state(1000, np.random.RandomState(3)))
    calls = []
    rhs = model.rhs

    def counting_rhs(t, x):
        calls.append(tuple(x.shape))
        return rhs(t, x)

    model.rhs = counting_rhs  # instance attribute shadows the method
    out = model.step(ens, 0.05)
    assert calls == [(1000, 40)] * 4  # one RK4 step = 4 batched rhs calls, no per-member loop
    calls.clear()
    model.forecast(ens, 0.05, 3)
    assert len(calls) == 12
    del model.rhs
    for member in (0, 17, 512, 999):
        single = model.step(ens[member], 0.05)
        np.testing.assert_allclose(out[member].numpy(), single.numpy(), rtol=0, atol=1e-13)
    # members evolve independently: perturbing one leaves the others unchanged
    perturbed = ens.clone()
    perturbed[5] += 1.0
    out2 = model.step(perturbed, 0.05)
    assert torch.equal(out2[:5], out[:5]) and torch.equal(out2[6:], out[6:])
    assert not torch.allclose(out2[5], out[5])


def test_step_accepts_several_leading_dims():
    model = TwoScaleLorenz96(K=4, J=3)
    x = model.as_tensor(model.random_initial_state(6, np.random.RandomState(0)))
    out = model.step(x.reshape(2, 3, -1), 0.005)
    np.testing.assert_allclose(out.reshape(6, -1).numpy(), model.step(x, 0.005).numpy(), rtol=1e-15)


# --- Lorenz-96 ------------------------------------------------------------------


def test_lorenz96_rhs_matches_the_equation_site_by_site():
    model = Lorenz96(n=6, F=8.0)
    x = np.random.RandomState(0).normal(size=6)
    expected = [(x[(k + 1) % 6] - x[k - 2]) * x[k - 1] - x[k] + 8.0 for k in range(6)]
    got = model.rhs(0.0, torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-14)


def test_lorenz96_fixed_point_is_the_forcing():
    model = Lorenz96(n=40, F=8.0)
    x = torch.full((40,), 8.0, dtype=torch.float64)
    np.testing.assert_allclose(model.rhs(0.0, x).numpy(), 0.0, atol=1e-14)


# --- two-scale Lorenz-96 ---------------------------------------------------------


def _two_scale_reference(X, Y, F, h, b, c):
    """Lorenz (1996) eqs. (3)-(4) written out with explicit indices; Y is (K, J)."""
    K, J = Y.shape
    ring = Y.reshape(-1)  # one ring of length J*K: Y[J-1, k] is followed by Y[0, k+1]
    n = ring.size
    dX = np.empty(K)
    for k in range(K):
        dX[k] = X[k - 1] * (X[(k + 1) % K] - X[k - 2]) - X[k] + F - h * c / b * Y[k].sum()
    dY = np.empty(n)
    for i in range(n):
        k = i // J
        advection = -c * b * ring[(i + 1) % n] * (ring[(i + 2) % n] - ring[i - 1])
        dY[i] = advection - c * ring[i] + h * c / b * X[k]
    return dX, dY.reshape(K, J)


def test_two_scale_rhs_matches_explicit_equations_including_ring_wrap():
    K, J, F, h, b, c = 4, 3, 10.0, 1.0, 10.0, 10.0
    model = TwoScaleLorenz96(K=K, J=J, F=F, h=h, b=b, c=c)
    rng = np.random.RandomState(1)
    X, Y = rng.normal(scale=3.0, size=K), rng.normal(scale=0.5, size=(K, J))
    state = torch.tensor(np.concatenate([X, Y.ravel()]))
    dX_ref, dY_ref = _two_scale_reference(X, Y, F, h, b, c)
    ds = model.from_state(model.rhs(0.0, state))
    np.testing.assert_allclose(ds.x.values, dX_ref, rtol=1e-13)
    np.testing.assert_allclose(ds.y.values, dY_ref, rtol=1e-13)
    # the last fast sub-site of site k couples to the first ones of site k+1, not of site k
    Y2 = Y.copy()
    Y2[1, 0] += 1.0
    state2 = torch.tensor(np.concatenate([X, Y2.ravel()]))
    d_dy = model.from_state(model.rhs(0.0, state2) - model.rhs(0.0, state)).y.values
    # Y_{0,1} is the j+1 neighbour of Y_{J-1,0} and the j+2 neighbour of Y_{J-2,0} ...
    assert d_dy[0, J - 1] != 0 and d_dy[0, J - 2] != 0
    # ... and not the j-1 neighbour of Y_{J-1,1}, as a ring per slow site would make it
    assert d_dy[1, J - 1] == 0


def test_two_scale_energy_budget_closes_so_coupling_signs_cancel():
    # Advection conserves sum X^2/2 + sum Y^2/2 and the two coupling terms cancel,
    # so d/dt E = -sum X^2 + F sum X - c sum Y^2 exactly.
    model = TwoScaleLorenz96(K=8, J=5, F=10.0, h=1.0, b=10.0, c=4.0)
    s = model.as_tensor(np.random.RandomState(2).normal(size=(5, model.n_state)))
    d = model.rhs(0.0, s)
    X, Y = s[:, :8], s[:, 8:]
    dE = (s * d).sum(-1)
    expected = -(X**2).sum(-1) + 10.0 * X.sum(-1) - 4.0 * (Y**2).sum(-1)
    np.testing.assert_allclose(dE.numpy(), expected.numpy(), rtol=1e-12)


def test_two_scale_without_coupling_slow_part_is_lorenz96():
    two = TwoScaleLorenz96(K=12, J=4, F=8.0, h=0.0)
    single = Lorenz96(n=12, F=8.0)
    x0 = two.random_initial_state(3, np.random.RandomState(4))
    a = two.simulate(n_steps=400, dt=0.005, x0=x0)
    b = single.simulate(n_steps=400, dt=0.005, x0=x0[:, :12])
    # Lorenz-96 integrates tiny states in numpy, the two-scale model in torch:
    # equal up to round-off amplified by 2 time units of chaos
    np.testing.assert_allclose(a.x.values, b.x.values, rtol=1e-9, atol=1e-9)
    # with coupling the slow variables do feel the fast ones
    c = TwoScaleLorenz96(K=12, J=4, F=8.0, h=1.0).simulate(n_steps=400, dt=0.005, x0=x0)
    assert float(abs(c.x - b.x).isel(time=-1).max()) > 1e-2


def test_two_scale_climate_is_sane():
    model = TwoScaleLorenz96.preset("lorenz1996")
    ds = model.simulate(n_trajectories=4, t_span=5.0, burn_in=3.0, save_every=10, random_state=0)
    X, Y = ds.x, ds.y
    # statistically steady energy budget: F <sum X> = <sum X^2> + c <sum Y^2> (within sampling error)
    source = 10.0 * float(X.sum("k").mean())
    sink = float((X**2).sum("k").mean()) + 10.0 * float((Y**2).sum(("k", "j")).mean())
    assert abs(source - sink) / source < 0.03, (source, sink)
    # slow variables: mean ~2.4, std ~3.5; fast ones an order of magnitude
    # smaller (std ~0.23) and driven with the sign of the slow site above them
    # (+hc/b X_k), so strongly correlated with it (~0.9)
    assert 2.0 < float(X.mean()) < 3.0 and 3.0 < float(X.std()) < 4.0
    assert 0.1 < float(Y.std()) < 0.4 and float(Y.mean()) > 0
    corr = np.corrcoef(X.values.ravel(), Y.mean("j").values.ravel())[0, 1]
    assert corr > 0.7, corr


def test_two_scale_presets_and_dataset_layout():
    model = TwoScaleLorenz96.preset("arnold2013", c=4.0)
    assert (model.K, model.J, model.F, model.h, model.b, model.c) == (8, 32, 20.0, 1.0, 10.0, 4.0)
    assert TwoScaleLorenz96.preset_settings("lorenz1996") == {"dt": 0.005}
    ds = TwoScaleLorenz96(K=5, J=3).simulate(n_steps=4, random_state=0)
    assert ds.x.dims == ("time", "k") and ds.y.dims == ("time", "k", "j")
    assert ds.y.shape == (5, 5, 3)
    assert list(ds.j.values) == [0, 1, 2] and ds.x.attrs["units"] == "1"
    assert "fast" in ds.y.attrs["long_name"]
    assert ds.attrs["dt"] == TwoScaleLorenz96.default_dt == 0.005
