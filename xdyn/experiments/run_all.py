"""Run the whole experiment catalogue as tasks on a ``dask.distributed`` client.

``xdyn run --all`` lands here. Every experiment is one task that calls
:func:`xdyn.experiments.catalogue.run` inside a worker, so an experiment needs
no code of its own to run distributed: dispatch is by name, and the catalogue
entry travels with the task (an experiment registered in a user's module or
notebook runs too). The default client is a :class:`distributed.LocalCluster`
of one single-threaded worker process per core (torch on one thread per
worker, since processes, not threads, are what scale on small tensors); a
scheduler address runs the same tasks on a real cluster, whose workers must
see the output folder (a shared file system).

Fault tolerance is dask's: a task whose worker dies is rescheduled on another
worker (up to ``retries`` deaths: the scheduler's ``allowed-failures``), a task
that raises is retried ``retries`` times. A run is staged and moved into place
whole by :func:`~xdyn.experiments.catalogue.run`, so a retried experiment
never leaves duplicated or half-written outputs, and with the same seed it
writes the numbers a serial run writes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import uuid
import warnings
from pathlib import Path

import pandas as pd
import xarray as xr

from xdyn.experiments.catalogue import (_clean_stale, check_output_folder, get_experiment,
                                        list_experiments, output_folder, restore_interrupted)
from xdyn.experiments.report import STALE_NOTE, _read_summary, mark_stale

__all__ = ["run_all", "RunOutcome", "ExperimentsFailedError", "connect", "is_complete",
           "format_outcomes"]

RUN_ALL_CSV = "run_all.csv"
# A worker resource of one unit per thread: a task that needs it is handed to a worker only
# when it has a free thread, so a worker that dies holds one experiment, and an experiment
# that keeps killing its worker is the only one marked as failed (dask counts every task
# a dying worker held).
SLOT = "xdyn-slot"


class ExperimentsFailedError(RuntimeError):
    """Some experiments of :func:`run_all` failed; the others' results are kept.

    Parameters
    ----------
    message : str
        The error message.
    outcomes : list of RunOutcome
        Every experiment's outcome (kept as :attr:`outcomes`).

    Attributes
    ----------
    outcomes : list of RunOutcome
        Every experiment's outcome, the failed ones with their error.

    Examples
    --------
    >>> err = ExperimentsFailedError("1 experiment failed", [])
    >>> err.outcomes
    []
    """

    def __init__(self, message, outcomes):
        super().__init__(message)
        self.outcomes = outcomes


@dataclasses.dataclass
class RunOutcome:
    """What happened to one experiment of :func:`run_all`.

    Parameters
    ----------
    name : str
    status : str
        ``"ok"``, ``"skipped"`` (complete outputs found with ``resume``) or
        ``"failed"``.
    folder : str
        Its output folder (absolute where :func:`run_all` made it).
    wall_time_s : float
        The experiment's own wall time (as in its ``results.nc``; for a skipped
        one, that of the earlier run); NaN if failed.
    task_time_s : float
        Submission to result, retries and queueing included.
    peak_memory_mb : float
        Peak resident memory of the run in the worker process that ran it (as in
        its ``results.nc``, also for a skipped one; the process's peak so far where
        it cannot be reset).
    worker : str
        The worker's address (``"local"`` for a serial run).
    error : str
        Why it failed (empty otherwise).

    Examples
    --------
    >>> RunOutcome("demo", "ok", "out/demo").status
    'ok'
    """

    name: str
    status: str
    folder: str
    wall_time_s: float = float("nan")
    task_time_s: float = float("nan")
    peak_memory_mb: float = float("nan")
    worker: str = ""
    error: str = ""


def is_complete(out, name: str, quick: bool = False, seed: int = 0) -> bool:
    """True when ``out`` holds a complete run of ``name`` with this ``quick`` and ``seed``.

    A run's folder appears whole or not at all (it is staged and moved into
    place; results a run killed mid-move set aside are put back first), so
    complete means: ``results.nc`` opens and records the same
    ``quick`` and ``seed``, ``summary.csv`` is there, and no ``STALE.txt``
    says the last ``run_all`` failed on it (``resume`` retries that).

    Parameters
    ----------
    out : str or Path
        Parent folder of the runs.
    name : str
        The experiment's name.
    quick : bool, default False
        Look for a quick run (in ``out/<name>-quick``).
    seed : int, default 0
        The seed the run must have used.

    Returns
    -------
    bool

    Examples
    --------
    >>> import tempfile
    >>> is_complete(tempfile.mkdtemp(), "lorenz96-twin")
    False
    """
    restore_interrupted(out)
    folder = output_folder(out, name, quick)
    if not (folder / "summary.csv").is_file() or (folder / STALE_NOTE).is_file():
        return False
    try:  # a summary cut short (copied partly) is no complete run
        _read_summary(folder / "summary.csv")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError):
        return False
    try:
        with xr.open_dataset(folder / "results.nc") as ds:
            return (int(ds.attrs.get("seed", -1)) == int(seed)
                    and int(ds.attrs.get("quick", -1)) == int(bool(quick)))
    except (OSError, ValueError):
        return False


def connect(scheduler=None, n_workers=None, *, timeout: float = 10.0, retries: int = 2):
    """A dask client: to ``scheduler`` (an address), or on a new :class:`~distributed.LocalCluster`.

    The local cluster has ``n_workers`` (default: one per core) worker
    processes with one thread each and one ``xdyn-slot`` resource each (so
    that a worker runs one experiment at a time and holds no other), and lets a task's worker die ``retries``
    times before the task fails (the scheduler's ``allowed-failures``; a
    remote scheduler keeps its own setting). Its workers run without dask's
    ``MALLOC_TRIM_THRESHOLD_`` (which made torch work 1.3-3x slower there
    than in a plain process; see ``docs/cluster.rst`` for a real cluster).

    Parameters
    ----------
    scheduler : str, optional
        Address of a running dask scheduler (``tcp://host:8786``); None makes a
        local cluster.
    n_workers : int, optional
        Worker processes of the local cluster (at least 1); default one per core.
        Ignored with ``scheduler``.
    timeout : float, default 10.0
        Seconds to wait for ``scheduler``.
    retries : int, default 2
        Times a task's worker may die before the task fails (the local cluster's
        ``allowed-failures``).

    Returns
    -------
    client : distributed.Client
    cluster : distributed.LocalCluster or None
        The cluster made here (close it after the client), None for an address.

    Raises
    ------
    ValueError
        An unreachable scheduler, naming the address.

    Examples
    --------
    >>> connect("tcp://127.0.0.1:1", timeout=0.1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --scheduler: cannot reach the dask scheduler at 'tcp://127.0.0.1:1' within 0.1 s ...
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            return Client(scheduler, timeout=timeout), None
        except (OSError, TimeoutError, ValueError) as err:
            raise ValueError(f"--scheduler: cannot reach the dask scheduler at {scheduler!r} "
                             f"within {timeout:g} s ({type(err).__name__}: {err}); start one "
                             "(dask scheduler, dask-jobqueue, a Kubernetes deployment) or "
                             "leave --scheduler out for a local cluster") from None
    n_workers = int(n_workers or os.cpu_count() or 1)
    if n_workers < 1:
        raise ValueError(f"n_workers={n_workers}: need at least one worker")
    with dask.config.set({"distributed.scheduler.allowed-failures": int(retries),
                          # dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which
                          # pins glibc's mmap threshold: every temporary tensor of 128 KiB or
                          # more is mmap'd and unmapped again, 20-200x the page faults of a
                          # plain process, and torch work ran 1.3-3x slower in a worker. None
                          # leaves glibc's adaptive default (what a serial run has).
                          "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                          # the statistical profiler feeds the dashboard, which is off here;
                          # sampling every task thread costs ~5% of a worker's CPU
                          "distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=50, resources={SLOT: 1})
    return Client(cluster), cluster


def _run_task(entry, quick, out, seed, device, torch_threads):
    """The task: run one catalogue entry in this worker (registering it if the worker lacks it)."""
    import torch

    from xdyn.experiments import catalogue

    torch.set_num_threads(int(torch_threads))
    catalogue._REGISTRY[entry.name] = entry  # a user's experiment travels with its task
    result = catalogue.run(entry.name, quick=quick, out=out, seed=seed, device=device,
                           progress=False)
    attrs = result.results.attrs
    return {"wall_time_s": float(attrs["wall_time_s"]),
            "peak_memory_mb": float(attrs["peak_memory_mb"]), "worker": _worker_address()}


def _worker_address() -> str:
    """This dask worker's address, ``"local"`` outside one; never fails a finished run."""
    try:
        from distributed import get_worker

        return get_worker().address
    except Exception:  # noqa: BLE001 - not in a worker (ValueError), or dask's state is odd
        return "local"


def _check_on_worker(out):
    """Run on a worker: its view of the output folder (a real cluster needs a shared one)."""
    check_output_folder(out)
    return True


def _recorded(folder, *keys):
    """The attrs ``keys`` (``wall_time_s``, ``peak_memory_mb``) of ``folder/results.nc``, each
    NaN where it is missing (all where the file cannot be read)."""
    try:
        with xr.open_dataset(Path(folder) / "results.nc") as ds:
            return [float(ds.attrs.get(key, math.nan)) for key in keys]
    except (OSError, ValueError):
        return [math.nan] * len(keys)


def _expected_wall_time(out, entry, quick):
    """Wall time of an earlier run in ``out``, else the catalogue's measured quick one
    (a proxy for the order of full runs too), to start the longest experiments first."""
    wall, = _recorded(output_folder(out, entry.name, quick), "wall_time_s")
    return entry.quick_wall_s if math.isnan(wall) else wall


def _describe_error(name, err, retries):
    from distributed.scheduler import KilledWorker

    if isinstance(err, KilledWorker):
        return (f"experiment {name!r}: its worker died on every try (killed, or out of memory) "
                f"and the task was given up after the scheduler's allowed failures ({err})")
    return f"experiment {name!r} failed after {retries} retries: {type(err).__name__}: {err}"


def run_all(names=None, *, quick=False, out="xdyn-results", seed=0, device="cpu", client=None,
            scheduler=None, n_workers=None, resume=False, retries=2, timeout=10.0,
            torch_threads=1, report=True, errors="raise", on_outcome=None) -> list[RunOutcome]:
    """Run every experiment (or ``names``) as dask tasks; write ``run_all.csv`` and the report.

    Parameters
    ----------
    names : sequence of str, optional
        Experiments to run; default: the whole catalogue
        (:func:`~xdyn.experiments.list_experiments`).
    quick : bool, default False
        Run the quick versions (as :func:`xdyn.experiments.run`).
    out : str or Path, default "xdyn-results"
        Parent folder of the runs; checked writable (here and on a worker)
        before any experiment starts. A relative path is taken from this
        process's working folder (the workers get it as an absolute path).
    seed, device
        As :func:`xdyn.experiments.run`; every experiment gets the same seed.
    client : distributed.Client, optional
        A client to use (kept open). Otherwise one is made from ``scheduler``
        or ``n_workers`` (see :func:`connect`) and closed at the end.
    scheduler : str, optional
        Address of a running dask scheduler (``tcp://host:8786``).
    n_workers : int, optional
        Workers of the local cluster (default: one per core); ``0`` runs the
        experiments one after the other in this process, without dask.
    resume : bool, default False
        Skip experiments whose outputs in ``out`` are complete
        (:func:`is_complete`).
    retries : int, default 2
        Times a task that raises is retried (dask ``retries``); on the local
        cluster made here, also the times its worker may die before it is
        given up (a remote scheduler keeps its own ``allowed-failures``).
        A serial run (``n_workers=0``) does not retry.
    timeout : float, default 10.0
        Seconds to wait for the scheduler.
    torch_threads : int, default 1
        torch threads in each worker.
    report : bool, default True
        Write the HTML report and ``report.csv`` of ``out``
        (:func:`xdyn.experiments.report.write_report`) at the end; a report that
        cannot be written is a warning, and the outcomes are still returned (or
        raised).
    errors : {"raise", "return"}, default "raise"
        After writing every result, raise :class:`ExperimentsFailedError`
        if an experiment failed, or only return the outcomes.
    on_outcome : callable, optional
        Called with each :class:`RunOutcome` as it arrives (progress lines).

    Returns
    -------
    list of RunOutcome
        One per experiment, in catalogue order; also written to
        ``out/run_all.csv``.

    Examples
    --------
    >>> import tempfile
    >>> import xarray as xr
    >>> from xdyn.experiments.catalogue import ExperimentResult, register, _REGISTRY
    >>> @register("doc-run-all", "an experiment that measures one number")
    ... def doc_run_all(quick=False, seed=0, device="cpu", progress=True):
    ...     return ExperimentResult(xr.Dataset({"x": ((), 1.0, {"long_name": "x", "units": "1"})}))
    >>> out = tempfile.mkdtemp()
    >>> [o.status for o in run_all(["doc-run-all"], out=out, n_workers=0, report=False)]
    ['ok']
    >>> [o.status for o in run_all(["doc-run-all"], out=out, n_workers=0, resume=True,
    ...                            report=False)]
    ['skipped']
    >>> _ = _REGISTRY.pop("doc-run-all")
    """
    if errors not in ("raise", "return"):
        raise ValueError(f"errors={errors!r}: use 'raise' or 'return'")
    entries = ([get_experiment(n) for n in names] if names is not None else list_experiments())
    # absolute before any task is made: a worker's working folder is not this process's
    # (symlinks kept: a node may mount the shared file system elsewhere behind them)
    out = check_output_folder(out).absolute()
    outcomes = {}
    todo = []
    for entry in entries:
        folder = str(output_folder(out, entry.name, quick))
        if resume and is_complete(out, entry.name, quick, seed):
            wall, peak = _recorded(folder, "wall_time_s", "peak_memory_mb")
            outcomes[entry.name] = RunOutcome(entry.name, "skipped", folder, wall,
                                              peak_memory_mb=peak)
            if on_outcome is not None:
                on_outcome(outcomes[entry.name])
        else:
            todo.append(entry)
    # the longest known experiments first: the last task to start decides the makespan
    todo.sort(key=lambda e: -_expected_wall_time(out, e, quick))
    if todo and n_workers == 0 and client is None and scheduler is None:
        _run_serially(todo, quick, out, seed, device, outcomes, on_outcome)
    elif todo:
        own = client is None
        if own:
            client, cluster = connect(scheduler, n_workers, timeout=timeout, retries=retries)
        try:
            try:
                client.submit(_check_on_worker, str(out), pure=False).result()
            except ValueError as err:
                raise ValueError(f"--out: the workers cannot write there: {err}") from None
            _run_on_client(client, todo, quick, out, seed, device, retries, torch_threads,
                           outcomes, on_outcome)
        finally:
            if own:
                client.close()
                if cluster is not None:
                    cluster.close()
    ordered = [outcomes[e.name] for e in entries]
    _write_outcomes(ordered, out / RUN_ALL_CSV)
    for o in ordered:  # a failed experiment's folder keeps an earlier run's results: say so
        if o.status == "failed":
            mark_stale(out / Path(o.folder).name, o.error)
    if report:
        from xdyn.experiments.report import write_report

        try:  # the outcomes matter more than the page: they still reach the caller
            write_report(out)
        except ValueError as err:
            warnings.warn(f"run_all: no report written: {err}", stacklevel=2)
    failed = [o for o in ordered if o.status == "failed"]
    if failed and errors == "raise":
        kept = [o.name for o in ordered if o.status != "failed"]
        raise ExperimentsFailedError(
            f"{len(failed)} of {len(ordered)} experiments failed: "
            + "; ".join(o.error for o in failed)
            + f". Results kept in {out}: {', '.join(kept) if kept else 'none'}", ordered)
    return ordered


def _run_serially(todo, quick, out, seed, device, outcomes, on_outcome):
    for entry in todo:
        folder = str(output_folder(out, entry.name, quick))
        start = time.perf_counter()
        try:
            info = _run_task(entry, quick, str(out), seed, device, _torch_threads_now())
            outcome = RunOutcome(entry.name, "ok", folder, info["wall_time_s"],
                                 time.perf_counter() - start, info["peak_memory_mb"], "local")
        except Exception as err:  # a failure is a result; the other experiments go on
            outcome = RunOutcome(entry.name, "failed", folder,
                                 task_time_s=time.perf_counter() - start, worker="local",
                                 error=f"experiment {entry.name!r} failed: "
                                       f"{type(err).__name__}: {err}")
        outcomes[entry.name] = outcome
        if on_outcome is not None:
            on_outcome(outcome)


def _torch_threads_now():
    import torch

    return torch.get_num_threads()


def _run_on_client(client, todo, quick, out, seed, device, retries, torch_threads, outcomes,
                   on_outcome):
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    workers = client.scheduler_info(n_workers=-1).get("workers", {}).values()
    # workers started with `--resources xdyn-slot=1` hold one experiment each at a time
    resources = {SLOT: 1} if any(SLOT in w.get("resources", {}) for w in workers) else None
    # task time from each future's own submission: one clock for all made a task's time
    # grow by every task before it in the list
    futures, submitted = {}, {}
    pending = list(todo)  # the longest known first (run_all sorted them)
    running = as_completed()

    def submit_next():
        entry = pending.pop(0)
        start = time.perf_counter()
        fut = client.submit(_run_task, entry, quick, str(out), seed, device, torch_threads,
                            key=f"xdyn-run-{entry.name}-{token}", retries=retries, pure=False,
                            resources=resources)
        futures[fut], submitted[fut] = entry, start
        running.add(fut)

    # One experiment per worker in flight, the next submitted when one ends (list
    # scheduling, longest first). Submitting everything at once let the scheduler
    # queue tasks behind a long one on a busy worker while the other sat idle: tasks
    # with resource restrictions are never stolen (2 workers: 0.72x serial and
    # counting, one worker idle, where list scheduling bounds it by the longest task).
    def fill_slots(in_flight):
        # re-read the worker count each time one ends: a real cluster may scale
        for _ in range(min(len(pending), _n_slots(client) - in_flight)):
            submit_next()

    fill_slots(0)
    done = 0
    for fut in running:
        elapsed = time.perf_counter() - submitted[fut]  # before the next submission's
        done += 1
        fill_slots(len(futures) - done)
        entry = futures[fut]
        folder = str(output_folder(out, entry.name, quick))
        try:
            info = fut.result()
            outcome = RunOutcome(entry.name, "ok", folder, info["wall_time_s"], elapsed,
                                 info["peak_memory_mb"], info["worker"])
        except Exception as err:  # noqa: BLE001 - a failure is a result; the others go on
            outcome = RunOutcome(entry.name, "failed", folder, task_time_s=elapsed,
                                 error=_describe_error(entry.name, err, retries))
            _remove_staging(Path(folder))
        outcomes[entry.name] = outcome
        if on_outcome is not None:
            on_outcome(outcome)


def _n_slots(client) -> int:
    """Experiments the cluster runs at once: one per worker (at least one)."""
    return max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))


def _remove_staging(folder: Path):
    """What the killed tries of a failed experiment left: no try of it runs any more."""
    _clean_stale(folder.parent, folder.name, every=True)


def _write_outcomes(outcomes, path: Path):
    rows = [dataclasses.asdict(o) for o in outcomes]
    import pandas as pd

    from xdyn.datasets.registry import atomic_path

    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=[f.name for f in dataclasses.fields(RunOutcome)]).to_csv(
            tmp, index=False)


def format_outcomes(outcomes) -> str:
    """The table ``xdyn run --all`` prints: status, wall time, peak memory, worker.

    Parameters
    ----------
    outcomes : sequence of RunOutcome
        One row each, then the errors of the failed ones.

    Returns
    -------
    str

    Examples
    --------
    >>> print(format_outcomes([RunOutcome("demo", "ok", "out/demo", 1.5, 2.0, 300.0, "local")]))
    experiment                    status     wall s   task s  peak MiB  worker
    demo                          ok            1.5      2.0       300  local
    """
    lines = [f"{'experiment':<30}{'status':<8}{'wall s':>9}{'task s':>9}{'peak MiB':>10}  worker"]
    for o in outcomes:
        lines.append(f"{o.name:<30}{o.status:<8}{o.wall_time_s:>9.1f}{o.task_time_s:>9.1f}"
                     f"{o.peak_memory_mb:>10.0f}  {o.worker}")
    for o in outcomes:
        if o.error:
            lines.append(f"  {o.error}")
    return "\n".join(lines)
