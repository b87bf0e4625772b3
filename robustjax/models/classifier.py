"""The classifier object every experiment attacks: a pure function of images, with its metadata."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from robustjax.checks import check_images
from robustjax.xla_cpu import default_chains


class Classifier:
    """``logits = f(x)`` for float ``(N, S, S, 3)`` images in [0, 1] with ``S = input_size``.

    Parameters are closed over (eval mode, batch statistics frozen), so ``f`` is a pure function
    that can be jitted, vmapped and differentiated with respect to ``x``. ``head`` selects a subset
    of the logits (e.g. the 10 Imagenette classes of an ImageNet model).

    ``chains``: the batch is run as this many independent interleaved sub-batches (images i, i+k,
    i+2k, ... form chain i), which only changes speed (see :func:`robustjax.xla_cpu.default_chains`; None: that
    default, capped at the largest divisor of the batch). Interleaving keeps every chain spread
    evenly over the devices when the batch axis is sharded.
    """

    def __init__(self, module: nnx.Module, name: str, input_size: int, num_classes: int,
                 label_names: Sequence[str] | None = None, preprocessing: dict | None = None,
                 head: Sequence[int] | None = None, metadata: dict | None = None, chains: int | None = None):
        if chains is not None and (isinstance(chains, bool) or not isinstance(chains, int) or chains < 1):
            raise ValueError(f"chains must be None or an int >= 1, got {chains!r}")
        self.chains = chains
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
        model = nnx.merge(self.graphdef, self.state)
        k = _divisor_at_most(x.shape[0], self.chains or default_chains(x.shape[0]))
        if k == 1:
            logits = model(x)
        else:
            grouped = x.reshape(x.shape[0] // k, k, *x.shape[1:])  # chain i = images i, i+k, ...
            logits = jnp.stack([model(grouped[:, i]) for i in range(k)], axis=1).reshape(x.shape[0], -1)
        return logits if self.head is None else logits[:, self.head]

    def __repr__(self) -> str:
        return f"Classifier({self.name!r}, input_size={self.input_size}, num_classes={self.num_classes})"


def _divisor_at_most(n: int, k: int) -> int:
    """The largest divisor of ``n`` that is at most ``k``."""
    return next(d for d in range(min(n, k), 0, -1) if n % d == 0) if n > 0 else 1
