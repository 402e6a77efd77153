"""Atomic writes: a file appears whole under its name, or not at all.

A file is written to a temporary name next to its target and moved into place
with :func:`os.replace` once the write has finished (DESIGN: Failure, "nothing
is written half"). A process killed mid-write (SIGKILL, power loss) runs no
cleanup, so the temporary name records its writer and the next write or open
of the same file removes what a dead writer left (:func:`remove_stale_parts`).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["STALE_PART_AGE", "atomic_path", "remove_stale_parts", "write_netcdf_atomic"]

# A temporary file is named ``.<name>.<host>-<pid>-<random>.part``: a later write or
# open of ``<name>`` can then tell a live writer's file from one left by a killed
# process (SIGKILL, power loss: no ``finally`` runs) and remove the latter.
_PART_RE = re.compile(r"\.(?:(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-)?[0-9a-f]{12}\.part$")
#: Age after which a temporary file whose writer cannot be checked (another host,
#: or an older xdyn that did not record it) is taken to be abandoned.
STALE_PART_AGE = 24 * 3600.0


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def _writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's
        return True
    # a killed process stays a zombie until its parent reaps it (a dask nanny does so
    # a moment later, when the retried task may already be running): it writes nothing
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):  # no /proc (macOS), or it just went away
        return True


def remove_stale_parts(path) -> list[Path]:
    """Remove temporary files that an interrupted write of ``path`` left behind.

    A ``.<name>.*.part`` next to ``path`` is removed when its writer, recorded in
    its name, is no longer running on this host, or when it is older than
    :data:`STALE_PART_AGE` and its writer cannot be checked. A live writer's file
    is kept. Called before every :func:`atomic_path` write and when a generated
    dataset is opened.

    Parameters
    ----------
    path : str or path-like
        The final file whose leftover temporary files, in its folder, are looked for.

    Returns
    -------
    list of Path
        The files removed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.nc"
    >>> orphan = target.with_name(f".a.nc.{_host()}-999999999-0123456789ab.part")
    >>> _ = orphan.write_bytes(b"half")
    >>> [p.name == orphan.name for p in remove_stale_parts(target)]
    [True]
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    removed, here, now = [], _host(), time.time()
    prefix = f".{path.name}."
    for part in path.parent.iterdir():
        if not part.name.startswith(prefix):
            continue
        m = _PART_RE.fullmatch(part.name[len(prefix) - 1 :])
        if m is None:
            continue
        checkable = m.group("pid") is not None and m.group("host") == here and os.name != "nt"
        try:
            if checkable:
                stale = not _writer_alive(int(m.group("pid")))
            else:
                stale = now - part.stat().st_mtime > STALE_PART_AGE
            if stale:
                part.unlink()
                removed.append(part)
        except FileNotFoundError:  # another process cleaned it first
            continue
    return removed


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place on success.

    The temporary file is removed if the body raises (including
    ``KeyboardInterrupt``), so a reader never sees a half-written ``path``; one
    left by a killed process is removed by the next write (:func:`remove_stale_parts`).
    The file is flushed to disk (:func:`os.fsync`) before it is moved into
    place, and its folder after (POSIX), so that after a power loss ``path``
    is the old file or the whole new one, never an empty or partial one.

    Parameters
    ----------
    path : str or path-like
        The final file; its parent folder is created if need be.

    Yields
    ------
    Path
        A hidden ``.<name>.<host>-<pid>-<random>.part`` file in the same folder to write to.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(path)
    tmp = path.with_name(f".{path.name}.{_host()}-{os.getpid()}-{uuid.uuid4().hex[:12]}.part")
    try:
        yield tmp
        _fsync(tmp)  # the data reach the disk before the name does (power loss)
        os.replace(tmp, path)
        _fsync(path.parent, folder=True)  # and so does the rename
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fsync(path: Path, folder: bool = False) -> None:
    """Flush ``path`` to disk; a folder that cannot be opened or synced (Windows) is skipped."""
    try:  # Windows flushes only a handle opened for writing, and opens no folder
        fd = os.open(path, os.O_RDWR if os.name == "nt" and not folder else os.O_RDONLY)
    except OSError:
        if folder:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not folder:  # some file systems refuse fsync on a folder (EINVAL)
            raise
    finally:
        os.close(fd)


def write_netcdf_atomic(ds, path, **kwargs) -> Path:
    """Write ``ds`` to netCDF at ``path`` through a temporary file and :func:`os.replace`.

    Parameters
    ----------
    ds : xarray.Dataset
    path : str or Path
    **kwargs
        Passed to :meth:`xarray.Dataset.to_netcdf` (e.g. ``encoding``).

    Examples
    --------
    >>> import tempfile, pathlib, xarray as xr
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.nc"
    >>> write_netcdf_atomic(xr.Dataset({"a": ("x", [1.0, 2.0])}), target).name
    'a.nc'
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, **kwargs)
    return path
