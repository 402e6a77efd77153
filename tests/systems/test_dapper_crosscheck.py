"""xdyn's Lorenz models against DAPPER's own implementations (the ``bench`` extra).

DAPPER integrates with the same classical RK4 (``dapper.mods.integration.rk4``),
so trajectories agree to round-off, amplified by the chaos over the run.
"""

import numpy as np
import pytest

pytest.importorskip("dapper")

from dapper.mods.integration import rk4  # noqa: E402

from xdyn.systems.lorenz63 import Lorenz63  # noqa: E402
from xdyn.systems.lorenz96 import Lorenz96  # noqa: E402
from xdyn.systems.two_scale_lorenz96 import TwoScaleLorenz96  # noqa: E402


def _dapper_trajectory(step, x0, dt, n_steps):
    out = [np.array(x0, dtype=float)]
    for i in range(n_steps):
        out.append(step(out[-1], i * dt, dt))
    return np.stack(out)


def test_lorenz96_trajectory_matches_dapper():
    import dapper.mods.Lorenz96 as dapper_l96

    assert dapper_l96.Force == 8.0
    model = Lorenz96(n=40, F=8.0)
    x0 = model.simulate(n_steps=1, dt=0.05, burn_in=10.0, random_state=0).x.isel(time=0).values
    ours = model.simulate(n_steps=100, dt=0.05, x0=x0).x.values
    theirs = _dapper_trajectory(dapper_l96.step, x0, 0.05, 100)
    assert ours.shape == theirs.shape == (101, 40)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)
    # the rhs itself agrees to the last bits
    np.testing.assert_allclose(
        model.rhs(0.0, model.as_tensor(x0)).numpy(), dapper_l96.dxdt(x0), rtol=1e-14, atol=1e-13
    )


def test_lorenz63_trajectory_matches_dapper():
    import dapper.mods.Lorenz63 as dapper_l63

    model = Lorenz63(sigma=dapper_l63.sig, rho=dapper_l63.rho, beta=dapper_l63.beta)
    x0 = dapper_l63.x0
    ours = model.simulate(n_steps=100, dt=0.01, x0=x0).to_array("component").transpose("time", ...).values
    theirs = _dapper_trajectory(dapper_l63.step, x0, 0.01, 100)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


def test_two_scale_lorenz96_matches_dapper_lorenz_uv():
    # DAPPER's LorenzUV uses the same conventions: state [U (nU), V (nU*J)] with
    # V one periodic ring, dV/dt = c/b * L96(b V) run "in reverse" (which is
    # -c b V_{j+1}(V_{j+2} - V_{j-1}) - c V_j) + hc/b U_k, and dU/dt coupled by
    # -hc/b sum_j V_{j,k}. So the flat states correspond one to one.
    from dapper.mods.LorenzUV import model_instance

    K, J, F, h, b, c = 6, 4, 10.0, 1.0, 10.0, 10.0
    dapper_model = model_instance(nU=K, J=J, F=F, h=h, b=b, c=c)
    model = TwoScaleLorenz96(K=K, J=J, F=F, h=h, b=b, c=c)
    x0 = model.simulate(n_steps=1, burn_in=2.0, random_state=1)
    x0 = model.to_state(x0.isel(time=0)).numpy()
    np.testing.assert_allclose(
        model.rhs(0.0, model.as_tensor(x0)).numpy(), dapper_model.dxdt(x0), rtol=1e-13, atol=1e-12
    )

    def dapper_step(x, t, dt):
        return rk4(lambda z, s: dapper_model.dxdt(z), x, t, dt)

    ours = model.to_state(model.simulate(n_steps=100, dt=0.005, x0=x0)).numpy()
    theirs = _dapper_trajectory(dapper_step, x0, 0.005, 100)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)
