"""Simulation + spectrum experiments: free runs of the 1-D chaotic systems and
their time-averaged energy spectra."""

from __future__ import annotations

import numpy as np
import xarray as xr

from xdyn.experiments.catalogue import ExperimentResult, config_json, register
from xdyn.metrics import energy_spectrum


def _spectrum_experiment(system, dim, n_steps, save_every, burn_in, seed, length, progress):
    from xdyn.plot import plot_spectrum, plot_state

    ds = system.simulate(n_trajectories=4, n_steps=n_steps, save_every=save_every,
                         burn_in=burn_in, random_state=seed, progress=progress)
    var = system.variables[0].name
    spec = energy_spectrum(ds[var] - ds[var].mean(dim), dim=dim, length=length,
                           mean_dims=["trajectory", "time"])
    res = xr.Dataset({f"{var}_spectrum": spec,
                      f"{var}_mean": ds[var].mean(("trajectory", "time", dim)).assign_attrs(
                          units=ds[var].attrs.get("units", "1"), long_name=f"mean of {var}"),
                      f"{var}_std": ds[var].std(("trajectory", "time", dim)).assign_attrs(
                          units=ds[var].attrs.get("units", "1"),
                          long_name=f"standard deviation of {var}")})
    x_units = ds[dim].attrs.get("units", "1") if length is not None else "1"
    res["wavenumber"].attrs = {
        "long_name": f"wavenumber along {dim}" if length is not None
        else f"mode number along {dim} (cycles per domain)",
        "units": "1" if x_units == "1" else f"{x_units}-1"}
    res.attrs.update(ds.attrs)
    res.attrs["config_json"] = config_json(system=repr(system), n_steps=n_steps,
                                             save_every=save_every, burn_in=burn_in, seed=seed)
    figs = {"hovmoller": plot_state(ds.isel(trajectory=0)),
            "spectrum": plot_spectrum(spec, label=type(system).__name__)}
    k = spec["wavenumber"].values
    peak = float(k[1:][int(np.argmax(spec.values[1:]))])
    table = (f"{type(system).__name__}: mean {float(res[f'{var}_mean']):.3f}, std "
             f"{float(res[f'{var}_std']):.3f}, spectral peak at wavenumber {peak:g}")
    units = res[f"{var}_mean"].attrs.get("units", "1")
    settings = {"system": type(system).__name__, "n_steps": n_steps, "n_trajectories": 4}
    rows = [
        {"method": "free run", "metric": f"time mean of {var}", "value": float(res[f"{var}_mean"]),
         "units": units, "lower_is_better": None, **settings},
        {"method": "free run", "metric": f"standard deviation of {var}",
         "value": float(res[f"{var}_std"]), "units": units, "lower_is_better": None, **settings},
        {"method": "free run", "metric": "spectral peak wavenumber", "value": peak,
         "units": res["wavenumber"].attrs["units"], "lower_is_better": None, **settings},
    ]
    return ExperimentResult(res, figs, table, summary=rows)


@register("lorenz96-spectrum", "Free run of Lorenz-96 (n=40, F=8) and its site-wavenumber spectrum",
          "Lorenz (1996)")
def lorenz96_spectrum(quick=False, seed=0, device="cpu", progress=True):
    """Free run of Lorenz-96 (n=40, F=8) and its time-averaged site-wavenumber spectrum.

    Four trajectories of 4000 steps (``quick``: 400) of ``dt=0.05``, saved every
    other step after a burn-in of 10 time units.

    Parameters
    ----------
    quick : bool, default False
        A short run (for tests and a first look).
    seed : int, default 0
        Seed of the random initial states.
    device : str, default "cpu"
        Torch device of the system.
    progress : bool, default True
        Show a progress bar.

    Returns
    -------
    ExperimentResult
        ``results`` holds ``x_spectrum`` (over ``wavenumber``), ``x_mean`` and
        ``x_std``; figures ``hovmoller`` and ``spectrum``.

    Examples
    --------
    The climate of Lorenz-96 at F=8 has mean about 2.3 and standard deviation
    about 3.6 (Lorenz & Emanuel 1998), and its spectrum peaks near wavenumber 8:

    >>> result = lorenz96_spectrum(quick=True, progress=False)
    >>> ds = result.results
    >>> bool(2.0 < float(ds.x_mean) < 2.7), bool(3.3 < float(ds.x_std) < 3.9)
    (True, True)
    >>> int(ds.x_spectrum[1:].idxmax())  # [1:]: leave out the mean (wavenumber 0)
    8
    """
    from xdyn.systems import Lorenz96

    return _spectrum_experiment(Lorenz96(device=device), "k", 400 if quick else 4000, 2, 10.0,
                                seed, None, progress)


@register("ks-spectrum", "Free run of Kuramoto-Sivashinsky (L=32 pi, N=128, ETDRK4) and its spectrum",
          "Kassam & Trefethen (2005)")
def ks_spectrum(quick=False, seed=0, device="cpu", progress=True):
    """Free run of Kuramoto-Sivashinsky (L=32 pi, N=128, ETDRK4) and its spectrum.

    Four trajectories of 4000 steps (``quick``: 400), saved every fourth step
    after a burn-in of 100 time units; the spectrum is over the physical
    wavenumber ``2 pi n / L``.

    Parameters
    ----------
    quick : bool, default False
        A short run (for tests and a first look).
    seed : int, default 0
        Seed of the random initial states.
    device : str, default "cpu"
        Torch device of the system.
    progress : bool, default True
        Show a progress bar.

    Returns
    -------
    ExperimentResult
        ``results`` holds ``u_spectrum`` (over ``wavenumber``), ``u_mean`` and
        ``u_std``; figures ``hovmoller`` and ``spectrum``.

    Examples
    --------
    The spatial mean of ``u`` is conserved (zero), and the spectrum peaks near
    the most unstable wavenumber ``1/sqrt(2)`` (Kassam & Trefethen 2005):

    >>> ds = ks_spectrum(quick=True, progress=False).results
    >>> round(float(ds.u_mean), 6) == 0, bool(1.1 < float(ds.u_std) < 1.5)
    (True, True)
    >>> peak = float(ds.u_spectrum[1:].idxmax())  # [1:]: leave out the mean (wavenumber 0)
    >>> bool(0.5 < peak < 0.9)
    True
    """
    from xdyn.systems import KuramotoSivashinsky

    system = KuramotoSivashinsky(device=device)
    return _spectrum_experiment(system, "x", 400 if quick else 4000, 4, 100.0, seed,
                                float(system.L), progress)
