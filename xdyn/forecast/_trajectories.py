"""Forecasters learned from many independent trajectories (neural ODE, VGB-DM).

:class:`~xdyn.forecast.BaseForecaster` fits one time series; the dynamics
learners fit a batch of runs along a ``trajectory`` dim, each with its own
physical parameters. This layer adds that dim: ``fit``/``predict`` accept it
(and a plain series, as one trajectory), the stacking layout comes from the
base on one trajectory, and the hooks see 3-D arrays
``(n_trajectory, n_time, n_features)``:

``_fit_trajectories(self, data, times)``
``_predict_trajectories(self, data, times, lead_times) -> (n_traj, n_init, n_lead[, n_members], n_features)``

Variables without the sample dim (per-trajectory parameters such as
``omega0``) are ignored by ``fit`` and ``predict``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from sklearn.utils.validation import check_is_fitted

from xdyn._labels import check_trajectory_dim
from xdyn.forecast._time import LEAD_DIM, MEMBER_DIM, VALID_TIME
from xdyn.forecast.base import BaseForecaster
from xdyn.model_selection import unwrap
from xdyn.preprocessing.stacking import _check_compatible, flatten_variables

__all__ = ["TrajectoryForecaster"]


class TrajectoryForecaster(BaseForecaster):
    """A :class:`BaseForecaster` that also takes a ``trajectory`` dim (see the module docstring)."""

    _parameter_constraints = {**BaseForecaster._parameter_constraints, "trajectory_dim": [str]}
    _state_variables: tuple = ()  # the physics' order, when it has one

    def _split(self, X):
        """(data without trajectory-only variables, has_trajectory_dim)."""
        # runs on 'member' were fitted one by one, then forecast along the dim that holds the
        # forecaster's ensemble and scored by the mean over runs (refused on arrays too)
        check_trajectory_dim(self.trajectory_dim,
                             (self.sample_dim, MEMBER_DIM, LEAD_DIM, VALID_TIME),
                             type(self).__name__)
        X = unwrap(X)
        if not isinstance(X, (xr.Dataset, xr.DataArray)):
            return X, False
        if isinstance(X, xr.Dataset):
            keep = [v for v in X.data_vars if self.sample_dim in X[v].dims]
            if self._state_variables:
                missing = [v for v in self._state_variables if v not in X.data_vars]
                if missing:
                    raise ValueError(f"variable(s) {missing} of the physics model are not in the "
                                     f"data (its variables: {list(X.data_vars)})")
                keep = list(self._state_variables)
            X = X[keep]
        elif self._state_variables:
            X = self._in_physics_order(X)
        return X, self.trajectory_dim in X.dims

    def _in_physics_order(self, X):
        """DataArray ``X`` with the dim that labels the physics' variables put in their order.

        The physics reads the state by position: a DataArray ``variable=(omega, theta)``
        was read as ``(theta, omega)``.
        """
        names = list(self._state_variables)
        for dim in X.dims:
            if dim in X.coords and dim not in (self.sample_dim, self.trajectory_dim) \
                    and set(names) <= set(X[dim].values.tolist()):
                return X.sel({dim: names})
        if len(names) == 1 and X.name == names[0]:
            return X
        raise ValueError(f"the physics reads the variables {names} in this order, and no dim "
                         f"of the DataArray {X.name!r} (dims {X.dims}) has them as labels: pass "
                         f"a Dataset of them, or a DataArray such as ds[{names}].to_array("
                         "'variable')")

    def _as_batch(self, data, has_traj):
        """``(n_traj, n_time, n_features)`` float array in the fitted layout."""
        # the fitted variables, dims and grid, as stack_samples checks them without a trajectory
        # dim: data on another grid would be forecast and labelled as on the fitted one
        one = data.isel({self.trajectory_dim: 0}, drop=True) if has_traj else data
        _check_compatible(one, self.layout_)
        lead = (self.trajectory_dim, self.sample_dim) if has_traj else (self.sample_dim,)
        variables = self.layout_.variables
        if isinstance(data, xr.DataArray):
            data = data.to_dataset(name=variables[0].name)
        values, _ = flatten_variables(data, variables, lead_dims=lead)
        values = np.asarray(values, dtype=float)
        return values if has_traj else values[None]

    def fit(self, X, y=None):
        """Learn from trajectories ``X`` (dims ``(trajectory,) time, ...``); returns self.

        Parameters
        ----------
        X : xarray.Dataset, xarray.DataArray or ndarray of shape (n_samples, n_features)
            Training runs; a ``trajectory_dim`` dim holds independent runs.
        y : None
            Ignored.
        """
        data, has_traj = self._split(X)
        if not has_traj:
            return super().fit(data)
        self._validate_params()
        if data.sizes[self.trajectory_dim] < 1:
            raise ValueError(f"{self.trajectory_dim!r} is empty")
        self._fit_batch_ = data  # read (and dropped) by _fit
        try:
            return super().fit(data.isel({self.trajectory_dim: 0}, drop=True))
        finally:
            del self._fit_batch_

    def _fit(self, X, times):
        if self.time_kind_ != "model":  # numpy failed on it deep inside, with no hint
            raise ValueError(f"{type(self).__name__} integrates in model time: give "
                             f"{self.sample_dim!r} as numbers (e.g. hours since the start), "
                             f"not {self.time_kind_} times")
        # windows and episodes are consecutive samples, one step apart
        self._check_sample_step(times)
        batch = getattr(self, "_fit_batch_", None)
        if batch is None:
            values = X[None]
        else:
            self._check_finite(batch)
            values = self._as_batch(batch, True)
        self._fit_trajectories(values, np.asarray(times))
        return self

    def predict(self, X, lead_times=None):
        """Forecast from every sample of ``X`` (with full context) at each lead time.

        Parameters
        ----------
        X : xarray.Dataset, xarray.DataArray or ndarray
            Initial states (and the history before them), with the training
            layout; may have a ``trajectory_dim`` dim.
        lead_times : sequence of float, optional
            In the time coordinate's units; default ``[dt_]``.

        Returns
        -------
        Same kind as ``X``
            Dims ``(trajectory_dim,) sample_dim, lead_time[, member], ...``.
        """
        check_is_fitted(self, "layout_")
        data, has_traj = self._split(X)
        if not has_traj:
            return super().predict(data, lead_times)
        self._check_finite(data, what="initial states")
        self._check_time_coordinate(data)
        leads = self._check_leads(lead_times)
        times = self._times(data)
        out = self._predict_trajectories(self._as_batch(data, True), times, leads)
        td = self.trajectory_dim
        pieces = [self._unstack(out[i], data.isel({td: i}), times, leads)
                  for i in range(out.shape[0])]
        result = xr.concat(pieces, dim=td, coords="minimal", compat="override", join="override")
        if td in data.coords:
            result = result.assign_coords({td: data[td].values})
        return result

    def _predict(self, X, times, lead_times):
        return self._predict_trajectories(X[None], times, lead_times)[0]

    def _leads_on_grid(self, lead_times):
        steps = self.lead_steps(lead_times)
        if not np.allclose(steps, np.round(steps), atol=1e-6):
            raise ValueError(f"lead_times must be multiples of the sample spacing {self.dt_} "
                             f"for {type(self).__name__}; got {list(lead_times)}")
        return np.round(steps).astype(int)
