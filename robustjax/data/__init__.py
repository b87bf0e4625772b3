"""Datasets for the experiment runner: image folders, foolbox's samples, tfds; seeded subsets.

``load(name, data_dir=None, label_space=None)`` -> :class:`ImageSet` (uint8 RGB images + integer
labels); ``ImageSet.subset(n, seed)`` picks a reproducible random subset; :func:`batches` decodes
and resizes ahead of time and pads the last batch (with a mask).

Names (see :data:`DATASETS`): ``imagenette`` (``$ROBUSTJAX_DATA/imagenette2-val``, wnid folders),
``cifar10_jpeg`` (``$ROBUSTJAX_DATA/cifar10-test-jpeg``), ``foolbox_imagenet``,
``foolbox_cifar10`` (pip-shipped), ``folder`` (any ``ROOT/<class>/<image>``; needs ``data_dir``),
``tfds:NAME[:SPLIT]`` (e.g. ``tfds:imagenet2012``, ``tfds:cifar10:test``; data_dir = tfds dir).
"""

from __future__ import annotations

import os
from pathlib import Path

from robustjax.data.dataset import ImageSet, decode_image
from robustjax.data.folder import image_folder
from robustjax.data.loader import Batch, Resize, batches, num_batches
from robustjax.data.readable import UnreadableImagesError
from robustjax.data.samples import foolbox_samples

# name -> (description, default label space, default sub-folder of ROBUSTJAX_DATA)
DATASETS = {
    "imagenette": ("Imagenette2 val, one folder per wnid", "imagenet", "imagenette2-val"),
    "cifar10_jpeg": ("CIFAR-10 test re-saved as JPEG q75, one folder per class", "cifar10", "cifar10-test-jpeg"),
    "foolbox_imagenet": ("foolbox's 20 ImageNet photos (pip-shipped)", "imagenet", None),
    "foolbox_cifar10": ("foolbox's 20 CIFAR-10 test PNGs (pip-shipped)", "cifar10", None),
    "folder": ("any ROOT/<class>/<image> folder (data_dir required), labels = sorted folder order", "folder", None),
    "tfds:NAME[:SPLIT]": ("a prepared TensorFlow Datasets dataset (data_dir = tfds data dir)", None, None),
}


def valid_names() -> list[str]:
    return list(DATASETS)


def check_name(name: str) -> None:
    """ValueError listing the valid names unless ``name`` names a dataset (no I/O)."""
    if not isinstance(name, str) or not (name in DATASETS and not name.startswith("tfds:") or name.startswith("tfds:") and len(name) > 5):
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(valid_names())}")


def data_root() -> Path:
    return Path(os.environ.get("ROBUSTJAX_DATA", "data"))


def load(name: str, data_dir: str | os.PathLike | None = None, label_space: str | None = None, *,
         skip_unreadable: bool = False) -> ImageSet:
    """The dataset ``name`` with labels in ``label_space`` (default: the dataset's own).

    ``data_dir`` overrides where it is read from (default ``$ROBUSTJAX_DATA/<folder>``).
    ``skip_unreadable``: an image folder leaves out files that cannot be decoded (listed in the
    set's ``skipped``) instead of raising :class:`UnreadableImagesError`.
    """
    check_name(name)
    if name.startswith("tfds:"):
        from robustjax.data.tfds_source import tfds_images

        _, tname, *rest = name.split(":")
        return tfds_images(tname, rest[0] if rest else None, None if data_dir is None else str(data_dir), label_space)
    _, space, sub = DATASETS[name]
    space = label_space or space
    if name.startswith("foolbox_"):
        return foolbox_samples(name.removeprefix("foolbox_"), space)
    if name == "folder":
        if data_dir is None:
            raise ValueError("dataset 'folder' needs data_dir (ROOT/<class>/<image>)")
        return image_folder(data_dir, space, skip_unreadable=skip_unreadable)
    root = Path(data_dir) if data_dir is not None else data_root() / sub
    if not root.exists():
        raise FileNotFoundError(f"dataset {name!r} not found at {root} (set ROBUSTJAX_DATA or pass data_dir)")
    return image_folder(root, space, name=name, skip_unreadable=skip_unreadable)


__all__ = [
    "Batch", "DATASETS", "ImageSet", "Resize", "UnreadableImagesError", "batches", "check_name", "decode_image",
    "foolbox_samples", "image_folder", "load", "num_batches", "valid_names",
]
