"""The ``xdyn`` command: the experiment catalogue, data and benchmarks.

Exit status: 0 on success; 2 with one ``xdyn: error: ...`` line on bad input
(an unknown name, a device this machine lacks, an output folder that cannot be
written, a corrupt data file, a missing optional extra), checked before any
work starts; 1 with the traceback when the work itself fails (an experiment,
a benchmark), or with the outcome table when experiments of ``run --all`` failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

__all__ = ["main", "build_parser"]

_DESCRIPTION = """\
xdyn: chaotic geophysical dynamics and data assimilation on xarray.

  xdyn list                                   the experiment catalogue
  xdyn run [NAME] [--quick] [--out DIR] [--seed N] [--device D] [--no-progress]
  xdyn run --all [--quick] [--scheduler ADDRESS] [--workers N] [--resume]
  xdyn report [DIR]
  xdyn data list [NAME]                       datasets, and whether each is cached
  xdyn data fetch NAME [--known-hash sha256:HEX] [--scheduler ADDRESS | --workers N] [--force]
  xdyn bench systems | da | forecast | ldensf [--quick]
  xdyn bench train [--quick] [--device D]     training steps of the learned families

Results of `xdyn run NAME` go to DIR/NAME/ (DIR/NAME-quick/ with --quick):
results.nc, summary.csv and the figures.
"""


class UsageError(ValueError):
    """Bad input on the command line; reported as one line with exit status 2."""


def check_device(device: str) -> str:
    """The torch device ``device`` names, checked to exist on this machine.

    Examples
    --------
    >>> check_device("cpu")
    'cpu'
    >>> check_device("gpu")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xdyn.cli.UsageError: --device: device='gpu' is not a torch device; ...
    """
    from xdyn.utils import resolve_device

    try:
        return str(resolve_device(device))
    except ValueError as err:
        raise UsageError(f"--device: {err}") from None


def _cmd_list(args):
    from xdyn.experiments import DEFAULT_EXPERIMENT, list_experiments

    for exp in list_experiments():
        mark = "*" if exp.name == DEFAULT_EXPERIMENT else " "
        print(f"{mark} {exp.name:<24} {exp.description}")
        if exp.reference:
            print(f"  {'':<24} ref: {exp.reference}")
    print("(* = default of `xdyn run`)")
    return 0


def _cmd_run(args):
    from xdyn.experiments import DEFAULT_EXPERIMENT, get_experiment, run
    from xdyn.experiments.catalogue import check_output_folder, output_folder

    if args.all:
        return _cmd_run_all(args)
    if args.scheduler or args.workers is not None or args.resume:
        raise UsageError("--scheduler, --workers and --resume go with --all")
    name = args.name or DEFAULT_EXPERIMENT
    try:
        get_experiment(name)  # an unknown name fails before anything is printed
    except ValueError as err:
        raise UsageError(str(err)) from None
    device = check_device(args.device)
    try:
        check_output_folder(args.out)
    except ValueError as err:
        raise UsageError(f"--out: {err}") from None
    where = output_folder(args.out, name, args.quick)
    print(f"xdyn run {name} (quick={args.quick}, seed={args.seed}, device={device}) -> {where}",
          flush=True)
    result = run(name, quick=args.quick, out=args.out, seed=args.seed, device=device,
                 progress=not args.no_progress)
    print(result.table)
    return 0


def _cmd_run_all(args):
    from xdyn.experiments.catalogue import check_output_folder
    from xdyn.experiments.run_all import ExperimentsFailedError, format_outcomes, run_all

    if args.name:
        raise UsageError(f"--all runs the whole catalogue: leave out the name {args.name!r}")
    if args.scheduler and args.workers is not None:
        raise UsageError("--workers sizes a local cluster; with --scheduler the scheduler's "
                         "workers run the experiments: leave one of them out")
    device = check_device(args.device)
    try:
        check_output_folder(args.out)
    except ValueError as err:
        raise UsageError(f"--out: {err}") from None
    where = args.scheduler or f"a local cluster of {args.workers or 'one worker per core'}"
    if args.workers == 0:
        where = "this process, one experiment after the other"
    print(f"xdyn run --all (quick={args.quick}, seed={args.seed}) on {where} -> {args.out}",
          flush=True)
    try:
        outcomes = run_all(quick=args.quick, out=args.out, seed=args.seed, device=device,
                           scheduler=args.scheduler, n_workers=args.workers, resume=args.resume,
                           on_outcome=lambda o: print(f"  {o.name}: {o.status}", flush=True))
    except ExperimentsFailedError as err:
        print(format_outcomes(err.outcomes))
        print(f"xdyn: error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        # run_all records an experiment's own errors as outcomes: what it raises is its
        # checks before the first experiment (scheduler, the workers' view of --out)
        raise UsageError(str(err)) from None
    print(format_outcomes(outcomes))
    print(f"report: {args.out}/report.html, {args.out}/report.csv")
    return 0


def _cmd_report(args):
    from xdyn.experiments.report import write_report

    try:  # a folder that is missing, not a folder, or cannot be written
        paths = write_report(args.dir)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(f"wrote {paths['html']} and {paths['csv']}")
    return 0


def _data_status(row: dict) -> str:
    """What ``xdyn data list`` says of a dataset: on disk, or what a fetch would do."""
    from xdyn.datasets.registry import is_offline

    if row.get("cached"):
        return "cached"
    if row.get("kind") == "published" and is_offline():
        return "not cached (offline)"
    return {
        "generated": "generated on demand",
        "published": "downloaded on demand",
        "weatherbench": "needs --known-hash",  # the share publishes no checksums
    }.get(row.get("kind"), "not cached")


def _cmd_data_list(args):
    from xdyn import datasets

    flags = [flag for flag, value in (("--scheduler", args.scheduler), ("--workers", args.workers),
                                      ("--known-hash", args.known_hash),
                                      ("--force", args.force or None)) if value is not None]
    if flags:
        raise UsageError(f"{', '.join(flags)}: only for `xdyn data fetch NAME`, not "
                         f"`xdyn data list`")
    rows = datasets.list_datasets()
    if args.name:
        known = [row["name"] for row in rows]
        rows = [row for row in rows if row["name"] == args.name]
        if not rows:
            raise UsageError(f"unknown dataset {args.name!r}; known: {known}")
    for row in rows:
        print(f"{row['name']:<32} {_data_status(row):<20} {row.get('description', '')}")
    return 0


def _cmd_data(args):
    from xdyn import datasets

    if args.action == "list":
        return _cmd_data_list(args)
    if not args.name:
        raise UsageError("xdyn data fetch needs a dataset NAME (see `xdyn data list`)")
    options = {}
    if args.known_hash is not None:
        kind = {row["name"]: row["kind"] for row in datasets.list_datasets()}.get(args.name)
        if kind not in (None, "weatherbench"):  # an unknown name is refused by fetch below
            raise UsageError(f"--known-hash is for the weatherbench-* archives, which have no "
                             f"published checksum; {args.name!r} ({kind}) needs none")
        options["known_hash"] = args.known_hash
    if args.force:
        from xdyn.datasets.generated import registered_generated

        if args.name not in registered_generated():
            raise UsageError(f"--force remakes a generated dataset; {args.name!r} is not one "
                             f"(see `xdyn data list`)")
        options["force"] = True
    if args.scheduler and args.workers is not None:
        raise UsageError("data fetch: give --scheduler or --workers, not both")
    if not (args.scheduler or args.workers):
        print(_fetch(args.name, **options))
        return 0
    from xdyn.datasets.registry import ENV_DATA_DIR
    from xdyn.experiments.run_all import connect

    if os.environ.get(ENV_DATA_DIR):  # the tasks get paths in it: absolute, as --out of run --all
        os.environ[ENV_DATA_DIR] = str(Path(os.environ[ENV_DATA_DIR]).expanduser().absolute())
    try:
        client, cluster = connect(args.scheduler, args.workers)
    except ValueError as err:
        raise UsageError(str(err)) from None
    try:  # a generated set of many trajectories is made as one dask task per trajectory
        print(_fetch(args.name, client=client, **options))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return 0


def _fetch(name, **options):
    """``datasets.fetch``, its refusals (an unknown name, no --known-hash, offline) as usage
    errors; a corrupt file stays a DataIntegrityError (exit status 2 too)."""
    from xdyn import datasets
    from xdyn.datasets.registry import DataIntegrityError

    try:
        return datasets.fetch(name, **options)
    except DataIntegrityError:
        raise
    except (ValueError, OSError) as err:
        raise UsageError(str(err)) from None


def _cmd_bench(args):
    from xdyn import bench

    if args.what != "train" and args.device != "auto":
        raise UsageError(f"--device is for `xdyn bench train`; `xdyn bench {args.what}` "
                         "runs on the CPU")
    if args.what == "systems":
        print(bench.bench_systems(quick=args.quick))
        return 0
    if args.what == "forecast":
        print(bench.bench_forecast(quick=args.quick))
        return 0
    if args.what == "ldensf":
        from xdyn.bench_ldensf import bench_ldensf

        print(bench_ldensf(quick=args.quick))
        return 0
    if args.what == "train":
        from xdyn.bench_train import bench_train

        print(bench_train(quick=args.quick, device=check_device(args.device)))
        return 0
    if not bench.has_peer("dapper"):
        # the comparison runs on DAPPER's own truth and observations: nothing to run without it
        raise UsageError("`xdyn bench da` compares with DAPPER, which is not installed; "
                         "install the bench extra: pip install -e \".[bench]\"")
    print(bench.bench_da(quick=args.quick))
    from xdyn.bench_sweep import bench_sweep  # the sweep row: 64 experiments vs DAPPER's loop

    print("\n".join(bench_sweep(quick=args.quick)))
    return 0


# Experiments seed their parts with seed + k (k up to 30000): this bound keeps every one of
# them below numpy's 2**32.
SEED_MAX = 2**31 - 1


def _seed(text: str) -> int:
    """``--seed``: a whole number in 0 .. 2**31 - 1, checked before any work starts."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= seed <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{seed} is outside 0 .. 2**31 - 1")
    return seed


def _workers(text: str) -> int:
    """``--workers``: a whole number of workers, 0 or more."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n}: give 0 or more workers")
    return n


def _version() -> str:
    from xdyn import __version__

    return f"xdyn {__version__}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``xdyn`` command.

    Examples
    --------
    >>> build_parser().parse_args(["run", "lorenz63-twin", "--quick"]).quick
    True
    """
    parser = argparse.ArgumentParser(prog="xdyn", description=_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("list", help="list the experiment catalogue").set_defaults(func=_cmd_list)
    p = sub.add_parser("run", help="run an experiment (default: the Lorenz-96 twin experiment)")
    p.add_argument("name", nargs="?", help="experiment name (see `xdyn list`)")
    p.add_argument("--quick", action="store_true",
                   help="short version (smoke tests); written to DIR/NAME-quick/")
    p.add_argument("--out", default="xdyn-results", metavar="DIR",
                   help="output folder (default: xdyn-results)")
    p.add_argument("--seed", type=_seed, default=0,
                   help="random seed, from 0 to 2**31 - 1 (default: 0)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda or auto")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--all", action="store_true",
                   help="run the whole catalogue as dask tasks, then write the report")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --all: a running dask scheduler (default: a local cluster)")
    p.add_argument("--workers", type=_workers, metavar="N",
                   help="with --all: local workers (default: one per core; 0: serially here); "
                   "not with --scheduler")
    p.add_argument("--resume", action="store_true",
                   help="with --all: skip experiments whose outputs are complete")
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("report", help="HTML report of the runs in DIR, next to the anchors")
    p.add_argument("dir", nargs="?", default="xdyn-results", metavar="DIR",
                   help="the --out folder of xdyn run (default: xdyn-results)")
    p.set_defaults(func=_cmd_report)
    p = sub.add_parser("data", help="list or fetch datasets")
    p.add_argument("action", choices=["list", "fetch"])
    p.add_argument("name", nargs="?",
                   help="list: only this dataset; fetch: the dataset to make available")
    p.add_argument("--known-hash", metavar="sha256:HEX",
                   help="fetch weatherbench-*: the sha256 of the archive (the share "
                   "publishes none; xdyn downloads nothing unverified)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="fetch: make a generated set's trajectories as tasks on this scheduler")
    p.add_argument("--workers", type=_workers, metavar="N",
                   help="fetch: make them as tasks on a local dask cluster of N workers")
    p.add_argument("--force", action="store_true",
                   help="fetch: make a generated set again even if it is cached (a corrupt file)")
    p.set_defaults(func=_cmd_data)
    p = sub.add_parser("bench", help="speed benchmarks (with peers when the bench extra is installed)")
    p.add_argument("what", choices=["systems", "da", "forecast", "ldensf", "train"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="auto",
                   help="train: the torch device (default auto: a GPU when there is one)")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv=None) -> int:
    """Run the ``xdyn`` command with ``argv`` (default: the process's arguments).

    Parameters
    ----------
    argv : list of str, optional
        The command-line arguments after the program name; None parses ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: the sub-command's (0 on success); 2 after printing a one-line
        error for bad input (a :class:`UsageError` or ``DataIntegrityError``, raised
        before any work starts); 1 after printing the traceback of any other error
        (the work itself failed).

    Examples
    --------
    >>> main(["run", "no-such-experiment"])
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from xdyn.datasets.registry import DataIntegrityError

    try:
        return int(args.func(args) or 0)
    except (UsageError, DataIntegrityError) as err:
        # one line: a message that names the input and the fix, never a traceback
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"xdyn: error: {message}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - the work failed: where it failed is what helps
        traceback.print_exc()
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
