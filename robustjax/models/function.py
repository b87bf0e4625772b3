"""A classifier from a plain JAX function: what a plugin registers when its model is not a Flax NNX module."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from robustjax.checks import check_images


class FunctionClassifier:
    """``logits = f(x)`` for float ``(N, S, S, 3)`` images in [0, 1], ``S = input_size``, around ``fn``.

    ``fn`` must be a pure, differentiable JAX function of the images returning ``(N, num_classes)``
    logits (its normalisation inside). Its parameters are closed over, so they are compiled into each
    program as constants: fine for small models; a large one is better an ``nnx.Module``, whose
    state the runner passes as an argument. ``head`` selects a subset of the logits. Raises
    ValueError on images of another size, as :class:`robustjax.models.Classifier` does.
    """

    def __init__(self, fn: Callable[[jax.Array], jax.Array], name: str, input_size: int, num_classes: int,
                 label_names: Sequence[str] | None = None, preprocessing: dict | None = None,
                 head: Sequence[int] | None = None):
        self.fn, self.name, self.input_size = fn, name, int(input_size)
        self.head = None if head is None else jnp.asarray(head, jnp.int32)
        self.num_classes = int(num_classes) if head is None else len(head)
        self.label_names = tuple(label_names) if label_names is not None else None
        self.preprocessing = dict(preprocessing or {})

    def __call__(self, x: jax.Array) -> jax.Array:
        check_images(x, "images", channels=(3,))
        if tuple(x.shape[1:3]) != (self.input_size, self.input_size):
            raise ValueError(f"{self.name} takes {self.input_size}x{self.input_size} images, got {tuple(x.shape[1:3])}")
        logits = self.fn(x)
        return logits if self.head is None else logits[:, self.head]

    def __repr__(self) -> str:
        return f"FunctionClassifier({self.name!r}, input_size={self.input_size}, num_classes={self.num_classes})"
