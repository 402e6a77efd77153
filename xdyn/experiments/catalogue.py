"""Registry of experiments and the runner that writes their outputs.

A run is written into a staging folder beside its destination and moved into
place whole, so a folder of results always holds the files of one run.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr

from xdyn.datasets.registry import atomic_path, write_netcdf_atomic

__all__ = ["Experiment", "ExperimentResult", "register", "list_experiments", "get_experiment",
           "run", "DEFAULT_EXPERIMENT", "write_netcdf_atomic", "summary_rows", "write_summary",
           "SUMMARY_COLUMNS", "check_output_folder", "output_folder"]

DEFAULT_EXPERIMENT = "lorenz96-twin"
SUMMARY_COLUMNS = ("experiment", "method", "metric", "value", "units", "lower_is_better")
_REGISTRY: dict[str, "Experiment"] = {}


@dataclasses.dataclass
class ExperimentResult:
    """What an experiment returns: a results Dataset, figures, a table and a summary.

    Parameters
    ----------
    results : xarray.Dataset
        Everything the run measured, written to ``results.nc``. Every variable
        and coordinate carries ``long_name``, and ``units`` when numeric
        (``"1"`` when dimensionless).
    figures : dict
        Name -> :class:`matplotlib.figure.Figure` (saved as ``<name>.png``) or
        :class:`matplotlib.animation.Animation` (saved as ``<name>.gif`` with
        the Pillow writer).
    table : str
        The text printed by ``xdyn run``.
    summary : list of dict or pandas.DataFrame, optional
        The tidy rows of ``summary.csv``, one per (method, metric, settings):
        keys ``method``, ``metric``, ``value``, ``units``, ``lower_is_better``
        and any settings that tell rows apart (``encoder``, ``noise_std``,
        ``seed`` ...). :func:`summary_rows` makes them from a results
        variable whose dims are the settings; the runner adds the
        ``experiment`` and ``quick`` columns (and ``seed`` when rows have none).
    paths : dict
        Filled in by :func:`run`: output name -> path on disk.

    Examples
    --------
    >>> import xarray as xr
    >>> rmse = xr.DataArray([[0.3, 0.2]], dims=("encoder", "noise_std"),
    ...                     coords={"encoder": ["mlp"], "noise_std": [0.5, 1.0]},
    ...                     attrs={"units": "1"})
    >>> result = ExperimentResult(xr.Dataset({"rmse": rmse}),
    ...                           summary=summary_rows(rmse, "analysis RMSE", method="neural 3D-Var"))
    >>> [(r["encoder"], r["noise_std"], r["value"]) for r in result.summary]
    [('mlp', 0.5, 0.3), ('mlp', 1.0, 0.2)]
    """

    results: xr.Dataset
    figures: dict = dataclasses.field(default_factory=dict)
    table: str = ""
    summary: object = None
    paths: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Experiment:
    """A catalogue entry: a name, what it does, the setup it follows, and its function.

    Made by :func:`register`; ``xdyn run NAME`` calls ``func``.

    Parameters
    ----------
    name : str
        The name ``xdyn run`` takes.
    description : str
        One line for ``xdyn list``.
    reference : str
        The published setup the experiment follows (author, year).
    func : callable
        ``func(quick, seed, device, progress) -> ExperimentResult``.
    quick_wall_s : float, default 0.0
        The wall time of a quick run on one core of the 2-core development
        machine (as in a worker of ``xdyn run --all``). Only ``xdyn run
        --all`` reads it, to start the longest experiments first when the
        output folder holds no earlier run.

    Examples
    --------
    >>> entry = get_experiment("lorenz96-spectrum")
    >>> entry.reference, entry.func.__name__
    ('Lorenz (1996)', 'lorenz96_spectrum')
    """

    name: str
    description: str
    reference: str
    func: Callable
    quick_wall_s: float = 0.0


def register(name: str, description: str, reference: str = "", *, quick_wall_s: float = 0.0):
    """Decorator adding an experiment function to the catalogue.

    The function takes ``(quick, seed, device, progress)`` and returns an
    :class:`ExperimentResult`. ``quick_wall_s`` is the measured wall time of
    its quick run (see :class:`Experiment`).

    Parameters
    ----------
    name : str
        The name ``xdyn run`` takes; registering a name again replaces its entry.
    description : str
        One line for ``xdyn list``.
    reference : str, default ""
        The published setup the experiment follows (author, year).
    quick_wall_s : float, default 0.0
        Wall time of a quick run, in seconds (see :class:`Experiment`).

    Returns
    -------
    callable
        A decorator that registers the function and returns it unchanged.

    Examples
    --------
    >>> @register("doc-example", "an experiment that measures nothing")
    ... def doc_example(quick=False, seed=0, device="cpu", progress=True):
    ...     return ExperimentResult(xr.Dataset())
    >>> get_experiment("doc-example").description
    'an experiment that measures nothing'
    >>> _ = _REGISTRY.pop("doc-example")
    """

    def decorator(func):
        _REGISTRY[name] = Experiment(name, description, reference, func, float(quick_wall_s))
        return func

    return decorator


def list_experiments() -> list[Experiment]:
    """Every registered experiment, by name.

    Examples
    --------
    >>> "lorenz96-twin" in [e.name for e in list_experiments()]
    True
    """
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_experiment(name: str) -> Experiment:
    """The catalogue entry ``name``; an unknown name suggests the closest ones.

    Parameters
    ----------
    name : str
        A registered name (see :func:`list_experiments`).

    Returns
    -------
    Experiment

    Raises
    ------
    ValueError
        If ``name`` is not registered.

    Examples
    --------
    >>> get_experiment("lorenz96-twin").reference.split(",")[0]
    'Sakov & Oke (2008)'
    >>> get_experiment("lorenz96-twn")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown experiment 'lorenz96-twn'; did you mean 'lorenz96-twin'...? (see `xdyn list`)
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), sorted(_REGISTRY), n=3, cutoff=0.6)
        hint = (f"did you mean {', '.join(repr(c) for c in close)}?" if close
                else f"known: {', '.join(sorted(_REGISTRY))}")
        raise ValueError(f"unknown experiment {name!r}; {hint} (see `xdyn list`)")
    return _REGISTRY[name]


# ------------------------------------------------------------------ summary.csv
def summary_rows(values, metric, *, method=None, method_dim=None, units=None,
                 lower_is_better=True, **settings) -> list[dict]:
    """Tidy summary rows from a results variable: one row per element.

    Parameters
    ----------
    values : xarray.DataArray
        The scores; every dim other than ``method_dim`` becomes a settings
        column holding its coordinate value (its index when it has none). A
        datetime is written as ISO 8601 text, a timedelta as float seconds
        (convert it first for other units, e.g. a ``lead_time`` in hours).
    metric : str
        What is measured, e.g. ``"analysis RMSE"``.
    method : str, optional
        The method of every row; give this or ``method_dim``.
    method_dim : str, optional
        The dim whose coordinate names the method of each row.
    units : str, optional
        Default: ``values.attrs["units"]``, else ``"s"`` for timedelta
        values, else ``"1"``.
    lower_is_better : bool or None, default True
        None for a descriptive quantity that is neither (a mean, a peak).
    **settings
        Constant settings added to every row.

    Returns
    -------
    list of dict

    Examples
    --------
    >>> import xarray as xr
    >>> da = xr.DataArray([0.2, 0.9], dims="assimilator", coords={"assimilator": ["EnKF", "OI"]},
    ...                   attrs={"units": "1"})
    >>> rows = summary_rows(da, "analysis RMSE", method_dim="assimilator", obs_every=1)
    >>> rows[1]
    {'method': 'OI', 'metric': 'analysis RMSE', 'value': 0.9, 'units': '1', 'lower_is_better': True, 'obs_every': 1}
    >>> import numpy as np
    >>> lead = xr.DataArray([1.5], dims="lead_time",
    ...                     coords={"lead_time": np.array([6], "timedelta64[h]")})
    >>> summary_rows(lead, "RMSE", method="persistence")[0]["lead_time"]
    21600.0
    """
    if (method is None) == (method_dim is None):
        raise ValueError("give exactly one of method (a name) and method_dim (a dim of values)")
    if method_dim is not None and method_dim not in values.dims:
        raise ValueError(f"method_dim {method_dim!r} is not a dim of {values.name!r}; "
                         f"its dims are {values.dims}")
    if units is None:
        units = values.attrs.get("units", "s" if values.dtype.kind == "m" else "1")
    dims = list(values.dims)
    data = np.asarray(values.values)
    rows = []
    for index in np.ndindex(*data.shape):
        row = {"method": method, "metric": metric, "value": _scalar(data[index]), "units": units,
               "lower_is_better": None if lower_is_better is None else bool(lower_is_better)}
        for d, i in zip(dims, index):
            label = _scalar(values[d].values[i]) if d in values.coords else i
            if d == method_dim:
                row["method"] = str(label)
            else:
                row[d] = label
        row.update(settings)
        rows.append(row)
    return rows


def _scalar(x):
    """A plain Python value for a CSV cell; ``.item()`` gives integer nanoseconds for
    datetime64/timedelta64[ns], so those become ISO 8601 text and float seconds."""
    if isinstance(x, np.datetime64):
        return "NaT" if np.isnat(x) else pd.Timestamp(x).isoformat()
    if isinstance(x, np.timedelta64):
        return float(x / np.timedelta64(1, "s"))
    return x.item() if hasattr(x, "item") else x


def write_summary(rows, path, experiment: str, **run_settings) -> Path:
    """Write tidy summary rows to ``path`` as CSV (atomically).

    Columns: ``experiment, method, metric, value, units, lower_is_better``,
    then every setting that appears in any row (empty where a row lacks it),
    then ``run_settings`` (added to rows that lack them).

    Parameters
    ----------
    rows : list of dict or pandas.DataFrame or None
        Tidy rows, each with at least ``method, metric, value, units,
        lower_is_better`` (see :func:`summary_rows`); None writes the header only.
    path : str or Path
        The CSV file to write.
    experiment : str
        The value of the ``experiment`` column of every row.
    **run_settings
        Constant columns (``quick``, ``seed`` ...) for rows that lack them.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If a row lacks one of the required columns.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> rows = [{"method": "EnKF", "metric": "analysis RMSE", "value": 0.2, "units": "1",
    ...          "lower_is_better": True}]
    >>> path = write_summary(rows, pathlib.Path(tempfile.mkdtemp()) / "summary.csv", "demo", seed=0)
    >>> print(path.read_text().strip())
    experiment,method,metric,value,units,lower_is_better,seed
    demo,EnKF,analysis RMSE,0.2,1,True,0
    """
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows or [])
    table = []
    for i, row in enumerate(records):
        missing = [c for c in SUMMARY_COLUMNS[1:] if c not in row]
        if missing:
            raise ValueError(f"summary row {i} of {experiment!r} lacks {missing}: {row}")
        table.append({"experiment": experiment, **row,
                      **{k: v for k, v in run_settings.items() if k not in row}})
    settings = list(dict.fromkeys(k for row in table for k in row if k not in SUMMARY_COLUMNS))
    frame = pd.DataFrame(table, columns=[*SUMMARY_COLUMNS, *settings])
    with atomic_path(Path(path)) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


# ------------------------------------------------------------------ output folders
def output_folder(out, name: str, quick: bool = False) -> Path:
    """Where :func:`run` writes: ``out/<name>``, or ``out/<name>-quick`` for a quick run.

    Parameters
    ----------
    out : str or Path
        The parent folder of every experiment's outputs.
    name : str
        The experiment's name.
    quick : bool, default False
        Whether the run is a quick one.

    Returns
    -------
    Path

    Examples
    --------
    >>> str(output_folder("xdyn-results", "lorenz96-twin", quick=True))
    'xdyn-results/lorenz96-twin-quick'
    """
    return Path(out) / (f"{name}-quick" if quick else name)


def check_output_folder(out) -> Path:
    """Make sure ``out`` is (or can become) a writable folder; raise ValueError if not.

    Tried by creating and removing a probe folder in it, so a run learns of a
    bad ``out`` before its work starts.

    Parameters
    ----------
    out : str or Path
        The folder; created (with its parents) when missing.

    Returns
    -------
    Path
        ``out`` as a :class:`~pathlib.Path`.

    Raises
    ------
    ValueError
        If ``out`` is an existing file or cannot be written to.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "a-file"
    >>> _ = file.write_text("")
    >>> check_output_folder(file)
    Traceback (most recent call last):
    ...
    ValueError: output folder ... is an existing file, not a folder
    """
    if not str(out).strip():  # an unset shell variable: Path("") is the current folder
        raise ValueError("the output folder is an empty name")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} is an existing file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=".xdyn-probe-", dir=out)
        os.rmdir(probe)
    except OSError as err:
        raise ValueError(f"output folder {str(out)!r} is not writable: "
                         f"{err.strerror or err} ({type(err).__name__})") from err
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _staging_owner(stale: Path):
    """``(folder name, pid)`` of a staging folder ``.<name>.<pid>.staging-*``, or None."""
    head = stale.name.split(".staging-")[0]
    name, _, pid = head[1:].rpartition(".")
    return (name, int(pid)) if name and pid.isdigit() else None


def restore_interrupted(out) -> list:
    """Put back the results a run killed between the two renames of its move left aside.

    :func:`_move_into_place` moves the old folder aside (``.<name>.<pid>.staging-old``)
    before it moves the new one in; killed in between, the run left no ``<name>``
    folder, and its last results would read as never run. Where the process is
    dead and ``<name>`` is missing, the aside folder goes back. Readers of the
    results (``xdyn report``, ``run_all``'s resume) call this first.

    Parameters
    ----------
    out : str or Path
        Parent folder of the runs.

    Returns
    -------
    list of str
        The folder names put back.

    Examples
    --------
    >>> import tempfile
    >>> restore_interrupted(tempfile.mkdtemp())
    []
    """
    return _restore_aside(Path(out))


def _restore_aside(out: Path, name="*", any_process=False):
    restored = []
    for stale in sorted(out.glob(f".{name}.*.staging-old")):
        owner = _staging_owner(stale)
        if owner is None or (name != "*" and owner[0] != name) or (out / owner[0]).exists() \
                or (not any_process and _pid_alive(owner[1])):
            continue
        try:
            os.replace(stale, out / owner[0])
        except OSError:  # a read-only results folder: leave it for a run that can write
            continue
        restored.append(owner[0])
    return restored


def _clean_stale(out: Path, name: str, every=False):
    """Remove what killed runs left behind: staging folders of dead processes (``every``:
    of any process, for ``name``), after putting back the results a killed run had
    moved aside (:func:`restore_interrupted`)."""
    _restore_aside(out)
    if every:
        _restore_aside(out, name, any_process=True)
    for stale in sorted(out.glob(f".{name}.*.staging-*")):
        owner = _staging_owner(stale)
        if owner is None or owner[0] != name or (not every and _pid_alive(owner[1])):
            continue
        shutil.rmtree(stale, ignore_errors=True)


def _default_mode(mode=0o777) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def _move_into_place(staging: Path, folder: Path):
    """Replace ``folder`` by ``staging`` whole; the old folder goes only after."""
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.{os.getpid()}.staging-old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(staging, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _save_figures(figures: dict, folder: Path) -> dict:
    import matplotlib.pyplot as plt
    from matplotlib.animation import Animation, PillowWriter

    paths = {}
    for fig_name, fig in figures.items():
        if isinstance(fig, Animation):
            path = folder / f"{fig_name}.gif"
            # Pillow picks the format from the suffix, so the temporary name ends in .gif too
            tmp = folder / f".{fig_name}.{os.getpid()}.part.gif"
            try:
                fig.save(tmp, writer=PillowWriter(fps=10))
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            plt.close(fig._fig)
        else:
            path = folder / f"{fig_name}.png"
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=110, format="png")
            plt.close(fig)
        paths[fig_name] = path
    return paths


def peak_memory_mb() -> float:
    """Peak resident memory of this process, in MiB: since :func:`reset_peak_memory`
    where that worked, else since the process started.

    Examples
    --------
    >>> peak_memory_mb() > 0
    True
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 if sys.platform != "darwin" else rss / 2**20


def reset_peak_memory() -> bool:
    """Start :func:`peak_memory_mb` afresh from the memory in use now (Linux only).

    A process that runs several experiments (a dask worker, ``xdyn run --all
    --workers 0``) would otherwise report, for each, the peak of every earlier
    one. Returns False where the peak cannot be reset.

    Examples
    --------
    >>> isinstance(reset_peak_memory(), bool)
    True
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak resident set size (VmHWM) to the current one
        return True
    except OSError:
        return False


def run(name: str = DEFAULT_EXPERIMENT, quick: bool = False, out="xdyn-results", seed: int = 0,
        device: str = "cpu", progress: bool = True) -> ExperimentResult:
    """Run a catalogued experiment and write its outputs under ``out/<name>/``.

    A quick run writes to ``out/<name>-quick/`` instead, so it never replaces
    full results. The folder holds ``results.nc`` (configuration, wall time
    and peak memory of the run in attrs), ``summary.csv`` (tidy rows: experiment, method,
    metric, value, units, lower_is_better, settings) and one PNG (or GIF for
    an animation) per figure. Everything is written into a staging folder
    first and moved into place whole: a killed run leaves the previous
    results as they were.

    Parameters
    ----------
    name : str
        A name from :func:`list_experiments`.
    quick : bool, default False
        A short version of the experiment (smoke tests, a first look).
    out : str or Path, default "xdyn-results"
        Parent folder; checked to be writable before the work starts.
    seed : int, default 0
    device : str, default "cpu"
    progress : bool, default True

    Returns
    -------
    ExperimentResult
        With ``paths`` filled in.

    Examples
    --------
    >>> import tempfile
    >>> result = run("lorenz96-spectrum", quick=True, out=tempfile.mkdtemp(), progress=False)
    >>> sorted(result.paths)
    ['hovmoller', 'results', 'spectrum', 'summary']
    >>> result.paths["results"].parent.name
    'lorenz96-spectrum-quick'
    """
    exp = get_experiment(name)
    out = check_output_folder(out)
    folder = output_folder(out, name, quick)
    _clean_stale(out, folder.name)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.{os.getpid()}.staging-", dir=out))
    try:
        os.chmod(staging, _default_mode())  # mkdtemp makes it 0700
        own_peak = reset_peak_memory()
        start = time.perf_counter()
        result = exp.func(quick=quick, seed=seed, device=device, progress=progress)
        wall = time.perf_counter() - start
        ds = result.results
        ds.attrs.update({
            "experiment": name,
            "description": exp.description,
            "reference": exp.reference,
            "quick": int(bool(quick)),
            "quick_note": ("a shortened run (xdyn run --quick): not comparable with the full "
                           "experiment or published numbers") if quick else "full run",
            "seed": int(seed),
            "device": str(device),
            "wall_time_s": round(wall, 3),
            "peak_memory_mb": round(peak_memory_mb(), 1),
            "peak_memory_scope": ("this run (its process; worker processes it started not "
                                  "counted)" if own_peak else "the process since it started"),
            "xdyn_version": __import__("xdyn").__version__,
        })
        names = {"results": "results.nc", "summary": "summary.csv"}
        write_netcdf_atomic(ds, staging / names["results"])
        write_summary(result.summary, staging / names["summary"], name, quick=int(bool(quick)),
                      seed=int(seed))
        figure_paths = _save_figures(result.figures, staging)
        _move_into_place(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.paths = {k: folder / v for k, v in names.items()}
    result.paths.update({k: folder / p.name for k, p in figure_paths.items()})
    quick_line = (f"\nquick run: shortened, not comparable with the full experiment; "
                  f"written apart from full results, in {folder}" if quick else "")
    result.table += (f"{quick_line}\n{name}: wall time {wall:.1f} s, peak memory "
                     f"{ds.attrs['peak_memory_mb']} MiB\nwrote {folder}/: "
                     f"{', '.join(p.name for p in result.paths.values())}")
    return result


def config_json(**config) -> str:
    """The configuration of a run as sorted JSON (stored in the results attrs).

    Examples
    --------
    >>> config_json(seed=0, dt=0.05)
    '{"dt": 0.05, "seed": 0}'
    """
    return json.dumps(config, sort_keys=True, default=str)
