"""Where the runner gets classifiers, attacks, defenses and data: the project's registries.

The runner only talks to a :class:`Components`; :func:`default` wires the real ones
(``robustjax.models.load``, ``robustjax.attacks.get``, ``robustjax.defenses.get``,
``robustjax.data.load``). Tests hand in small stand-ins through the same interface.
"""

from __future__ import annotations

import dataclasses
import functools
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


def default(skip_unreadable: bool = False) -> Components:
    """The project's own registries: ``robustjax.models``, ``robustjax.attacks``, ``robustjax.defenses``,
    ``robustjax.data``.

    Plugins registered there before this call (or before a name is looked up) flow through unchanged.
    ``skip_unreadable``: image folders leave out files that cannot be decoded (``ImageSet.skipped``)."""
    import robustjax.attacks
    import robustjax.data
    import robustjax.defenses
    import robustjax.models

    load_data = functools.partial(robustjax.data.load, skip_unreadable=True) if skip_unreadable else robustjax.data.load
    return Components(robustjax.models.load, robustjax.models.names, robustjax.attacks.get, robustjax.attacks.names,
                      robustjax.defenses.get, load_data, robustjax.attacks.is_minimum_norm)


def model_info(f, name: str) -> dict:
    """``input_size``, ``num_classes`` and ``preprocessing`` of a loaded classifier, read from its
    attributes (every :class:`robustjax.models.Classifier` carries them); ``ValueError`` when
    ``input_size`` is missing, since the data cannot be resized for the model without it."""
    info = {k: getattr(f, k, None) for k in ("input_size", "num_classes", "preprocessing")}
    if info["input_size"] is None:
        raise ValueError(f"classifier {name!r} exposes no input_size attribute")
    return info


def accepts_key(fn) -> bool:
    try:
        return "key" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
