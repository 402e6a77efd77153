"""Observation encoder: a history of sparse observations -> latent state and parameters.

LD-EnSF (Xiao, Si & Chen, ICLR 2026) assimilates in the latent space of a
latent dynamics network; its observations there come from a recurrent net
that reads all observations so far (not only the current ones, as Latent-EnSF
did) and returns the latent state and the unknown parameters at every
observation time. The net (LSTM, or GRU) is trained through
:class:`xdyn.nn.XdynNet` on training trajectories whose latent targets come
from the fitted :class:`xdyn.rom.LDNet`; the spread of its training residuals
is the latent observation error the filter uses.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from xdyn._labels import format_time, is_time, label_order, step_tolerance, steps_as_float
from xdyn.model_selection import unwrap
from xdyn.nn import XdynNet
from xdyn.nn.ldnet_modules import LatentObservationEncoder
from xdyn.nn.params import TRAINING_CONSTRAINTS, RoutedParamsMixin

__all__ = ["ObservationEncoder"]

# the network arguments fit sets itself: a routed ``module__<name>`` for one of them made
# skorch fail with "got multiple values for keyword argument" (own parameter, or None: set
# from the data)
_SET_BY_FIT = {"module__cell": "cell", "module__hidden_size": "hidden_size",
               "module__n_layers": "n_layers", "module__n_obs": None, "module__n_out": None}


class ObservationEncoder(RoutedParamsMixin, BaseEstimator):
    """Recurrent encoder of observation histories into latent targets (LSTM or GRU).

    Parameters
    ----------
    cell : {"lstm", "gru"}, default="lstm"
    hidden_size : int, default=64
    n_layers : int, default=2
    max_epochs : int, default=200
    lr : float, default=3e-3
    batch_size : int, default=4
        Trajectories per batch. Small, so that the tens of training
        trajectories of a CPU-sized set give enough optimizer steps (quick
        LD-EnSF runs, 16 -> 4: Kolmogorov Re error 0.30 -> 0.17, atmosphere
        field error 0.123 -> 0.091 together with the LDNet's smaller batch).
    sample_dim : str, default="trajectory"
    device : str, default="auto"
    dtype : str, default="float32"
    random_state : int or None
    progress : bool, default=False
    **kwargs
        ``module__*`` / ``optimizer__*`` routed to the network; not those
        that the estimator sets itself (``module__hidden_size``: use
        ``hidden_size``; likewise ``cell``, ``n_layers``).

    Attributes
    ----------
    net_ : xdyn.nn.XdynNet
    targets_ : list of (str, int, tuple)
        Target variable names, their widths and feature dims, in output order.
    target_attrs_ : dict
        Attributes of each target variable (its ``units`` ...), given back
        by :meth:`predict`.
    obs_mean_, obs_std_ : ndarray of shape (n_obs,)
        Standardisation of the observations (training set).
    target_mean_, target_std_ : ndarray of shape (n_out,)
        Standardisation of the targets (training set).
    residual_std_ : ndarray of shape (n_out,)
        Std of the training residuals per output component (the encoder's
        error, used as the latent observation noise), in target units.
    history_ : list of float
    obs_sites_ : dict
        The training observations' site coordinates along ``obs`` (those
        other than the ``obs`` index; the index when there are none), in
        training order: the encoder reads each input by site, so records
        with the sites in another order are reordered to it and records with
        other sites are refused.
    times_ : ndarray or None
        The training observation times (None without a numeric or datetime
        ``time`` coordinate): a record must start at the first of them and
        keep their spacing (it may run past the last at the last interval).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.RandomState(0)
    >>> a = rng.uniform(-1, 1, 32)
    >>> t = np.arange(10.0)
    >>> obs = xr.Dataset({"observation": (("trajectory", "time", "obs"),
    ...     np.sin(a[:, None, None] * t[None, :, None] + np.arange(3)))}, coords={"time": t})
    >>> target = xr.Dataset({"a": ("trajectory", a)})
    >>> enc = ObservationEncoder(max_epochs=5, hidden_size=8, random_state=0, device="cpu")
    >>> enc = enc.fit(obs, target)
    >>> dict(enc.predict(obs)["a"].sizes)
    {'trajectory': 32, 'time': 10}
    """

    # Its output at a time reads every observation before it, from the record's start: a fold
    # along time is scored as a filter's (xdyn.model_selection.warm_start_score), by
    # _per_time_error (the standardised error, as score)
    _sequential_filter = True

    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "cell": [StrOptions({"lstm", "gru"})],
        "hidden_size": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "sample_dim": [str],
    }

    def __init__(self, cell="lstm", *, hidden_size=64, n_layers=2, max_epochs=200, lr=3e-3,
                 batch_size=4, sample_dim="trajectory", device="auto", dtype="float32",
                 random_state=None, progress=False, **kwargs):
        self.cell = cell
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.sample_dim = sample_dim
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress
        self._set_routed(kwargs)

    # ------------------------------------------------------------------ data
    def _observations(self, obs):
        if not isinstance(obs, xr.Dataset) or "observation" not in obs:
            raise TypeError(f"obs must be an observation Dataset (or a SampleView of one) with "
                            f"an 'observation' variable (see xdyn.observe.observe); got "
                            f"{type(obs).__name__}")
        sd = self.sample_dim
        da = obs["observation"]
        for d in (sd, "time", "obs"):
            if d not in da.dims:
                raise ValueError(f"'observation' needs dims ({sd!r}, 'time', 'obs'); "
                                 f"it has {da.dims}")
        y = np.asarray(da.transpose(sd, "time", "obs").values, dtype=float)
        if not np.all(np.isfinite(y)):
            raise ValueError("'observation' holds NaN or inf; the encoder reads complete "
                             "observation histories")
        return y

    def _sites(self, obs):
        """Indices putting ``obs``'s sites in the training order (None: already in it)."""
        n, n_fit = obs.sizes["obs"], len(self.obs_mean_)
        if n != n_fit:
            raise ValueError(f"obs has {n} observation site(s) along 'obs'; the encoder was "
                             f"fitted on {n_fit} and reads each input as one site")
        names = [c for c in self.obs_sites_ if c in obs.coords and obs[c].dims == ("obs",)]
        if not names:
            return None    # no site labels to go by: the training order assumed
        # sites matched by exact labels, as xarray aligns indexes
        got = list(zip(*(np.asarray(obs[c].values).tolist() for c in names)))
        want = list(zip(*(self.obs_sites_[c].tolist() for c in names)))
        if got == want:
            return None
        order = label_order(got, want)
        if order is None:
            other = [k for k in got if k not in set(want)][:3]
            raise ValueError(f"obs's sites ({', '.join(names)}) are not those the encoder was "
                             f"fitted on (e.g. {other}); it reads each input as one site")
        return order

    def _check_times(self, obs):
        """Refuse a record at another interval, or not starting at the training start."""
        fit = self.times_
        if fit is None or "time" not in obs.coords:
            return
        t = np.asarray(obs["time"].values)
        step = fit[-1] - fit[-2] if len(fit) > 1 else None
        n_more = len(t) - len(fit)
        off = None
        if n_more <= 0 or step is not None:
            # the training times, continued past the last at its interval
            more = [fit[-1] + step * np.arange(1, n_more + 1)] if n_more > 0 else []
            try:
                off = np.abs(steps_as_float(t - np.concatenate([fit[:len(t)], *more])))
            except TypeError:      # times of another kind (datetime against numbers)
                pass
        scale = 1.0 if step is None else float(steps_as_float(step))
        if off is None or (off > step_tolerance(t, scale)).any():
            at = "its training times" if step is None else f"interval {format_time(step)}"
            raise ValueError(f"obs times {t[:4]}{' ...' if len(t) > 4 else ''} are not the "
                             f"encoder's observation times (from {format_time(fit[0])}, {at}): the "
                             "recurrent encoder reads a history at the interval and from the "
                             "start it was trained on")

    def _targets(self, target, n_traj, n_times, times=None, labels=None):
        """Target array ``(n_traj, n_times, n_out)`` paired with the observations: along
        ``time`` by label where ``times`` (obs's coordinate) and the target's are both
        given, else by position (the sizes must match); ``sample_dim`` likewise."""
        if not isinstance(target, xr.Dataset):
            raise TypeError(f"target must be an xarray.Dataset, got {type(target).__name__}")
        sd, cols, names = self.sample_dim, [], []
        if labels is not None and sd in target.coords:
            # trajectories paired by label where both are labelled, not by position
            want, have = np.asarray(labels).tolist(), target[sd].values.tolist()
            order = label_order(have, want)
            if order is None:
                raise ValueError(f"obs's and target's {sd!r} labels differ (or repeat): "
                                 f"{len(set(want) ^ set(have))} label(s) in one only")
            target = target.isel({sd: order})
        for name, da in target.data_vars.items():
            if sd not in da.dims:
                continue
            if da.sizes[sd] != n_traj:
                raise ValueError(f"target variable {name!r} has {da.sizes[sd]} {sd!r} entries and "
                                 f"obs {n_traj}: without {sd!r} labels on both they are paired "
                                 "by position, so the sizes must match")
            if "time" in da.dims and times is not None and "time" in target.coords:
                try:
                    da = da.sel(time=times)
                except KeyError as err:
                    raise ValueError(f"target variable {name!r} does not cover every "
                                     "observation time (paired by 'time' label)") from err
            elif "time" in da.dims and da.sizes["time"] != n_times:
                raise ValueError(
                    f"target variable {name!r} has {da.sizes['time']} times and obs {n_times}: "
                    "without a 'time' coordinate on both they are paired by position, so the "
                    "lengths must match (or give both the observation times as coordinate)")
            extra = [d for d in da.dims if d not in (sd, "time")]
            if len(extra) > 1:
                raise ValueError(f"target variable {name!r} has dims {da.dims}; at most one "
                                 "feature dim besides (trajectory, time)")
            arr = np.asarray(da.transpose(sd, *(["time"] if "time" in da.dims else []),
                                          *extra).values, dtype=float)
            if "time" not in da.dims:
                arr = np.repeat(arr[:, None], n_times, axis=1)
            arr = arr.reshape(n_traj, n_times, -1)
            cols.append(arr)
            names.append((name, arr.shape[-1], tuple(extra), ) )
        if not cols:
            raise ValueError(f"target has no variable with a {sd!r} dim")
        out = np.concatenate(cols, -1)
        if not np.all(np.isfinite(out)):
            raise ValueError("target holds NaN or inf")
        return out, names

    # ------------------------------------------------------------------- fit
    def fit(self, obs, target):
        """Train on observation histories and their targets.

        Parameters
        ----------
        obs : xarray.Dataset or SampleView
            ``observation`` with dims (trajectory, time, obs).
        target : xarray.Dataset or SampleView
            Variables with dims (trajectory, time[, feature]) -- e.g. the
            ``latent_state`` of :meth:`xdyn.rom.LDNet.transform` -- or
            (trajectory,) for constants such as the parameters. Paired with
            ``obs`` along ``time`` by label where both have a ``time``
            coordinate (the target must cover every observation time), else
            by position (the same number of times); along ``trajectory`` by
            label where both are labelled, else by position (the same size).
        """
        self._validate_params()
        self._refuse_routed_set_by_fit(_SET_BY_FIT)
        obs, target = unwrap(obs), unwrap(target)
        y = self._observations(obs)
        z, names = self._targets(target, *y.shape[:2], self._times(obs), self._labels(obs))
        self.targets_ = names
        self.target_attrs_ = {name: dict(target[name].attrs) for name, *_ in names}
        sites = [c for c, v in obs.coords.items() if v.dims == ("obs",) and c != "obs"]
        sites = sites or [c for c in ("obs",) if c in obs.coords]
        self.obs_sites_ = {c: np.asarray(obs[c].values) for c in sites}
        t = np.asarray(obs["time"].values) if "time" in obs.coords else None
        self.times_ = t if t is not None and is_time(t) else None
        self.obs_mean_, self.obs_std_ = y.mean((0, 1)), y.std((0, 1)) + 1e-12
        self.target_mean_, self.target_std_ = z.mean((0, 1)), z.std((0, 1)) + 1e-12
        self.net_ = XdynNet(
            LatentObservationEncoder, module__n_obs=y.shape[-1], module__n_out=z.shape[-1],
            module__cell=self.cell, module__hidden_size=int(self.hidden_size),
            module__n_layers=int(self.n_layers), optimizer=torch.optim.Adam, lr=float(self.lr),
            max_epochs=int(self.max_epochs), batch_size=int(self.batch_size),
            device=self.device, dtype=self.dtype, random_state=self.random_state,
            progress=bool(self.progress),
            **self._routed())
        self.net_.fit(((y - self.obs_mean_) / self.obs_std_).astype(np.float32),
                      ((z - self.target_mean_) / self.target_std_).astype(np.float32))
        self.history_ = [float(h["train_loss"]) for h in self.net_.history]
        self.residual_std_ = (self._encode(y) - z).reshape(-1, z.shape[-1]).std(0)
        return self

    def _encode(self, y):
        out = self.net_.predict(((y - self.obs_mean_) / self.obs_std_).astype(np.float32))
        return out * self.target_std_ + self.target_mean_

    @staticmethod
    def _times(obs):
        return obs["time"].values if "time" in obs.coords else None

    def _labels(self, obs):
        sd = self.sample_dim
        return obs[sd].values if sd in obs.coords else None

    def encode(self, obs):
        """The raw output array ``(trajectory, time, n_out)`` in target units.

        Parameters
        ----------
        obs : xarray.Dataset or SampleView
            ``observation`` with dims (trajectory, time, obs): the training
            sites (in any order along ``obs``), at the training interval from
            the training start.

        Returns
        -------
        ndarray of shape (n_trajectories, n_times, n_out)
        """
        check_is_fitted(self, "net_")
        obs = unwrap(obs)
        y = self._observations(obs)
        order = self._sites(obs)
        self._check_times(obs)
        return self._encode(y if order is None else y[..., order])

    def predict(self, obs):
        """Targets at every observation time from the observations up to it.

        Parameters
        ----------
        obs : xarray.Dataset or SampleView
            As for :meth:`encode`.

        Returns
        -------
        xarray.Dataset
            The target variables with a ``time`` dim added, each with its
            attributes from :meth:`fit` (its ``units`` ...).
        """
        obs = unwrap(obs)
        z = self.encode(obs)
        sd = self.sample_dim
        coords = {d: obs[d] for d in (sd, "time") if d in obs.coords}
        data, start = {}, 0
        for name, width, extra in self.targets_:
            block = z[..., start:start + width]
            start += width
            dims = (sd, "time") + extra
            # in the target's own units (the standardisation is undone): its attrs
            # (an encoder pickled before target_attrs_ was recorded has none)
            attrs = {**getattr(self, "target_attrs_", {}).get(name, {}),
                     "long_name": f"encoded {name}"}
            data[name] = (dims, block if extra else block[..., 0], attrs)
        return xr.Dataset(data, coords=coords)

    def score(self, obs, target):
        """Minus the mean squared error of the standardised targets."""
        obs, target = unwrap(obs), unwrap(target)
        z = self.encode(obs)
        return -float(np.mean(self._squared_errors(z, target, self._times(obs),
                                                   self._labels(obs))))

    def _squared_errors(self, z, target, times, labels):
        """Squared errors ``(trajectory, time, n_out)`` of the output ``z`` against
        ``target``, each in its standardised units (so no target weighs by its units);
        ``target``'s fitted variables are read by name, paired as in :meth:`fit`."""
        names = [name for name, *_ in self.targets_]
        missing = [name for name in names if name not in target.data_vars]
        if missing:
            raise ValueError(f"target lacks the variable(s) {missing} the encoder was fitted on")
        t, _ = self._targets(target[names], *z.shape[:2], times, labels)
        return ((z - t) / self.target_std_) ** 2

    def _per_time_error(self, analysis, truth):
        """The standardised MSE of ``analysis`` (from :meth:`predict`) at each time.

        What :meth:`score` averages over time, and
        :func:`xdyn.model_selection.warm_start_score` over a fold (a DataArray
        over ``time``).
        """
        names = [name for name, *_ in self.targets_]
        sd = self.sample_dim
        z, _ = self._targets(analysis[names], analysis.sizes[sd], analysis.sizes["time"])
        error = self._squared_errors(z, truth, self._times(analysis), self._labels(analysis))
        return xr.DataArray(error.mean((0, 2)), dims="time",
                            coords={"time": analysis["time"].values})
