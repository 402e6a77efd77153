"""ClosedModel: a resolved-scale forecast closed by a stochastic closure."""

from __future__ import annotations

import copy
import inspect
from numbers import Integral

import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted

from xdyn._labels import format_step
from xdyn._units import other_units, step_units
from xdyn.closure.base import MEMBER_DIM, BaseClosure, same_fields_op
from xdyn.model_selection import unwrap
from xdyn.preprocessing.delay import (delay_embedding, delayed_variables, lag_step,
                                    lagged_name, same_lag_step)
from xdyn.utils._prefit import PrefitCloneMixin
from xdyn.utils._validation import is_integer

_WHAT = "the resolved forecast and the closure's samples"

__all__ = ["ClosedModel"]


class ClosedModel(PrefitCloneMixin, BaseEstimator):
    """Ensemble forecast of the full field: resolved forecast + closure samples.

    ``rom`` forecasts the resolved (filtered) state; at every forecast time
    the closure draws the unresolved scales conditioned on that resolved
    state, and their sum is one member of the full-field forecast. A
    stochastic ROM (one whose ``predict`` takes ``n_samples``, or returns a
    ``member`` dim) gives one resolved trajectory per member, each closed by
    one closure draw; a deterministic one is closed by ``n_members`` draws.
    With ``lags`` the closure also reads the resolved state's past
    (:func:`~xdyn.preprocessing.delay_embedding`): at each forecast time,
    the forecast before it and, before the first lead, the context ``X``.

    Parameters
    ----------
    rom : estimator
        Has ``fit(X)`` and ``predict(X, n_steps)`` on resolved Datasets
        (``xdyn.rom`` models, or any object with that contract); ``predict``
        returns the ``n_steps`` states after the last one of ``X`` along
        ``sample_dim``.
    closure : BaseClosure
    n_members : int, default=10
    prefit : bool, default=False
        Use ``rom`` and ``closure`` as already fitted (no cloning, ``fit``
        only checks them; the model's clones keep them too, as scikit-learn's
        ``FrozenEstimator``); else ``fit`` fits clones of both.
    sample_dim : str, default="time"
    random_state : int, RandomState or None, default=None
        Seeds the closure's draws and, through an integer seed drawn from it,
        the ROM's: passed as ``random_state`` to the ROM's ``predict`` when it
        takes one, else set as the ``random_state`` parameter of a shallow copy
        of the ROM for the call (the fitted ROM itself is left unchanged). None:
        fresh closure draws, and the ROM draws by its own ``random_state``.
    lags : tuple of int, default=()
        Delays (steps along ``sample_dim``) of the resolved state the closure
        reads beside the current one, as variables ``{name}_lag{lag}``: the
        closure is fitted on ``delay_embedding(X, lags)`` (the first
        ``max(lags)`` times of ``X`` have no past: ``Y`` at them, by label, is
        left out), and :meth:`predict` needs at least ``max(lags)`` context
        states. A prefit closure must have been fitted on such inputs. Where the closure's
        inputs had a time coordinate, a lag is a time (their ``lag_step``
        attr): :meth:`fit` (prefit) and :meth:`predict` raise when the
        context's time step, or the forecast's, is another.

    Attributes
    ----------
    rom_, closure_ : the fitted components.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from sklearn.base import BaseEstimator
    >>> from xdyn.closure import ClosedModel, GPClosure
    >>> class Persist(BaseEstimator):  # a resolved "forecast": the last state held
    ...     def fit(self, X): return self
    ...     def predict(self, X, n_steps):
    ...         last = X.isel(time=[-1] * n_steps)
    ...         return last.assign_coords(time=X.time[-1].values + np.arange(1, n_steps + 1))
    >>> rng = np.random.RandomState(0)
    >>> a = rng.normal(size=(120, 1))
    >>> res = xr.Dataset({"w": (("time", "x"), np.hstack([a, -a]))},
    ...                  coords={"time": np.arange(120.0)})
    >>> unres = 0.1 * res ** 2
    >>> model = ClosedModel(rom=Persist(), closure=GPClosure(1, 1, max_epochs=20),
    ...                     n_members=5, random_state=0).fit(res, unres)
    >>> model.predict(res.isel(time=slice(0, 10)), n_steps=3).w.sizes
    Frozen({'member': 5, 'time': 3, 'x': 2})
    """

    _parameter_constraints = {
        "rom": [HasMethods(["fit", "predict"])],
        "closure": [BaseClosure],
        "n_members": [Interval(Integral, 1, None, closed="left")],
        "prefit": ["boolean"],
        "sample_dim": [str],
        "random_state": ["random_state"],
        "lags": [tuple, list],
    }

    _prefit_models = {"prefit": ("rom", "closure")}  # clones keep prefit models

    def __init__(self, rom=None, closure=None, *, n_members=10, prefit=False,
                 sample_dim="time", random_state=None, lags=()):
        self.rom = rom
        self.closure = closure
        self.n_members = n_members
        self.prefit = prefit
        self.sample_dim = sample_dim
        self.random_state = random_state
        self.lags = lags

    def fit(self, X, Y=None):
        """Fit the ROM on the resolved ``X`` and the closure on ``(X, Y)``.

        Parameters
        ----------
        X : xarray.Dataset
            Resolved (filtered) states along ``sample_dim``.
        Y : xarray.Dataset
            Unresolved parts (full field minus ``X``) at the same samples;
            not needed when ``prefit``.

        Returns
        -------
        self
        """
        self._validate_params()
        X, Y = unwrap(X), unwrap(Y)  # model_selection's sample views
        if self.prefit:
            check_is_fitted(self.closure)
            self._check_closure_inputs(X)
            self.rom_, self.closure_ = self.rom, self.closure
            return self
        if Y is None:
            raise ValueError("Y (the unresolved field) is required to fit the closure "
                             "unless prefit=True")
        self.closure_ = clone(self.closure).fit(
            delay_embedding(X, self.lags, self.sample_dim), self._with_past(X, Y))
        self.rom_ = clone(self.rom).fit(X)
        return self

    def _with_past(self, X, Y):
        """``Y`` less its samples at the first ``max(lags)`` of ``X`` (they have no past).

        By label where both have a ``sample_dim`` index (the closure pairs ``Y`` with
        ``X`` by label, whatever order ``Y`` is stored in), else by position.
        """
        longest, dim = max(self.lags, default=0), self.sample_dim
        if not longest:
            return Y
        xi = X.indexes.get(dim) if isinstance(X, xr.Dataset) else None
        yi = Y.indexes.get(dim) if isinstance(Y, (xr.Dataset, xr.DataArray)) else None
        if xi is None or yi is None or not xi.is_unique:
            return Y.isel({dim: slice(longest, None)})
        return Y.isel({dim: ~yi.isin(xi[:longest])})

    def predict(self, X, n_steps, n_members=None, random_state=None):
        """Ensemble forecast of the full field over ``n_steps`` after the end of ``X``.

        Parameters
        ----------
        X : xarray.Dataset
            Resolved states the ROM starts from (its context window).
        n_steps : int
        n_members : int, optional
            Default ``self.n_members``.
        random_state : int, RandomState or None, optional
            Default ``self.random_state``; seeds the ROM's and the closure's
            draws (see the class's ``random_state``).

        Returns
        -------
        xarray.Dataset
            The full field with a ``member`` dim (first) and the ROM's
            forecast times along ``sample_dim``.
        """
        check_is_fitted(self, "closure_")
        X = unwrap(X)
        n_members = self.n_members if n_members is None else n_members
        if not is_integer(n_members) or n_members < 1:
            raise ValueError(f"n_members must be a positive integer; got {n_members!r}")
        random_state = self.random_state if random_state is None else random_state
        rng = check_random_state(random_state)
        longest = max(self.lags, default=0)
        if X.sizes.get(self.sample_dim, 0) < longest:
            raise ValueError(f"the closure reads the resolved state {longest} steps back "
                             f"(lags={tuple(self.lags)}): X needs at least {longest} context "
                             f"states along {self.sample_dim!r}; it has "
                             f"{X.sizes.get(self.sample_dim, 0)}")
        # the ROM's seed drawn from rng first; None keeps the ROM's own random_state
        resolved = self.predict_resolved(X, n_steps, n_members,
                                         random_state=None if random_state is None else rng)
        if MEMBER_DIM in resolved.dims:
            members = [resolved.isel({MEMBER_DIM: m}, drop=True)
                       for m in range(resolved.sizes[MEMBER_DIM])]
            if len(members) != n_members:
                members = [members[m % len(members)] for m in range(n_members)]
            closed = [same_fields_op(np.add, r, self.closure_.sample(
                self._closure_input(X, r), 1, random_state=rng).isel({MEMBER_DIM: 0}, drop=True),
                _WHAT) for r in members]
            out = xr.concat(closed, dim=MEMBER_DIM)
        else:
            out = same_fields_op(np.add, resolved, self.closure_.sample(
                self._closure_input(X, resolved), n_members, random_state=rng), _WHAT)
        out = out.assign_coords({MEMBER_DIM: np.arange(n_members)})
        return out.transpose(MEMBER_DIM, ...)

    def _check_closure_inputs(self, X):
        """A prefit closure must read what ``lags`` gives it: the state and its past."""
        if not isinstance(X, xr.Dataset):
            return
        expected = set(X.data_vars) | {lagged_name(v, lag) for lag in self.lags
                                       for v in delayed_variables(X, self.sample_dim)}
        if getattr(self.closure, "input_info_", None) is None:
            raise TypeError("the prefit closure was fitted on arrays; ClosedModel gives it "
                            "Datasets (the resolved forecast): fit it on Datasets like X")
        names = set(self.closure.input_info_.names)
        if names != expected:
            raise ValueError(f"the prefit closure reads {sorted(names)}; with "
                             f"lags={tuple(self.lags)} it is given {sorted(expected)}: fit it "
                             "on delay_embedding(X, lags), or set lags to its own")
        if self.lags:
            self._check_lag_step(self.closure, X, "X")

    def _check_lag_step(self, closure, data, name):
        """The lags ``data`` gives must be the times the closure was fitted on (``lag_step``)."""
        info = getattr(closure, "input_info_", None)
        fitted = next((v.attrs for v in getattr(info, "variables", ()) if "lag_step" in v.attrs),
                      {})
        step = lag_step(data, self.sample_dim, name)
        # steps compared: "hours since 1900-01-01" and "hours" are both in hours; "" states none
        units = step_units(data[self.sample_dim].attrs.get("units"))
        fitted_units = step_units(fitted.get("lag_step_units"))
        if other_units(fitted_units, units):
            raise ValueError(f"the closure was fitted on lags of model time in "
                             f"{fitted_units!r}; {name}'s {self.sample_dim!r} is in "
                             f"{units!r}: convert its times to {fitted_units!r} first")
        if not fitted or step is None \
                or same_lag_step(fitted["lag_step"], step, data[self.sample_dim],
                                 fitted.get("lag_step_tolerance", 0.0)):
            return
        raise ValueError(f"the closure was fitted on lags of time step "
                         f"{format_step(fitted['lag_step'])} "
                         f"(the lag_step of its inputs); {name} has time step "
                         f"{format_step(step)}, so lags={tuple(self.lags)} would be other "
                         "times: fit the closure at this time step, or give data at its own")

    def _closure_input(self, X, resolved):
        """``resolved`` with its past (``lags``), the context ``X`` before its first step."""
        if not self.lags:
            return resolved
        dim = self.sample_dim
        history = X[list(resolved.data_vars)].isel({dim: slice(-max(self.lags), None)})
        both = xr.concat([history, resolved], dim=dim, coords="minimal", compat="override",
                         join="override")
        self._check_lag_step(self.closure_, both, "the context X followed by the forecast")
        return delay_embedding(both, self.lags, dim)

    def predict_resolved(self, X, n_steps, n_members=None, random_state=None):
        """The ROM's resolved forecast alone (a ``member`` dim when it is stochastic).

        Parameters
        ----------
        X : xarray.Dataset
        n_steps : int
        n_members : int, optional
            Default ``self.n_members``; used when the ROM's ``predict`` takes
            ``n_samples``.
        random_state : int, RandomState or None, optional
            Default ``self.random_state``. An integer seed drawn from it seeds the
            ROM's draws (see ``random_state`` of the class); when both are None,
            the ROM draws by its own ``random_state``.

        Returns
        -------
        xarray.Dataset
        """
        check_is_fitted(self, "rom_")
        X = unwrap(X)
        rom, kwargs = self.rom_, {}
        try:
            params = inspect.signature(rom.predict).parameters
        except (TypeError, ValueError):
            params = {}
        if "n_samples" in params:
            kwargs["n_samples"] = self.n_members if n_members is None else n_members
        random_state = self.random_state if random_state is None else random_state
        own = hasattr(rom, "get_params") and "random_state" in rom.get_params(deep=False)
        if random_state is not None and ("random_state" in params or own):
            seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
            if "random_state" in params:
                kwargs["random_state"] = seed
            else:  # the ROM draws from its own parameter: a copy seeded, the user's ROM kept
                rom = copy.copy(rom)
                rom.random_state = seed
        return rom.predict(X, n_steps=n_steps, **kwargs)
