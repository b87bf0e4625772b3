"""Image folders with one sub-folder per class (Imagenette wnids, CIFAR-10 class names, any)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robustjax.data import labels as L
from robustjax.data.dataset import ImageSet, decode_image
from robustjax.data.readable import UnreadableImagesError, unreadable

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff"}


def _classes(root: Path) -> list[str]:
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"image folder {root} has no class sub-folders (expected ROOT/<class>/<image>)")
    return classes


def image_folder(root: str | Path, label_space: str | None = None, name: str | None = None,
                 skip_unreadable: bool = False) -> ImageSet:
    """Read ``root/<class>/<image>``, sorted by (class, file name).

    Every file is decoded once here (:mod:`robustjax.data.readable`; 2 to 3 s for Imagenette's
    3,925 JPEGs on 2 CPU cores): one that cannot be is an :class:`UnreadableImagesError` (a
    ``ValueError``) naming it and counting the others, unless ``skip_unreadable``, which leaves them
    out and lists their ids in the set's ``skipped``. Any Pillow mode (grayscale, palette, CMYK,
    with alpha) is read as RGB, an alpha channel dropped (as torchvision's loader does).

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
    bad = unreadable(root, ids)
    if bad and not skip_unreadable:
        raise UnreadableImagesError(root, bad)
    skipped = tuple(i for i, _ in bad)
    if skipped:
        gone = set(skipped)
        keep = [k for k, i in enumerate(ids) if i not in gone]
        ids, labels = [ids[k] for k in keep], [labels[k] for k in keep]
        if not ids:  # nothing left to evaluate: say why rather than run on an empty set
            raise UnreadableImagesError(root, bad)
    return ImageSet(
        name=name or root.name,
        ids=tuple(ids),
        labels=np.asarray(labels, dtype=np.int32),
        reader=lambda i: decode_image(root / ids[i]),
        label_space=space,
        num_classes=num_classes,
        class_names=names,
        files=tuple(root / i for i in ids),
        skipped=skipped,
    )
