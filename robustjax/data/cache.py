"""Decode once: a grid's images, decoded and resized to uint8, kept for every cell that reads them.

Without it every job of a grid decodes and resizes its images again (30 cells on Imagenette's 3,925
JPEGs decode them 30 times); at accelerator speed the loader, not the model, would set the pace.

:func:`decoded` returns the process's :class:`DecodedImages` for (dataset, subset, resize policy),
made on first use. A set whose uint8 array fits ``ROBUSTJAX_IMAGE_CACHE_MB`` (default 4096 MiB,
counted over all sets held) is kept in memory; a larger one is a memory-mapped file under
``$ROBUSTJAX_CACHE/images`` (which later runs and other processes on the host reuse);
``ROBUSTJAX_IMAGE_CACHE=off`` turns the cache off. The key hashes
the set's name, label space, image ids, each source file's size and mtime (a changed file gives a new
key, so a stale image is never served) and the resize policy. Images are filled lazily, on first
read, so the first cell is not held up by decoding the whole set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np

from robustjax.data.dataset import ImageSet

DEFAULT_MEMORY_MB = 4096
_lock = threading.Lock()
_held: dict[str, "DecodedImages"] = {}


def enabled() -> bool:
    """False when ``ROBUSTJAX_IMAGE_CACHE`` is ``0``/``off``/``false``/``no`` (decode every time)."""
    return os.environ.get("ROBUSTJAX_IMAGE_CACHE", "on").strip().lower() not in ("0", "off", "false", "no")


def memory_budget_bytes() -> int:
    """``ROBUSTJAX_IMAGE_CACHE_MB`` (MiB, >= 0; 0 keeps nothing in memory) in bytes; ValueError when malformed."""
    raw = os.environ.get("ROBUSTJAX_IMAGE_CACHE_MB", str(DEFAULT_MEMORY_MB)).strip()
    try:
        mb = float(raw)
    except ValueError:
        raise ValueError(f"ROBUSTJAX_IMAGE_CACHE_MB must be a number of MiB, got {raw!r}") from None
    if mb < 0:
        raise ValueError(f"ROBUSTJAX_IMAGE_CACHE_MB must be >= 0, got {raw!r}")
    return int(mb * 2**20)


def cache_key(ds: ImageSet, resize) -> str:
    """A hex key for (``ds``'s images and their files' sizes and mtimes, ``resize``); FileNotFoundError
    when a source file is gone. Sets without files (tfds) are keyed by name and ids only."""
    h = hashlib.sha256()
    policy = dataclasses.asdict(resize) if dataclasses.is_dataclass(resize) else repr(resize)
    h.update(json.dumps({"name": ds.name, "space": ds.label_space, "resize": policy}, sort_keys=True).encode())
    files = ds.files if ds.files is not None else (None,) * len(ds)
    for i, f in zip(ds.ids, files):
        h.update(i.encode() + b"\0")
        if f is not None:
            st = os.stat(f)
            h.update(f"{st.st_size}:{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:24]


class DecodedImages:
    """``ds``'s images through ``resize`` as uint8 ``(N, S, S, 3)``, decoded on first :meth:`get`.

    ``where`` is ``"memory"`` or ``"disk"`` (a memory-map at ``path``, with a ``.filled`` byte map
    beside it saying which rows hold a decoded image). Safe to read from several threads; several
    processes may share a disk cache (the bytes they write for an image are the same).
    """

    def __init__(self, ds: ImageSet, resize, key: str, where: str, directory: Path | None = None):
        self.ds, self.resize, self.key, self.where = ds, resize, key, where
        s = int(resize.size)
        self.shape = (len(ds), s, s, 3)
        self.path = None
        if where == "memory":
            self.array = np.zeros(self.shape, np.uint8)
            self.filled = np.zeros(len(ds), np.uint8)
        elif where == "disk":
            directory.mkdir(parents=True, exist_ok=True)
            self.path = directory / f"{key}.u8"
            self.array = _memmap(self.path, self.shape)
            self.filled = _memmap(directory / f"{key}.filled", (len(ds),))
        else:
            raise ValueError(f"where must be 'memory' or 'disk', got {where!r}")
        self.decoded = 0  # images this object decoded (the rest came from the cache)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def get(self, i: int) -> np.ndarray:
        """Image ``i`` resized, uint8 ``(S, S, 3)``; ValueError when the resize gives another shape."""
        i = int(i)
        if not self.filled[i]:
            img = self.resize(self.ds.read(i))
            if img.shape != self.shape[1:]:
                raise ValueError(f"{self.ds.name} image {self.ds.ids[i]} became {img.shape} after resizing, "
                                 f"expected {self.shape[1:]}")
            self.array[i] = img
            self.filled[i] = 1
            self.decoded += 1
            return img
        return np.asarray(self.array[i])

    def complete(self) -> bool:
        return bool(np.all(self.filled))


def _memmap(path: Path, shape: tuple) -> np.memmap:
    """An existing uint8 memory-map at ``path`` of ``shape``, or a new zeroed one (made under a
    temporary name and linked into place, so two processes racing agree on one file)."""
    size = int(np.prod(shape))
    if not path.exists() or path.stat().st_size != size:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.truncate(size)
        try:
            if path.exists():  # wrong size: an interrupted or foreign file; replace it
                os.replace(tmp, path)
            else:
                os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return np.memmap(path, np.uint8, mode="r+", shape=shape)


def disk_dir() -> Path:
    from robustjax.checkpoints import cache_root

    return cache_root() / "images"


def decoded(ds: ImageSet, resize, where: str | None = None) -> DecodedImages:
    """The process's decode cache for (``ds``, ``resize``), made on first call.

    ``where``: ``"memory"``, ``"disk"`` or None (memory when the set fits what is left of
    ``ROBUSTJAX_IMAGE_CACHE_MB``, else disk under ``$ROBUSTJAX_CACHE/images``)."""
    key = cache_key(ds, resize)
    with _lock:
        hit = _held.get(key)
        if hit is not None and (where is None or hit.where == where):
            return hit
        if where is None:
            s = int(resize.size)
            need = len(ds) * s * s * 3
            used = sum(c.nbytes for c in _held.values() if c.where == "memory")
            where = "memory" if used + need <= memory_budget_bytes() else "disk"
        cache = DecodedImages(ds, resize, key, where, disk_dir() if where == "disk" else None)
        _held[key] = cache
        return cache


def clear() -> None:
    """Forget every set held by this process (disk files stay for later runs)."""
    with _lock:
        _held.clear()
