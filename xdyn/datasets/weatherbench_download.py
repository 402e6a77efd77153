"""Download WeatherBench folders from the TUM share into the WeatherBench layout.

Kept apart from :mod:`xdyn.datasets.weatherbench` (which only reads): the share
publishes no checksums, so every download here needs a sha256 from the caller
(pooch never runs with ``known_hash=None``), and archives are extracted file by
file through a temporary name and :func:`os.replace`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import pooch

from xdyn.datasets.registry import DataUnavailableError, data_dir, is_offline

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
    resolution : str, default="5.625deg"

    Returns
    -------
    pathlib.Path
        ``root``, ready for :func:`load_weatherbench`.

    Examples
    --------
    >>> fetch_weatherbench("z500")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ValueError: WeatherBench publishes no checksum for ...
    """
    from xdyn.datasets.weatherbench import _parse, weatherbench_url

    names = [variables] if isinstance(variables, str) else list(variables)
    root = Path(root) if root is not None else data_dir() / "weatherbench"
    hashes = known_hash if isinstance(known_hash, dict) else {n: known_hash for n in names}
    for name in names:
        folder = "constants" if name == "constants" else _parse(name)[1][0][0]
        url = weatherbench_url(folder, resolution)
        if not hashes.get(name):
            raise ValueError(
                f"WeatherBench publishes no checksum for {url} and xdyn's registry has none, "
                f"so it cannot be verified. Pass known_hash='sha256:<hex>' of the archive, or "
                f"download and unzip it by hand into {root / folder}/."
            )
        if is_offline():
            raise DataUnavailableError(f"XDYN_OFFLINE is set; not downloading {url}")
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
    return root


def _unzip_into(folder: Path):
    """A pooch processor extracting a zip's ``*.nc`` into ``folder``, atomically per file."""

    def processor(fname, action, pup):
        if action == "fetch" and any(folder.glob("*.nc")):
            return str(folder)  # archive already verified and extracted
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(fname) as archive, tempfile.TemporaryDirectory(dir=folder) as tmp:
            for member in archive.namelist():
                if member.endswith(".nc"):
                    target = Path(tmp) / Path(member).name
                    with archive.open(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    os.replace(target, folder / target.name)
        return str(folder)

    return processor
