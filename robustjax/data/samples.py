"""foolbox's pip-shipped sample images: ``foolbox/data/{dataset}_{index:02d}_{label}.{ext}``.

20 ImageNet photos (512x512 JPEG, label = ImageNet-1k index) and 20 lossless CIFAR-10 test images
(32x32 PNG, the first 20 of the test set). Found through the installed package's files; foolbox
itself is not imported (``pip install --no-deps foolbox`` is enough).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np

from robustjax.data import labels as L
from robustjax.data.dataset import ImageSet, decode_image

FOOLBOX_SETS = {"imagenet": ("imagenet", 1000), "cifar10": ("cifar10", 10)}
_NAME = re.compile(r"^(?P<ds>[a-z0-9]+)_(?P<index>\d+)_(?P<label>\d+)\.(png|jpg|jpeg)$")


def foolbox_data_dir() -> Path:
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the foolbox package is not installed: pip install --no-deps foolbox==3.3.4 "
                                "(it ships the sample images)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not path.is_dir():
        raise FileNotFoundError(f"foolbox is installed but {path} is missing")
    return path


def foolbox_samples(dataset: str = "imagenet", label_space: str | None = None) -> ImageSet:
    """foolbox's samples of ``dataset`` ("imagenet" or "cifar10"), sorted by index.

    With ``label_space="imagenette"`` only the ImageNet photos of Imagenette's 10 classes are kept
    and relabelled 0..9 (ValueError if none are).
    """
    if dataset not in FOOLBOX_SETS:
        raise ValueError(f"foolbox sample set {dataset!r} unknown; valid: {sorted(FOOLBOX_SETS)}")
    root = foolbox_data_dir()
    found = []
    for f in root.iterdir():
        m = _NAME.match(f.name)
        if m and m["ds"] == dataset:
            found.append((int(m["index"]), int(m["label"]), f))
    if not found:
        raise FileNotFoundError(f"no {dataset}_NN_LABEL images in {root}")
    found.sort()
    space = label_space or dataset
    if dataset == "imagenet" and space == "imagenette":
        found = [(i, L.IMAGENETTE_IMAGENET_INDEX.index(y), f) for i, y, f in found if y in L.IMAGENETTE_IMAGENET_INDEX]
        if not found:
            raise ValueError("none of foolbox's ImageNet samples is in an Imagenette class")
        num_classes = 10
    elif space != dataset:
        raise ValueError(f"foolbox {dataset} samples are labelled in label space {dataset!r}, not {space!r}")
    else:
        num_classes = FOOLBOX_SETS[dataset][1]
    files = [f for _, _, f in found]
    return ImageSet(
        name=f"foolbox_{dataset}",
        ids=tuple(f.name for f in files),
        labels=np.asarray([y for _, y, _ in found], dtype=np.int32),
        reader=lambda i: decode_image(files[i]),
        label_space=space,
        num_classes=num_classes,
        class_names=L.CIFAR10_CLASSES if dataset == "cifar10" else None,
        files=tuple(files),
    )
