"""Registry of experiments and the runner that writes their outputs."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import xarray as xr

__all__ = ["Experiment", "ExperimentResult", "register", "list_experiments", "get_experiment",
           "run", "DEFAULT_EXPERIMENT", "write_netcdf_atomic"]

DEFAULT_EXPERIMENT = "lorenz96-twin"
_REGISTRY: dict[str, "Experiment"] = {}


@dataclasses.dataclass
class ExperimentResult:
    """What an experiment returns: a results Dataset, figures and a table."""

    results: xr.Dataset
    figures: dict = dataclasses.field(default_factory=dict)  # name -> matplotlib Figure
    table: str = ""
    paths: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Experiment:
    name: str
    description: str
    reference: str
    func: Callable


def register(name: str, description: str, reference: str = ""):
    """Decorator adding an experiment function to the catalogue."""

    def decorator(func):
        _REGISTRY[name] = Experiment(name, description, reference, func)
        return func

    return decorator


def list_experiments() -> list[Experiment]:
    """Every registered experiment, by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_experiment(name: str) -> Experiment:
    if name not in _REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def write_netcdf_atomic(ds: xr.Dataset, path) -> Path:
    """Write ``ds`` to ``path`` through a temporary file in the same folder.

    An interrupted write leaves no half-written file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".nc.part", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _save_figure_atomic(fig, path: Path):
    tmp = path.with_suffix(".part.png")
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 if sys.platform != "darwin" else rss / 2**20


def run(name: str = DEFAULT_EXPERIMENT, quick: bool = False, out="xdyn-results", seed: int = 0,
        device: str = "cpu", progress: bool = True) -> ExperimentResult:
    """Run a catalogued experiment and write its outputs under ``out/<name>/``.

    Writes ``results.nc`` (configuration, wall time and peak memory in attrs)
    and one PNG per figure; returns the :class:`ExperimentResult`.
    """
    import matplotlib.pyplot as plt

    exp = get_experiment(name)
    start = time.perf_counter()
    result = exp.func(quick=quick, seed=seed, device=device, progress=progress)
    wall = time.perf_counter() - start
    ds = result.results
    ds.attrs.update({
        "experiment": name,
        "description": exp.description,
        "reference": exp.reference,
        "quick": int(bool(quick)),
        "seed": int(seed),
        "device": str(device),
        "wall_time_s": round(wall, 3),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "xdyn_version": __import__("xdyn").__version__,
    })
    folder = Path(out) / name
    paths = {"results": write_netcdf_atomic(ds, folder / "results.nc")}
    for fig_name, fig in result.figures.items():
        p = folder / f"{fig_name}.png"
        _save_figure_atomic(fig, p)
        plt.close(fig)
        paths[fig_name] = p
    result.paths = paths
    result.table += (f"\n{name}: wall time {wall:.1f} s, peak memory {ds.attrs['peak_memory_mb']} MiB"
                     f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return result


def config_json(**config) -> str:
    return json.dumps(config, sort_keys=True, default=str)
