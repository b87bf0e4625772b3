"""Batches for the accelerator: decode + resize in background threads, last batch padded + masked."""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from robustjax.data.dataset import ImageSet

_INTERP = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST, "lanczos": Image.LANCZOS}


@dataclasses.dataclass(frozen=True)
class Resize:
    """A model's resize policy, applied to uint8 images before they become float [0, 1].

    ``resize`` (int): scale the shorter side to this many pixels (aspect kept), then centre-crop
    ``size`` x ``size`` (torchvision's ``Resize(resize) + CenterCrop(size)``, e.g. ResNet-50 V2's
    232 -> 224). ``resize=None``: scale the image straight to ``size`` x ``size`` (aspect squashed),
    nothing to do when it already has that size.
    """

    size: int
    resize: int | None = None
    interpolation: str = "bilinear"

    def __post_init__(self):
        if self.interpolation not in _INTERP:
            raise ValueError(f"interpolation {self.interpolation!r} unknown; valid: {sorted(_INTERP)}")
        if self.resize is not None and self.resize < self.size:
            raise ValueError(f"resize {self.resize} must be >= crop size {self.size}")

    @classmethod
    def from_preprocessing(cls, preprocessing: dict | None, input_size: int) -> "Resize":
        """Read a model's ``PREPROCESSING`` dict: ``resize``/``resize_size`` (shorter side),
        ``crop``/``crop_size``/``input_size`` and ``interpolation``; missing keys mean squash to
        ``input_size``."""
        p = dict(preprocessing or {})
        resize = p.get("resize", p.get("resize_size"))
        if isinstance(resize, list | tuple):
            resize = min(resize)
        size = int(p.get("crop", p.get("crop_size", p.get("input_size", input_size))) or input_size)
        return cls(size=size, resize=int(resize) if resize else None,
                   interpolation=str(p.get("interpolation", "bilinear")))

    def __call__(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        interp = _INTERP[self.interpolation]
        if self.resize is None:
            if (h, w) == (self.size, self.size):
                return img
            return np.asarray(Image.fromarray(img).resize((self.size, self.size), interp))
        s = self.resize / min(h, w)
        nh, nw = max(self.resize, round(h * s)), max(self.resize, round(w * s))
        if (nh, nw) != (h, w):
            img = np.asarray(Image.fromarray(img).resize((nw, nh), interp))
        top, left = (nh - self.size) // 2, (nw - self.size) // 2
        return img[top : top + self.size, left : left + self.size]


@dataclasses.dataclass(frozen=True)
class Batch:
    """``x`` float32 ``(B, S, S, 3)`` in [0, 1]; ``y`` int32 ``(B,)``; ``mask`` bool ``(B,)``: False
    on padding rows (the last batch is padded with black images up to ``B``). ``index``: batch number;
    ``count``: real images in this batch (over all processes)."""

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    index: int
    count: int


def num_batches(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def batches(
    ds: ImageSet,
    batch_size: int,
    resize: Resize,
    *,
    start: int = 0,
    prefetch: int = 2,
    workers: int = 2,
    process_index: int = 0,
    process_count: int = 1,
    cache=None,
) -> Iterator[Batch]:
    """Yield the batches of ``ds`` from batch number ``start`` on, decoded ahead of time.

    A producer thread fills a queue of ``prefetch`` batches, decoding and resizing with a pool of
    ``workers`` threads (PIL releases the GIL), so the accelerator never waits for JPEG decoding.
    With several processes (multi-host), each gets rows ``[p*B/P, (p+1)*B/P)`` of every global batch
    of ``batch_size`` rows (``batch_size`` must divide by ``process_count``). ``cache``: a
    :class:`robustjax.data.cache.DecodedImages` of (``ds``, ``resize``) to read resized images from.
    """
    if batch_size < 1 or batch_size % process_count:
        raise ValueError(f"batch size {batch_size} must be >= 1 and divisible by the process count {process_count}")
    local = batch_size // process_count
    n = len(ds)
    total = num_batches(n, batch_size)
    q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()
    size = resize.size

    if cache is not None and (len(cache.ds) != n or cache.resize != resize):
        raise ValueError(f"decode cache of {cache.ds.name} ({len(cache.ds)} images, {cache.resize}) "
                         f"does not match {ds.name} ({n}, {resize})")

    def load(i: int) -> np.ndarray:
        if cache is not None:
            return cache.get(i)
        img = resize(ds.read(i))
        if img.shape != (size, size, 3):
            raise ValueError(f"{ds.name} image {ds.ids[i]} became {img.shape} after resizing, "
                             f"expected {(size, size, 3)}")
        return img

    def produce():
        try:
            with ThreadPoolExecutor(max(1, workers)) as pool:
                for b in range(start, total):
                    lo = b * batch_size + process_index * local
                    rows = [i for i in range(lo, lo + local) if i < n]
                    imgs = list(pool.map(load, rows))
                    x = np.zeros((local, size, size, 3), np.float32)
                    y = np.zeros((local,), np.int32)
                    mask = np.zeros((local,), bool)
                    if rows:
                        x[: len(rows)] = np.stack(imgs).astype(np.float32) / 255.0
                        y[: len(rows)] = ds.labels[rows]
                        mask[: len(rows)] = True
                    count = min(n, (b + 1) * batch_size) - b * batch_size
                    item = Batch(x, y, mask, b, count)
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
        except BaseException as e:  # hand the error to the consumer
            q.put(e)
            return
        q.put(None)

    thread = threading.Thread(target=produce, name="robustjax-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
