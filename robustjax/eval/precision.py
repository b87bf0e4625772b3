"""``--precision float32|tf32|bf16``: the arithmetic a grid's programs run in on GPU/TPU.

Accelerators trade matmul/convolution precision for speed (TPUs multiply in bfloat16 by default,
NVIDIA GPUs in TF32), which moves accuracies under attack. float32 is the default and the parity
reference (every figure compared with a paper or peer); the others are opt-in and recorded.

- ``float32``: ``jax.default_matmul_precision("float32")`` (full float32 passes everywhere).
- ``tf32``: ``"tensorfloat32"`` (TF32 on NVIDIA GPUs, 3 bfloat16 passes on TPUs); inputs, parameters
  and activations stay float32. XLA:CPU ignores it (CPU results equal float32's).
- ``bf16``: ``"bfloat16"`` matmul precision and, for a classifier with a parameter state (every
  :class:`robustjax.models.Classifier`), bfloat16 as its compute dtype: parameters and the input
  images are cast to bfloat16 inside the program, the logits back to float32 (attacks, defenses,
  losses and the gradient with respect to the float32 images stay float32). A plain function
  classifier (no ``state``) only gets the matmul precision. On CPU this is the rounding a TPU run
  sees (XLA:CPU still accumulates in float32), so its accuracy change can be measured here.
"""

from __future__ import annotations

import copy
import functools

import jax
import jax.numpy as jnp

PRECISIONS = ("float32", "tf32", "bf16")
_MATMUL = {"float32": "float32", "tf32": "tensorfloat32", "bf16": "bfloat16"}
DEFAULT = "float32"


def check(precision) -> str:
    """``precision`` if valid, else ValueError naming the valid ones."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def settings(precision: str) -> dict:
    """The entry for a cell's settings: empty for float32, so stores written before the option existed
    keep their keys (float32 was the only arithmetic then), ``{"precision": p}`` otherwise."""
    return {} if check(precision) == DEFAULT else {"precision": precision}


def program(fn, precision: str):
    """``fn`` traced under ``precision``'s default matmul precision (the config is read when the
    program is traced, so it holds for every dot and convolution inside)."""
    mode = _MATMUL[check(precision)]

    @functools.wraps(fn)
    def traced(*args, **kwargs):
        with jax.default_matmul_precision(mode):
            return fn(*args, **kwargs)

    return traced


class Bfloat16Classifier:
    """Classifier ``f`` computed in bfloat16: ``f`` with its float parameters and the images cast to
    bfloat16, logits returned as float32. Carries ``graphdef``/``state`` (float32, the runner's
    device copy) and ``f``'s attributes, so the runner passes the state into programs as usual."""

    def __init__(self, f):
        self.inner = f
        self.graphdef, self.state = f.graphdef, f.state
        for k in ("input_size", "num_classes", "preprocessing", "name", "label_names", "head", "metadata"):
            if hasattr(f, k):
                setattr(self, k, getattr(f, k))

    def __call__(self, x):
        g = copy.copy(self.inner)
        g.state = jax.tree.map(lambda a: a.astype(jnp.bfloat16) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                               self.state)
        return g(x.astype(jnp.bfloat16)).astype(jnp.float32)


def classifier(f, precision: str):
    """``f`` as the grid runs it under ``precision``: a :class:`Bfloat16Classifier` for ``bf16`` when
    ``f`` has a parameter state, else ``f`` itself."""
    if check(precision) == "bf16" and hasattr(f, "graphdef") and hasattr(f, "state"):
        return Bfloat16Classifier(f)
    return f
