"""Where xdyn's data files live, how they are verified, and how they are written.

Every published file has a sha256 in ``registry.txt`` (next to this module),
read by a :func:`pooch.create` registry, so a file's name is stable and its
bytes are pinned (pooch never runs with ``known_hash=None``). A file is looked
up in this order:

1. the folder of small files shipped with the repository (``datasets/`` at
   the top of a checkout, or ``$XDYN_SHIPPED_DIR``), verified against the
   registry's sha256 -- no network;
2. the cache directory, ``$XDYN_DATA_DIR`` (default ``pooch.os_cache("xdyn")``),
   downloaded there from the registry's immutable, versioned URL if missing or
   stale -- unless ``$XDYN_OFFLINE`` is set, which forbids every download.

A file whose bytes do not match the registry raises :class:`DataIntegrityError`
naming the file and the command that restores it. Nothing is ever written in
place: :func:`atomic_path` gives a temporary name that is moved into place with
:func:`os.replace` only once the write has finished.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from pathlib import Path

import pooch

from xdyn.datasets._atomic import (  # noqa: F401  (public here: catalogue, generated)
    STALE_PART_AGE,
    _host,
    atomic_path,
    remove_stale_parts,
    write_netcdf_atomic,
)

__all__ = [
    "BASE_URL",
    "DATA_VERSION",
    "REGISTRY_FILE",
    "DataIntegrityError",
    "DataUnavailableError",
    "atomic_path",
    "check_known_hash",
    "check_sha256sums",
    "data_dir",
    "file_sha256",
    "is_offline",
    "make_pooch",
    "read_registry",
    "write_sha256sums",
    "remove_stale_parts",
    "resolve",
    "shipped_dir",
    "write_netcdf_atomic",
]

#: Version of xdyn's published data; bump it (never reuse it) when a file changes,
#: so that a URL always serves the same bytes (PITFALLS 8: immutable URLs).
DATA_VERSION = "data-v1"
#: Where xdyn's own published files live: one GitHub release per data version.
#: Placeholder until the release is published; shipped files never need it.
BASE_URL = f"https://github.com/xdyn-dev/xdyn-data/releases/download/{DATA_VERSION}/"
REGISTRY_FILE = Path(__file__).with_name("registry.txt")

ENV_DATA_DIR = "XDYN_DATA_DIR"
ENV_SHIPPED_DIR = "XDYN_SHIPPED_DIR"
ENV_OFFLINE = "XDYN_OFFLINE"

# The repository's top-level ``datasets/`` folder, present in a checkout or an
# editable install (a wheel carries only ``registry.txt``).
_REPO_SHIPPED_DIR = Path(__file__).resolve().parents[2] / "datasets"


class DataIntegrityError(OSError):
    """A data file is corrupt, truncated, or not the file the registry pins.

    The message names the file and how to restore it.

    Examples
    --------
    >>> err = DataIntegrityError("lorenz63_sample.nc: sha256 mismatch")
    >>> isinstance(err, OSError)
    True
    """


class DataUnavailableError(FileNotFoundError):
    """A data file is not on disk and may not (or could not) be downloaded.

    Examples
    --------
    >>> isinstance(DataUnavailableError("x.nc"), FileNotFoundError)
    True
    """


# --- locations ---------------------------------------------------------------
def data_dir() -> Path:
    """The cache directory: ``$XDYN_DATA_DIR`` or ``pooch.os_cache("xdyn")``.

    Read at each call, so changing the environment variable takes effect at once.
    Nothing is created on disk.

    Examples
    --------
    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"XDYN_DATA_DIR": "/tmp/xdyn-doc-cache"}):
    ...     print(data_dir())
    /tmp/xdyn-doc-cache
    """
    env = os.environ.get(ENV_DATA_DIR)
    return Path(env).expanduser() if env else Path(pooch.os_cache("xdyn"))


def shipped_dir() -> Path | None:
    """The folder of files shipped with xdyn, or None when there is none.

    ``$XDYN_SHIPPED_DIR`` if set (an empty value disables the shipped folder),
    else ``datasets/`` at the top of the repository when it exists.

    Examples
    --------
    >>> d = shipped_dir()
    >>> d is None or (d / "README.md").exists()
    True
    """
    env = os.environ.get(ENV_SHIPPED_DIR)
    if env is not None:
        return Path(env).expanduser() if env else None
    return _REPO_SHIPPED_DIR if _REPO_SHIPPED_DIR.is_dir() else None


def is_offline() -> bool:
    """True when ``$XDYN_OFFLINE`` forbids downloads (``1``, ``true``, ``yes``).

    Examples
    --------
    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"XDYN_OFFLINE": "1"}):
    ...     print(is_offline())
    True
    """
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


# --- registry ----------------------------------------------------------------
def make_pooch() -> pooch.Pooch:
    """A fresh :class:`pooch.Pooch` on the current cache dir, loaded with ``registry.txt``.

    Examples
    --------
    >>> pup = make_pooch()
    >>> "lorenz63_sample.nc" in pup.registry
    True
    """
    pup = pooch.create(
        path=pooch.os_cache("xdyn"),
        base_url=BASE_URL,
        env=ENV_DATA_DIR,
        registry=None,
        retry_if_failed=2,
    )
    pup.load_registry(REGISTRY_FILE)
    return pup


def read_registry() -> dict[str, str]:
    """Registry entries, file name -> ``"sha256:<hex>"``.

    Examples
    --------
    >>> reg = read_registry()
    >>> reg["lorenz63_sample.nc"].startswith("sha256:")
    True
    """
    out = {}
    for line in REGISTRY_FILE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, digest = shlex.split(line)[:2]
            out[name] = digest if ":" in digest else f"sha256:{digest}"
    return out


# --- hashing -----------------------------------------------------------------
_HASH_MEMO: dict[tuple, str] = {}


def file_sha256(path) -> str:
    """Hex sha256 of a file, memoised on its path, size and mtime.

    Parameters
    ----------
    path : str or path-like
        The file to hash (read in 1 MiB blocks).

    Returns
    -------
    str
        64 lowercase hex digits.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASH_MEMO[key] = h.hexdigest()
    return _HASH_MEMO[key]


def _check_hash(path: Path, fname: str, expected: str, fix: str) -> None:
    alg, _, want = expected.partition(":")
    if alg != "sha256":
        raise ValueError(f"registry entry {fname!r} uses {alg!r}; xdyn pins sha256 only")
    got = file_sha256(path)
    if got != want.lower():
        raise DataIntegrityError(
            f"data file {path} is corrupt, truncated or modified: its sha256 is {got}, "
            f"the registry ({REGISTRY_FILE.name}) expects {want} for {fname!r}. {fix}"
        )


def check_known_hash(path, fix: str = "") -> bool:
    """Verify ``path`` against the registry when the registry pins a file of that name.

    A file is pinned when its path ends with a registry name (``lorenz63_sample.nc``,
    ``era5_wb5625_sample/geopotential_500/...``). Hashes are memoised on path,
    size and mtime, so a repeated open costs nothing.

    Parameters
    ----------
    path : str or path-like
        The data file to check.
    fix : str, default=""
        What to do about a mismatch; appended to the error message.

    Returns
    -------
    bool
        True when the file was pinned and matched; False when it is not pinned.

    Raises
    ------
    DataIntegrityError
        The file is pinned and its sha256 differs (the message ends with ``fix``).

    Examples
    --------
    >>> check_known_hash(resolve("lorenz63_sample.nc"))
    True
    >>> import tempfile, pathlib
    >>> check_known_hash(pathlib.Path(tempfile.mkdtemp()) / "other.nc")
    False
    """
    posix = Path(path).as_posix()
    for fname, expected in read_registry().items():
        if posix == fname or posix.endswith("/" + fname):
            _check_hash(Path(path), fname, expected, fix)
            return True
    return False


SHA256SUMS = "SHA256SUMS"
_SHA256SUMS_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")


def check_sha256sums(path, fix: str = "") -> bool:
    """Verify ``path`` against the ``SHA256SUMS`` file of its folder, if it lists it.

    ``SHA256SUMS`` has ``sha256sum``'s format (``<hex>  <file name>`` per line,
    or ``<hex> *<file name>`` from ``sha256sum --binary``);
    :func:`xdyn.datasets.fetch_weatherbench` writes one when it extracts an
    archive whose sha256 it verified.

    Parameters
    ----------
    path : str or path-like
        The data file to check; ``SHA256SUMS`` is looked for in its folder.
    fix : str, default=""
        What to do about a mismatch; appended to the error message.

    Returns
    -------
    bool
        True when the file is listed and matches; False when it is not listed.

    Raises
    ------
    DataIntegrityError
        The file is listed and its sha256 differs.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.nc").write_bytes(b"abc")
    >>> _ = write_sha256sums(folder, {"a.nc": file_sha256(folder / "a.nc")})
    >>> check_sha256sums(folder / "a.nc"), check_sha256sums(folder / "b.nc")
    (True, False)
    """
    path = Path(path)
    sums = read_sha256sums(path.parent)
    if path.name not in sums:
        return False
    got = file_sha256(path)
    if got != sums[path.name]:
        raise DataIntegrityError(
            f"data file {path} is corrupt or modified: its sha256 is {got}, the "
            f"{path.parent / SHA256SUMS} recorded at download says {sums[path.name]}. {fix}"
        )
    return True


def read_sha256sums(folder) -> dict[str, str]:
    """File name -> hex sha256 from ``folder/SHA256SUMS`` (empty when there is none).

    Lines in ``sha256sum``'s text (``<hex>  <name>``) and binary
    (``<hex> *<name>``) formats are read; other lines are skipped.
    """
    listing = Path(folder) / SHA256SUMS
    if not listing.is_file():
        return {}
    out = {}
    for line in listing.read_text(encoding="utf-8").splitlines():
        # text mode writes `<hex>  name`, binary mode (`sha256sum --binary`) `<hex> *name`
        m = _SHA256SUMS_LINE.fullmatch(line.strip())
        if m:
            out[m.group(2)] = m.group(1).lower()
    return out


def write_sha256sums(folder, digests: dict[str, str]) -> Path:
    """Add ``digests`` (file name -> hex sha256) to ``folder/SHA256SUMS``, atomically.

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder of the files; ``SHA256SUMS`` is written there.
    digests : dict of str to str
        File name (relative to ``folder``) -> hex sha256. Entries already in
        the listing are kept unless ``digests`` replaces them.

    Returns
    -------
    pathlib.Path
        The ``SHA256SUMS`` file, in ``sha256sum``'s format.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_sha256sums(folder, {"b.nc": "bb" * 32})
    >>> listing = write_sha256sums(folder, {"a.nc": "aa" * 32})
    >>> print(listing.read_text(), end="")  # doctest: +ELLIPSIS
    aaaa...aa  a.nc
    bbbb...bb  b.nc
    >>> read_sha256sums(folder) == {"a.nc": "aa" * 32, "b.nc": "bb" * 32}
    True
    """
    folder = Path(folder)
    merged = {**read_sha256sums(folder), **digests}
    listing = folder / SHA256SUMS
    with atomic_path(listing) as tmp:
        tmp.write_text("".join(f"{merged[n]}  {n}\n" for n in sorted(merged)), encoding="utf-8")
    return listing


def _fix_hint(fname: str, dataset: str | None, script: str | None, shipped: bool) -> str:
    name = dataset or fname
    if shipped:
        how = f"restore it from version control (git checkout -- datasets/{fname})"
        if script:
            how += (
                f", or regenerate it with `python datasets/{script}` (which updates the registry)"
            )
        return f"To fix: {how}."
    return f"To fix: delete it and run `xdyn data fetch {name}` (or xdyn.datasets.fetch({name!r}))."


# --- lookup ------------------------------------------------------------------
def resolve(
    fname: str,
    *,
    dataset: str | None = None,
    script: str | None = None,
    download: bool = True,
) -> Path:
    """Path to a verified copy of registry file ``fname``.

    Parameters
    ----------
    fname : str
        Name in ``registry.txt`` (may contain ``/`` for files in sub-folders).
    dataset : str, optional
        Name of the dataset it belongs to, used in error messages.
    script : str, optional
        Script in ``datasets/`` that makes the file, used in error messages.
    download : bool, default=True
        Allow a download into the cache (still refused when ``$XDYN_OFFLINE`` is set).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DataIntegrityError
        The shipped or cached copy does not match its sha256.
    DataUnavailableError
        No copy on disk and no download allowed, or the download failed.

    Examples
    --------
    >>> resolve("lorenz63_sample.nc").name
    'lorenz63_sample.nc'
    """
    registry = read_registry()
    if fname not in registry:
        raise ValueError(f"{fname!r} is not in xdyn's data registry ({REGISTRY_FILE})")
    expected = registry[fname]
    shipped = shipped_dir()
    if shipped is not None and (shipped / fname).is_file():
        path = shipped / fname
        _check_hash(path, fname, expected, _fix_hint(fname, dataset, script, shipped=True))
        return path

    pup = make_pooch()
    cached = Path(pup.abspath) / fname
    if cached.is_file() and file_sha256(cached) == expected.partition(":")[2].lower():
        return cached
    if not download or is_offline():
        why = "XDYN_OFFLINE is set" if is_offline() else "downloads were not allowed"
        if cached.is_file():
            _check_hash(cached, fname, expected, _fix_hint(fname, dataset, script, shipped=False))
        where = f"{shipped / fname} (shipped) nor " if shipped is not None else ""
        raise DataUnavailableError(
            f"{fname!r} is neither at {where}{cached} (cache, $XDYN_DATA_DIR), and {why}. "
            f"Fetch it once online with `xdyn data fetch {dataset or fname}`, or copy the "
            f"file to {cached}."
        )
    try:
        return Path(pup.fetch(fname))
    except Exception as exc:  # network errors come from requests, urllib, ftplib ...
        if cached.is_file():
            _check_hash(cached, fname, expected, _fix_hint(fname, dataset, script, shipped=False))
        if isinstance(exc, ValueError) and "hash" in str(exc).lower():
            raise DataIntegrityError(
                f"the download of {fname!r} from {pup.get_url(fname)} does not match the "
                f"registry's sha256 (the server may have replaced the file): {exc}"
            ) from exc
        raise DataUnavailableError(
            f"could not download {fname!r} from {pup.get_url(fname)} into {cached}: {exc}. "
            f"Check the network, or copy the file there by hand."
        ) from exc
