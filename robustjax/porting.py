"""Turning a published state dict into Flax NNX parameters through a readable key map.

A key map is a list of ``Rule``s, kept next to each model (``robustjax/models/<name>_params.py``
and the like). Each rule rewrites matching source keys (a regular expression with groups) into a
dotted path of the NNX state and names the layout transform to apply::

    RULES = [
        Rule(r"conv1\\.weight", "conv1.kernel", conv_kernel),
        Rule(r"bn1\\.running_mean", "bn1.mean"),
        Rule(r"layer(\\d)\\.(\\d+)\\.conv(\\d)\\.weight", r"layer\\1.layers.\\2.conv\\3.kernel", conv_kernel),
    ]

``load_into(module, state_dict, RULES)`` fills the module in place and fails loudly, listing every
unmapped source key, every target left unfilled and every shape mismatch, before writing anything.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx


class CheckpointMismatchError(ValueError):
    """A state dict does not fit the target module; the message lists every offending key."""

    def __init__(self, unmapped=(), missing=(), shape_mismatch=(), context: str = ""):
        self.unmapped = sorted(unmapped)
        self.missing = sorted(missing)
        self.shape_mismatch = sorted(shape_mismatch)
        lines = [f"checkpoint does not fit {context or 'the model'}:"]
        if self.unmapped:
            lines.append(f"  {len(self.unmapped)} source key(s) not used by the model: " + ", ".join(self.unmapped))
        if self.missing:
            lines.append(f"  {len(self.missing)} model parameter(s) missing from the checkpoint: "
                         + ", ".join(self.missing))
        if self.shape_mismatch:
            lines.append(f"  {len(self.shape_mismatch)} shape mismatch(es): " + "; ".join(self.shape_mismatch))
        super().__init__("\n".join(lines))


def identity(a: np.ndarray) -> np.ndarray:
    return a


def conv_kernel(a: np.ndarray) -> np.ndarray:
    """PyTorch Conv2d weight (O, I, kh, kw) -> Flax (kh, kw, I, O)."""
    return np.transpose(a, (2, 3, 1, 0))


def conv_transpose_kernel(a: np.ndarray) -> np.ndarray:
    """PyTorch ConvTranspose2d weight (I, O, kh, kw) -> (kh, kw, I, O), spatially flipped.

    Flax ``nnx.ConvTranspose`` with ``transpose_kernel=False`` correlates with the kernel as given, so
    the PyTorch kernel (defined as the gradient of a correlation) is flipped in both spatial axes.
    """
    return np.transpose(a, (2, 3, 0, 1))[::-1, ::-1].copy()


def linear_kernel(a: np.ndarray) -> np.ndarray:
    """PyTorch Linear weight (out, in) -> Flax (in, out)."""
    return np.transpose(a)


@dataclasses.dataclass(frozen=True)
class Rule:
    """``source`` regex (full match) -> ``target`` dotted NNX path (may use ``\\1`` groups)."""

    source: str
    target: str
    transform: Callable[[np.ndarray], np.ndarray] = identity


@dataclasses.dataclass(frozen=True)
class Ignore:
    """Source keys (full-match regex) that are known and deliberately not loaded (e.g. ``num_batches_tracked``)."""

    source: str


def _path_str(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def map_keys(
    source: Mapping[str, np.ndarray], rules: Iterable[Rule | Ignore]
) -> tuple[dict[str, tuple[str, np.ndarray]], list[str], list[str], list[str]]:
    """Apply ``rules`` to ``source`` (first matching rule wins).

    Returns (target path -> (source key, transformed array), unmapped source keys, ignored source
    keys, shape errors of arrays the layout transform cannot take).
    """
    compiled = [(re.compile(r.source), r) for r in rules]
    mapped: dict[str, tuple[str, np.ndarray]] = {}
    unmapped, ignored, bad_shapes = [], [], []
    for key, value in source.items():
        for pattern, rule in compiled:
            match = pattern.fullmatch(key)
            if match is None:
                continue
            if isinstance(rule, Ignore):
                ignored.append(key)
            else:
                target = match.expand(rule.target)
                if target in mapped:
                    raise CheckpointMismatchError(
                        unmapped=[f"{key} (-> {target}, already filled by {mapped[target][0]})"])
                try:
                    mapped[target] = (key, rule.transform(np.asarray(value)))
                except ValueError:
                    bad_shapes.append(f"{key} -> {target}: checkpoint shape {np.shape(value)} does not fit the layout")
            break
        else:
            unmapped.append(key)
    return mapped, unmapped, ignored, bad_shapes


def load_into(module: nnx.Module, source: Mapping[str, np.ndarray], rules: Iterable[Rule | Ignore],
              context: str = "") -> list[str]:
    """Fill every ``nnx.Variable`` of ``module`` from ``source`` through ``rules``, in place.

    Every variable of the module (parameters and batch statistics alike) must be produced by exactly
    one rule, with the same shape; otherwise ``CheckpointMismatchError`` names each offending key and
    the module is left untouched. Returns the source keys that ``Ignore`` rules skipped.
    """
    mapped, unmapped, ignored, mismatch = map_keys(source, rules)
    _, state = nnx.split(module)
    flat = dict(nnx.to_flat_state(state))
    targets = {_path_str(path): variable for path, variable in flat.items()}
    unmapped += [f"{key} (-> {t}, no such parameter)" for t, (key, _) in mapped.items() if t not in targets]
    missing = [t for t in targets if t not in mapped]
    mismatch += [
        f"{mapped[t][0]} -> {t}: model {tuple(v.get_value().shape)}, checkpoint {tuple(mapped[t][1].shape)}"
        for t, v in targets.items()
        if t in mapped and tuple(v.get_value().shape) != tuple(mapped[t][1].shape)
    ]
    if unmapped or missing or mismatch:
        raise CheckpointMismatchError(unmapped, missing, mismatch, context)
    for t, variable in targets.items():
        variable.set_value(jnp.asarray(mapped[t][1], dtype=variable.get_value().dtype))
    return ignored


def batchnorm_rules(source: str, target: str) -> list[Rule | Ignore]:
    """The five entries of a PyTorch BatchNorm (``source`` prefix) -> ``nnx.BatchNorm`` at ``target``.

    ``source`` is a regex fragment (escape dots); ``target`` may use its groups.
    """
    return [
        Rule(source + r"\.weight", target + ".scale"),
        Rule(source + r"\.bias", target + ".bias"),
        Rule(source + r"\.running_mean", target + ".mean"),
        Rule(source + r"\.running_var", target + ".var"),
        Ignore(source + r"\.num_batches_tracked"),
    ]
