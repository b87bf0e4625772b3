"""Published weights on first use: the local copy if present, else a verified download into the cache.

``path(name)`` resolves a catalogue entry (:mod:`robustjax.hub.catalogue`) to a local file, in order:

1. ``$ROBUSTJAX_WEIGHTS/<folder>/<file>`` when every file of the entry is there;
2. ``$ROBUSTJAX_CACHE/weights/<folder>/<file>`` (default ``~/.cache/robustjax/weights``), downloading
   what is missing there (:mod:`robustjax.hub.download`), unless ``ROBUSTJAX_OFFLINE=1``.

``ROBUSTJAX_WEIGHTS_MIRROR=URL`` replaces the publishers' URLs by ``URL/<folder>/<file>`` (the layout
of ``ROBUSTJAX_WEIGHTS``, so ``python -m http.server -d $ROBUSTJAX_WEIGHTS`` is a mirror). Every file
is checked before use: against its pinned sha256, or, for a download with none pinned, against the
sha256 it arrived with, so a file changed after download is refused rather than silently converted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from robustjax.hub.catalogue import ENTRIES, PublishedFile, Weights, get, markdown_table
from robustjax.hub.download import DownloadError, IntegrityError, fetch, record_path

__all__ = ["ENTRIES", "DownloadError", "IntegrityError", "MissingWeightsError", "PublishedFile", "Weights",
           "download_root", "get", "markdown_table", "mirror", "offline", "path"]


class MissingWeightsError(FileNotFoundError, ValueError):
    """The file is not here and cannot be downloaded now (offline, or published behind a browser session)."""


def offline() -> bool:
    return os.environ.get("ROBUSTJAX_OFFLINE", "").strip().lower() not in ("", "0", "false", "no", "off")


def mirror() -> str | None:
    value = os.environ.get("ROBUSTJAX_WEIGHTS_MIRROR", "").strip()
    return value.rstrip("/") if value else None


def download_root() -> Path:
    from robustjax.checkpoints import cache_root

    return cache_root() / "weights"


def _local_root() -> Path | None:
    from robustjax.checkpoints import weights_root

    return weights_root()


def _sha256(path: Path) -> str:
    from robustjax.checkpoints import sha256_of

    return sha256_of(path)


def verify(file: PublishedFile, path: Path) -> Path:
    """``path`` if it is the published file as far as can be checked; :class:`IntegrityError` naming both
    hashes otherwise (pinned sha256, else the one recorded at download; neither: accepted)."""
    want, origin = file.sha256, "the published"
    record = record_path(path)
    if want is None and record.is_file():
        want, origin = json.loads(record.read_text()).get("sha256"), "the downloaded"
    if want is not None:
        got = _sha256(path)
        if got != want:
            raise IntegrityError(f"{path} has sha256 {got}, expected {origin} {want}; "
                                 "delete it to download it again, or pass weights=PATH")
    return path


def _urls(entry: Weights, file: PublishedFile) -> tuple[str, ...]:
    base = mirror()
    return (f"{base}/{entry.folder}/{file.name}",) if base else file.urls


def _target(entry: Weights, file: PublishedFile) -> str:
    root = _local_root()
    return str((root if root is not None else download_root()) / entry.folder / file.name)


def _missing(entry: Weights, file: PublishedFile, why: str) -> MissingWeightsError:
    where = file.browser or ", ".join(file.urls) or entry.source
    return MissingWeightsError(
        f"{entry.name}: {file.name} is not at {_target(entry, file)} and {why}. Put the file there "
        f"(published at {where}), or run `python -m checkpoints_convert fetch {entry.name}` where the network "
        "is reachable")


def path(name: str) -> Path:
    """Local path of entry ``name``'s first file, every file of the entry present and verified beside it.

    Raises :class:`MissingWeightsError` (offline, or a browser-only source: says which file and where to
    put it), :class:`IntegrityError` (wrong bytes: names both hashes) or :class:`DownloadError`.
    """
    entry = get(name)
    root = _local_root()
    if root is not None and all((root / entry.folder / f.name).is_file() for f in entry.files):
        for file in entry.files:
            verify(file, root / entry.folder / file.name)
        return root / entry.folder / entry.files[0].name
    folder = download_root() / entry.folder
    for file in entry.files:
        dst = folder / file.name
        if not dst.is_file():
            urls = _urls(entry, file)
            if offline():
                raise _missing(entry, file, "ROBUSTJAX_OFFLINE is set, so nothing is downloaded")
            if not urls:
                raise _missing(entry, file, "its source needs a browser session (Google Drive): "
                                            "download it with a browser")
            fetch(urls, dst, file.sha256, file.size)
        verify(file, dst)
    return folder / entry.files[0].name

