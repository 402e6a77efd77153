"""
ERA5 500 hPa geopotential and a persistence forecast
====================================================

Open the small ERA5 sample that xdyn ships in the WeatherBench 5.625 degree
layout (no network needed), map the 500 hPa geopotential, and score the
persistence forecast at a one-day lead with the latitude-weighted RMSE of
WeatherBench (Rasp et al. 2020).

The sample is a test fixture, not WeatherBench data: four 12-hourly times on
2017-01-01/02 from one member of the ERA5 ensemble, regridded from 3 degrees.
Its scores illustrate the API, they are not a benchmark (see
``datasets/README.md``).
"""

# %%
# Load the sample
# ---------------
# ``load("era5-wb5625-sample")`` finds the shipped files, checks them against
# their sha256 in the registry and opens them lazily with dask through
# :func:`xdyn.datasets.load_weatherbench`. Short names (``z500``, ``t850``)
# select the WeatherBench folders; ``time`` is ``datetime64`` and ``lat`` is
# ascending.
import matplotlib.pyplot as plt
import numpy as np

from xdyn import datasets
from xdyn.metrics import lat_weights, weighted_rmse

ds = datasets.load("era5-wb5625-sample", variables=["z500"], years=2017)
ds

# %%
# A map of z500
# -------------
# Geopotential (m² s⁻²) divided by standard gravity gives the geopotential
# height in metres; the troughs and ridges of the mid-latitude westerlies show
# as the wavy contours.
z500 = ds["z500"].load()
height = (z500 / 9.80665).assign_attrs(units="m", long_name="500 hPa geopotential height")

fig, ax = plt.subplots(figsize=(9, 4.2), layout="constrained")
height.isel(time=0).plot(ax=ax, cmap="viridis", cbar_kwargs={"label": "height [m]"})
height.isel(time=0).plot.contour(ax=ax, colors="k", linewidths=0.5,
                                 levels=np.arange(4800, 6001, 100))
ax.set_title(f"ERA5 z500 height, {np.datetime_as_string(z500.time.values[0], unit='h')}")
ax.set_aspect("equal")

# %%
# Persistence at a one-day lead
# -----------------------------
# The persistence forecast for time ``t + 24 h`` is the field at ``t``. We pair
# every initial time with the verifying time one day later, relabel the
# forecast with the verifying times, and score it with
# :func:`xdyn.metrics.weighted_rmse`: the square root of the
# ``cos(lat)``-weighted spatial mean square error, per time, then averaged.
lead = np.timedelta64(24, "h")
init = z500.time.values[np.isin(z500.time.values + lead, z500.time.values)]
forecast = z500.sel(time=init).assign_coords(time=init + lead)
truth = z500.sel(time=init + lead)
score = weighted_rmse(forecast, truth)
per_time = weighted_rmse(forecast, truth, time_dim=None)

print(f"{len(init)} forecast(s) at a 1-day lead")
for t, value in zip(per_time.time.values, per_time.values):
    print(f"  valid {np.datetime_as_string(t, unit='h')}: {float(value):7.1f} m2 s-2")
print(f"latitude-weighted RMSE of persistence, 1 day: {float(score):.1f} {score.attrs['units']}"
      f" ({float(score) / 9.80665:.1f} m of geopotential height)")

# %%
# Where the error is
# ------------------
# The persistence error is largest where weather systems move fastest, in the
# mid-latitudes of both hemispheres, and small in the tropics. The latitude
# weights (mean 1) shrink the polar rows, which cover little area on the sphere.
err = (forecast - truth).isel(time=0) / 9.80665
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), width_ratios=[4, 1], layout="constrained")
err.plot(ax=axes[0], cmap="RdBu_r", robust=True, cbar_kwargs={"label": "error [m]"})
axes[0].set_title("persistence error of z500 height, 1-day lead")
axes[0].set_aspect("equal")
w = lat_weights(z500["lat"])
axes[1].plot(w, w["lat"], color="k")
axes[1].set(xlabel="weight", ylabel="lat", title="latitude weights")
plt.show()
