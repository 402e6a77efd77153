"""Cross-check :class:`KolmogorovFlow` against KolSol (Kelshaw, magrilab/kolsol).

KolSol solves the same non-dimensional problem in velocity form,
``u_t + u.grad u = -grad p + Re^-1 lap u + sin(n_f y) x_hat`` on ``[0, 2pi)^2``,
as a Fourier-Galerkin system on the modes ``|k_x|, |k_y| <= nk`` with products
dealiased by padding to ``4 nk + 1`` points (3/2 rule). Our 2/3-rule truncation
keeps ``|k| < N/3``: with ``N = 26`` that is exactly ``|k| <= 8``, so ``nk = 8`` gives
the same Galerkin system (the curl of KolSol's projected momentum equation is
our projected vorticity equation) and the right-hand sides agree to round-off.

Setup differences, handled below:

* KolSol's state is unnormalised, fftshifted ``fftn`` coefficients of ``(u, v)`` on
  its own odd grid of ``2 nk + 1`` points, array axes ``(x, y)``; ours is vorticity
  on an ``N x N`` grid, axes ``(y, x)``. We convert through Fourier coefficients.
* KolSol's two back-ends disagree on the sign of ``vorticity``: the numpy one
  returns ``dv/dx - du/dy`` (ours), the torch one ``du/dy - dv/dx``.
* KolSol carries a mean flow ``u_hat(k=0)``, which it conserves; the vorticity form
  has none, so runs start from zero mean velocity.
* KolSol 1.0.1's torch back-end computes its forcing from a float32 grid; the
  comparison gives it the float64 forcing of the numpy back-end.
* KolSol is stepped with its explicit RK4 (``kolsol.utils.integrate.rk4_step``),
  xdyn with ETDRK4: trajectories agree to the O(dt^4) stepper difference, which
  we measure (2.3e-7 absolute at dt=0.01 over t=2, 1.5e-8 at dt=0.005: ratio 16).
"""

import numpy as np
import pytest
import torch

kolsol_numpy = pytest.importorskip("kolsol.numpy.solver")
from kolsol.utils.integrate import rk4_step  # noqa: E402

from xdyn.systems.kolmogorov import KolmogorovFlow  # noqa: E402

pytestmark = [
    pytest.mark.bench,
    pytest.mark.usefixtures("one_torch_thread"),
    # KolSol's numpy vorticity uses np.cross on 2-vectors (deprecated in NumPy 2).
    pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning"),
]

NK, N, RE, NF = 8, 26, 34.0, 4


@pytest.fixture(scope="module")
def setup():
    flow = KolmogorovFlow(Re=RE, n_forcing=NF, N=N)
    solver = kolsol_numpy.KolSol(nk=NK, nf=NF, re=RE, ndim=2)
    w0 = flow.as_tensor(flow.random_initial_state(1, 0, rms=2.0))[0]
    w0 = flow.forecast(w0, 0.02, 50)  # off the initial condition, onto the model's modes
    return flow, solver, w0


def _to_kolsol(flow, w):
    ng, c = 2 * NK + 1, N // 2
    out = []
    for field in flow.velocity(w.reshape(N, N)):
        hat = np.fft.fftshift(np.fft.fft2(field.numpy(), norm="forward"))  # axes (ky, kx)
        out.append(ng**2 * hat[c - NK : c + NK + 1, c - NK : c + NK + 1].T)
    return np.stack(out, axis=-1)


def _from_kolsol(u_hat):
    ng, c = 2 * NK + 1, N // 2
    k = np.arange(-NK, NK + 1)
    w_hat = (1j * k[:, None] * u_hat[..., 1] - 1j * k[None, :] * u_hat[..., 0]) / ng**2
    full = np.zeros((N, N), dtype=complex)
    full[c - NK : c + NK + 1, c - NK : c + NK + 1] = w_hat.T
    return torch.as_tensor(np.fft.ifft2(np.fft.ifftshift(full), norm="forward").real.reshape(-1))


def _our_vorticity_hat(flow, w):
    """Our vorticity as KolSol-layout coefficients (axes (kx, ky), unnormalised)."""
    ng, c = 2 * NK + 1, N // 2
    hat = np.fft.fftshift(np.fft.fft2(w.reshape(N, N).numpy(), norm="forward"))
    return ng**2 * hat[c - NK : c + NK + 1, c - NK : c + NK + 1].T


def test_conversion_and_vorticity_sign(setup):
    flow, solver, w0 = setup
    u_hat = _to_kolsol(flow, w0)
    assert torch.allclose(_from_kolsol(u_hat), w0, atol=1e-13)
    assert abs(u_hat[NK, NK]).max() < 1e-12  # zero mean flow
    ours = _our_vorticity_hat(flow, w0)
    scale = abs(ours).max()
    # KolSol's numpy back-end returns dv/dx - du/dy (ours), its torch back-end du/dy - dv/dx.
    assert abs(solver.vorticity(u_hat) - ours).max() < 1e-12 * scale
    torch_solver = pytest.importorskip("kolsol.torch.solver").KolSol(nk=NK, nf=NF, re=RE, ndim=2)
    torch_w = torch_solver.vorticity(torch.as_tensor(u_hat)).numpy()
    assert abs(torch_w + ours).max() < 1e-12 * scale
    assert solver.dissip(u_hat) == pytest.approx(float(flow.dissipation(w0)), rel=1e-12)


def test_right_hand_sides_agree_to_round_off(setup):
    flow, solver, w0 = setup
    ours = flow.rhs(0.0, w0)
    u_hat = _to_kolsol(flow, w0)
    theirs = _from_kolsol(solver.dynamics(u_hat))
    assert float((ours - theirs).abs().max()) < 1e-12 * float(ours.abs().max())
    torch_solver = pytest.importorskip("kolsol.torch.solver").KolSol(nk=NK, nf=NF, re=RE, ndim=2)
    # KolSol 1.0.1's torch back-end evaluates its forcing on a float32 grid
    # (torch.linspace's default dtype): a 7e-5 error in f_hat. Use the float64 forcing.
    torch_solver.f = torch.as_tensor(solver.f)
    theirs = _from_kolsol(torch_solver.dynamics(torch.as_tensor(u_hat)).numpy())
    assert float((ours - theirs).abs().max()) < 1e-12 * float(ours.abs().max())


def test_short_trajectories_agree_to_time_stepping_order(setup):
    flow, solver, w0 = setup
    errors = []
    for dt in (0.01, 0.005):
        n_steps = int(round(2.0 / dt))
        step = rk4_step(solver.dynamics, dt)
        u_hat = _to_kolsol(flow, w0)
        for _ in range(n_steps):
            u_hat = u_hat + step(u_hat)
        ours = flow.forecast(w0, dt, n_steps)
        errors.append(float((_from_kolsol(u_hat) - ours).abs().max()) / float(ours.abs().max()))
    # measured relative 3e-8 and 1.9e-9 (ratio 16: both steppers are 4th order)
    assert errors[0] < 1e-6
    assert errors[0] / errors[1] > 8
