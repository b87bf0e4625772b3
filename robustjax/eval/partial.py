"""Progress inside a cell: each finished batch's per-image outputs in ``out/partial/<key>/batch-NNNN.npz``.

Why: a long cell killed (SIGKILL included) near its end would otherwise lose every batch. A file is
written atomically (tmp + rename, :func:`robustjax.eval.outcomes.save_npz`), so a batch file
either holds the whole batch or does not exist; a rerun loads batches 0..k-1 and resumes at the
first batch k without a valid file. A file counts only if its ``row`` array is the rows the
batch covers at the current batch size (a rerun with another batch size recomputes). The
directory is removed once the cell's record is stored.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np

from robustjax.eval.outcomes import load_npz, save_npz

DIRNAME = "partial"


class PartialCell:
    """Batch files of one cell (``key``) at global ``batch`` size over ``n`` images."""

    def __init__(self, out, key: str, batch: int, n: int):
        self.dir = Path(out) / DIRNAME / key
        self.batch, self.n = int(batch), int(n)

    def rows(self, b: int) -> np.ndarray:
        lo = b * self.batch
        return np.arange(lo, min(lo + self.batch, self.n), dtype=np.int32)

    def file(self, b: int) -> Path:
        return self.dir / f"batch-{b:04d}.npz"

    def load(self, b: int) -> dict | None:
        """Batch ``b``'s arrays, or None when missing or written for other rows."""
        p = self.file(b)
        if not p.is_file():
            return None
        try:
            arr = load_npz(p)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # not a whole npz: recompute
            return None
        if "row" not in arr or not np.array_equal(arr["row"], self.rows(b)):
            return None
        return arr

    def save(self, b: int, arrays: dict) -> None:
        save_npz(self.file(b), {**arrays, "row": self.rows(b)})

    def mark_started(self, b: int) -> None:
        """Note that batch ``b`` is being computed (a marker file): a kill before its save leaves the
        marker, so a rerun can count the batches it had to recompute."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"started-{b:04d}").touch()

    def lost(self) -> int:
        """Batches started by an earlier run but not saved (each recomputed by this one)."""
        if not self.dir.is_dir():
            return 0
        return sum(1 for p in self.dir.glob("started-*") if self.load(int(p.name.split("-")[1])) is None)

    def count_lost(self) -> int:
        """Add this run's :meth:`lost` batches to the cell's running total (``lost.txt``) and return
        the total: the batches the cell's runs have recomputed because a kill cut them short."""
        total_file = self.dir / "lost.txt"
        before = int(total_file.read_text()) if total_file.is_file() else 0
        total = before + self.lost()
        if total != before:
            self.dir.mkdir(parents=True, exist_ok=True)
            total_file.write_text(f"{total}\n")
        return total

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def resume_point(cells: list[PartialCell], total: int, needs=()) -> tuple[int, list[list[dict]]]:
    """The first batch some cell lacks, and every cell's arrays for the batches before it. ``needs``:
    arrays a batch file must hold to count (one written without them is recomputed)."""
    loaded: list[list[dict]] = [[] for _ in cells]
    for b in range(total):
        got = [c.load(b) for c in cells]
        if any(g is None or not all(k in g for k in needs) for g in got):
            return b, loaded
        for acc, g in zip(loaded, got):
            acc.append(g)
    return total, loaded
