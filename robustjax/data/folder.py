"""Image folders with one sub-folder per class (Imagenette wnids, CIFAR-10 class names, any)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robustjax.data import labels as L
from robustjax.data.dataset import ImageSet, decode_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff"}


def _classes(root: Path) -> list[str]:
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"image folder {root} has no class sub-folders (expected ROOT/<class>/<image>)")
    return classes


def image_folder(root: str | Path, label_space: str | None = None, name: str | None = None) -> ImageSet:
    """Read ``root/<class>/<image>``, sorted by (class, file name).

    ``label_space``: "imagenet" / "imagenette" when the class folders are Imagenette wnids (labels
    are ImageNet indices or 0..9), "cifar10" when they are CIFAR-10 class names (0..9 in the
    canonical order), "folder" (or None) for sorted-folder-name order 0..K-1.
    """
    root = Path(root)
    classes = _classes(root)
    space = label_space or "folder"
    if space in ("imagenet", "imagenette"):
        unknown = sorted(set(classes) - set(L.IMAGENETTE_WNIDS))
        if unknown:
            raise ValueError(f"{root}: folders {unknown[:5]} are not Imagenette wnids {L.IMAGENETTE_WNIDS}")
        label_of = {c: L.imagenette_label(c, space) for c in classes}
        num_classes = 1000 if space == "imagenet" else 10
        names = L.IMAGENETTE_NAMES if space == "imagenette" else None
    elif space == "cifar10":
        unknown = sorted(set(classes) - set(L.CIFAR10_CLASSES))
        if unknown:
            raise ValueError(f"{root}: folders {unknown[:5]} are not CIFAR-10 classes {L.CIFAR10_CLASSES}")
        label_of = {c: L.CIFAR10_CLASSES.index(c) for c in classes}
        num_classes, names = 10, L.CIFAR10_CLASSES
    elif space == "folder":
        label_of = {c: k for k, c in enumerate(classes)}
        num_classes, names = len(classes), tuple(classes)
    else:
        raise ValueError(f"unknown label space {space!r}; valid: {L.LABEL_SPACES}")
    ids, labels = [], []
    for c in classes:
        for f in sorted((root / c).iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                ids.append(f"{c}/{f.name}")
                labels.append(label_of[c])
    if not ids:
        raise ValueError(f"image folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return ImageSet(
        name=name or root.name,
        ids=tuple(ids),
        labels=np.asarray(labels, dtype=np.int32),
        reader=lambda i: decode_image(root / ids[i]),
        label_space=space,
        num_classes=num_classes,
        class_names=names,
        files=tuple(root / i for i in ids),
    )
