"""An :class:`ImageSet` from arrays in memory: the way to evaluate images that are not files in folders."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from robustjax.data.dataset import ImageSet


def from_arrays(name: str, images, labels, num_classes: int | None = None,
                class_names: Sequence[str] | None = None, label_space: str = "folder") -> ImageSet:
    """``images`` uint8 ``(N, H, W, 3)``, or float in [0, 1] (rounded to uint8, as the loader feeds
    the model ``uint8 / 255``); ``labels`` integers ``(N,)`` in ``0 .. num_classes - 1``.

    ``num_classes`` defaults to ``len(class_names)``, else the largest label + 1. Each image's id is
    its index and a hash of its pixels (``"3:5d41402abc"``), so the decode cache and the results'
    image fingerprint change when the pixels do. Raises ValueError on a wrong shape, range or label.
    """
    x = np.asarray(images)
    y = np.asarray(labels)
    if x.ndim != 4 or x.shape[-1] != 3 or len(x) == 0:
        raise ValueError(f"{name}: images must be (N, H, W, 3) with N >= 1, got shape {x.shape}")
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.floating) or x.min() < 0 or x.max() > 1:
            raise ValueError(f"{name}: images must be uint8 or float in [0, 1], got {x.dtype} "
                             f"in [{x.min()}, {x.max()}]")
        x = np.round(x * 255).astype(np.uint8)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name}: labels must be {len(x)} integers, got {y.dtype} of shape {y.shape}")
    k = num_classes or (len(class_names) if class_names else int(y.max()) + 1)
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"{name}: labels must lie in 0..{k - 1}, got {int(y.min())}..{int(y.max())}")
    ids = tuple(f"{i}:{hashlib.sha256(img.tobytes()).hexdigest()[:10]}" for i, img in enumerate(x))
    return ImageSet(name=name, ids=ids, labels=y.astype(np.int32), reader=lambda i: x[i], label_space=label_space,
                    num_classes=k, class_names=tuple(class_names) if class_names else None)
