"""Standardize observation Datasets without breaking what an assimilator reads.

An assimilator compares observations ``y`` with the observed state ``h(x)``
and weighs the misfit by the observation error ``noise_std``: the three must
be in the same units. A plain scaler of the ``observation`` variable
(:class:`xdyn.preprocessing.StandardScaler`) would leave ``noise_std`` and
the operator recorded in the attrs in the old units, and the assimilator
would weigh a standardized misfit with a physical error. :class:`ObservationScaler`
scales all three consistently: ``y' = (y - mean) / scale``,
``noise_std' = noise_std / scale``, and the recorded operator becomes
:class:`ScaledOperator` ``(h(x) - mean) / scale``. The 3D-Var/BLUE analysis is
invariant under this change of units, so a scaler in front of an assimilator
in a :class:`~sklearn.pipeline.Pipeline` changes only the conditioning of
what a network reads, not the analysis the method defines.
"""

from __future__ import annotations

import json

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from xdyn._labels import label_order
from xdyn._units import other_units, spelled_dimensionless, stated_units
from xdyn.model_selection import unwrap
from xdyn.observe.base import ObservationOperator, operator_from_spec
from xdyn.observe.operators import Identity
from xdyn.observe.synthetic import _noise_std_attrs

__all__ = ["ScaledOperator", "ObservationScaler"]


class ScaledOperator(ObservationOperator):
    """Another operator's observations, shifted and scaled: ``(base(x) - offset) / scale``.

    Written into the attrs of observations standardized by
    :class:`ObservationScaler`, so that an assimilator compares them with the
    state in the same units. Nonlinear as far as callers are concerned (it
    has no selection matrix), differentiable.

    Parameters
    ----------
    base : ObservationOperator or None
        The operator that made the raw observations (the identity when None).
    offset, scale : float or list of float
        One per observation (or one for all).

    Examples
    --------
    >>> import torch
    >>> from xdyn.observe import SelectVariables
    >>> from xdyn.systems import Lorenz63
    >>> op = ScaledOperator(SelectVariables(["x", "y"]), offset=[1.0, 0.0], scale=[2.0, 4.0])
    >>> op.apply(torch.tensor([[3.0, 8.0, 5.0]]), Lorenz63()).tolist()
    [[1.0, 2.0]]
    >>> from xdyn.observe import operator_from_spec
    >>> operator_from_spec(op.spec()).apply(torch.tensor([[3.0, 8.0, 5.0]]), Lorenz63()).tolist()
    [[1.0, 2.0]]
    """

    linear = False

    def __init__(self, base=None, offset=0.0, scale=1.0):
        self.base = base
        self.offset = offset
        self.scale = scale

    def _base(self):
        return Identity() if self.base is None else self.base

    def indices(self, layout):
        return self._base().indices(layout)

    def _transform(self, z):
        out = self._base()._transform(z)
        offset = torch.as_tensor(self.offset, dtype=out.dtype, device=out.device)
        scale = torch.as_tensor(self.scale, dtype=out.dtype, device=out.device)
        return (out - offset) / scale

    def obs_units(self, units):
        """Units of its observations: ``"1"``, or the base's when every ``scale`` is 1.

        ``scale`` is taken in the base's units, as :class:`ObservationScaler`'s
        standard deviations are.

        Examples
        --------
        >>> ScaledOperator(offset=3.0, scale=2.0).obs_units("K")
        '1'
        """
        if np.all(np.asarray(self.scale, dtype=float) == 1.0):
            return self._base().obs_units(units)
        return "1"


class ObservationScaler(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Standardize observations, their error std and the recorded operator together.

    ``fit`` takes the mean and std of ``observation`` per observation (along
    ``obs``), over every other dim (time, trajectory ...), NaNs ignored, from
    the data it is given only (the training split in a pipeline).
    ``transform`` returns the Dataset with ``observation`` (and
    ``observation_clean``) standardized, ``noise_std`` divided by the same
    scale, and the ``operator`` attr replaced by the :class:`ScaledOperator`
    that maps a state to the new units (``units`` attrs ``"1"``, with
    ``with_std``); ``inverse_transform`` undoes all of it. Each observation
    is scaled with the statistics of its site (its coords along ``obs``:
    ``variable``, ``state_index``, position; its ``obs`` label where it has
    no other), whatever its position along ``obs``; observations at other
    sites are refused. An assimilator after
    it reads the scaled operator and noise from the Dataset: give it
    ``operator=None`` and ``noise_std=None`` (an explicit physical
    ``noise_std`` would contradict the scaled observations).

    Parameters
    ----------
    with_mean : bool, default=True
    with_std : bool, default=True

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_obs,)
    n_obs_ : int
    operator_spec_ : str
        The fitted observations' operator: ``transform`` refuses observations
        of another one (the same number of other variables would be
        standardized with these statistics).
    sites_ : dict of str to ndarray
        The fitted observations' coords along ``obs`` (but ``obs``, unless it
        is the only one), which locate each one: the statistics are matched to
        observations by them, float ones (positions) to float32 precision
        where they differ otherwise (as after a netCDF file), the others exactly.
    units_ : str or None
        The fitted observations' ``units`` attr, which ``inverse_transform``
        puts back (None: they had none). Observations (and their noise std)
        that state other units are refused (compared as units, ``"K"`` is
        ``"kelvin"``; a side that states none is not compared), and so are
        standardized ones, in ``inverse_transform``, in other units than
        ``"1"`` (with ``with_std=False``: than these).

    Examples
    --------
    >>> from xdyn.systems import Lorenz63
    >>> from xdyn.observe import observe
    >>> truth = Lorenz63().simulate(n_steps=500, random_state=0)
    >>> obs = observe(truth, ["x", "y"], noise_std=0.5, random_state=1)
    >>> scaled = ObservationScaler().fit_transform(obs)
    >>> [round(float(v), 6) for v in scaled.observation.mean("time")]
    [0.0, 0.0]
    >>> ratio = scaled.noise_std / obs.noise_std * obs.observation.std("time")
    >>> [round(float(v), 6) for v in ratio]
    [1.0, 1.0]
    >>> import numpy as np
    >>> back = ObservationScaler().fit(obs).inverse_transform(scaled)
    >>> bool(np.allclose(back.observation, obs.observation))
    True
    >>> back.attrs["operator"] == obs.attrs["operator"]
    True
    >>> scaled.observation.attrs["units"]
    '1'

    Observations listed in another order are scaled site by site:

    >>> reordered = ObservationScaler().fit(obs).transform(obs.isel(obs=[1, 0]))
    >>> reordered.variable.values.tolist(), [round(float(v), 6) for v in
    ...                                      reordered.observation.mean("time")]
    (['y', 'x'], [0.0, 0.0])
    """

    def __init__(self, with_mean=True, with_std=True):
        self.with_mean = with_mean
        self.with_std = with_std

    def fit(self, X, y=None):
        """Mean and scale of ``X['observation']`` per observation; ``y`` is ignored."""
        obs = _check_obs(X)
        da = obs["observation"]
        other = [d for d in da.dims if d != "obs"]
        values = np.asarray(da.transpose(*other, "obs").values, float).reshape(-1, da.sizes["obs"])
        finite = np.isfinite(values)
        if not finite.any(0).all():
            raise ValueError("ObservationScaler: an observation is NaN at every time; "
                             "its mean and scale are undefined")
        n = finite.sum(0)
        mean = np.where(finite, values, 0.0).sum(0) / n
        std = np.sqrt((np.where(finite, values - mean, 0.0) ** 2).sum(0) / n)
        self.mean_ = mean if self.with_mean else np.zeros_like(mean)
        self.scale_ = np.where(std > 0, std, 1.0) if self.with_std else np.ones_like(std)
        self.n_obs_ = int(da.sizes["obs"])
        self.operator_spec_ = operator_from_spec(obs.attrs["operator"]).spec()
        self.sites_ = {str(k): np.asarray(c.values) for k, c in obs.coords.items()
                       if c.dims == ("obs",) and k != "obs"}
        if not self.sites_ and "obs" in obs.coords:  # stations labelled by the index only
            self.sites_ = {"obs": np.asarray(obs["obs"].values)}
        self.units_ = da.attrs.get("units")
        return self

    def transform(self, X):
        """Standardized observations, noise std and operator (see the class docstring)."""
        return self._apply(X, inverse=False)

    def inverse_transform(self, X):
        """Back to the units seen in ``fit``: observations, noise std and the base operator."""
        return self._apply(X, inverse=True)

    def _apply(self, X, inverse):
        check_is_fitted(self, "mean_")
        obs = _check_obs(X)
        if obs.sizes["obs"] != self.n_obs_:
            raise ValueError(f"ObservationScaler was fitted on {self.n_obs_} observations per "
                             f"time; these have obs dim of size {obs.sizes['obs']}")
        op = operator_from_spec(obs.attrs["operator"])
        if isinstance(op, ScaledOperator) != inverse:
            raise ValueError("these observations are already standardized (their operator is "
                             "a ScaledOperator)" if not inverse else
                             "inverse_transform needs observations this scaler standardized")
        base = (op._base() if inverse else op).spec()
        fitted = getattr(self, "operator_spec_", base)  # pickled before it was stored: unchecked
        if base != fitted:
            raise ValueError(f"ObservationScaler was fitted on observations of {fitted}; these "
                             f"are of {base}")
        # undone with the statistics they were scaled with: another scaler's would return
        # other observations and noise without an error
        if inverse and not (np.allclose(op.offset, self.mean_) and
                            np.allclose(op.scale, self.scale_)):
            raise ValueError("these observations were standardized with another mean and scale "
                             "than this scaler's (their operator's offset and scale)")
        self._check_units(obs, inverse)
        site = self._site_order(obs)
        mean = xr.DataArray(self.mean_[site], dims="obs")
        scale = xr.DataArray(self.scale_[site], dims="obs")
        out = obs.copy()
        for name in ("observation", "observation_clean"):
            if name in out:
                v = out[name]
                out[name] = self._relabelled(
                    v * scale + mean if inverse else (v - mean) / scale, v.attrs, inverse)
        if "noise_std" in out:
            v = out["noise_std"]
            out["noise_std"] = self._relabelled(v * scale if inverse else v / scale, v.attrs,
                                                inverse)
        if inverse:
            out.attrs["operator"] = op._base().spec()
        else:
            out.attrs["operator"] = ScaledOperator(op, self.mean_.tolist(),
                                                   self.scale_.tolist()).spec()
        # the summary of the noise std in the new units (the one the input had is stale)
        out.attrs.pop("obs_noise_std", None)
        out.attrs.pop("obs_noise_std_rms", None)
        if "noise_std" in out:
            out.attrs.update(_noise_std_attrs(out["noise_std"].values))
        return out

    def _check_units(self, obs, inverse):
        """Refuse observations (and their noise std) that state other units than those they
        are scaled in: the fitted ones, or ``"1"`` for an inverse of standardized ones
        (units as units, ``xdyn._units``; a side that states none is not compared)."""
        if not (self.with_mean or self.with_std):  # no statistic: nothing is changed
            return
        fitted = getattr(self, "units_", None)  # pickled before units were stored: unchecked
        standardized = inverse and self.with_std
        for name in ("observation", "observation_clean", "noise_std"):
            units = obs[name].attrs.get("units") if name in obs else None
            if standardized and not spelled_dimensionless(units):  # "kg kg-1" is physical
                raise ValueError(f"{name!r} has units {units!r}; inverse_transform expects "
                                 f"standardized observations (units '1')")
            if not standardized and other_units(units, fitted):
                raise ValueError(f"{name!r} is in {units!r} but ObservationScaler was fitted "
                                 f"in {fitted!r}")

    def _relabelled(self, result, attrs, inverse):
        """``result`` with ``attrs`` and the units after the scaling: "1", with the
        physical units kept aside in ``original_units`` as StandardScaler keeps them (the
        fitted ones; where the fit stated none, the data's own), or those back; the
        arithmetic's attrs are replaced, not merged into."""
        attrs = dict(attrs)
        if self.with_std:
            own, kept = attrs.pop("units", None), attrs.pop("original_units", None)
            fitted = getattr(self, "units_", None)
            units = (fitted if fitted is not None else kept) if inverse else "1"
            aside = fitted if fitted is not None else stated_units(own)
            if not inverse and aside is not None:
                attrs["original_units"] = aside
            if units is not None:
                attrs["units"] = units
        result = result.copy(deep=False)
        result.attrs = attrs
        return result

    def _site_order(self, obs):
        """Position in the fitted statistics of each observation of ``obs``, by site."""
        sites = getattr(self, "sites_", None)  # pickled before sites were stored: by position
        if not sites:
            return np.arange(self.n_obs_)
        lacking = [k for k in sites if k not in obs.coords or obs[k].dims != ("obs",)]
        if lacking:
            raise ValueError(f"ObservationScaler was fitted on observations located by the "
                             f"coords {sorted(sites)} along 'obs'; these lack {lacking}")
        fitted = _site_keys(sites.values())
        keys = _site_keys(obs[k].values for k in sites)
        if keys == fitted:
            return np.arange(self.n_obs_)
        order = label_order(fitted, keys)
        if order is None:  # float positions rounded to float32 (as in a netCDF file)
            order = label_order(_site_keys(map(_float32, sites.values())),
                                _site_keys(_float32(obs[k].values) for k in sites))
        if order is None:
            raise ValueError(
                f"ObservationScaler was fitted on observations at other sites than these "
                f"(by {tuple(sites)}): fitted {fitted[:5]}, given {keys[:5]}"
                f"{' ...' if len(keys) > 5 else ''}")
        return order


def _float32(column):
    """Float site coords at float32 precision, the others as they are."""
    column = np.asarray(column)
    return column.astype(np.float32) if np.issubdtype(column.dtype, np.floating) else column


def _site_keys(columns):
    """One hashable key per observation from its site coords (NaN equal to NaN)."""
    return list(zip(*([str(v) for v in np.asarray(c).tolist()] for c in columns)))


def _check_obs(X) -> xr.Dataset:
    X = unwrap(X)
    if not isinstance(X, xr.Dataset):
        raise TypeError(f"ObservationScaler expects an observation Dataset (from "
                        f"xdyn.observe.observe), got {type(X).__name__}")
    if "observation" not in X or "obs" not in X["observation"].dims:
        raise ValueError("ObservationScaler needs an 'observation' variable with an 'obs' dim; "
                         f"the Dataset has {list(X.data_vars)}")
    if "operator" not in X.attrs:
        raise ValueError("ObservationScaler needs the 'operator' attr of the observations "
                         "(written by xdyn.observe.observe) to rewrite it in the new units")
    try:
        json.loads(X.attrs["operator"])
    except (TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"the observations' 'operator' attr is not a JSON spec: "
                         f"{X.attrs['operator']!r}") from err
    return X
