"""Proper orthogonal decomposition (POD) and POD with linear latent dynamics.

:class:`POD` is the linear baseline of latent ROMs: the leading left singular
vectors of the centred snapshot matrix (Holmes, Lumley & Berkooz 1996,
*Turbulence, Coherent Structures, Dynamical Systems and Symmetry*, ch. 3).
:class:`PODLinearDynamics` adds the least-squares linear map ``a_{t+1} = A a_t
+ b`` between consecutive POD coefficients (the simplest latent propagator, a
DMD-like model; Schmid 2010, J. Fluid Mech. 656), the baseline next to which
arXiv 2510.24583's transformer ROM is judged.
"""

from __future__ import annotations

import copy
from numbers import Integral, Real

import numpy as np
import scipy.linalg
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from xdyn._units import common_units
from xdyn.rom._data import (from_trajectories, latent_input, latent_output,
                             relative_error, rollout_times, time_step, time_units,
                             to_trajectories)
from xdyn.utils._fitted import fit_anew

__all__ = ["POD", "PODLinearDynamics"]


# above this many rows and columns, the leading modes come from the top eigenpairs of the
# smaller Gram matrix instead of a thin SVD: for 38,400 snapshots of 8192 features the SVD
# held 17 GB and ran for over 10 minutes on one core
_GRAM_ABOVE = 2048
_ROW_CHUNK = 4096  # rows centred at a time for the Gram matrix


def _leading_modes(matrix, mean, n_modes):
    """The ``n_modes`` largest singular values and right singular vectors of ``matrix -
    mean``, and its squared Frobenius norm (the total variance times the samples).

    Small matrices: a thin SVD. Large ones: the top eigenpairs of ``A^T A``,
    accumulated over row chunks (no centred copy), when there are fewer features
    than samples, else of ``A A^T`` (Sirovich's method of snapshots). Both square
    the condition number: modes below ``1e-8`` of the leading singular value lose
    their accuracy, far below any POD truncation in use.
    """
    n, f = matrix.shape
    if min(n, f) <= _GRAM_ABOVE:
        _, s, vt = np.linalg.svd(matrix - mean, full_matrices=False)
        return s[:n_modes], vt[:n_modes], float((s**2).sum())
    if f <= n:
        gram = np.zeros((f, f))
        for rows in range(0, n, _ROW_CHUNK):
            block = matrix[rows:rows + _ROW_CHUNK] - mean
            gram += block.T @ block
    else:
        centred = matrix - mean
        gram = centred @ centred.T
    w, vecs = scipy.linalg.eigh(gram, subset_by_index=[len(gram) - n_modes, len(gram) - 1])
    s, vecs = np.sqrt(np.clip(w[::-1], 0.0, None)), vecs[:, ::-1]
    total = float(np.trace(gram))
    if f <= n:
        return s, np.ascontiguousarray(vecs.T), total
    # right singular vectors from the left ones: v_i = A^T u_i / s_i
    modes = (vecs.T @ centred) / np.where(s > 0, s, 1.0)[:, None]
    # beyond the data's rank (eigenvalues at rounding level) A^T u_i is noise, no unit
    # vector: complete the basis with orthonormal directions, as the thin SVD does
    null = w[::-1] <= np.finfo(float).eps * max(n, f) * max(w[-1], 0.0)
    if null.any():
        noise = np.random.RandomState(0).normal(size=(int(null.sum()), f))
        q, r = np.linalg.qr(np.vstack([modes[~null], noise]).T)
        modes = (q * np.where(np.diag(r) < 0, -1.0, 1.0)).T  # the kept modes' signs
        s[null] = np.linalg.norm(centred @ modes[null].T, axis=0)
    return s, modes, total


class POD(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Proper orthogonal decomposition of snapshots (PCA of the centred fields).

    Parameters
    ----------
    n_modes : int, default=10
        Modes kept.
    sample_dim : str, default="time"
        The sample dim; every other dim but ``trajectory_dim`` is a feature.
    trajectory_dim : str or None, default="trajectory"
        Independent trajectories: their snapshots are samples too. Not
        ``"member"``, the dim of an ensemble's members (see the Notes).

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        The mean snapshot.
    components_ : ndarray of shape (n_modes, n_features)
        Orthonormal POD modes.
    singular_values_ : ndarray of shape (n_modes,)
    explained_variance_ratio_ : ndarray of shape (n_modes,)
        Share of the snapshot variance of each mode.
    n_features_in_ : int
    layout_ : object
        How the training data were stacked (variables, grid, coords), to
        unstack any matrix of the same features.

    Notes
    -----
    ``transform`` returns the coefficients ``z`` (a Dataset with variable
    ``z`` of dims ``(..., sample_dim, "latent")`` for a Dataset, a DataArray
    for a DataArray, an array for an array), in the fields' ``units`` (the
    modes are orthonormal; ``"mixed"`` for variables in different units);
    ``inverse_transform`` maps any coefficients, also of unseen data, back to
    the fields on the training grid, keeping other dims (an ensemble's
    ``member``). ``transform`` keeps an ensemble's ``member`` dim too (each
    member projected as a trajectory is), and both stay lazy on dask-backed
    data (a linear projection, chunk by chunk along ``sample_dim``).

    ``member`` is only ever an ensemble's dim: ``fit`` refuses data with one
    (it would read it as a feature dim, the modes of the members side by side,
    where ``transform`` reads it as members). To fit on an ensemble's
    snapshots, make its members trajectories first, ``xr.concat([X.sel(member=m,
    drop=True) for m in X.member.values], "trajectory")``; to fit the members
    as features, rename the dim.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t, x = np.arange(50.0), np.linspace(0, 1, 8)
    >>> ds = xr.Dataset({"u": (("time", "x"), np.outer(np.sin(t), x) + np.outer(np.cos(t), x**2))},
    ...                 coords={"time": t})
    >>> pod = POD(n_modes=2).fit(ds)
    >>> z = pod.transform(ds)
    >>> z.z.dims, bool(np.allclose(pod.inverse_transform(z).u, ds.u))
    (('time', 'latent'), True)
    >>> pod.explained_variance_ratio_.sum().round(6)
    np.float64(1.0)

    An ensemble is fitted with its members as trajectories:

    >>> ens = xr.concat([ds, ds + 0.1 * np.cos(t)[:, None]], "member")
    >>> runs = xr.concat([ens.sel(member=m, drop=True) for m in ens.member.values], "trajectory")
    >>> POD(n_modes=2).fit(runs).transform(ens).z.dims
    ('member', 'time', 'latent')
    """

    _parameter_constraints = {
        "n_modes": [Interval(Integral, 1, None, closed="left")],
        "sample_dim": [str],
        "trajectory_dim": [str, None],
    }

    def __init__(self, n_modes=10, *, sample_dim="time", trajectory_dim="trajectory"):
        self.n_modes = n_modes
        self.sample_dim = sample_dim
        self.trajectory_dim = trajectory_dim

    def fit(self, X, y=None):
        """Learn the mean snapshot and the leading POD modes of ``X``; returns self.

        ``X`` may not have a ``member`` dim (see the Notes of :class:`POD`). A fit
        that raises leaves the estimator unfitted, not half updated (new modes with
        an old map).
        """
        return fit_anew(self, X)

    def _fit(self, X):
        self._validate_params()
        values, layout = to_trajectories(X, self.sample_dim, self.trajectory_dim)
        matrix = values.reshape(-1, values.shape[-1])
        if self.n_modes > min(matrix.shape):
            raise ValueError(f"n_modes={self.n_modes} exceeds min(n_samples, n_features) = "
                             f"{min(matrix.shape)}")
        self.mean_ = matrix.mean(0)
        s, self.components_, total = _leading_modes(matrix, self.mean_, self.n_modes)
        self.singular_values_ = s
        self.explained_variance_ratio_ = s**2 / (total if total > 0 else 1.0)
        self.layout_ = layout
        self.n_features_in_ = matrix.shape[1]
        return self

    def transform(self, X):
        """POD coefficients of ``X`` (same kind as ``X``).

        Parameters
        ----------
        X : xarray.Dataset, xarray.DataArray or array
            Snapshots on the training grid (also unseen ones). An ensemble's
            ``member`` dim is kept, with its coordinates (a ``seed(member)``
            too): each member is projected as a trajectory is.

        Returns
        -------
        Same kind as ``X``
            The coefficients ``z`` with dims ``([member,] [trajectory,]
            sample_dim, "latent")``. Lazy for dask-backed ``X`` (a projection
            chunk by chunk along ``sample_dim``); its NaN check then runs when
            it is computed.

        Examples
        --------
        >>> import dask.array as da, numpy as np, xarray as xr
        >>> rng = np.random.RandomState(0)
        >>> ds = xr.Dataset({"u": (("time", "x"), rng.normal(size=(20, 6)))})
        >>> pod = POD(3).fit(ds)
        >>> ens = xr.concat([ds, 2 * ds], "member").assign_coords(member=["a", "b"])
        >>> z = pod.transform(ens)
        >>> z.z.dims, z.member.values.tolist()
        (('member', 'time', 'latent'), ['a', 'b'])
        >>> bool(np.allclose(z.z.sel(member="a"), pod.transform(ds).z))
        True
        >>> lazy = pod.transform(ds.chunk({"time": 5}))
        >>> isinstance(lazy.z.data, da.Array), bool(np.allclose(lazy.z, pod.transform(ds).z))
        (True, True)
        """
        check_is_fitted(self)
        values, layout = self._stack(X, lazy=True)
        # coefficients of orthonormal modes carry the fields' units (not "1")
        return latent_output(self._project(values), layout,
                             self.sample_dim, layout.time_coord,
                             units=common_units(v.attrs.get("units")
                                                for v in getattr(layout.info, "variables", ())))

    def inverse_transform(self, X):
        """Fields on the training grid from POD coefficients (also of unseen data).

        Parameters
        ----------
        X : xarray.Dataset, xarray.DataArray or array
            Coefficients as :meth:`transform` gives them; other dims (an
            ensemble's ``member``) are kept.

        Returns
        -------
        xarray.Dataset, xarray.DataArray or array
            The fields: for labelled coefficients, on the training grid and of
            the kind :meth:`fit` got (a Dataset or a DataArray), with ``X``'s
            other dims and their coordinates; for an array of coefficients, an
            array of shape (n_samples, n_features). Lazy where ``X`` is
            dask-backed.

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> rng = np.random.RandomState(0)
        >>> ds = xr.Dataset({"u": (("time", "x"), rng.normal(size=(20, 6)))})
        >>> pod = POD(6).fit(ds)
        >>> ens = xr.concat([ds, 2 * ds], "member")
        >>> back = pod.inverse_transform(pod.transform(ens.chunk({"time": 5})))
        >>> back.u.dims, bool(np.allclose(back.u, ens.u))
        (('member', 'time', 'x'), True)
        """
        check_is_fitted(self)
        z, meta = latent_input(X, self.sample_dim, self.trajectory_dim, self.n_modes, lazy=True)
        return self._unstack(self._rebuild(z), meta)

    def score(self, X, y=None):
        """Minus the relative L2 error of ``X`` rebuilt from its POD coefficients.

        Parameters
        ----------
        X : xarray.Dataset, xarray.DataArray or array
            Snapshots on the training grid (also unseen ones); an ensemble's
            ``member`` dim is read as trajectories are. Dask-backed ``X`` is
            computed.
        y : None
            Ignored (scikit-learn's signature).

        Returns
        -------
        float
            ``-sqrt(sum((r - x)**2) / sum(x**2))`` over all snapshots (of all
            members) and features, ``r = inverse_transform(transform(X))``: the relative
            L2 error, :func:`xdyn.metrics.relative_l2`. Higher is better
            (scikit-learn's convention), 0 for an exact reconstruction.

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> rng = np.random.RandomState(0)
        >>> ds = xr.Dataset({"u": (("time", "x"), rng.normal(size=(20, 6)))})
        >>> bool(POD(2).fit(ds).score(ds) < POD(4).fit(ds).score(ds) < 0)
        True
        >>> POD(6).fit(ds).score(ds) > -1e-12  # all the modes: exact
        True
        """
        check_is_fitted(self)
        values, _ = self._stack(X)
        return -relative_error(self._rebuild(self._project(values)), values)

    def _project(self, values):
        """Coefficients of stacked snapshots on the modes."""
        return (values - self.mean_) @ self.components_.T

    def _rebuild(self, z):
        """Stacked snapshots from their coefficients."""
        return z @ self.components_ + self.mean_

    # ------------------------------------------------------------------ helpers
    def _stack(self, X, name="X", lazy=False):
        info = self.layout_.info
        return to_trajectories(X, self.sample_dim, self.trajectory_dim, info=info, name=name,
                               lazy=lazy)

    def _unstack(self, values, meta, member_dim=None):
        if meta is None:  # a bare array in, a bare array out
            return values[:, 0] if member_dim else values[0]
        layout = copy.copy(self.layout_)
        layout.trajectory_dim, layout.trajectory_coord, time = meta
        return from_trajectories(values, layout, time, member_dim=member_dim)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class PODLinearDynamics(POD):
    """POD coefficients stepped by a least-squares linear map: ``a_{t+1} = A a_t + b``.

    Parameters
    ----------
    n_modes : int, default=10
    ridge : float, default=1e-8
        Tikhonov weight of the least-squares fit, relative to the mean squared
        coefficient (keeps a rank-deficient fit well posed).
    sample_dim, trajectory_dim : str
        As for :class:`POD`; pairs of consecutive snapshots never cross trajectories.

    Attributes
    ----------
    A_ : ndarray of shape (n_modes, n_modes)
    b_ : ndarray of shape (n_modes,)
    time_step_ : float, numpy.timedelta64 or None
        Spacing of the training snapshots along ``sample_dim`` (a timedelta64
        for datetime64 times): the step ``A_`` takes. None without a time
        coordinate.
    time_units_ : str or None
        The ``units`` attr of the training time coordinate (None where it has
        none): :meth:`predict` refuses a context whose time states other units.
    mean_, components_, singular_values_, explained_variance_ratio_, n_features_in_, layout_
        As for :class:`POD`.

    Examples
    --------
    A travelling wave is two POD modes rotating at a fixed rate: exactly linear.

    >>> import numpy as np, xarray as xr
    >>> t, x = 0.1 * np.arange(60), np.linspace(0, 2 * np.pi, 16, endpoint=False)
    >>> ds = xr.Dataset({"u": (("time", "x"), np.sin(x[None] - t[:, None]))}, coords={"time": t})
    >>> model = PODLinearDynamics(n_modes=2).fit(ds.isel(time=slice(0, 40)))
    >>> forecast = model.predict(ds.isel(time=slice(0, 40)), n_steps=20)
    >>> forecast.time.values[[0, -1]].round(2).tolist()
    [4.0, 5.9]
    >>> bool(np.allclose(forecast.u, ds.u.isel(time=slice(40, 60)), atol=1e-6))
    True
    """

    _parameter_constraints = {
        **POD._parameter_constraints,
        "ridge": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, n_modes=10, *, ridge=1e-8, sample_dim="time", trajectory_dim="trajectory"):
        super().__init__(n_modes, sample_dim=sample_dim, trajectory_dim=trajectory_dim)
        self.ridge = ridge

    def fit(self, X, y=None):
        """POD of ``X``, then the least-squares map between consecutive coefficients.

        A fit that raises leaves the estimator unfitted, not half updated.
        """
        return super().fit(X)

    def _fit(self, X):
        super()._fit(X)
        values, _ = self._stack(X)
        if values.shape[1] < 2:
            raise ValueError(f"X needs at least 2 snapshots along {self.sample_dim!r}")
        self.time_step_ = time_step(self.layout_.time_coord)
        self.time_units_ = time_units(self.layout_.time_coord)
        z = self._project(values)
        past = z[:, :-1].reshape(-1, self.n_modes)
        future = z[:, 1:].reshape(-1, self.n_modes)
        design = np.hstack([past, np.ones((len(past), 1))])
        gram = design.T @ design
        gram[np.diag_indices(self.n_modes)] += self.ridge * len(past) * np.mean(past**2)
        coef = np.linalg.solve(gram, design.T @ future)
        self.A_, self.b_ = coef[:-1].T, coef[-1]
        return self

    def predict(self, X, n_steps):
        """Forecast ``n_steps`` snapshots after the last one of ``X`` (per trajectory).

        Returns the fields on the training grid, the same kind as ``X``, at
        times continuing ``X``'s last one by the training step ``time_step_``
        (``X``'s times must be spaced ``time_step_`` apart). An ensemble's
        ``member`` dim is kept: each member's last snapshot starts its own
        rollout, as a trajectory's does. Dask-backed ``X`` is computed.
        """
        check_is_fitted(self)
        if not isinstance(n_steps, Integral) or n_steps < 1:
            raise ValueError(f"n_steps must be a positive integer; got {n_steps!r}")
        values, layout = self._stack(X)
        times = rollout_times(layout.time_coord, self.time_step_, n_steps, self.sample_dim,
                              units=getattr(self, "time_units_", None),  # None: an old pickle
                              model=type(self).__name__) if layout.kind == "xarray" else None
        z = self._project(values[:, -1])
        out = np.empty((values.shape[0], n_steps, self.n_modes))
        for k in range(n_steps):
            z = self._step(z)
            out[:, k] = z
        fields = self._rebuild(out)
        if layout.kind == "array":
            return fields[0]
        return self._unstack(fields, (layout.trajectory_dim, layout.trajectory_coord, times))

    def score(self, X, y=None):
        """Minus the relative L2 error of the one-step forecasts from ``X`` against ``X``.

        Every snapshot of ``X`` but the last (per trajectory) is stepped once,
        as :meth:`predict` steps, and compared with the next one.

        Parameters
        ----------
        X : xarray.Dataset, xarray.DataArray or array
            At least 2 consecutive snapshots per trajectory on the training
            grid, ``time_step_`` apart (as the context of :meth:`predict`).
        y : None
            Ignored (scikit-learn's signature).

        Returns
        -------
        float
            ``-sqrt(sum((f - x)**2) / sum(x**2))`` over the forecast snapshots
            ``x`` (of all members: an ensemble's ``member`` dim is read as
            trajectories are) and all features, ``f`` their one-step forecasts: the
            relative L2 error, :func:`xdyn.metrics.relative_l2`. Higher is
            better (scikit-learn's convention).

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> t, x = 0.1 * np.arange(60), np.linspace(0, 2 * np.pi, 16, endpoint=False)
        >>> ds = xr.Dataset({"u": (("time", "x"), np.sin(x[None] - t[:, None]))},
        ...                 coords={"time": t})
        >>> model = PODLinearDynamics(n_modes=2).fit(ds.isel(time=slice(0, 40)))
        >>> bool(model.score(ds.isel(time=slice(40, 60))) > -1e-6)  # exactly linear
        True
        """
        check_is_fitted(self)
        values, layout = self._stack(X)
        if values.shape[1] < 2:
            raise ValueError(f"X needs at least 2 snapshots along {self.sample_dim!r} to score "
                             f"a one-step forecast; got {values.shape[1]}")
        if layout.kind == "xarray":  # X's times must be spaced as the training ones
            rollout_times(layout.time_coord, self.time_step_, 1, self.sample_dim,
                          units=getattr(self, "time_units_", None),
                          model=type(self).__name__)
        forecast = self._rebuild(self._step(self._project(values[:, :-1])))
        return -relative_error(forecast, values[:, 1:])

    def _step(self, z):
        """Coefficients one time step later."""
        return z @ self.A_.T + self.b_
