"""
Kolmogorov flow: vorticity, energy spectrum and energy budget
=============================================================

Two-dimensional Kolmogorov flow (forced incompressible Navier-Stokes on a
periodic box, Chandler & Kerswell 2013) at Reynolds number 34 with forcing
wavenumber 4 on a 64 x 64 grid: chaotic, well beyond the first instability near
Re = 10. We spin the flow up from random vorticity, save a few snapshots with
the energy-budget diagnostics, and plot a vorticity map, its isotropic kinetic
energy spectrum and the kinetic energy through time.

The spin-up here is short so that the example runs in seconds; the preset
``KolmogorovFlow.preset("re34")`` records the longer burn-in (100 time units)
used for statistics.
"""

# %%
# Simulate
# --------
# The state is the vorticity on dims ``("y", "x")``; ``diagnostics=True`` adds
# the velocity ``u``, ``v`` and the domain-mean kinetic energy, enstrophy,
# dissipation and energy injection as time series. ETDRK4 integrates the viscous
# part exactly, so ``dt=0.05`` is stable at this resolution.
import matplotlib.pyplot as plt
import numpy as np

from xdyn.metrics import isotropic_spectrum
from xdyn.plot import plot_spectrum
from xdyn.systems import KolmogorovFlow

flow = KolmogorovFlow.preset("re34", N=64)
ds = flow.simulate(t_span=20.0, dt=0.05, save_every=5, burn_in=20.0,
                   random_state=0, diagnostics=True)
ds

# %%
# A vorticity snapshot
# --------------------
# The forcing ``sin(4 y)`` imprints four pairs of bands on the flow; the
# instability breaks them into meandering jets and vortices.
fig, ax = plt.subplots(figsize=(5.5, 4.5), layout="constrained")
ds["vorticity"].isel(time=-1).plot(ax=ax, cmap="RdBu_r", robust=True)
ax.set_aspect("equal")
ax.set_title(f"vorticity at t = {float(ds.time[-1]):g} (Re = {flow.Re:g})")

# %%
# Isotropic kinetic energy spectrum
# ---------------------------------
# :func:`xdyn.metrics.isotropic_spectrum` sums ``0.5 |u_hat|^2`` over shells of
# ``|k|``; the kinetic energy spectrum is that of ``u`` plus that of ``v``,
# averaged over the saved snapshots. By Parseval its sum is the domain-mean
# kinetic energy, which the diagnostics computed independently.
lengths = (flow.L, flow.L)
spec_uv = isotropic_spectrum(ds[["u", "v"]], lengths=lengths, mean_dims="time")
energy = spec_uv["u"] + spec_uv["v"]
energy.attrs.update(units="1", long_name="kinetic energy spectrum")
print(f"sum of E(k) = {float(energy.sum()):.4f}; "
      f"mean kinetic energy = {float(ds.kinetic_energy.mean()):.4f}")

# %%
# The model keeps only the modes with ``|k_x|, |k_y| < N/3`` (2/3 rule), so we
# plot the shells up to ``N/3``; beyond it a shell holds only the corners of
# that square of resolved modes, and past ``sqrt(2) N/3`` nothing at all. The
# energy sits at the forcing wavenumber (dotted line) and in the largest scales,
# and falls off steeply below the forcing scale: at Re = 34 there is no
# inertial range, viscosity acts on every scale smaller than the forcing.
resolved = energy.sel(wavenumber=slice(None, flow.N // 3))
fig = plot_spectrum(resolved, label="E(k), time mean")
ax = fig.axes[0]
ax.axvline(flow.n_forcing, color="0.6", lw=0.8, ls=":")
ax.set_title("isotropic kinetic energy spectrum")

# %%
# Energy budget through time
# --------------------------
# ``dE/dt = injection - dissipation``: the kinetic energy fluctuates as bursts of
# forcing power are followed by bursts of dissipation.
fig, axes = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True, layout="constrained")
ds["kinetic_energy"].plot(ax=axes[0], color="k")
axes[0].set(title="", ylabel="kinetic energy", xlabel="")
ds["energy_injection"].plot(ax=axes[1], label="injection")
ds["dissipation"].plot(ax=axes[1], label="dissipation")
axes[1].set(title="", ylabel="power")
axes[1].legend(loc="upper right")
residual = float(np.mean(ds["energy_injection"] - ds["dissipation"]))
print(f"time-mean injection - dissipation = {residual:+.4f} "
      f"(small against the mean dissipation {float(ds.dissipation.mean()):.4f})")
plt.show()
