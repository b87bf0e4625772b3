"""Append-only JSON-lines results store: one line per finished grid cell, written atomically.

A record is written as one ``write`` of a whole line under an exclusive ``flock``, then flushed
and fsynced, so a crash leaves at worst one truncated last line. Readers ignore any line that is
not complete valid JSON ending in a newline; a writer first cuts such a partial tail off (it can
only come from a write that was killed), so the file stays one valid record per line.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path

FILENAME = "results.jsonl"


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
