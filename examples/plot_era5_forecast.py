"""
Forecasting gridded weather: persistence, climatology, ClimODE-style and VGB-DM
===============================================================================

:mod:`xdyn.forecast` forecasters are fitted on a time series of fields and
forecast from every time at a list of lead times; the forecast Dataset has a
``lead_time`` dim (and ``member`` for a probabilistic model), and
:func:`xdyn.forecast.verify_forecast` scores every forecaster against the same
lead-aligned truth: latitude-weighted RMSE, ACC and CRPS per variable and lead.

To run anywhere this example writes xdyn's small WeatherBench-format test set
(5.625°, 6-hourly, travelling planetary waves with seasonal and diurnal
cycles; *not* ERA5) and reads it back with
:func:`xdyn.datasets.load_weatherbench`, exactly as real WeatherBench files
would be read. ``xdyn run era5-forecast`` runs the same comparison on real
WeatherBench data when it is present, and ``xdyn run era5-uk-t2m`` on real
hourly ERA5 2-m temperature over the UK.
"""

# %%
# A year of training data and a year of test data
# -----------------------------------------------
import tempfile

import matplotlib.pyplot as plt
import numpy as np

from xdyn.datasets import load_weatherbench
from xdyn.experiments.era5 import write_weatherbench_test_set
from xdyn.forecast import ClimODE, Climatology, Persistence, TransportVGBDM, verify_forecast

with tempfile.TemporaryDirectory() as root:
    write_weatherbench_test_set(root, years=(2016, 2017), days=6, variables=("z500",))
    ds = load_weatherbench(["z500"], root=root).load()
train = ds.sel(time=ds.time.dt.year == 2016)
test = ds.sel(time=ds.time.dt.year == 2017)
print(dict(train.sizes), dict(test.sizes))

# %%
# Fit, forecast, verify
# ---------------------
# ClimODE moves each field with a velocity inverted from its last two states,
# lets the velocity evolve by a learned law and adds a learned source; a
# Gaussian emission gives the ensemble. VGB-DM (:class:`~xdyn.forecast.TransportVGBDM`)
# has the same transport + source physics with the velocity a function of the
# state, so it trains without solving an ODE (flow matching between consecutive
# states); a latent read from the states before the start gives its ensemble.
# A few seconds of training only.
leads = [np.timedelta64(h, "h") for h in (6, 12, 24, 48)]
forecasters = {
    "persistence": Persistence(),
    "climatology": Climatology(),
    "ClimODE": ClimODE(hidden=8, n_steps=2, max_epochs=3, batch_size=8, step_size=1.0, lr=2e-4,
                       n_members=5, random_state=0, device="cpu"),
    "VGB-DM": TransportVGBDM(hidden=8, z_dim=2, len_episode=2, max_epochs=20, batch_size=8,
                             n_members=5, random_state=0, device="cpu"),
}
forecasts = {name: est.fit(train).predict(test, leads) for name, est in forecasters.items()}
clim = forecasts["climatology"]
scores = {name: verify_forecast(fc.isel(time=slice(1, None)), test,
                                climatology=clim.isel(time=slice(1, None)))
          for name, fc in forecasts.items()}
for name, s in scores.items():
    print(f"{name:12s} z500 RMSE [m2 s-2]:", np.round(s["z500_rmse"].values, 1))

# %%
# Scores by lead, and a 24 h forecast with its error
# --------------------------------------------------
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
hours = [lead / np.timedelta64(1, "h") for lead in leads]
for name, s in scores.items():
    axes[0].plot(hours, s["z500_rmse"], marker="o", label=name)
    axes[1].plot(hours, s["z500_crps"], marker="o", label=name)
axes[0].set(xlabel="lead time [h]", ylabel="latitude-weighted RMSE [m2 s-2]")
axes[1].set(xlabel="lead time [h]", ylabel="CRPS [m2 s-2]")
axes[0].legend()
fig.tight_layout()

fc = forecasts["ClimODE"]["z500"].isel(time=8).sel(lead_time=leads[2]).mean("member")
truth = test["z500"].sel(time=fc["valid_time"].values)
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
fc.plot(ax=axes[0])
axes[0].set_title("ClimODE mean, 24 h lead")
(fc - truth).plot(ax=axes[1], cmap="RdBu_r")
axes[1].set_title("error")
fig.tight_layout()
