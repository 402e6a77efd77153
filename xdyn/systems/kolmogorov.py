"""Two-dimensional Kolmogorov flow: forced incompressible Navier-Stokes on a periodic box.

The equations and their non-dimensionalisation follow Chandler & Kerswell (2013)
and the KolSol solver (Kelshaw, github.com/magrilab/kolsol), written here for the
vorticity and solved pseudo-spectrally with the 2/3 rule and ETDRK4
(Cox & Matthews 2002; contour-integral coefficients of Kassam & Trefethen 2005).

Chandler, G. J. & Kerswell, R. R. (2013). Invariant recurrent solutions embedded in
a turbulent two-dimensional Kolmogorov flow. J. Fluid Mech., 722, 554-595.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import xarray as xr

from xdyn._threads import threads_for
from xdyn.systems._spectral import cached, etdrk4_coefficients, etdrk4_step, to_torch
from xdyn.systems._validation import _check_bool, _check_int
from xdyn.systems.base import DynamicalSystem, StateVariable

__all__ = ["KolmogorovFlow", "spectral_truncate"]

_FIELD = {"units": "1"}


class KolmogorovFlow(DynamicalSystem):
    r"""Kolmogorov flow in vorticity form on the periodic box ``[0, L)^2``.

    .. math::

        \partial_t \omega + \mathbf{u}\cdot\nabla\omega
            = \frac{1}{Re}\nabla^2\omega - \mu\,\omega - \chi\,k_f \cos(k_f y),
        \qquad \nabla^2\psi = -\omega,\; u = \partial_y\psi,\; v = -\partial_x\psi,

    the curl of :math:`\partial_t\mathbf{u} + \mathbf{u}\cdot\nabla\mathbf{u} = -\nabla p
    + Re^{-1}\nabla^2\mathbf{u} - \mu\mathbf{u} + \chi\sin(k_f y)\,\hat{\mathbf{x}}`
    with :math:`k_f = 2\pi n_f / L` and :math:`\omega = \partial_x v - \partial_y u`.
    With ``L=2*pi``, ``forcing_amplitude=1`` and ``drag=0`` this is exactly the
    non-dimensional system of Chandler & Kerswell (2013) and KolSol (length scaled by
    ``L/2pi``, time by ``sqrt(L / (2 pi chi))``, ``Re = sqrt(chi) (L/2pi)^{3/2} / nu``).
    The laminar fixed point is ``omega = -(chi Re / k_f) cos(k_f y)``, i.e.
    ``u = (chi Re / k_f^2) sin(k_f y)``; for ``n_f=4`` it loses stability near Re = 10.

    The state is the vorticity on an ``N x N`` grid (dims ``("y", "x")``). The model is
    the Fourier-Galerkin system on the modes ``|k_x|, |k_y| < N/3`` (2/3 rule) without
    the mean mode: :meth:`rhs` and :meth:`step` first project their input onto it.
    Time stepping is ETDRK4 on the exactly integrated linear part (viscosity and drag);
    it keeps the laminar fixed point exact and is stable for ``dt`` up to ~0.05 at
    ``N=64``, Re=34.

    Parameters
    ----------
    Re : float, default=34
        Reynolds number (viscosity ``1/Re``).
    n_forcing : int, default=4
        Forcing wavenumber ``n_f`` (in units of ``2 pi / L``).
    N : int, default=64
        Grid points per side.
    L : float, default=2*pi
        Side of the box.
    forcing_amplitude : float, default=1
        ``chi`` above (1 in the non-dimensional form).
    drag : float, default=0
        Linear (Rayleigh) drag ``mu``.
    dtype : str or torch.dtype, default="float64"
    device : str, default="cpu"

    Examples
    --------
    >>> flow = KolmogorovFlow.preset("re34", N=32)
    >>> ds = flow.simulate(t_span=0.1, random_state=0, diagnostics=True)
    >>> ds.vorticity.dims
    ('time', 'y', 'x')
    >>> sorted(ds.data_vars)
    ['dissipation', 'energy_injection', 'enstrophy', 'kinetic_energy', 'u', 'v', 'vorticity']
    """

    name = "kolmogorov"
    default_dt = 0.01
    integrator = "etdrk4"
    presets = {
        # Chaotic regime used in scale-separation studies: Re=34, n_f=4 on the 2pi box.
        "re34": {"Re": 34.0, "n_forcing": 4, "N": 64, "_dt": 0.01, "_burn_in": 100.0},
        # Chandler & Kerswell (2013): Re=40, n=4 on the 2pi box (grid chosen here).
        "chandler_kerswell2013": {"Re": 40.0, "n_forcing": 4, "N": 128, "_dt": 0.01},
        # Below the first instability (Re ~ 10 for n_f=4): decays to the laminar state.
        "laminar": {"Re": 5.0, "n_forcing": 4, "N": 32, "_dt": 0.05},
    }

    _parameter_constraints = {
        "Re": "real>0", "n_forcing": "int>=1", "N": "int>=4", "L": "real>0",
        "forcing_amplitude": "real", "drag": "real>=0",
    }

    def __init__(self, Re=34.0, n_forcing=4, N=64, L=2 * math.pi, forcing_amplitude=1.0,
                 drag=0.0, dtype="float64", device="cpu"):
        self.Re = Re
        self.n_forcing = n_forcing
        self.N = N
        self.L = L
        self.forcing_amplitude = forcing_amplitude
        self.drag = drag
        self.dtype = dtype
        self.device = device

    # --- labelled state -----------------------------------------------------
    def _variables(self):
        n = int(self.N)
        return [StateVariable("vorticity", ("y", "x"), (n, n),
                              {**_FIELD, "long_name": "vertical component of relative vorticity"})]

    def coords(self):
        return _grid_coords(int(self.N), float(self.L))

    # --- spectral operators -------------------------------------------------
    def _ops_key(self) -> tuple:
        return (int(self.N), float(self.L), float(self.Re), int(self.n_forcing),
                float(self.forcing_amplitude), float(self.drag), self.torch_dtype, self.torch_device)

    def _ops(self) -> dict:
        return cached(self, "ops", self._ops_key(), self._build_ops)

    def _build_ops(self) -> dict:
        n, length = int(self.N), float(self.L)
        if n < 4:
            raise ValueError(f"N must be >= 4, got {n}")
        if not 0 < 3 * int(self.n_forcing) < n:
            raise ValueError(f"n_forcing={self.n_forcing} must be in [1, N/3) so the forcing "
                             f"survives the 2/3-rule truncation at N={n}")
        if float(self.Re) <= 0:
            raise ValueError(f"Re must be positive, got {self.Re}")
        ky_int = np.fft.fftfreq(n, 1.0 / n)[:, None]
        kx_int = np.fft.rfftfreq(n, 1.0 / n)[None, :]
        scale = 2 * np.pi / length
        ky, kx = ky_int * scale, kx_int * scale
        k2 = ky**2 + kx**2
        mask = ((3 * np.abs(ky_int) < n) & (3 * np.abs(kx_int) < n) & (k2 > 0)).astype(float)
        inv_k2 = np.divide(1.0, k2, out=np.zeros_like(k2), where=k2 > 0)
        kf = scale * int(self.n_forcing)
        force = -float(self.forcing_amplitude) * kf * np.cos(kf * self.coords()["y"][1])
        force_hat = np.fft.rfft2(np.repeat(force[:, None], n, axis=1)) / n**2 * mask
        linear = -k2 / float(self.Re) - float(self.drag)
        arrays = {"ikx": 1j * kx, "iky": 1j * ky, "inv_k2": inv_k2, "mask": mask,
                  "linear": linear, "force_hat": force_hat}
        return {**to_torch(arrays, self.torch_dtype, self.torch_device),
                "kf": kf, "linear_np": linear}

    def _etd(self, dt: float):
        linear = self._ops()["linear_np"]
        return cached(self, "etd", (float(dt),) + self._ops_key(),
                      lambda: to_torch(etdrk4_coefficients(linear, float(dt)),
                                       self.torch_dtype, self.torch_device))

    def _nonlinear(self, w_hat):
        """Dealiased ``-u.grad(omega) + forcing`` in spectral space (conservative form)."""
        ops = self._ops()
        psi_hat = w_hat * ops["inv_k2"]
        fields = torch.fft.irfft2(
            torch.stack((ops["iky"] * psi_hat, -ops["ikx"] * psi_hat, w_hat), dim=-3),
            s=(int(self.N),) * 2, norm="forward")
        u, v, w = fields.unbind(-3)
        flux = torch.fft.rfft2(torch.stack((u * w, v * w), dim=-3), norm="forward")
        div = ops["ikx"] * flux[..., 0, :, :] + ops["iky"] * flux[..., 1, :, :]
        return ops["force_hat"] - ops["mask"] * div

    def _to_hat(self, x):
        n = int(self.N)
        grid = x.reshape(*x.shape[:-1], n, n)
        return torch.fft.rfft2(grid, norm="forward") * self._ops()["mask"]

    def _from_hat(self, w_hat):
        n = int(self.N)
        w = torch.fft.irfft2(w_hat, s=(n, n), norm="forward")
        return w.reshape(*w.shape[:-2], n * n)

    # --- dynamics -------------------------------------------------------------
    def rhs(self, t, x):
        """Time derivative of the (projected) vorticity, flat state ``(..., N*N)``."""
        w_hat = self._to_hat(x)
        return self._from_hat(self._ops()["linear"] * w_hat + self._nonlinear(w_hat))

    def step(self, x, dt):
        """One ETDRK4 step of the dealiased Galerkin system."""
        return self._from_hat(etdrk4_step(self._to_hat(x), self._nonlinear, self._etd(dt)))

    def forecast(self, x, dt, n_steps):
        n_steps = self._forecast_steps(x, n_steps)
        w_hat = self._to_hat(x)
        coeffs = self._etd(dt)
        for _ in range(n_steps):
            w_hat = etdrk4_step(w_hat, self._nonlinear, coeffs)
        return self._from_hat(w_hat)

    def random_initial_state(self, n, random_state=None, k_max=4, rms=1.0):
        """Random vorticity fields with energy in ``1 <= |k| <= k_max``, rms ``rms``."""
        rng = random_state if hasattr(random_state, "normal") else np.random.RandomState(random_state)
        size = int(self.N)
        k = np.fft.fftfreq(size, 1.0 / size)
        kk = np.hypot(k[:, None], k[None, :])
        amp = np.where((kk > 0) & (kk <= k_max), np.exp(-0.5 * (kk / k_max) ** 2), 0.0)
        noise = rng.normal(size=(n, size, size)) + 1j * rng.normal(size=(n, size, size))
        w = np.fft.ifft2(amp * noise).real
        w *= rms / np.sqrt(np.mean(w**2, axis=(-2, -1), keepdims=True))
        return w.reshape(n, size * size)

    # --- diagnostics ------------------------------------------------------------
    def _velocity_grid(self, w):
        n = int(self.N)
        w = self.as_tensor(w)
        flat = w.shape[-2:] != (n, n)
        w_hat = self._to_hat(w if flat else w.reshape(*w.shape[:-2], n * n))
        psi_hat = w_hat * self._ops()["inv_k2"]
        uv = torch.fft.irfft2(torch.stack((self._ops()["iky"] * psi_hat,
                                           -self._ops()["ikx"] * psi_hat), dim=-3),
                              s=(n, n), norm="forward")
        return uv[..., 0, :, :], uv[..., 1, :, :], w_hat, flat

    def velocity(self, w):
        """Velocity ``(u, v)`` from vorticity, in the layout of ``w``.

        ``w`` is flat ``(..., N*N)`` or a grid ``(..., N, N)``.

        Examples
        --------
        >>> flow = KolmogorovFlow(Re=5.0, N=16)
        >>> y = torch.as_tensor(flow.coords()["y"][1])[:, None].expand(16, 16)
        >>> u, v = flow.velocity(-4 * torch.cos(4 * y))      # u = sin(4 y)
        >>> bool(torch.allclose(u, torch.sin(4 * y))), float(v.abs().max())
        (True, 0.0)
        """
        u, v, _, flat = self._velocity_grid(w)
        if flat:
            return u.flatten(-2), v.flatten(-2)
        return u, v

    def kinetic_energy(self, w):
        """Domain-mean kinetic energy ``<u^2 + v^2> / 2``, shape ``(...)``.

        Examples
        --------
        The laminar Kolmogorov flow ``u = U sin(4y)``, ``U = Re / 16``, has
        vorticity ``-4 U cos(4y)`` and energy ``U^2 / 4``:

        >>> import numpy as np
        >>> flow = KolmogorovFlow(N=16)  # Re=34, forcing sin(4y) of amplitude 1
        >>> y = np.asarray(flow.coords()["y"][1])
        >>> U = 34 / 16  # u = (Re / k_f^2) sin(k_f y): the steady laminar state
        >>> w = flow.as_tensor(np.repeat(-4 * U * np.cos(4 * y)[:, None], 16, axis=1).ravel())
        >>> float(flow.kinetic_energy(w)), U ** 2 / 4
        (1.12890625, 1.12890625)
        """
        u, v, _, _ = self._velocity_grid(w)
        return 0.5 * (u**2 + v**2).mean((-2, -1))

    def enstrophy(self, w):
        """Domain-mean enstrophy ``<omega^2> / 2`` of the projected field, shape ``(...)``.

        Examples
        --------
        The laminar Kolmogorov flow ``u = U sin(4y)``: ``<(4 U cos 4y)^2> / 2 = 4 U^2``.

        >>> import numpy as np
        >>> flow = KolmogorovFlow(N=16)  # Re=34, forcing sin(4y) of amplitude 1
        >>> y = np.asarray(flow.coords()["y"][1])
        >>> U = 34 / 16  # u = (Re / k_f^2) sin(k_f y): the steady laminar state
        >>> w = flow.as_tensor(np.repeat(-4 * U * np.cos(4 * y)[:, None], 16, axis=1).ravel())
        >>> float(flow.enstrophy(w)), 4 * U ** 2
        (18.0625, 18.0625)
        """
        _, _, w_hat, _ = self._velocity_grid(w)
        return 0.5 * (self._from_hat(w_hat) ** 2).mean(-1)

    def dissipation(self, w):
        """Energy dissipation ``2 enstrophy / Re + 2 drag E``, so ``dE/dt = injection - dissipation``.

        Examples
        --------
        The laminar Kolmogorov flow is steady: dissipation balances injection.

        >>> import numpy as np
        >>> flow = KolmogorovFlow(N=16)  # Re=34, forcing sin(4y) of amplitude 1
        >>> y = np.asarray(flow.coords()["y"][1])
        >>> U = 34 / 16  # u = (Re / k_f^2) sin(k_f y): the steady laminar state
        >>> w = flow.as_tensor(np.repeat(-4 * U * np.cos(4 * y)[:, None], 16, axis=1).ravel())
        >>> float(flow.dissipation(w)), float(flow.energy_injection(w))
        (1.0625, 1.0625)
        """
        return 2.0 * self.enstrophy(w) / float(self.Re) + 2.0 * float(self.drag) * self.kinetic_energy(w)

    def energy_injection(self, w):
        """Power of the forcing ``<u chi sin(k_f y)>``, shape ``(...)``.

        Examples
        --------
        For ``u = U sin(4y)`` and ``chi = 1`` it is ``U / 2``:

        >>> import numpy as np
        >>> flow = KolmogorovFlow(N=16)  # Re=34, forcing sin(4y) of amplitude 1
        >>> y = np.asarray(flow.coords()["y"][1])
        >>> U = 34 / 16  # u = (Re / k_f^2) sin(k_f y): the steady laminar state
        >>> w = flow.as_tensor(np.repeat(-4 * U * np.cos(4 * y)[:, None], 16, axis=1).ravel())
        >>> float(flow.energy_injection(w)), U / 2
        (1.0625, 1.0625)
        """
        u, _, _, _ = self._velocity_grid(w)
        y = self.as_tensor(np.asarray(self.coords()["y"][1]))
        forcing = float(self.forcing_amplitude) * torch.sin(self._ops()["kf"] * y)[:, None]
        return (u * forcing).mean((-2, -1))

    def diagnostics(self, ds: xr.Dataset) -> xr.Dataset:
        """``ds`` with ``u``, ``v`` and energy-budget time series added.

        ``u`` and ``v`` are laid out as ``ds["vorticity"]``: the same dim order and,
        on grid labels in another order (e.g. ``y`` descending), the same labels.

        Parameters
        ----------
        ds : xarray.Dataset
            A ``vorticity`` on the system's grid (dims ``y`` and ``x`` in any order,
            labels in any order), with any leading dims.

        Returns
        -------
        xarray.Dataset
            A copy of ``ds`` with ``u``, ``v``, ``kinetic_energy``, ``enstrophy``,
            ``dissipation`` and ``energy_injection``.

        Examples
        --------
        >>> flow = KolmogorovFlow(N=16)
        >>> ds = flow.diagnostics(flow.simulate(n_steps=2, random_state=0))
        >>> ds.kinetic_energy.dims, ds.u.attrs["long_name"]
        (('time',), 'x-component of velocity')
        >>> flipped = flow.diagnostics(ds.isel(y=slice(None, None, -1)).transpose(..., "y"))
        >>> flipped.u.dims, bool((flipped.u == ds.u).all())  # compared label by label
        (('time', 'x', 'y'), True)
        """
        w = self.to_state(ds)
        dims = ds["vorticity"].dims
        lead = [d for d in dims if d not in ("y", "x")]
        u, v = self.velocity(w)
        out = ds.copy()
        # to_state read the field in the system's layout, (*lead, y, x) with the grid's
        # label order: label u and v so, then put them in the caller's layout (the grid's
        # labels from one snapshot: to_state has reordered the whole field once already)
        grid_ds = self.to_grid_order(ds[["vorticity"]].isel({d: 0 for d in lead}))
        for name, val, long_name in (("u", u, "x-component of velocity"),
                                     ("v", v, "y-component of velocity")):
            grid = val.reshape(*val.shape[:-1], int(self.N), int(self.N)).cpu().numpy()
            da = xr.DataArray(grid, dims=(*lead, "y", "x"),
                              coords={d: grid_ds.indexes[d] for d in ("y", "x")
                                      if d in grid_ds.indexes})
            da = da.reindex({d: ds.indexes[d] for d in ("y", "x") if d in ds.indexes})
            out[name] = (dims, da.transpose(*dims).values, {**_FIELD, "long_name": long_name})
        # one thread: a mean split across threads rounds its last bit by their number, and
        # a generated set must hold the same numbers in any process (a dask worker has one
        # thread, a session several)
        with threads_for(0):
            for name, fn, long_name in (
                ("kinetic_energy", self.kinetic_energy, "domain-mean kinetic energy per unit mass"),
                ("enstrophy", self.enstrophy, "domain-mean enstrophy"),
                ("dissipation", self.dissipation, "domain-mean energy dissipation rate"),
                ("energy_injection", self.energy_injection,
                 "domain-mean power input by the forcing"),
            ):
                out[name] = (tuple(lead), fn(w).cpu().numpy(), {**_FIELD, "long_name": long_name})
        return out

    # --- simulation --------------------------------------------------------------
    def simulate(self, n_trajectories=1, t_span=None, dt=None, save_every=1, burn_in=0.0,
                 x0=None, random_state=None, n_steps=None, progress=False,
                 output_grid=None, diagnostics=False):
        """Integrate and return a Dataset (see :meth:`DynamicalSystem.simulate`).

        Parameters
        ----------
        output_grid : int, optional
            Save every field on an ``output_grid x output_grid`` grid by spectral
            truncation (:func:`spectral_truncate`), without aliasing. Energy-budget
            diagnostics are computed on the full grid first.
        diagnostics : bool, default=False
            Add ``u``, ``v``, ``kinetic_energy``, ``enstrophy``, ``dissipation``
            and ``energy_injection`` (see :meth:`diagnostics`).
        """
        who = type(self).__name__
        if output_grid is not None:
            output_grid = _check_int(output_grid, "output_grid", 1, who)
        _check_bool(diagnostics, "diagnostics", who)
        ds = super().simulate(n_trajectories=n_trajectories, t_span=t_span, dt=dt,
                              save_every=save_every, burn_in=burn_in, x0=x0,
                              random_state=random_state, n_steps=n_steps, progress=progress)
        if diagnostics:
            ds = self.diagnostics(ds)
        if output_grid is not None:
            ds = _truncate_dataset(ds, output_grid, float(self.L))
        return ds


def spectral_truncate(field, n_out: int):
    """Resample a periodic field ``(..., N, N)`` onto ``n_out x n_out`` points by Fourier truncation.

    Modes with ``|k| <= (n_out - 1) // 2`` per direction are kept (the coarse
    Nyquist mode is zeroed); nothing above is folded back (no aliasing).

    Parameters
    ----------
    field : numpy.ndarray or torch.Tensor of shape (..., N, N)
        Real values on a square periodic grid (batched over leading dims).
    n_out : int
        Points per side of the output, ``1 <= n_out <= N``.

    Returns
    -------
    numpy.ndarray or torch.Tensor of shape (..., n_out, n_out)
        Of the type of ``field``.

    Examples
    --------
    >>> x = 2 * np.pi * np.arange(16) / 16
    >>> field = np.sin(2 * x)[None, :] + np.cos(7 * x)[:, None]   # mode 7 is removed
    >>> coarse = spectral_truncate(field, 8)
    >>> bool(np.allclose(coarse, np.sin(2 * x[::2])[None, :]))
    True
    """
    is_numpy = not isinstance(field, torch.Tensor)
    f = torch.as_tensor(np.asarray(field)) if is_numpy else field
    n = f.shape[-1]
    if f.shape[-2] != n or not 1 <= int(n_out) <= n:
        raise ValueError(f"need a square field (..., N, N) and 1 <= n_out <= N; got shape "
                         f"{tuple(f.shape)} and n_out={n_out}")
    keep = (int(n_out) - 1) // 2
    hat = torch.fft.rfft2(f, norm="forward")
    out = hat.new_zeros(*hat.shape[:-2], int(n_out), int(n_out) // 2 + 1)
    out[..., : keep + 1, : keep + 1] = hat[..., : keep + 1, : keep + 1]
    if keep > 0:
        out[..., -keep:, : keep + 1] = hat[..., -keep:, : keep + 1]
    coarse = torch.fft.irfft2(out, s=(int(n_out),) * 2, norm="forward")
    return coarse.numpy() if is_numpy else coarse


def _truncate_dataset(ds: xr.Dataset, n_out: int, length: float) -> xr.Dataset:
    fields = [name for name, da in ds.data_vars.items() if da.dims[-2:] == ("y", "x")]
    out = ds.drop_vars(fields + ["x", "y"])
    out = out.assign_coords(_grid_coords(n_out, length))
    for name in fields:
        da = ds[name]
        out[name] = (da.dims, spectral_truncate(np.asarray(da.values), n_out), dict(da.attrs))
    out.attrs["output_grid"] = n_out
    return out[list(ds.data_vars)]


def _grid_coords(n: int, length: float) -> dict:
    pts = length * np.arange(n) / n
    return {d: (d, pts, {"units": "1", "long_name": f"{d} coordinate"}) for d in ("x", "y")}
