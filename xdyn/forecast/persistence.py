"""Persistence: tomorrow is today — the baseline every forecast table shows."""

from __future__ import annotations

import numpy as np

from xdyn.forecast.base import BaseForecaster

__all__ = ["Persistence"]


class Persistence(BaseForecaster):
    """Forecast the initial state, unchanged, at every lead time.

    Parameters
    ----------
    sample_dim : str, default="time"
        The time dimension; every other dim is a feature.

    Attributes
    ----------
    layout_, n_features_in_, time_kind_, time_calendar_, time_units_, dt_
        See :class:`~xdyn.forecast.BaseForecaster`.

    See Also
    --------
    Climatology : the other baseline.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"T": (("time", "x"), [[1.0, 2.0], [3.0, 4.0]], {"units": "K"})},
    ...                 coords={"time": [0.0, 1.0]})
    >>> fc = Persistence().fit(ds).predict(ds, lead_times=[1.0, 5.0])
    >>> fc["T"].isel(time=1).values.tolist(), fc["T"].attrs["units"]
    ([[3.0, 4.0], [3.0, 4.0]], 'K')
    """

    def __init__(self, *, sample_dim="time"):
        self.sample_dim = sample_dim

    def _fit(self, X, times):
        return self

    def _predict(self, X, times, lead_times):
        return np.repeat(X[:, None, :], len(lead_times), axis=1)
