"""The classifier object every experiment attacks: a pure function of images, with its metadata."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from robustjax.checks import check_images


class Classifier:
    """``logits = f(x)`` for float ``(N, S, S, 3)`` images in [0, 1] with ``S = input_size``.

    Parameters are closed over (eval mode, batch statistics frozen), so ``f`` is a pure function
    that can be jitted, vmapped and differentiated with respect to ``x``. ``head`` selects a subset
    of the logits (e.g. the 10 Imagenette classes of an ImageNet model).
    """

    def __init__(self, module: nnx.Module, name: str, input_size: int, num_classes: int,
                 label_names: Sequence[str] | None = None, preprocessing: dict | None = None,
                 head: Sequence[int] | None = None, metadata: dict | None = None):
        module.eval()
        self.graphdef, self.state = nnx.split(module)
        self.name, self.input_size = name, input_size
        self.head = None if head is None else jnp.asarray(head, jnp.int32)
        self.num_classes = num_classes if head is None else len(head)
        self.label_names = tuple(label_names) if label_names is not None else None
        self.preprocessing = dict(preprocessing or {})
        self.metadata = dict(metadata or {})

    def __call__(self, x: jax.Array) -> jax.Array:
        check_images(x, "images", channels=(3,))
        if tuple(x.shape[1:3]) != (self.input_size, self.input_size):
            raise ValueError(
                f"{self.name} takes {self.input_size}x{self.input_size} images, got {tuple(x.shape[1:3])}; "
                f"resize first (policy: {self.preprocessing})"
            )
        logits = nnx.merge(self.graphdef, self.state)(x)
        return logits if self.head is None else logits[:, self.head]

    def __repr__(self) -> str:
        return f"Classifier({self.name!r}, input_size={self.input_size}, num_classes={self.num_classes})"
