"""Test-time cost per cycle of the amortized experiments' methods, measured side by side.

One predict per method, each at a different moment, made the cost ratio
amortized / LETKF-10 move by +-30% with the load of a shared machine (the same
two estimators, timed seven times in turn: 1.29-2.34 and 0.98-1.80 ms per
cycle). Here every fitted method predicts the same first ``n_times`` test
observations ``repeats`` times, in turn, and keeps the median. Each predicts
where it runs: the amortized network on its torch device (the experiment's
``device``), the classical methods on the CPU.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["timed_costs"]


def timed_costs(estimators, obs, n_times=500, repeats=3):
    """Median predict wall time per cycle (ms) of each fitted estimator, interleaved.

    Each estimator is timed on its own device (a torch network's, else the CPU).

    Parameters
    ----------
    estimators : dict of str -> fitted assimilator
    obs : xarray.Dataset
        Observations; the first ``n_times`` times are used.
    n_times, repeats : int

    Returns
    -------
    dict of str -> float

    Examples
    --------
    >>> from xdyn.assimilation import Var3D
    >>> from xdyn.observe import observe
    >>> from xdyn.systems import Lorenz96
    >>> truth = Lorenz96(n=8).simulate(n_steps=30, random_state=0)
    >>> obs = observe(truth, "identity", noise_std=1.0, random_state=1)
    >>> costs = timed_costs({"3D-Var": Var3D().fit(obs)}, obs, n_times=10, repeats=2)
    >>> list(costs), bool(costs["3D-Var"] > 0)
    (['3D-Var'], True)
    """
    sub = obs.isel(time=slice(0, int(n_times)))
    times = {name: [] for name in estimators}
    for _ in range(int(repeats)):
        for name, est in estimators.items():
            with warnings.catch_warnings():  # lost or clamped runs are reported elsewhere
                warnings.simplefilter("ignore", RuntimeWarning)
                an = est.predict(sub)
            times[name].append(1e3 * float(an.attrs["wall_time_s"]) / an.sizes["time"])
    return {name: float(np.median(t)) for name, t in times.items()}
