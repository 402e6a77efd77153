"""Many independent assimilation experiments in one batched call.

Independent truths (seeds) come as a batch dim of the observations (e.g. the
``trajectory`` dim of ``simulate(n_trajectories=...)``); a grid of inflation
factors becomes a leading ``inflation`` batch dim. The filter then runs every
combination at once: one forecast and one batched analysis per cycle.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from xdyn.metrics import mean_after_burn_in, state_rmse
from xdyn.model_selection import unwrap

__all__ = ["sweep"]


def sweep(estimator, obs, truth, inflation=None):
    """Time-averaged analysis RMSE of ``estimator`` for every inflation and truth.

    Parameters
    ----------
    estimator : ensemble assimilator
        An estimator with an ``inflation`` parameter (EnKF, LETKF).
    obs : xarray.Dataset
        Observations, possibly with extra batch dims (e.g. ``trajectory``).
    truth : xarray.Dataset
        The matching truth (same batch dims).
    inflation : sequence of float, optional
        Inflation factors, run together along a new ``inflation`` dim.

    Returns
    -------
    xarray.DataArray
        RMSE with dims ``(inflation, <batch dims of obs>)``; the time average
        excludes the estimator's ``burn_in``.

    Examples
    --------
    >>> from xdyn.systems import Lorenz96
    >>> from xdyn.observe import observe
    >>> from xdyn.assimilation import EnKF
    >>> truth = Lorenz96().simulate(n_trajectories=2, n_steps=100, burn_in=5, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    >>> enkf = EnKF(n_members=20, raise_on_divergence=False, random_state=0)  # 1.0 loses track
    >>> scores = sweep(enkf, obs, truth, inflation=[1.0, 1.05])
    >>> scores.dims
    ('inflation', 'trajectory')
    """
    obs, truth = unwrap(obs), unwrap(truth)
    est = clone(estimator)
    if inflation is not None:
        grid = np.asarray(inflation, dtype=float)
        noise = obs["noise_std"] if "noise_std" in obs else None
        obs = obs.drop_vars([v for v in ("noise_std",) if v in obs])
        obs = obs.expand_dims(inflation=grid).transpose("inflation", ...)
        if noise is not None:  # the noise is the same for every grid point
            obs["noise_std"] = noise
        est.set_params(inflation=grid)
    if hasattr(est, "return_ensemble"):
        est.set_params(return_ensemble=False)
    analysis = est.fit(obs).predict(obs)
    batch = [d for d in obs["observation"].dims if d not in ("time", "obs")]
    out = mean_after_burn_in(state_rmse(analysis, truth, keep_dims=batch), est.burn_in)
    out.name = "rmse"
    out.attrs = {"long_name": "time-averaged analysis RMSE", "method": type(est).__name__}
    return out.transpose(*batch)
