"""Make (or check) the generated synthetic datasets in the cache, ``$XDYN_DATA_DIR``.

These sets are too large to ship; each is made by a function of
:mod:`xdyn.datasets.generated` from a recorded configuration, which is stored in
the file's attrs and checked on every load (not its bytes: floating point differs
across machines). Usage::

    python datasets/make_generated.py                       # every generated set
    python datasets/make_generated.py lorenz96-climatology --force
    python datasets/make_generated.py lorenz96-climatology --set t_span=500
    python datasets/make_generated.py kolmogorov-closure --workers 4     # dask tasks
    python datasets/make_generated.py system-trajectories --scheduler tcp://host:8786 \
        --set system='"shallow-water"' --set n_trajectories=512

With ``--workers N`` (a local dask cluster) or ``--scheduler ADDRESS`` (a
running one, whose workers see ``$XDYN_DATA_DIR``) the sets made of many
trajectories are made as one dask task per trajectory, each writing its own
part file atomically; the numbers are those of a serial run.
``xdyn.datasets.load(name)`` does the same on first use.
"""

from __future__ import annotations

import argparse
import json

from xdyn.datasets import fetch
from xdyn.datasets.generated import registered_generated


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="datasets to make (default: all generated)")
    parser.add_argument("--force", action="store_true", help="regenerate even if cached")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a configuration value (JSON value)",
    )
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="make trajectories as tasks on this running dask scheduler")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="make trajectories as tasks on a local dask cluster of N workers")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    client = cluster = None
    if args.scheduler or args.workers:
        from xdyn.experiments.run_all import connect

        client, cluster = connect(args.scheduler, args.workers)
    try:
        for name in args.names or list(registered_generated()):
            path = fetch(name, force=args.force, client=client, **overrides)
            print(f"{name}: {path} ({path.stat().st_size} B)")
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    main()
