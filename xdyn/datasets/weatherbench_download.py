"""Download WeatherBench folders from the TUM share into the WeatherBench layout.

Kept apart from :mod:`xdyn.datasets.weatherbench` (which only reads): the share
publishes no checksums, so every download here needs a sha256 from the caller
(pooch never runs with ``known_hash=None``), and archives are extracted file by
file through a temporary name and :func:`os.replace`. A fetch of an archive
already downloaded extracts it again unless every file of it is in place and
matches the ``SHA256SUMS`` recorded at extraction, so a deleted, damaged or
half-extracted year is restored.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

import pooch

from xdyn.datasets._atomic import _host, _writer_alive
from xdyn.datasets.registry import (
    DataIntegrityError,
    DataUnavailableError,
    data_dir,
    file_sha256,
    is_offline,
    read_sha256sums,
    write_sha256sums,
)

__all__ = ["fetch_weatherbench"]


def fetch_weatherbench(variables, root=None, *, known_hash=None, resolution="5.625deg") -> Path:
    """Download WeatherBench folders from the TUM share and unzip them under ``root``.

    The share publishes no checksums and xdyn has not recorded any yet, so
    pooch needs the archive's sha256 from you (``known_hash``): xdyn never
    downloads unverified files. Compute it once on a trusted copy
    (``sha256sum geopotential_500_5.625deg.zip``) or download by hand::

        wget "<weatherbench_url('geopotential_500')>" -O geopotential_500_5.625deg.zip
        unzip geopotential_500_5.625deg.zip -d $XDYN_DATA_DIR/weatherbench/geopotential_500

    Parameters
    ----------
    variables : str or sequence of str
        Short names (``"z500"``, ``"t2m"``) or ``"constants"``.
    root : str or Path, optional
        Default ``$XDYN_DATA_DIR/weatherbench``.
    known_hash : str or dict
        ``"sha256:<hex>"`` of the archive (one variable) or a dict short name -> hash.
        On the command line: ``xdyn data fetch weatherbench-z500 --known-hash sha256:<hex>``.
    resolution : {"5.625deg", "2.8125deg", "1.40625deg"}, default="5.625deg"

    Returns
    -------
    pathlib.Path
        ``root``, ready for :func:`load_weatherbench`.

    Raises
    ------
    ValueError
        No ``known_hash`` for a variable, or an unknown resolution.
    xdyn.datasets.DataIntegrityError
        The download does not match its hash, or the archive is truncated or
        corrupt; nothing is left behind (no archive, no empty variable folder).
    OSError
        Extracting the verified archive failed on this machine (disk full,
        no write permission: the errno is kept); the message names the folder
        and the fix. The archive is kept, so the next fetch extracts it without
        downloading it again, and no half-extracted file is left.

    Examples
    --------
    >>> fetch_weatherbench("z500")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ValueError: WeatherBench publishes no checksum for ...
    """
    from xdyn.datasets._wb_files import check_resolution
    from xdyn.datasets.weatherbench import _parse, weatherbench_url

    check_resolution(resolution)
    names = [variables] if isinstance(variables, str) else list(variables)
    root = Path(root) if root is not None else data_dir() / "weatherbench"
    hashes = known_hash if isinstance(known_hash, dict) else {n: known_hash for n in names}
    for name in names:
        folder = "constants" if name == "constants" else _parse(name)[1][0][0]
        url = weatherbench_url(folder, resolution)
        if not hashes.get(name):
            raise ValueError(
                f"WeatherBench publishes no checksum for {url} and xdyn's registry has none, "
                f"so it cannot be verified. Pass known_hash='sha256:<hex>' of the archive "
                f"(`xdyn data fetch weatherbench-{name} --known-hash sha256:<hex>`), or "
                f"download and unzip it by hand into {root / folder}/."
            )
        if is_offline():
            raise DataUnavailableError(f"XDYN_OFFLINE is set; not downloading {url}")
        try:
            if folder == "constants":
                pooch.retrieve(
                    url,
                    known_hash=hashes[name],
                    fname=f"constants_{resolution}.nc",
                    path=root / "constants",
                )
            else:
                pooch.retrieve(
                    url,
                    known_hash=hashes[name],
                    fname=f"{folder}_{resolution}.zip",
                    path=root / ".downloads",
                    processor=_unzip_into(root / folder),
                )
        except ValueError as exc:
            if "hash" not in str(exc).lower():
                raise
            # pooch deletes a download whose hash differs; say what it means here
            raise DataIntegrityError(
                f"the download of {url} does not match known_hash={hashes[name]!r}: it was "
                f"cut short, or the hash is not the archive's. Nothing was kept. To fix: run "
                f"the fetch again; if it fails the same way, check the hash. ({exc})"
            ) from exc
    return root


def _unzip_into(folder: Path):
    """A pooch processor extracting a zip's ``*.nc`` into ``folder``; a partial one is redone.

    The files are extracted into a temporary folder (each member's CRC checked
    as it is read); their sha256 are added to ``folder/SHA256SUMS`` and only
    then are they moved into place, so a process killed between two moves
    leaves files that are missing or differ from ``SHA256SUMS``, never
    unlisted ones. A fetch whose archive is already downloaded
    (pooch's action ``"fetch"``) skips the extraction only when every member is
    in ``folder`` and matches ``SHA256SUMS`` (this reads each file once), so a
    deleted or damaged year, or an extraction killed half-way, is repaired. A
    bad archive (an error reading it: ``BadZipFile``, a CRC mismatch included,
    ``EOFError``, ``zlib.error``) is deleted, so the next fetch downloads it
    again rather than reusing it. An ``OSError`` (writing into ``folder``: disk
    full, permissions) keeps the verified archive and is raised again with
    its errno, naming ``folder`` and the fix. Either leaves no empty
    ``folder`` and no half-extracted file behind.
    """

    def processor(fname, action, pup):
        created = not folder.exists()
        try:
            with zipfile.ZipFile(fname) as archive:
                members = [m for m in archive.infolist() if m.filename.endswith(".nc")]
                if not members:
                    raise zipfile.BadZipFile("it holds no *.nc file")
                if action == "fetch" and _extracted(folder, members):
                    return str(folder)
                folder.mkdir(parents=True, exist_ok=True)
                _remove_dead_extractions(folder)
                _extract(archive, members, folder)
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:  # reading the archive
            Path(fname).unlink(missing_ok=True)
            _remove_if_empty(folder, created)
            raise DataIntegrityError(
                f"the downloaded archive {fname} is truncated or corrupt ({type(exc).__name__}: "
                f"{exc}); it was deleted and nothing was extracted into {folder}. To fix: run "
                f"the fetch again (a connection cut mid-download is the usual cause), and check "
                f"that known_hash is the sha256 of the complete archive."
            ) from exc
        except OSError as exc:  # writing into folder: disk full, permissions -- not the download
            _remove_if_empty(folder, created)
            raise _extraction_error(exc, fname, folder) from exc
        return str(folder)

    return processor


def _remove_if_empty(folder: Path, created: bool) -> None:
    if created and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _extraction_error(exc: OSError, fname, folder: Path) -> OSError:
    """``exc`` (its errno kept) with what failed, that the archive was kept, and the fix."""
    fixes = {
        errno.ENOSPC: f"free disk space under {folder}",
        getattr(errno, "EDQUOT", -1): f"free space in your disk quota under {folder}",
        errno.EACCES: f"make {folder} writable",
        errno.EPERM: f"make {folder} writable",
        errno.EROFS: f"pass root= a folder on a writable file system (not {folder})",
    }
    cause = os.strerror(exc.errno) if exc.errno else type(exc).__name__
    message = (
        f"could not extract {fname} into {folder}: {cause} ({exc}). The archive matched "
        f"known_hash and was kept, and no half-written file was left in {folder}. To fix: "
        f"{fixes.get(exc.errno, 'remove the cause above')}, then run the fetch again (it "
        f"extracts the kept archive without downloading it)."
    )
    return OSError(exc.errno, message) if exc.errno else OSError(message)


def _extracted(folder: Path, members: list[zipfile.ZipInfo]) -> bool:
    """Whether every member is in ``folder`` with the sha256 its ``SHA256SUMS`` records."""
    sums = read_sha256sums(folder)
    for member in members:
        name = Path(member.filename).name
        path = folder / name
        # the size first: a deleted or truncated file is found without reading it
        if name not in sums or not path.is_file() or path.stat().st_size != member.file_size:
            return False
        if file_sha256(path) != sums[name]:
            return False
    return True


def _extract(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], folder: Path) -> None:
    # no testzip() pass first: it would decompress everything twice. Reading a member
    # checks its CRC (BadZipFile at its end), and members go to a temporary folder
    # named after this process, so that a later fetch can remove it if we are killed
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".extract-{_host()}-{os.getpid()}-"))
    try:
        digests = {}
        for member in members:
            name = Path(member.filename).name
            digest = hashlib.sha256()
            with archive.open(member) as src, open(tmp / name, "wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    dst.write(block)
            digests[name] = digest.hexdigest()
        # the archive's hash was verified: record its files' hashes before they are
        # moved in, so that a move killed half-way leaves files that differ from
        # SHA256SUMS -- the next fetch extracts again, load_weatherbench(verify=True)
        # names them -- and never unlisted ones
        write_sha256sums(folder, digests)
        for name in digests:
            os.replace(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_dead_extractions(folder: Path) -> None:
    """Remove the temporary folders of extractions whose process was killed."""
    if os.name == "nt":  # no liveness check of a process id there: leave them
        return
    here = _host()
    for tmp in folder.glob(".extract-*"):
        host, _, rest = tmp.name[len(".extract-"):].partition("-")
        pid = rest.partition("-")[0]
        if tmp.is_dir() and host == here and pid.isdigit() and not _writer_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
