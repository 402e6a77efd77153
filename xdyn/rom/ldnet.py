"""Latent dynamics network (LDNet): a parameter-driven latent ODE and a coordinate decoder.

A reduced-order model of parametrised field dynamics learned from
trajectories (Regazzoni, Pagani, Salvador, Dede' & Quarteroni 2024, "Learning
the intrinsic dynamics of spatio-temporal processes through Latent Dynamics
Networks", Nat. Commun. 15; the variant of Xiao, Si & Chen, "LD-EnSF", ICLR
2026). The latent state starts at zero and is stepped explicitly by a dynamics
net of the latent state and the system's parameters; a reconstruction net
evaluates the field at any spatial coordinate from the latent state. Training
rolls out each trajectory from its parameters and compares the field at a
few randomly drawn grid points per step, so the cost does not grow with the
grid. The torch modules are in :mod:`xdyn.nn.ldnet_modules`.

The latent state starts at zero one step before the first saved state (as in
LD-EnSF), so everything that tells trajectories apart, their initial field
included, must be a function of the parameters.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from xdyn._labels import (format_step, grid_order, is_datetime, is_time, step_tolerance,
                          steps_as_float)
from xdyn.nn import XdynNet, cosine_annealing
from xdyn.nn.ldnet_modules import LDNetModule
from xdyn.nn.params import TRAINING_CONSTRAINTS, RoutedParamsMixin
from xdyn.rom._data import _coords_along, latent_in_order, time_step, time_units
from xdyn.utils._fitted import fit_anew

__all__ = ["LDNet"]


class LDNet(RoutedParamsMixin, TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Latent dynamics network: parameters -> latent trajectory -> field at any point.

    Parameters
    ----------
    n_latent : int, default=9
        Latent state size (the original: 9 Kolmogorov, 10 tsunami, 50 atmosphere).
    parameters : list of str, optional
        Data variables of ``X`` holding the system parameters, one value per
        trajectory (dims ``(trajectory,)``). None: every variable whose only
        dim is ``sample_dim``.
    reconstruction : {"fourier", "residual"}, default="fourier"
        Decoder variant (see :class:`xdyn.nn.ldnet_modules.FieldReconstruction`).
        ``"fourier"`` reads the grid as periodic and needs evenly spaced coordinates.
    n_points : int, default=256
        Grid points drawn per trajectory and step in each training batch.
    n_substeps : int, default=2
        Explicit Euler steps per saved time step.
    max_epochs : int, default=300
    lr : float, default=3e-3
    batch_size : int, default=2
        Trajectories per batch. Small batches: a training set of tens of
        trajectories gives few optimizer steps per epoch, and the number of
        steps is what the LDNet lacks on CPU budgets (quick LD-EnSF sets,
        held-out relative RMSE after the same epochs: Kolmogorov 0.133 with
        8, 0.044 with 2; tsunami 0.152 with 8, 0.072 with 2).
    sample_dim : str, default="trajectory"
        The dim of independent trajectories (the samples).
    time_dim : str, default="time"
    device : str, default="auto"
    dtype : str, default="float32"
    random_state : int or None
    progress : bool, default=False
    **kwargs
        ``module__*`` (``dynamics_hidden``, ``dynamics_layers``, ``n_fourier``,
        ``reconstruction_hidden``, ``reconstruction_layers``) and
        ``optimizer__*`` routed to the network, as in skorch.

    Attributes
    ----------
    net_ : xdyn.nn.XdynNet
    parameters_ : list of str
    variables_ : list of str
        The field variables, in output order.
    spatial_dims_ : tuple of str
    grid_ : dict
        Spatial coordinate values of the training grid, per dim (as floats).
    spatial_coords_ : dict
        The training ``X``'s coordinates along the spatial dims only (name to
        ``xarray.Variable``), as they were: their dtype and attrs label the
        decoded fields on the training grid.
    dataset_attrs_ : dict
        The training ``X``'s attrs, given to the decoded Datasets (as the other
        ROMs give theirs).
    time0_ : float, numpy.datetime64 or None
        First training time (the first saved state); None without a time
        coordinate.
    time_step_ : float, numpy.timedelta64 or None
        Spacing of the training times: one step of the latent dynamics (None
        without a time coordinate).
    time_units_ : str or None
        The ``units`` attr of the training time coordinate (None where it has
        none): times that state other units are refused.
    field_attrs_ : dict
        Attributes of each field variable, given back to the decoded fields.
    n_params_ : int
    field_mean_, field_std_ : ndarray of shape (n_fields,)
    param_low_, param_high_ : ndarray of shape (n_params,)
    history_ : list of float
        Training loss per epoch (mean squared error of the standardised field).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t, x = np.arange(6.0), np.arange(8) / 8
    >>> a = np.array([0.5, 1.0, 1.5, 2.0])
    >>> u = np.sin(2 * np.pi * (x[None, None] - 0.05 * a[:, None, None] * t[None, :, None]))
    >>> ds = xr.Dataset({"u": (("trajectory", "time", "x"), u), "a": ("trajectory", a)},
    ...                 coords={"time": t, "x": x})
    >>> rom = LDNet(n_latent=2, max_epochs=3, n_points=4, random_state=0, device="cpu",
    ...             module__reconstruction_hidden=8, module__dynamics_hidden=8).fit(ds)
    >>> dict(rom.transform(ds)["latent_state"].sizes)
    {'trajectory': 4, 'time': 6, 'latent': 2}
    >>> rom.predict(ds)["u"].dims
    ('trajectory', 'time', 'x')

    ``predict`` is the free forecast from the parameters alone, at ``X``'s
    times on the training time grid, wherever they start:

    >>> late = rom.predict(ds.isel(time=slice(3, 6)))
    >>> bool(np.allclose(late["u"], rom.predict(ds)["u"].isel(time=slice(3, 6))))
    True
    """

    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "n_latent": [Interval(Integral, 1, None, closed="left")],
        "parameters": [list, tuple, str, None],
        "reconstruction": [StrOptions({"fourier", "residual"})],
        "n_points": [Interval(Integral, 1, None, closed="left")],
        "n_substeps": [Interval(Integral, 1, None, closed="left")],
        "sample_dim": [str],
        "time_dim": [str],
    }

    def __init__(self, n_latent=9, *, parameters=None, reconstruction="fourier", n_points=256,
                 n_substeps=2, max_epochs=300, lr=3e-3, batch_size=2, sample_dim="trajectory",
                 time_dim="time", device="auto", dtype="float32", random_state=None,
                 progress=False, **kwargs):
        self.n_latent = n_latent
        self.parameters = parameters
        self.reconstruction = reconstruction
        self.n_points = n_points
        self.n_substeps = n_substeps
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.sample_dim = sample_dim
        self.time_dim = time_dim
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress
        self._set_routed(kwargs)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Learn the latent dynamics and the decoder from trajectories.

        Parameters
        ----------
        X : xarray.Dataset
            Fields with dims ``(trajectory, time, *spatial)`` (numeric spatial
            coordinates) and the parameters, one value per trajectory. Fitted on
            one time (a parametric map of snapshots), it has no time step and
            predicts at that time only.
        y : ignored

        Returns
        -------
        LDNet
            The fitted estimator. A fit that raises leaves it unfitted, not
            half updated (an old network with a new grid).
        """
        return fit_anew(self, X)  # a fit builds a new network every time: nothing is warm-started

    def _fit(self, X):
        self._validate_params()
        params, fields = self._split(X, fitting=True)
        times = X[self.time_dim] if self.time_dim in X.coords else None
        self.time_step_ = time_step(times)
        self.time_units_ = time_units(times)
        self.time0_ = times.values[0] if times is not None and is_time(times.values) else None
        self.field_attrs_ = {v: dict(X[v].attrs) for v in self.variables_}
        self.spatial_coords_ = {k: v.copy() for k, v in
                                _coords_along(X, self.spatial_dims_).items()}
        self.dataset_attrs_ = dict(X.attrs)
        self.field_mean_ = fields.mean(axis=(0, 1, 2))
        self.field_std_ = fields.std(axis=(0, 1, 2)) + 1e-12
        self.param_low_, self.param_high_ = params.min(0), params.max(0)
        coords = self._scaled_coords(self.grid_)
        self.net_ = _LDNetNet(
            LDNetModule, n_points=int(self.n_points),
            module__n_latent=int(self.n_latent), module__n_params=self.n_params_,
            module__n_coords=len(self.spatial_dims_), module__n_fields=len(self.variables_),
            module__coords=coords, module__n_substeps=int(self.n_substeps),
            module__reconstruction=self.reconstruction,
            optimizer=torch.optim.Adam, lr=float(self.lr), max_epochs=int(self.max_epochs),
            batch_size=int(self.batch_size), device=self.device, dtype=self.dtype,
            random_state=self.random_state, progress=bool(self.progress),
            callbacks=[("lr_decay", cosine_annealing(self.max_epochs))],
            **self._routed(),
        )
        scaled = ((fields - self.field_mean_) / self.field_std_).astype(np.float32)
        self.net_.fit({"params": self._scale_params(params), "fields": scaled})
        self.history_ = [float(h["train_loss"]) for h in self.net_.history]
        self.net_.module_.eval()  # skorch leaves it training
        return self

    def _split(self, X, fitting=False, need_fields=True):
        if isinstance(X, np.ndarray):
            raise TypeError("LDNet needs a Dataset of trajectories with their parameters "
                            "(dims (trajectory, time, *spatial)); a bare array has neither")
        if isinstance(X, xr.DataArray):
            raise TypeError("LDNet needs a Dataset holding the fields and the parameter "
                            "variables, got a DataArray")
        if not isinstance(X, xr.Dataset):
            raise TypeError(f"LDNet expects an xarray.Dataset, got {type(X).__name__}")
        sd, td = self.sample_dim, self.time_dim
        for d in (sd, td):
            if d not in X.dims:
                raise ValueError(f"X has no {d!r} dim (dims: {tuple(X.dims)}); "
                                 f"set sample_dim/time_dim")
        if fitting:
            names = self.parameters
            if names is None:
                names = [v for v, da in X.data_vars.items() if da.dims == (sd,)]
            names = [names] if isinstance(names, str) else list(names)
            self.parameters_ = names
            self.n_params_ = len(names)
            fields = [v for v, da in X.data_vars.items()
                      if v not in names and sd in da.dims and td in da.dims]
            if not fields:
                raise ValueError(f"X has no field variable with dims ({sd!r}, {td!r}, ...)")
            spatial = tuple(d for d in X[fields[0]].dims if d not in (sd, td))
            for v in fields:
                if set(X[v].dims) != {sd, td, *spatial}:
                    raise ValueError(f"field variable {v!r} has dims {X[v].dims}; every field "
                                     f"needs ({sd!r}, {td!r}, {', '.join(map(repr, spatial))})")
            if not spatial:
                raise ValueError("the fields have no spatial dim to decode along")
            for d in spatial:
                if d not in X.coords or not np.issubdtype(X[d].dtype, np.number):
                    raise ValueError(f"spatial dim {d!r} needs numeric coordinate values")
                step = np.diff(np.asarray(X[d].values, dtype=float))
                if self.reconstruction == "fourier" and not np.allclose(step, step[:1], rtol=1e-6,
                                                                        atol=0.0):
                    # the decoder's features have the period of an even grid: points wrap
                    raise ValueError(f"reconstruction='fourier' needs an evenly spaced {d!r}; "
                                     f"got steps {np.unique(step)}; use "
                                     f"reconstruction='residual' on an uneven grid")
            self.variables_, self.spatial_dims_ = fields, spatial
            self.grid_ = {d: np.asarray(X[d].values, dtype=float) for d in spatial}
            self._coord_scale = {d: _periodic_extent(self.grid_[d]) for d in spatial}
        missing = [p for p in self.parameters_ if p not in X.data_vars]
        if missing:
            raise ValueError(f"X lacks the parameter variable(s) {missing}")
        for p in self.parameters_:
            if X[p].dims != (sd,):
                raise ValueError(f"parameter {p!r} must have dims ({sd!r},), got {X[p].dims}")
        params = np.stack([np.asarray(X[p].values, dtype=float) for p in self.parameters_], -1) \
            if self.parameters_ else np.zeros((X.sizes[sd], 0))
        if not np.all(np.isfinite(params)):
            raise ValueError(f"parameters {self.parameters_} hold NaN or inf")
        if not need_fields:
            return params, None
        missing = [v for v in self.variables_ if v not in X.data_vars]
        if missing:
            raise ValueError(f"X lacks the field variable(s) {missing}")
        if not fitting:
            X = self._on_training_grid(X)
        fields = np.stack([X[v].transpose(sd, td, *self.spatial_dims_).values
                           .reshape(X.sizes[sd], X.sizes[td], -1) for v in self.variables_], -1)
        if not np.all(np.isfinite(fields)):
            bad = [v for v in self.variables_ if not np.isfinite(X[v].values).all()]
            raise ValueError(f"field variable(s) {bad} hold NaN or inf")
        return params, fields.astype(float)

    # -------------------------------------------------------------- scaling
    def _scale_params(self, params):
        span = np.where(self.param_high_ > self.param_low_, self.param_high_ - self.param_low_, 1)
        return (2 * (params - self.param_low_) / span - 1).astype(np.float32)

    def unscale_params(self, scaled):
        """Physical parameters from their scaled values in ``[-1, 1]`` (array or tensor)."""
        check_is_fitted(self, "net_")
        span = np.where(self.param_high_ > self.param_low_, self.param_high_ - self.param_low_, 1)
        return (scaled + 1) / 2 * span + self.param_low_

    def _scaled_axis(self, values, d):
        """Coordinate values along spatial dim ``d`` in the decoder's units (``[0, 1)``)."""
        return (np.asarray(values, float) - self._coord_scale[d][0]) / self._coord_scale[d][1]

    def _scaled_coords(self, grid):
        missing = [d for d in self.spatial_dims_ if d not in grid]
        if missing:
            raise ValueError(f"grid lacks the spatial dim(s) {missing}: it needs one coordinate "
                             f"array per spatial dim {self.spatial_dims_} (spatial_dims_); "
                             f"got keys {list(grid)}")
        axes = [self._scaled_axis(grid[d], d) for d in self.spatial_dims_]
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], -1).astype(np.float32)

    # ------------------------------------------------- grids of time and space
    def _on_training_grid(self, X):
        """``X`` with its spatial dims ordered as the training grid, matched by coordinate
        value (a field stored in another order is the same field); raises when its grid is
        another one (the decoder would be compared with fields at other points)."""
        order = {}
        for d in self.spatial_dims_:
            grid = self.grid_[d]
            if d not in X.coords:
                raise ValueError(f"X's spatial dim {d!r} has no coordinate; the fields are "
                                 f"compared with the decoder's on the training grid by value")
            values = np.asarray(X[d].values, dtype=float)
            # points closer than a millionth of the domain are the same point
            perm = grid_order(values, grid, rtol=0, atol=1e-6 * abs(self._coord_scale[d][1]))
            if perm is None:
                raise ValueError(f"X's {d!r} coordinate ({values.size} values from "
                                 f"{values.min():g} to {values.max():g}) is not the training "
                                 f"grid ({grid.size} values from {grid.min():g} to "
                                 f"{grid.max():g}); predictions are on the training grid")
            if not np.array_equal(perm, np.arange(len(grid))):
                order[d] = perm
        return X.isel(order) if order else X

    def _time_steps(self, X):
        """Indices of ``X``'s times among the saved steps ``time0_ + k * time_step_``.

        Every rollout starts at the training start (the latent state is zero one
        step before it), so a time off that grid, or before its start, has no
        latent state. Without a time coordinate (in ``X`` or at fit): the first
        ``X.sizes[time_dim]`` steps.
        """
        n = X.sizes[self.time_dim]
        if self.time_dim not in X.coords or self.time0_ is None:
            return np.arange(n)
        time = X[self.time_dim]
        # fitted on times in hours, times in days would be other steps (None: an old pickle)
        time_units(time, getattr(self, "time_units_", None), "X", type(self).__name__)
        values = np.asarray(time.values)
        if not is_time(values) or is_datetime(values) != is_datetime(np.asarray(self.time0_)):
            raise ValueError(f"X's {self.time_dim!r} coordinate has dtype {values.dtype}; the "
                             f"LDNet was fitted on times like {self.time0_!r}")
        offset = steps_as_float(values - self.time0_)
        t0 = format_step(float(self.time0_)) if not is_datetime(values) else str(self.time0_)
        if self.time_step_ is None:  # fitted on one time: no step to take
            if np.any(offset != 0):
                raise ValueError(f"the LDNet was fitted on a single time {t0}: it has no time "
                                 f"step, and predicts at that time only; X's "
                                 f"{self.time_dim!r} times are {values[:6]}")
            return np.zeros(n, dtype=int)
        step = float(steps_as_float(self.time_step_))
        k = np.rint(offset / step)
        tol = step_tolerance(values, step) / step  # in steps
        if (k < 0).any() or (np.abs(offset / step - k) > tol).any():
            step = format_step(self.time_step_)
            raise ValueError(f"X's {self.time_dim!r} times {values[:6]}{' ...' if n > 6 else ''} "
                             f"are not on the training time grid {t0} + k * {step} (k = 0, 1, "
                             "...): every forecast starts at the training start and takes "
                             "steps of time_step_")
        return k.astype(int)

    # ---------------------------------------------------------- torch access
    @property
    def module_(self):
        """The trained torch module, in eval mode (every use of it here is inference)."""
        check_is_fitted(self, "net_")
        return self.net_.module_.eval()

    def decode(self, latent, grid=None):
        """Torch: latents ``(..., n_latent)`` -> fields ``(..., n_points, n_fields)`` (physical units)."""
        check_is_fitted(self, "net_")  # before grid_ is read: NotFittedError, not AttributeError
        return self._decode_scaled(latent, self._scaled_coords(grid or self.grid_))

    def decode_points(self, latent, points):
        """Torch: latents ``(..., n_latent)`` -> fields at scattered points ``(..., P, n_fields)``.

        Differentiable in ``latent`` (LD-EnSF's likelihood of the sparse
        observations goes through it).

        Parameters
        ----------
        latent : torch.Tensor of shape (..., n_latent)
        points : dict
            One 1-D array of ``P`` coordinate values per spatial dim (e.g. the
            ``x`` and ``y`` coordinates of the observations), not a grid.

        Examples
        --------
        >>> import torch
        >>> from xdyn.datasets.ldensf_data import kolmogorov_ldensf
        >>> truth = kolmogorov_ldensf(n_trajectories=2, N=16, n_saved=3, burn_in_steps=2)
        >>> ld = LDNet(n_latent=3, n_points=8, max_epochs=1, device="cpu").fit(truth)
        >>> at = {"y": np.array([0.0, 1.0]), "x": np.array([0.5, 2.0])}   # two points
        >>> ld.decode_points(torch.zeros(5, 3), at).shape
        torch.Size([5, 2, 1])
        """
        return self._decode_scaled(latent, self._scaled_points(points))

    def _scaled_points(self, points):
        """Scattered ``points`` (one 1-D array per spatial dim) as scaled coordinates (P, D)."""
        check_is_fitted(self, "net_")
        missing = [d for d in self.spatial_dims_ if d not in points]
        if missing:
            raise ValueError(f"points lack the coordinate(s) {missing} of the spatial dims "
                             f"{self.spatial_dims_}")
        axes = [self._scaled_axis(points[d], d).ravel() for d in self.spatial_dims_]
        if len({a.size for a in axes}) > 1:
            raise ValueError("points need one value per point in every spatial dim; got sizes "
                             f"{[a.size for a in axes]}")
        return np.stack(axes, -1).astype(np.float32)

    def decode_points_jacobian(self, latent, points):
        """:meth:`decode_points` and its Jacobian in ``latent``: ``(..., P, n_fields)`` and
        ``(..., P, n_fields, n_latent)``, in physical units, in one backward pass per
        field (LD-EnSF's joint likelihood linearises the decoder with it).

        Examples
        --------
        >>> import torch
        >>> from xdyn.datasets.ldensf_data import kolmogorov_ldensf
        >>> truth = kolmogorov_ldensf(n_trajectories=2, N=16, n_saved=3, burn_in_steps=2)
        >>> ld = LDNet(n_latent=3, n_points=8, max_epochs=1, device="cpu").fit(truth)
        >>> at = {"y": np.array([0.0, 1.0]), "x": np.array([0.5, 2.0])}   # two points
        >>> f, jac = ld.decode_points_jacobian(torch.zeros(5, 3), at)
        >>> f.shape, jac.shape
        (torch.Size([5, 2, 1]), torch.Size([5, 2, 1, 3]))
        >>> ref = torch.func.jacfwd(lambda s: ld.decode_points(s, at))(torch.zeros(3))
        >>> bool(torch.allclose(jac[0], ref, atol=1e-5))
        True
        """
        module = self.module_
        # the backward pass keeps every layer's activations: a quarter of decode's chunk
        (out, jac), mean, std = self._in_chunks(
            module.reconstruct_points_jacobian, latent, self._scaled_points(points),
            _DECODE_PAIRS // 4)
        return out * std + mean, jac * std.unsqueeze(-1)

    def _decode_scaled(self, latent, coords):
        """``decode`` at scaled coordinates ``coords`` (P, n_coords)."""
        module = self.module_
        (out,), mean, std = self._in_chunks(lambda s, x: (module.reconstruct_points(s, x),),
                                            latent, coords, _DECODE_PAIRS)
        return out * std + mean

    def _in_chunks(self, decode, latent, coords, pairs):
        """``decode(latents (c, L), coords (P, D))`` over ``latent`` (..., L), at most ``pairs``
        (latent, point) pairs at a time; returns its outputs, each reshaped to ``(..., *rest)``,
        and the fields' mean and std as tensors beside them.

        The decoder's activations are (latents x points x hidden): a 150 x 150 grid
        for every state of a test set at once would need tens of GB.
        """
        p = next(self.module_.parameters())
        coords = torch.as_tensor(coords, dtype=p.dtype, device=p.device)
        lead = latent.shape[:-1]
        flat = latent.to(p).reshape(-1, latent.shape[-1])
        chunk = max(1, pairs // coords.shape[0])
        parts = [decode(s, coords) for s in flat.split(chunk)]
        outs = [torch.cat(o).reshape(*lead, *o[0].shape[1:]) for o in zip(*parts)]
        mean = torch.as_tensor(self.field_mean_, dtype=p.dtype, device=p.device)
        std = torch.as_tensor(self.field_std_, dtype=p.dtype, device=p.device)
        return outs, mean, std

    # ----------------------------------------------------------- transforms
    def transform(self, X):
        """Latent trajectories ``(trajectory, time, latent)`` from the parameters in ``X``.

        ``X`` needs the parameter variables and the ``time`` dim; fields are not
        read. Every trajectory is rolled out from the shared initial state at the
        training start, and its latent states are returned at ``X``'s times,
        which must lie on the training time grid ``time0_ + k * time_step_``
        (``k >= 0``, any start); without a time coordinate, the first steps.
        Dask-backed parameters are computed (the latent ODE is a torch net).
        """
        check_is_fitted(self, "net_")
        params, _ = self._split(X, need_fields=False)
        steps = self._time_steps(X)
        module = self.module_
        p = next(module.parameters())
        u = torch.as_tensor(self._scale_params(params), dtype=p.dtype, device=p.device)
        with torch.no_grad():
            s = module.rollout(u, int(steps.max()) + 1 if steps.size else 0)
            s = s[:, torch.as_tensor(steps, dtype=torch.long)].cpu().numpy()
        coords = {d: X[d] for d in (self.sample_dim, self.time_dim) if d in X.coords}
        out = xr.Dataset({"latent_state": ((self.sample_dim, self.time_dim, "latent"), s,
                                     {"long_name": "LDNet latent state", "units": "1"})},
                         coords={**coords, "latent": np.arange(s.shape[-1])})
        return out

    def inverse_transform(self, X, grid=None):
        """Fields on the training grid (or ``grid``) from latents with dims ``(..., latent)``.

        Parameters
        ----------
        X : xarray.Dataset or DataArray
            A ``latent_state`` variable (or DataArray) whose last dim is ``latent``;
            other dims (trajectory, time, member ...) are kept.
        grid : dict, optional
            Spatial coordinate values per dim; the decoder evaluates anywhere.

        Returns
        -------
        xarray.Dataset
            The fields, with dims ``(*X's other dims, *spatial_dims_)``, the
            fields' attrs and the training Dataset's attrs. On the training grid
            its coordinates are the training ones (dtype and attrs); on
            ``grid``, its float values with the training coordinates' attrs.

        Notes
        -----
        Dask-backed latents are computed (the decoder is a torch net).
        """
        check_is_fitted(self, "net_")
        da = X["latent_state"] if isinstance(X, xr.Dataset) and "latent_state" in X else X
        if not isinstance(da, xr.DataArray) or "latent" not in da.dims:
            raise ValueError("inverse_transform needs a 'latent_state' variable (or a DataArray) "
                             "with a 'latent' dim")
        if da.sizes["latent"] != int(self.n_latent):
            raise ValueError(f"latent dim has size {da.sizes['latent']}, expected {self.n_latent}")
        da = latent_in_order(da).transpose(..., "latent")
        on_training_grid = not grid
        grid = {d: np.asarray(v, float) for d, v in (grid or self.grid_).items()}
        with torch.no_grad():
            z = torch.as_tensor(np.asarray(da.values, dtype=np.float32))
            fields = self.decode(z, grid).cpu().numpy()
        lead = da.dims[:-1]
        shape = tuple(da.shape[:-1]) + tuple(len(grid[d]) for d in self.spatial_dims_)
        coords = {d: da[d] for d in lead if d in da.coords}
        known = getattr(self, "spatial_coords_", {})  # {}: a pickle from before it was kept
        if on_training_grid:  # the training coordinates as they were: an int site index stays
            coords.update({k: v.copy() for k, v in known.items()})
        coords.update({d: (d, grid[d], dict(known[d].attrs) if d in known else {})
                       for d in self.spatial_dims_ if not (on_training_grid and d in known)})
        # decoded in the fields' own units (the standardisation is undone): their attrs
        data = {v: (lead + self.spatial_dims_, fields[..., i].reshape(shape),
                    dict(self.field_attrs_[v])) for i, v in enumerate(self.variables_)}
        return xr.Dataset(data, coords=coords, attrs=dict(getattr(self, "dataset_attrs_", {})))

    def predict(self, X):
        """Fields of every trajectory from its parameters (the free latent forecast).

        At ``X``'s times (on the training time grid, see :meth:`transform`), on
        the training grid. Dask-backed ``X`` is computed.
        """
        return self.inverse_transform(self.transform(X))

    def relative_rmse(self, X):
        """RMSE of :meth:`predict` over all fields and times, relative to the fields' RMS.

        ``X``'s fields are matched with the prediction by coordinate: their
        spatial coordinates must be the training grid's (in any order).

        Computed :data:`_RMSE_TRAJECTORIES` trajectories at a time: the
        predicted fields of a whole training set at once took 3.1 GB at the
        quick tsunami size, and would not fit at the original's.
        """
        check_is_fitted(self, "net_")
        self._split(X, need_fields=False)  # the type, dims and parameters, before any work
        sd, td = self.sample_dim, self.time_dim
        num = den = 0.0
        for start in range(0, X.sizes[sd], _RMSE_TRAJECTORIES):
            part = X.isel({sd: slice(start, start + _RMSE_TRAJECTORIES)})
            _, fields = self._split(part)
            pred = self.predict(part)
            p = np.stack([pred[v].transpose(sd, td, *self.spatial_dims_).values
                          .reshape(fields.shape[:3]) for v in self.variables_], -1)
            num += float(((p - fields) ** 2).sum())
            den += float((fields**2).sum())
        return float(np.sqrt(num / den))

    def score(self, X, y=None):
        """Minus :meth:`relative_rmse` (higher is better, as sklearn expects)."""
        return -self.relative_rmse(X)


_DECODE_PAIRS = 2**19  # (latent, point) pairs per decoder pass: ~0.25 GB per hidden-128 layer
_RMSE_TRAJECTORIES = 4  # trajectories per prediction in relative_rmse


def _periodic_extent(values):
    """(origin, period) of a regular grid: a periodic domain of ``n`` cells."""
    values = np.asarray(values, float)
    if values.size < 2:
        return float(values[0]) if values.size else 0.0, 1.0
    step = np.median(np.diff(values))
    return float(values[0]), float(step * values.size)


class _LDNetNet(XdynNet):
    """XdynNet whose loss decodes the rolled-out latents at random grid points per step."""

    def __init__(self, module, *args, n_points=256, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.n_points = n_points

    # a batch of B trajectories decodes B x T x n_points points, whose matmuls share well
    # (quick LD-EnSF sizes, two threads on the 2-core machine: 1.15-1.23x per training step)
    _keeps_process_threads = True

    def get_loss(self, y_pred, y_true, X=None, training=False):
        fields = X["fields"]                                     # (B, T, G, F)
        B, T, G, F = fields.shape
        m = min(int(self.n_points), G)
        # random points per trajectory and step (the per-epoch seeded stream)
        idx = torch.randint(G, (B, T, m), device=fields.device)
        pred = self.module_.reconstruct_at(y_pred, idx)             # (B, T, m, F)
        target = fields.gather(2, idx.unsqueeze(-1).expand(B, T, m, F))
        return torch.mean((pred - target) ** 2)
