"""TensorFlow Datasets as an :class:`ImageSet`, through tfds' random-access ``data_source``.

For users with internet access or a prepared tfds directory (``data_dir``); robustjax never asks
tfds to download (``download=False``): prepare the data with ``tfds build NAME`` first. Random
access needs the ArrayRecord file format (tfds' default for new builds; ``tfds build
--file_format=array_record``), and tensorflow is not needed. Labels are tfds' (imagenet2012 and
imagenette: ImageNet order / Imagenette wnid order; cifar10: the canonical 0..9).
"""

from __future__ import annotations

import numpy as np

from robustjax.data import labels as L
from robustjax.data.dataset import ImageSet, decode_image

# tfds name -> (default split, label space of tfds' own labels, number of classes)
KNOWN = {
    "imagenette": ("validation", "imagenette", 10),
    "imagenet2012": ("validation", "imagenet", 1000),
    "imagenet_v2": ("test", "imagenet", 1000),
    "cifar10": ("test", "cifar10", 10),
    "cifar100": ("test", "folder", 100),
}


def _to_uint8(image) -> np.ndarray:
    if isinstance(image, bytes | bytearray):
        return decode_image(image)
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return a.astype(np.uint8)


def tfds_images(name: str, split: str | None = None, data_dir: str | None = None,
                label_space: str | None = None) -> ImageSet:
    """tfds dataset ``name`` (``split`` defaults per :data:`KNOWN`), labels mapped to ``label_space``.

    Imagenette (tfds labels 0..9) can be scored in "imagenet" space (mapped to the ImageNet
    indices); imagenet2012 in "imagenette" space keeps only Imagenette's classes.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError("tfds datasets need tensorflow-datasets: pip install tensorflow-datasets "
                          "(tensorflow is not needed)") from e
    default_split, own_space, own_classes = KNOWN.get(name, ("test", "folder", None))
    split = split or default_split
    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # tfds raises assorted errors for a missing or non-ArrayRecord build
        raise FileNotFoundError(
            f"tfds dataset {name!r} split {split!r} is not prepared in {data_dir or 'the default tfds data_dir'} "
            f"({type(e).__name__}: {e}). Prepare it with `tfds build {name} --file_format=array_record"
            f"{' --data_dir ' + data_dir if data_dir else ''}`; robustjax never downloads."
        ) from e
    n = len(source)
    # Labels of every example are needed for subsets and mapping: read them once (cheap next to
    # images; tfds has no label-only access).
    labels = np.asarray([int(source[i]["label"]) for i in range(n)], dtype=np.int64)
    idx = np.arange(n)
    space = label_space or own_space
    if own_space == space:
        num_classes = own_classes or int(labels.max()) + 1
    elif own_space == "imagenette" and space == "imagenet":
        labels, num_classes = np.asarray(L.IMAGENETTE_IMAGENET_INDEX)[labels], 1000
    elif own_space == "imagenet" and space == "imagenette":
        keep = np.isin(labels, L.IMAGENETTE_IMAGENET_INDEX)
        idx = idx[keep]
        labels = np.asarray([L.imagenet_to_imagenette(y) for y in labels[keep]], dtype=np.int64)
        num_classes = 10
    else:
        raise ValueError(f"tfds {name} labels are in label space {own_space!r}; cannot score them as {space!r}")
    return ImageSet(
        name=f"tfds:{name}:{split}",
        ids=tuple(f"{split}[{i}]" for i in idx),
        labels=labels.astype(np.int32),
        reader=lambda i: _to_uint8(source[int(idx[i])]["image"]),
        label_space=space,
        num_classes=num_classes,
        class_names=(L.IMAGENETTE_NAMES if space == "imagenette"
                     else (L.CIFAR10_CLASSES if space == "cifar10" else None)),
    )
