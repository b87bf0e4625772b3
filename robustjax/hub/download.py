"""Downloading one published file safely: temporary file, progress bar, size and sha256 checks, atomic rename.

A half-written or wrong file must never sit where a loader looks, and two processes fetching the same
file must both end with one good copy: each download goes to its own ``.partial`` file renamed into
place only when verified, under an exclusive lock file so the second process waits and reuses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import sys
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

TIMEOUT_S = 60
CHUNK = 1 << 20


class DownloadError(OSError):
    """The file could not be fetched (network, HTTP status, short transfer), after one retry."""


class IntegrityError(ValueError):
    """The bytes are not the published file: an HTML page, or a sha256 other than the pinned one."""


def record_path(dst: Path) -> Path:
    """Where the download writes what it received (URL, sha256, size) beside the file."""
    return dst.with_name(dst.name + ".json")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if absent) while the block runs; where ``fcntl`` is
    unavailable, no lock: the atomic rename alone still leaves one good file."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _looks_like_html(content_type: str, head: bytes) -> bool:
    start = head.lstrip()[:15].lower()
    return "text/html" in content_type.lower() or start.startswith((b"<!doctype html", b"<html"))


def _fetch_once(url: str, dst: Path, sha256: str | None, size: int | None) -> str:
    """One attempt: stream ``url`` into a private ``.partial`` file, verify, write the record, rename onto
    ``dst``; returns the sha256 received."""
    from tqdm import tqdm

    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.partial")
    digest, received, head = hashlib.sha256(), 0, b""
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "robustjax"})
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(tmp, "wb") as out:
            content_type = response.headers.get("Content-Type", "")
            length = response.headers.get("Content-Length")
            announced = int(length) if length and length.isdigit() else None
            with tqdm(total=size or announced, unit="B", unit_scale=True, unit_divisor=1024, desc=dst.name,
                      file=sys.stderr) as bar:
                while chunk := response.read(CHUNK):
                    head = head or chunk[:512]
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        got = digest.hexdigest()
        want = sha256 or "none pinned"
        if _looks_like_html(content_type, head):
            raise IntegrityError(f"{url} returned an HTML page, not a checkpoint (received sha256 {got}, "
                                 f"expected {want}); a link that needs a browser session cannot be fetched here")
        for expected in (size, announced):
            if expected is not None and received != expected:
                raise DownloadError(f"received {received} bytes, expected {expected} (truncated transfer)")
        if sha256 is not None and got != sha256:
            raise IntegrityError(f"{url}: received sha256 {got}, expected the published {sha256}")
        record = {"url": url, "sha256": got, "size": received, "pinned": sha256 is not None}
        record_path(dst).write_text(json.dumps(record, indent=2) + "\n")  # before the file: never one without it
        os.replace(tmp, dst)
        return got
    finally:
        tmp.unlink(missing_ok=True)


def fetch(urls: Sequence[str], dst: str | os.PathLike, sha256: str | None = None, size: int | None = None) -> Path:
    """Download the first of ``urls`` that works to ``dst`` (verified; each URL tried twice) and write
    :func:`record_path` beside it. Returns ``dst``. A ``dst`` already present when the lock is taken
    (another process fetched it meanwhile) is kept as is; the caller verifies it.

    Raises :class:`IntegrityError` (HTML page, hash mismatch: names the URL and both hashes) or
    :class:`DownloadError` (names every URL and why it failed).
    """
    dst = Path(dst)
    if not urls:
        raise DownloadError(f"no URL to fetch {dst.name} from")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with locked(dst.with_name(f".{dst.name}.lock")):
        if dst.is_file():
            return dst
        failures: list[str] = []
        last: Exception | None = None
        for url in urls:
            for _attempt in range(2):
                try:
                    _fetch_once(url, dst, sha256, size)
                    return dst
                except (IntegrityError, OSError, http.client.HTTPException) as e:
                    last = e
            failures.append(f"{url}: {last}")
        if isinstance(last, IntegrityError):
            raise last
        raise DownloadError(f"could not download {dst.name} (each URL tried twice): " + "; ".join(failures))
