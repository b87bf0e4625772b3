"""Append-only JSON-lines results store: one line per finished grid cell, written atomically.

A record is written as one ``write`` of a whole line under an exclusive ``flock``, then flushed
and fsynced, so a crash leaves at worst one truncated last line. Readers ignore any line that is
not complete valid JSON ending in a newline; a writer first cuts such a partial tail off (it can
only come from a write that was killed), so the file stays one valid record per line.

Format: every record carries ``format`` (:data:`FORMAT`). Format 2 records have a per-image
outcome file (:mod:`robustjax.eval.outcomes`); a store holding records of another format (format 1
records carry no ``format`` field) is refused by a run with a clear error, and nothing in it is
changed. A run holds an exclusive ``flock`` on ``out/results.lock`` (:class:`RunLock`), so a
second run on the same ``--out`` is refused instead of interleaving cells.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path

FILENAME = "results.jsonl"
LOCKNAME = "results.lock"
FORMAT = 2


class StoreError(ValueError):
    """A store this version cannot write to (another format, or locked by another run)."""


def cell_key(settings: dict) -> str:
    """Stable id of a cell's settings (canonical JSON -> sha256, 16 hex digits)."""
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Store:
    """The results file ``out/results.jsonl``."""

    def __init__(self, out: str | os.PathLike):
        self.dir = Path(out)
        self.path = self.dir / FILENAME

    def records(self) -> list[dict]:
        """Every complete record, in file order (a truncated or corrupt line is skipped)."""
        if not self.path.exists():
            return []
        out = []
        with open(self.path, "rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # truncated last line: a write that was killed
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and "key" in rec:
                    out.append(rec)
        return out

    def truncated_tail(self) -> int:
        """Bytes after the last newline (a killed write's partial line; 0 when none)."""
        if not self.path.exists():
            return 0
        with open(self.path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            pos, block = size, 1 << 16
            while pos > 0:
                start = max(0, pos - block)
                fh.seek(start)
                k = fh.read(pos - start).rfind(b"\n")
                if k >= 0:
                    return size - (start + k + 1)
                pos = start
            return size

    def check_format(self) -> None:
        """StoreError naming the path when a stored record is not of format :data:`FORMAT`."""
        other = sorted({r.get("format", 1) for r in self.records()} - {FORMAT}, key=str)
        if other:
            raise StoreError(f"{self.path} holds records of store format {', '.join(map(str, other))}; this robustjax "
                             f"writes format {FORMAT} (per-image outcomes beside each record). Use a new --out for new "
                             "runs (nothing in this store was changed; `report` still reads it)")

    def done(self) -> set[str]:
        return {r["key"] for r in self.records()}

    def append(self, record: dict) -> None:
        """Append ``record`` (must hold ``key``) as one line; no-op if that key is already stored."""
        if "key" not in record:
            raise ValueError("a record needs a 'key'")
        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size:
                _cut_partial_tail(fd, size)
            if record["key"] in self.done():
                return
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _cut_partial_tail(fd: int, size: int) -> None:
    """Truncate the file after its last newline (a killed writer's partial line)."""
    block = 1 << 16
    pos = size
    while pos > 0:
        start = max(0, pos - block)
        chunk = os.pread(fd, pos - start, start)
        k = chunk.rfind(b"\n")
        if k >= 0:
            end = start + k + 1
            if end != size:
                os.ftruncate(fd, end)
            return
        pos = start
    os.ftruncate(fd, 0)


class RunLock:
    """Exclusive, non-blocking ``flock`` on ``out/results.lock`` for the life of a run.

    Raises StoreError naming the lock file when another process holds it. The lock is released
    by the kernel when the process dies, so a killed run never leaves a stale lock."""

    def __init__(self, out: str | os.PathLike):
        self.path = Path(out) / LOCKNAME
        self.fd = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"another run is writing to {self.path.parent} (it holds the lock {self.path}); "
                             "wait for it to finish or use another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
