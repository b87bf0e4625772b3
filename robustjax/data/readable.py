"""Decode every file of an image folder once, at load time, so an unreadable image is named before any compute.

Why: without it a truncated JPEG fails inside a decoder thread in the middle of a grid, after the
compilation and every earlier cell; and Pillow's cheap ``Image.verify()`` does not notice a JPEG cut
short, so the check decodes each file fully, as the loader's ``decode_image`` does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from robustjax.data.dataset import check_decodable

SHOWN = 5  # unreadable files named in an error message; the rest are counted


class UnreadableImagesError(ValueError):
    """Files of an image folder that cannot be decoded: ``bad`` holds ``(id, reason)`` pairs."""

    def __init__(self, root: Path, bad: Sequence[tuple[str, str]]):
        self.root, self.bad = root, tuple(bad)
        first = "; ".join(f"{i} ({why})" for i, why in self.bad[:SHOWN])
        more = f"; and {len(self.bad) - SHOWN} more" if len(self.bad) > SHOWN else ""
        super().__init__(f"{len(self.bad)} unreadable image(s) under {root}: {first}{more}. Fix or remove them, "
                         "or pass --skip-unreadable (config skip_unreadable=True) to leave them out")


def reason(path: Path) -> str | None:
    """None when :func:`robustjax.data.decode_image` decodes ``path``, else why not (one line)."""
    try:
        check_decodable(path)
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError...
        why = str(e).replace(f" '{path}'", "").replace(f" {path}", "")  # the id is named beside it
        return f"{type(e).__name__}: {why}".splitlines()[0]
    return None


def unreadable(root: Path, ids: Sequence[str], workers: int | None = None) -> list[tuple[str, str]]:
    """``(id, reason)`` for each ``root / id`` that cannot be decoded, in ``ids`` order.

    Decodes every file fully (a truncated JPEG passes ``Image.verify()``) on ``workers`` threads
    (default: the CPU count, at most 8; Pillow releases the GIL while decoding)."""
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        reasons = list(pool.map(lambda i: reason(root / i), ids))
    return [(i, why) for i, why in zip(ids, reasons) if why is not None]
