"""The ``ds.xdyn`` accessor on Datasets and DataArrays.

Thin by design (PITFALLS 3): it keeps only the object and forwards to public
functions, so everything it does is also available without it.
"""

from __future__ import annotations

import xarray as xr

__all__ = ["XdynAccessor"]


class XdynAccessor:
    """Entry point to xdyn from any Dataset or DataArray.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        The object the accessor is attached to; xarray passes it when ``obj.xdyn`` is
        first used, so it is not built by hand. Its methods forward it to public functions.

    Examples
    --------
    >>> import xdyn
    >>> from xdyn.systems import Lorenz96
    >>> truth = Lorenz96().simulate(n_steps=40, random_state=0)
    >>> obs = truth.xdyn.observe("every4", noise_std=1.0, random_state=0)
    >>> obs.sizes["obs"]
    10
    >>> float(truth.xdyn.rmse(truth)["x"])
    0.0
    """

    def __init__(self, obj):
        self._obj = obj

    def observe(self, operator="identity", noise_std=1.0, **kwargs):
        """Synthetic observations; see :func:`xdyn.observe.observe`.

        Examples
        --------
        A DataArray is observed as the one variable of a Dataset:

        >>> import xdyn
        >>> from xdyn.systems import Lorenz96
        >>> truth = Lorenz96(n=8).simulate(n_steps=40, random_state=0)
        >>> obs = truth.x.xdyn.observe("identity", noise_std=0.5, random_state=0)
        >>> obs.observation.dims, obs.sizes["obs"]
        (('time', 'obs'), 8)
        """
        from xdyn.observe import observe

        obj = self._obj
        if isinstance(obj, xr.DataArray):  # observe() takes Datasets: the array is one variable
            obj = obj.to_dataset(name=obj.name if obj.name is not None else "state")
        return observe(obj, operator, noise_std, **kwargs)

    def rmse(self, truth, dim=None, **kwargs):
        """RMSE against ``truth``; see :func:`xdyn.metrics.rmse`.

        Examples
        --------
        >>> import xdyn
        >>> from xdyn.systems import Lorenz96
        >>> truth = Lorenz96(n=8).simulate(n_steps=40, random_state=0)
        >>> float((truth + 1.0).xdyn.rmse(truth)["x"])
        1.0
        """
        from xdyn.metrics import rmse

        return rmse(self._obj, truth, dim=dim, **kwargs)

    def crps(self, truth, member_dim="member", **kwargs):
        """Ensemble CRPS against ``truth``; see :func:`xdyn.metrics.crps_ensemble`.

        Examples
        --------
        Two members one unit either side of the truth: ``E|X - y| - E|X - X'| / 2 = 1 - 1/2``.

        >>> import xarray as xr, xdyn
        >>> from xdyn.systems import Lorenz96
        >>> truth = Lorenz96(n=8).simulate(n_steps=4, random_state=0)
        >>> ensemble = xr.concat([truth - 1.0, truth + 1.0], dim="member")
        >>> float(ensemble.xdyn.crps(truth).x.mean())
        0.5
        """
        from xdyn.metrics import crps_ensemble

        return crps_ensemble(self._obj, truth, member_dim=member_dim, **kwargs)

    def spectrum(self, dim=None, **kwargs):
        """Energy spectrum: 1-D along ``dim`` or isotropic over (y, x).

        Without ``dim``: isotropic when the data have ``y`` and ``x``, else
        along the first of ``x``, ``k``, ``lon`` it has. ``kwargs`` go to
        :func:`xdyn.metrics.energy_spectrum` or :func:`xdyn.metrics.isotropic_spectrum`.

        Examples
        --------
        >>> import xdyn
        >>> from xdyn.systems import Lorenz96
        >>> truth = Lorenz96(n=8).simulate(n_steps=40, random_state=0)
        >>> truth.x.xdyn.spectrum().sizes  # along k: wavenumbers 0..n/2
        Frozen({'time': 41, 'wavenumber': 5})
        """
        from xdyn.metrics import energy_spectrum, isotropic_spectrum

        obj = self._obj
        dims = set(obj.dims)
        if dim is None and {"x", "y"} <= dims:
            return isotropic_spectrum(obj, **kwargs)
        if dim is None:
            candidates = [d for d in ("x", "k", "lon") if d in dims]
            if not candidates:
                raise ValueError(f"no periodic spatial dim to take a spectrum over in {tuple(obj.dims)}")
            dim = candidates[0]
        return energy_spectrum(obj, dim=dim, **kwargs)

    def lowpass(self, cutoff, **kwargs):
        """Spectral low-pass filter of the fields; see :class:`xdyn.preprocessing.LowPassFilter`.

        ``cutoff`` is a wavenumber or ``"energyXX"`` (learned on this object);
        ``kwargs`` (``dims``, ``lengths``, ``kind`` ...) go to the filter.

        Examples
        --------
        >>> import numpy as np, xarray as xr, xdyn
        >>> x = 2 * np.pi * np.arange(16) / 16
        >>> w = xr.DataArray(np.sin(2 * x)[None, :] + np.sin(6 * x)[:, None], dims=("y", "x"))
        >>> bool(np.allclose(w.xdyn.lowpass(3), np.sin(2 * x)[None, :]))
        True
        """
        from xdyn.preprocessing import LowPassFilter

        return LowPassFilter(cutoff, **kwargs).fit(self._obj).transform(self._obj)

    def plot(self, **kwargs):
        """Overview figure of the state; see :func:`xdyn.plot.plot_state`.

        Examples
        --------
        >>> import xdyn
        >>> from xdyn.systems import Lorenz96
        >>> fig = Lorenz96(n=8).simulate(n_steps=40, random_state=0).xdyn.plot()
        >>> type(fig).__name__
        'Figure'
        """
        from xdyn.plot import plot_state

        return plot_state(self._obj, **kwargs)

    def assimilate(self, method="enkf", truth=None, **params):
        """Assimilate these observations with a named method and return the analysis.

        ``method`` is a key of :data:`xdyn.assimilation.METHODS` (``"enkf"``,
        ``"letkf"``, ``"3dvar"`` ...); ``params`` go to its constructor, and
        ``truth`` (optional) to ``fit`` for methods that learn from it.

        Examples
        --------
        >>> import xdyn
        >>> from xdyn.systems import Lorenz63
        >>> truth = Lorenz63().simulate(n_steps=500, random_state=0)
        >>> obs = truth.xdyn.observe("identity", noise_std=1.0, every=10, random_state=1)
        >>> analysis = obs.xdyn.assimilate("enkf", n_members=10, random_state=0,
        ...                                return_ensemble=False)
        >>> analysis.x.dims
        ('time',)
        >>> bool(float(analysis.xdyn.rmse(truth.sel(time=analysis.time))["x"]) < 1.0)
        True
        """
        from xdyn.assimilation import make_assimilator

        est = make_assimilator(method, **params)
        return est.fit(self._obj, truth).predict(self._obj)


xr.register_dataset_accessor("xdyn")(XdynAccessor)
xr.register_dataarray_accessor("xdyn")(XdynAccessor)
