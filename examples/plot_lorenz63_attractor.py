"""
Lorenz-63 attractor and noisy observations
==========================================

Simulate the Lorenz (1963) convection model with its classical chaotic
parameters, draw noisy observations of ``x`` every 25 model steps (the
observation interval of Sakov, Oliver & Bertino 2012), and look at both on the
butterfly attractor and with the ``ds.xdyn.plot()`` overview.
"""

# %%
# Simulate a trajectory
# ---------------------
# ``simulate`` returns a labelled :class:`xarray.Dataset` with one variable per
# component (``x``, ``y``, ``z``) on a ``time`` dim; the attrs record the system,
# its parameters, the integrator, ``dt`` and the seed. A burn-in of 10 model time
# units puts the initial state on the attractor.
import matplotlib.pyplot as plt
import numpy as np

import xdyn  # noqa: F401  (registers the ``ds.xdyn`` accessor)
from xdyn.observe import observe
from xdyn.systems import Lorenz63

system = Lorenz63()
truth = system.simulate(t_span=20.0, dt=0.01, burn_in=10.0, random_state=0)
truth

# %%
# Observe ``x`` every 25 steps
# ----------------------------
# :func:`xdyn.observe.observe` applies an observation operator (here the variable
# name ``"x"``) to every ``every``-th state and adds Gaussian noise of standard
# deviation ``noise_std``. The result has an ``obs`` dim whose coordinates say
# what each observation sees; the clean values are kept for reference.
obs = observe(truth, "x", noise_std=np.sqrt(2.0), every=25, random_state=1)
print(obs.sizes, obs.attrs["operator"])

# %%
# The attractor with the observations
# -----------------------------------
# Observations of ``x`` alone constrain one coordinate: we draw each one as a
# point at its observed ``x`` and the true ``z`` of that time (the x-z
# projection), with a horizontal bar of plus or minus one noise standard deviation.
z_at_obs = truth["z"].sel(time=obs["time"])
y_obs = obs["observation"].isel(obs=0)

fig = plt.figure(figsize=(10, 4.2), layout="constrained")
ax3d = fig.add_subplot(1, 2, 1, projection="3d")
ax3d.plot(truth["x"], truth["y"], truth["z"], lw=0.5, color="0.3")
ax3d.set(xlabel="x", ylabel="y", zlabel="z", title="Lorenz-63 attractor")
ax3d.view_init(elev=20, azim=-60)

ax = fig.add_subplot(1, 2, 2)
ax.plot(truth["x"], truth["z"], lw=0.4, color="0.6", label="truth")
ax.errorbar(y_obs, z_at_obs, xerr=float(obs["noise_std"][0]), fmt="o", ms=3,
            color="C3", elinewidth=0.6, label="observed x (every 25 steps)")
ax.set(xlabel="x", ylabel="z", title="x-z projection")
ax.legend(loc="upper right", fontsize=8)

# %%
# Observations through time
# -------------------------
# The observation error (RMSE of noisy minus clean values) matches ``noise_std``.
fig, ax = plt.subplots(figsize=(10, 3), layout="constrained")
truth["x"].plot.line(x="time", ax=ax, color="k", lw=1, label="truth x")
ax.plot(obs["time"], y_obs, "o", ms=3, color="C3", label="observations")
ax.legend(loc="upper right", fontsize=8)
err = float(np.sqrt(((obs["observation"] - obs["observation_clean"]) ** 2).mean()))
print(f"observation RMSE {err:.2f} (noise_std {np.sqrt(2.0):.2f})")

# %%
# The ``ds.xdyn.plot()`` overview
# -------------------------------
# The accessor forwards to :func:`xdyn.plot.plot_state`: time series for scalar
# variables, Hovmöller diagrams for 1-D fields and maps for 2-D fields.
fig = truth.xdyn.plot()
plt.show()
