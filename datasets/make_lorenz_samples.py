"""Make the shipped Lorenz-63 and Lorenz-96 sample trajectories.

Run from the repository root::

    python datasets/make_lorenz_samples.py

writes ``datasets/lorenz63_sample.nc`` and ``datasets/lorenz96_sample.nc`` and
records their sha256 in ``xdyn/datasets/registry.txt``. Floating-point results
may differ in the last bits on another machine or torch version, so a rerun may
change the bytes (and the registry), not the science.
"""

from __future__ import annotations

from _common import HERE, update_registry

from xdyn import __version__
from xdyn.datasets.registry import write_netcdf_atomic
from xdyn.systems import Lorenz63, Lorenz96

SAMPLES = {
    "lorenz63_sample.nc": (
        Lorenz63,
        {},
        dict(t_span=50.0, dt=0.01, save_every=5, burn_in=10.0, random_state=0),
        "Lorenz-63 sample trajectory (classical parameters)",
    ),
    "lorenz96_sample.nc": (
        Lorenz96,
        dict(n=40, F=8.0),
        dict(t_span=20.0, dt=0.05, save_every=1, burn_in=10.0, random_state=0),
        "Lorenz-96 sample trajectory (n=40, F=8)",
    ),
}


def main() -> None:
    written = []
    for fname, (cls, params, run, title) in SAMPLES.items():
        ds = cls(**params).simulate(**run)
        ds.attrs.update(
            title=title,
            history=f"made by datasets/make_lorenz_samples.py with xdyn {__version__}",
        )
        written.append(write_netcdf_atomic(ds, HERE / fname))
    update_registry(written)


if __name__ == "__main__":
    main()
