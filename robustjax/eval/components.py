"""Where the runner gets classifiers, attacks, defenses and data: the project's registries.

The runner only talks to a :class:`Components`; :func:`default` wires the real ones
(``robustjax.models.load``, ``robustjax.attacks.get``, ``robustjax.defenses.get``,
``robustjax.data.load``). Tests hand in small stand-ins through the same interface.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Components:
    load_model: Callable  # (name, weights=None, head=None) -> classifier f(x) -> logits
    model_names: Callable  # () -> list[str] | None (None: can't list; check by loading)
    get_attack: Callable  # (name, **hparams) -> attack(f, x, y, key=key)
    attack_names: Callable  # () -> list[str] | None
    get_defense: Callable  # (spec) -> Defense d(x, key=None)
    load_data: Callable  # (name, data_dir, label_space) -> robustjax.data.ImageSet
    minimum_norm: Callable = lambda name: False  # (attack name) -> True for CW / DeepFool (no eps budget)


def _names(module, *candidates):
    for c in candidates:
        obj = getattr(module, c, None)
        if obj is None:
            continue
        names = obj() if callable(obj) else obj
        return sorted(names)
    return None


def default() -> Components:
    import robustjax.data
    import robustjax.defenses

    def load_model(name, weights=None, head=None):
        import robustjax.models

        return robustjax.models.load(name, weights=weights, head=head)

    def model_names():
        import robustjax.models

        return _names(robustjax.models, "names", "available", "MODELS", "REGISTRY")

    def get_attack(name, **hp):
        import robustjax.attacks

        return robustjax.attacks.get(name, **hp)

    def attack_names():
        import robustjax.attacks

        return _names(robustjax.attacks, "names", "available", "ATTACKS", "REGISTRY")

    def minimum_norm(name):
        import robustjax.attacks

        return name in getattr(robustjax.attacks, "MINIMUM_NORM", ())

    return Components(load_model, model_names, get_attack, attack_names, robustjax.defenses.get, robustjax.data.load, minimum_norm)


def model_info(f, name: str) -> dict:
    """``input_size``, ``num_classes`` and ``preprocessing`` of a loaded classifier.

    Read from the classifier's attributes, falling back to its model module's ``INPUT_SIZE`` /
    ``NUM_CLASSES`` / ``PREPROCESSING`` (robustjax/models/<name>.py).
    """
    module = None
    try:
        import importlib

        module = importlib.import_module(f"robustjax.models.{name}")
    except ImportError:
        pass

    def pick(attr, const):
        v = getattr(f, attr, None)
        if v is None and module is not None:
            v = getattr(module, const, None)
        return v

    info = {"input_size": pick("input_size", "INPUT_SIZE"), "num_classes": pick("num_classes", "NUM_CLASSES"), "preprocessing": pick("preprocessing", "PREPROCESSING")}
    if info["input_size"] is None:
        raise ValueError(f"classifier {name!r} exposes no input_size (nor INPUT_SIZE in its module)")
    return info


def accepts_key(fn) -> bool:
    try:
        return "key" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
