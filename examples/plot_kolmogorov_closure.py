"""
Stochastic closure of unresolved scales with a Gaussian process
===============================================================

A field is split by a sharp spectral filter into resolved scales (``|k| <= 3``)
and unresolved ones. Here the small scales are partly slaved to the large
ones -- they are the high-wavenumber part of the square of the resolved field,
plus independent small-scale noise -- so a closure conditioned on the resolved
state can predict part of them, and should say how uncertain the rest is.

:class:`xdyn.closure.GPClosure` maps the leading principal components of the
resolved field to those of the unresolved field with one Gaussian process per
output component (the closure of Zighed et al. 2025, arXiv:2510.24583).
``predict(X, return_std=True)`` gives the conditional mean and standard
deviation on the grid, ``sample`` an ensemble with a ``member`` dim. The
``kolmogorov-closure`` experiment (``xdyn run kolmogorov-closure --quick``)
runs the same on Kolmogorov flow with the VAE and diffusion closures too.
"""

# %%
# Synthetic two-scale fields
# --------------------------
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from xdyn.closure import GPClosure
from xdyn.metrics import picp, relative_l2
from xdyn.preprocessing import split_scales

rng = np.random.RandomState(0)
n, N = 400, 32
x = np.linspace(0, 2 * np.pi, N, endpoint=False)
X, Y = np.meshgrid(x, x)
amp = rng.normal(size=(n, 4))
large = (amp[:, 0, None, None] * np.sin(X) + amp[:, 1, None, None] * np.cos(2 * Y)
         + amp[:, 2, None, None] * np.sin(X + Y) + amp[:, 3, None, None] * np.cos(3 * X))
noise = 0.3 * rng.normal(size=(n, N, N))
w = xr.DataArray(large + 0.4 * large ** 2 + noise, dims=("time", "y", "x"),
                 coords={"time": 0.1 * np.arange(n), "y": x, "x": x}, name="w")
resolved, unresolved = split_scales(w, cutoff=3)

# %%
# Fit on the first 300 snapshots, predict the last 100
# ----------------------------------------------------
train, test = slice(0, 300), slice(300, None)
closure = GPClosure(n_input_modes=4, n_output_modes=8, max_epochs=60, random_state=0)
closure.fit(resolved.isel(time=train), unresolved.isel(time=train))
mean, std = closure.predict(resolved.isel(time=test), return_std=True)
truth = unresolved.isel(time=test)
print(f"unresolved rel-L2 of the mean: {float(relative_l2(mean, truth)):.2f}")
print(f"coverage of mean +- 1 std: {float(picp(mean, std, truth)):.2f} (0.68 if calibrated)")
ensemble = closure.sample(resolved.isel(time=test), n_samples=3, random_state=1)

# %%
# One test snapshot: truth, mean, spread and a sample
# ---------------------------------------------------
k = 0
panels = {"resolved": resolved.isel(time=test).isel(time=k),
          "unresolved truth": truth.isel(time=k), "closure mean": mean.isel(time=k),
          "closure std": std.isel(time=k), "closure sample": ensemble.isel(member=0, time=k)}
fig, axes = plt.subplots(1, len(panels), figsize=(15, 3))
for ax, (title, field) in zip(axes, panels.items()):
    ax.imshow(field.values, origin="lower", cmap="viridis" if "std" in title else "RdBu_r")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()
