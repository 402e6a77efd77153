"""Independent fits of one experiment on the machine's cores (joblib processes).

An experiment run alone (``xdyn run NAME``, or ``xdyn run --all --workers 0``)
has every core to itself, while its small torch fits use one thread each
(:mod:`xdyn._threads`): independent fits then run in parallel processes. Inside
a dask worker (``xdyn run --all``) the worker owns one core and the fits run in
turn, in the worker itself; the same on an accelerator, which the processes
would share. Every fit seeds its own random streams (``random_state``, forked
torch generators), so the fitted estimators equal those of a serial run.
"""

from __future__ import annotations

import os

__all__ = ["in_dask_worker", "n_processes", "run_jobs"]


def in_dask_worker() -> bool:
    """True inside a ``dask.distributed`` worker's task.

    Examples
    --------
    >>> in_dask_worker()
    False
    """
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def n_processes(n_jobs=None, device="cpu") -> int:
    """How many processes the fits get: ``n_jobs`` when given, else one per core, but one
    inside a dask worker or on an accelerator.

    Examples
    --------
    >>> n_processes(3), n_processes(device="cuda")
    (3, 1)
    """
    if n_jobs is not None:
        if int(n_jobs) < 1:
            raise ValueError(f"n_jobs={n_jobs}: need at least one process")
        return int(n_jobs)
    if str(device) != "cpu" or in_dask_worker():
        return 1
    return os.cpu_count() or 1


def run_jobs(func, args_list, n_jobs=1, *, desc=None, progress=False) -> list:
    """``[func(*args) for args in args_list]``, in ``n_jobs`` processes (joblib's loky).

    With one process the calls run here, in turn. ``progress`` shows a tqdm bar
    named ``desc`` that advances as the results come in (in order).

    Examples
    --------
    >>> run_jobs(divmod, [(7, 2), (9, 4)])
    [(3, 1), (2, 1)]
    """
    from tqdm.auto import tqdm

    args_list = list(args_list)
    if n_jobs == 1 or len(args_list) <= 1:
        results = (func(*args) for args in args_list)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(func)(*args) for args in args_list)
    return list(tqdm(results, total=len(args_list), desc=desc, disable=not progress))
