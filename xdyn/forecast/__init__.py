"""Forecasters: fit on a time series, forecast at lead times (``lead_time`` dim).

The contract (input, lead times, output layout, verification) is written once
in :mod:`xdyn.forecast.base`; every forecaster verifies through
:func:`lead_aligned_truth`.

Examples
--------
>>> import numpy as np, xarray as xr
>>> from xdyn.forecast import Persistence
>>> ds = xr.Dataset({"a": ("time", np.arange(4.0))}, coords={"time": np.arange(4.0)})
>>> Persistence().fit(ds).predict(ds, [1.0])["a"].dims
('time', 'lead_time')
"""

from xdyn.forecast._verify import forecast_rmse, lead_aligned_truth, verify_forecast
from xdyn.forecast.base import BaseForecaster
from xdyn.forecast.climatology import Climatology
from xdyn.forecast.climode import ClimODE
from xdyn.forecast.neural_ode import NeuralODE
from xdyn.forecast.persistence import Persistence
from xdyn.forecast.transport_vgbdm import TransportVGBDM
from xdyn.forecast.vgbdm import VGBDM

__all__ = [
    "BaseForecaster",
    "ClimODE",
    "Climatology",
    "NeuralODE",
    "Persistence",
    "TransportVGBDM",
    "VGBDM",
    "forecast_rmse",
    "lead_aligned_truth",
    "verify_forecast",
]
