"""Class-name -> label maps for the datasets robustjax knows by name.

Imagenette's 10 classes are ImageNet-1k classes: a classifier with all 1000 logits is scored
against the ImageNet index, one with the 10-logit ``imagenette`` head against 0..9 (wnid order).
"""

from __future__ import annotations

IMAGENETTE_WNIDS = (
    "n01440764",  # tench
    "n02102040",  # English springer
    "n02979186",  # cassette player
    "n03000684",  # chain saw
    "n03028079",  # church
    "n03394916",  # French horn
    "n03417042",  # garbage truck
    "n03425413",  # gas pump
    "n03445777",  # golf ball
    "n03888257",  # parachute
)
IMAGENETTE_NAMES = (
    "tench", "English springer", "cassette player", "chain saw", "church",
    "French horn", "garbage truck", "gas pump", "golf ball", "parachute",
)
# The ImageNet-1k index of each Imagenette class, in wnid order (the 10-logit subset).
IMAGENETTE_IMAGENET_INDEX = (0, 217, 482, 491, 497, 566, 569, 571, 574, 701)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# Label spaces a dataset can be scored in; a classifier's head decides which one it needs.
LABEL_SPACES = ("imagenet", "imagenette", "cifar10", "folder")


def imagenette_label(wnid: str, space: str) -> int:
    """Label of an Imagenette wnid folder in ``space`` ("imagenet": 0..999, "imagenette": 0..9)."""
    k = IMAGENETTE_WNIDS.index(wnid)
    if space == "imagenet":
        return IMAGENETTE_IMAGENET_INDEX[k]
    if space == "imagenette":
        return k
    raise ValueError(f"Imagenette labels exist in label spaces 'imagenet' and 'imagenette', not {space!r}")


def imagenet_to_imagenette(label: int) -> int:
    """ImageNet index -> Imagenette index; ValueError for a class outside Imagenette."""
    try:
        return IMAGENETTE_IMAGENET_INDEX.index(int(label))
    except ValueError:
        raise ValueError(f"ImageNet class {label} is not one of Imagenette's 10 classes "
                         f"{IMAGENETTE_IMAGENET_INDEX}") from None
