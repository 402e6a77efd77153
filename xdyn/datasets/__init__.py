"""Datasets: a pooch registry of published files, generated synthetic sets, and ERA5 loaders.

``load(name)`` returns an :class:`xarray.Dataset` for any name in
``list_datasets()``; ``fetch(name)`` makes it available on disk (what
``xdyn data fetch NAME`` runs). Small files the tests need are shipped in the
repository's ``datasets/`` folder and found there without network, verified
against the sha256 in ``registry.txt``; the cache is ``$XDYN_DATA_DIR``
(default ``pooch.os_cache("xdyn")``) and ``$XDYN_OFFLINE=1`` forbids downloads.
See ``DESIGN.md`` (Data) and ``datasets/README.md``.

Examples
--------
>>> from xdyn import datasets
>>> ds = datasets.load("lorenz96-sample")
>>> ds.x.dims
('time', 'k')
"""

from xdyn.datasets import generated as _generated
from xdyn.datasets import kolmogorov_closure as _kolmogorov_closure
from xdyn.datasets import kolmogorov_lyapunov as _kolmogorov_lyapunov
from xdyn.datasets.catalog import fetch, list_datasets, load, register_generated
from xdyn.datasets.generated import generated_path
from xdyn.datasets.kolmogorov_closure import load_kolmogorov_closure, vorticity_from_velocity
from xdyn.datasets.registry import (
    DataIntegrityError,
    DataUnavailableError,
    data_dir,
    shipped_dir,
)
from xdyn.datasets.weatherbench import from_weatherbench2, load_constants, load_weatherbench
from xdyn.datasets.weatherbench_download import fetch_weatherbench

_generated._register_builtins()
from xdyn.datasets import ldensf_data as _ldensf_data  # noqa: E402,F401  (registers its sets)
from xdyn.datasets import trajectories as _trajectories  # noqa: E402
_kolmogorov_closure._register()
_kolmogorov_lyapunov._register()
_trajectories._register()

__all__ = [
    "DataIntegrityError",
    "DataUnavailableError",
    "data_dir",
    "fetch",
    "fetch_weatherbench",
    "from_weatherbench2",
    "generated_path",
    "list_datasets",
    "load",
    "load_constants",
    "load_kolmogorov_closure",
    "load_weatherbench",
    "register_generated",
    "shipped_dir",
    "vorticity_from_velocity",
]
