"""
A latent reduced-order model: stochastic rollouts against persistence
=====================================================================

:class:`xdyn.rom.LatentTransformerROM` is the resolved-scale model of Zighed
et al. (2025, arXiv:2510.24583): a beta-VAE encodes each snapshot into a few
latent coordinates, and a transformer reads a window of ``seq_len`` of them
and predicts the next ``pred_horizon`` as Gaussians, so that
``predict(..., n_samples=k)`` draws ``k`` stochastic rollouts along a
``member`` dim.

The data here are a toy that runs in seconds: incompressible velocity fields
``(u, v)`` of a wave travelling along ``x`` over a steady shear, each
trajectory with its own speed, amplitude and phase. The speed is not in any
one snapshot: the transformer has to read it from the window. A POD front end
(``reducer=POD(4)``) gives the VAE the few coefficients that span the fields,
and forecasts are anchored on the last observed snapshot (``anchored=True``:
the decoder's own error does not floor the first leads). The model is
compared with persistence, the forecast to beat at short leads. The
``kolmogorov-closure`` experiment (``xdyn run kolmogorov-closure --quick``)
runs the same model on the large scales of Kolmogorov flow, with leads in
Lyapunov times and stochastic closures of the small scales.
"""

# %%
# Travelling waves of random speeds
# ---------------------------------
# The stream function ``a sin(x - c t + phi) cos(y) + 0.3 cos(2 y)`` gives
# ``u = d(psi)/dy`` and ``v = -d(psi)/dx``; 8 trajectories train the model, 4
# are held out.
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from xdyn.metrics import relative_l2
from xdyn.rom import POD, LatentTransformerROM

rng = np.random.default_rng(0)
n_grid, n_time, dt = 16, 80, 0.25
grid = 2 * np.pi * np.arange(n_grid) / n_grid


def waves(n_traj):
    c, a, phi = (rng.uniform(lo, hi, (n_traj, 1, 1, 1))
                 for lo, hi in ((0.3, 0.9), (0.8, 1.2), (0, 2 * np.pi)))
    t = dt * np.arange(n_time)[None, :, None, None]
    x, y = grid[None, None, None, :], grid[None, None, :, None]
    phase = x - c * t + phi
    dims = ("trajectory", "time", "y", "x")
    return xr.Dataset(
        {"u": (dims, -a * np.sin(phase) * np.sin(y) - 0.6 * np.sin(2 * y)),
         "v": (dims, -a * np.cos(phase) * np.cos(y))},
        coords={"time": dt * np.arange(n_time), "y": grid, "x": grid})


train, test = waves(8), waves(4)
print(dict(train.sizes))

# %%
# Train the latent ROM
# --------------------
rom = LatentTransformerROM(n_latent=4, seq_len=6, pred_horizon=4, hidden=32,
                           architecture="mlp", d_model=16, n_heads=4, n_layers=2,
                           reducer=POD(4), anchored=True, max_epochs=25, lr=3e-3,
                           batch_size=16, random_state=0)
rom.fit(train)
print(f"trained {len(rom.net_.history)} epochs")

# %%
# Forecast the held-out trajectories
# ----------------------------------
# Each forecast reads the ``seq_len`` snapshots before ``start``: the mean path,
# 10 stochastic rollouts, and persistence of the last snapshot.
start, n_leads = 40, 24
context = test.isel(time=slice(start - rom.seq_len, start))
truth = test.isel(time=slice(start, start + n_leads))
mean = rom.predict(context, n_steps=n_leads)
members = rom.predict(context, n_steps=n_leads, n_samples=10)
persistence = context.isel(time=[-1] * n_leads).assign_coords(time=truth.time)


def error(forecast):
    return relative_l2(forecast.to_dataarray("variable"), truth.to_dataarray("variable"),
                       dim=("variable", "trajectory", "y", "x"))


errors = {"latent ROM (mean path)": error(mean),
          "latent ROM (ensemble mean)": error(members.mean("member")),
          "persistence": error(persistence)}
for name, e in errors.items():
    print(f"{name:>27}: rel-L2 at the first lead {float(e[0]):.3f}, mean {float(e.mean()):.3f}")

# %%
# Error against lead time, and one forecast
# -----------------------------------------
# The spread of the rollouts (dotted) grows with the lead, as the error does.
lead_time = truth.time - context.time[-1]
fig, axes = plt.subplots(1, 4, figsize=(15, 3.4),
                         gridspec_kw={"width_ratios": [1.6, 1, 1, 1]})
for name, e in errors.items():
    axes[0].plot(lead_time, e, label=name)
spread = members.to_dataarray("variable").std("member")
norm = np.sqrt((truth.to_dataarray("variable") ** 2).mean())
axes[0].plot(lead_time, np.sqrt((spread**2).mean(("variable", "trajectory", "y", "x"))) / norm,
             "k:", label="ensemble spread")
axes[0].set_xlabel("lead time")
axes[0].set_ylabel("rel-L2")
axes[0].legend(fontsize=7)
lead = n_leads - 1
panels = {"truth": truth, "latent ROM, member 0": members.isel(member=0),
          "persistence": persistence}
for ax, (title, field) in zip(axes[1:], panels.items()):
    ax.imshow(field.v.isel(trajectory=0, time=lead), origin="lower", cmap="RdBu_r",
              vmin=-1.2, vmax=1.2)
    ax.set_title(f"{title}: v at lead {float(lead_time[lead]):.1f}", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()
