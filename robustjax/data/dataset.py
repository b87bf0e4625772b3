"""A random-access labelled image set and its deterministic seeded subsets."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

Reader = Callable[[int], np.ndarray]


def decode_image(data: bytes | str | Path) -> np.ndarray:
    """Decode an image file (path or bytes) to uint8 ``(H, W, 3)`` RGB: grayscale, palette, CMYK and
    alpha modes are converted by Pillow's ``convert("RGB")`` (alpha dropped, as torchvision's loader)."""
    src = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    with Image.open(src) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def check_decodable(data: bytes | str | Path) -> None:
    """Raise what :func:`decode_image` would raise on ``data`` (Pillow's ``OSError`` for a truncated
    or unknown file, ...), doing only its decoding work: about a third cheaper than building the array."""
    src = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    with Image.open(src) as im:
        im.load()
        if im.mode != "RGB":
            im.convert("RGB")


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """``len(ds)`` images with integer ``labels``; ``ds.read(i)`` -> uint8 ``(H, W, 3)`` RGB.

    ``ids`` names each image (a file path relative to the root, or a tfds index) so a subset can be
    listed and reproduced; ``label_space`` says what the labels index ("imagenet", "imagenette",
    "cifar10", "folder"); ``num_classes`` is the size of that space. ``files``: the source file of
    each image (None for sets without files, e.g. tfds), which the decode cache keys on.
    """

    name: str
    ids: tuple[str, ...]
    labels: np.ndarray
    reader: Reader
    label_space: str
    num_classes: int
    class_names: tuple[str, ...] | None = None
    files: tuple[Path, ...] | None = None  # each image's source file, when it has one (cache keys)
    skipped: tuple[str, ...] = ()  # unreadable files left out of the source

    def __post_init__(self):
        if len(self.ids) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.ids)} ids but {len(self.labels)} labels")
        if self.files is not None and len(self.files) != len(self.ids):
            raise ValueError(f"{self.name}: {len(self.ids)} ids but {len(self.files)} files")

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, i: int) -> np.ndarray:
        return self.reader(int(i))

    def take(self, indices: Sequence[int]) -> "ImageSet":
        """The images at ``indices`` (in that order) as a new set reading from the same source."""
        idx = np.asarray(indices, dtype=np.int64)
        parent = self.reader
        return dataclasses.replace(
            self,
            ids=tuple(self.ids[i] for i in idx),
            labels=self.labels[idx],
            reader=lambda i: parent(int(idx[i])),
            files=None if self.files is None else tuple(self.files[i] for i in idx),
        )

    def subset(self, n: int | None, seed: int = 0) -> "ImageSet":
        """A seeded random subset of ``n`` images (all of them when ``n`` is None or >= len).

        Deterministic: the same (set, n, seed) always gives the same images, in ascending index
        order, on any machine (numpy's PCG64 ``default_rng(seed).permutation``), and the subset for
        a smaller ``n`` is a prefix-chosen part of the same permutation (n=100 is in n=1000).
        """
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise ValueError(f"subset size must be >= 1, got {n}")
        perm = np.random.default_rng(seed).permutation(len(self))
        return self.take(np.sort(perm[:n]))
