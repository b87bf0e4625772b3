"""Datasets for the experiment runner: image folders, foolbox's samples, tfds; seeded subsets.

``load(name, data_dir=None, label_space=None, skip_unreadable=False)`` -> :class:`ImageSet` (uint8
RGB images + integer labels); ``ImageSet.subset(n, seed)`` picks a reproducible random subset;
:func:`batches` decodes and resizes ahead of time and pads the last batch (with a mask).
``register(name, source, usage=...)`` adds a dataset from outside the package (an ImageSet, e.g.
:func:`from_arrays`, a folder, or a loader function); image folders are decoded once at load time
(:mod:`robustjax.data.readable`), so an unreadable file is named before any compute.

Names (see :data:`DATASETS`): ``imagenette`` (``$ROBUSTJAX_DATA/imagenette2-val``, wnid folders),
``cifar10_jpeg`` (``$ROBUSTJAX_DATA/cifar10-test-jpeg``), ``foolbox_imagenet``,
``foolbox_cifar10`` (pip-shipped), ``folder`` (any ``ROOT/<class>/<image>``; needs ``data_dir``),
``tfds:NAME[:SPLIT]`` (e.g. ``tfds:imagenet2012``, ``tfds:cifar10:test``; data_dir = tfds dir).
"""

from __future__ import annotations

from robustjax.data.arrays import from_arrays
from robustjax.data.dataset import ImageSet, decode_image
from robustjax.data.folder import image_folder
from robustjax.data.loader import Batch, Resize, batches, num_batches
from robustjax.data.readable import UnreadableImagesError
from robustjax.data.registry import DATASETS, check_name, data_root, load, register, usages, valid_names
from robustjax.data.samples import foolbox_samples

__all__ = [
    "Batch", "DATASETS", "ImageSet", "Resize", "UnreadableImagesError", "batches", "check_name", "data_root",
    "decode_image", "foolbox_samples", "from_arrays", "image_folder", "load", "num_batches", "register", "usages",
    "valid_names",
]
