"""Helpers shared by the scripts that make the files shipped in ``datasets/``.

Each script writes its files atomically (temporary name + ``os.replace``) and
then records their sha256 in ``xdyn/datasets/registry.txt``, the one registry
that :mod:`xdyn.datasets` reads.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from xdyn.datasets.registry import BASE_URL, REGISTRY_FILE, atomic_path, file_sha256

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def registry_url(name: str) -> str | None:
    """Published URL for names in sub-folders (release assets are flat: ``/`` -> ``--``)."""
    return BASE_URL + name.replace("/", "--") if "/" in name else None


def update_registry(paths) -> None:
    """Record the sha256 of shipped files (paths under ``datasets/``) in the registry."""
    entries = {}
    for path in paths:
        name = Path(path).resolve().relative_to(HERE).as_posix()
        url = registry_url(name)
        entries[name] = f"{name} sha256:{file_sha256(path)}" + (f" {url}" if url else "")
    lines = []
    for line in REGISTRY_FILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        name = shlex.split(stripped)[0] if stripped and not stripped.startswith("#") else None
        lines.append(entries.pop(name) if name in entries else line)
    lines.extend(entries[name] for name in sorted(entries))
    with atomic_path(REGISTRY_FILE) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for path in paths:
        print(f"{Path(path).relative_to(REPO)}  {Path(path).stat().st_size:>8} B  registered")
