"""Make (or check) the generated synthetic datasets in the cache, ``$XDYN_DATA_DIR``.

These sets are too large to ship; each is made by a function of
:mod:`xdyn.datasets.generated` from a recorded configuration, which is stored in
the file's attrs and checked on every load (not its bytes: floating point differs
across machines). Usage::

    python datasets/make_generated.py                       # every generated set
    python datasets/make_generated.py lorenz96-climatology --force
    python datasets/make_generated.py lorenz96-climatology --set t_span=500

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
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    for name in args.names or list(registered_generated()):
        path = fetch(name, force=args.force, **overrides)
        print(f"{name}: {path} ({path.stat().st_size} B)")


if __name__ == "__main__":
    main()
