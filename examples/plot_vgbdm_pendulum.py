"""
Grey-box forecasting of damped pendulums with VGB-DM
====================================================

:class:`xdyn.forecast.VGBDM` (variational grey-box dynamic matching) learns a
vector field ``f_phys(x; omega0) + f_nn(x, z)``: the frictionless pendulum,
whose frequency ``omega0`` differs per pendulum and is inferred by an encoder
from an observed episode, plus a neural correction that must learn the
missing friction. Training is simulation-free (flow matching between
consecutive states); the forecast is an ensemble drawn from the latent
posterior.

This example trains a small model for a few seconds and compares it on new
pendulums with the incomplete physics alone. ``xdyn run pendulum-vgbdm``
adds the neural ODE baseline and the reference sizes.
"""

# %%
# Pendulums with their own frequency and friction
# -----------------------------------------------
import matplotlib.pyplot as plt
import numpy as np

from xdyn.forecast import VGBDM
from xdyn.systems import DampedPendulum


def pendulums(n, seed):
    return DampedPendulum().simulate(
        n_trajectories=n, t_span=4.0, dt=0.02, save_every=5, random_state=seed,
        parameter_ranges={"omega0": (1.2, 1.8), "damping": (0.5, 1.0)})


train, test = pendulums(48, 0), pendulums(8, 1)

# %%
# Fit the grey-box model and the physics alone
# --------------------------------------------
# The first 10 states of each test pendulum are the observed episode; the
# forecast runs over the remaining 3 s.
E = 10
common = dict(len_episode=E, encoder="mlp", encoder_hidden=16, hidden=32, batch_size=16,
              max_epochs=40, lr=1e-2, beta_p=1e-3, random_state=0)
models = {"physics only": VGBDM("pendulum", correction=False, z_dim=0, **common),
          "VGB-DM": VGBDM("pendulum", z_dim=2, n_members=8, **common)}
context = test.isel(time=slice(0, E))
leads = np.round(test.time.values[E:] - test.time.values[E - 1], 10)
forecasts = {name: m.fit(train).predict(context, leads).isel(time=-1)
             for name, m in models.items()}
for name, fc in forecasts.items():
    rmse = float(np.sqrt(((fc.theta.mean("member").values - test.theta.values[:, E:]) ** 2).mean()))
    omega0 = models[name].infer_parameters(context).omega0
    err = float(np.abs(omega0 / test.omega0 - 1).mean())
    print(f"{name:>12}: angle RMSE {rmse:.3f} rad, omega0 error {100 * err:.1f}%")

# %%
# The episode's own evidence
# --------------------------
# The encoder's ``omega0`` is a regression learnt from 48 pendulums.
# ``refine_steps`` moves each pendulum's estimate to the MAP given its own
# episode (the training objective, a few Newton steps), without refitting.
vgbdm = models["VGB-DM"].set_params(refine_steps=50)
err = float(np.abs(vgbdm.infer_parameters(context).omega0 / test.omega0 - 1).mean())
print(f"VGB-DM, refined: omega0 error {100 * err:.1f}%")

# %%
# One test pendulum
# -----------------
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(test.time, test.theta.isel(trajectory=0), "k", lw=2, label="truth")
t_fc = test.time.values[E - 1] + leads
for name, fc in forecasts.items():
    theta = fc.theta.isel(trajectory=0)
    line, = ax.plot(t_fc, theta.mean("member"), label=name)
    if theta.sizes["member"] > 1:
        ax.fill_between(t_fc, theta.min("member"), theta.max("member"),
                        color=line.get_color(), alpha=0.25)
ax.axvspan(0, test.time.values[E - 1], color="0.9", label="observed episode")
ax.set_xlabel("time (s)")
ax.set_ylabel("angle (rad)")
ax.legend()
plt.show()
