"""The ``xdyn`` command: the experiment catalogue, data and benchmarks.

    xdyn list                                   the experiment catalogue
    xdyn run [NAME] [--quick] [--out DIR] [--seed N] [--device D]
    xdyn data list | xdyn data fetch NAME
    xdyn bench systems | xdyn bench da [--quick]
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


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
    from xdyn.experiments import DEFAULT_EXPERIMENT, run
    from xdyn.systems.base import resolve_device

    name = args.name or DEFAULT_EXPERIMENT
    device = str(resolve_device(args.device))
    print(f"xdyn run {name} (quick={args.quick}, seed={args.seed}, device={device})", flush=True)
    result = run(name, quick=args.quick, out=args.out, seed=args.seed, device=device,
                 progress=not args.no_progress)
    print(result.table)
    return 0


def _cmd_data(args):
    from xdyn import datasets

    if args.action == "list":
        rows = datasets.list_datasets()
        for row in rows:
            avail = "available" if row.get("cached") or row.get("offline") else "not cached"
            print(f"{row['name']:<32} {avail:<12} {row.get('description', '')}")
        return 0
    if not args.name:
        print("xdyn data fetch needs a dataset NAME (see `xdyn data list`)", file=sys.stderr)
        return 2
    print(datasets.fetch(args.name))
    return 0


def _cmd_bench(args):
    from xdyn import bench

    if args.what == "systems":
        print(bench.bench_systems(quick=args.quick))
    else:
        print(bench.bench_da(quick=args.quick))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xdyn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiment catalogue").set_defaults(func=_cmd_list)
    p = sub.add_parser("run", help="run an experiment (default: the Lorenz-96 twin experiment)")
    p.add_argument("name", nargs="?", help="experiment name (see `xdyn list`)")
    p.add_argument("--quick", action="store_true", help="short version (for smoke tests)")
    p.add_argument("--out", default="xdyn-results", help="output folder (default: xdyn-results)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="cpu", help='torch device: "cpu", "cuda" or "auto"')
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("data", help="list or fetch datasets")
    p.add_argument("action", choices=["list", "fetch"])
    p.add_argument("name", nargs="?")
    p.set_defaults(func=_cmd_data)
    p = sub.add_parser("bench", help="speed benchmarks (with peers when the bench extra is installed)")
    p.add_argument("what", choices=["systems", "da"])
    p.add_argument("--quick", action="store_true")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"xdyn: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
