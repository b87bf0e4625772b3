"""Das et al. 2017's small CNNs ("Keeping the bad guys out"): conv-conv-pool blocks, FC 512, softmax.

- ``cifar10``: blocks of 32 and 64 filters (3x3 convs, 3x3 max-pool stride 2), FC 512, 10 classes,
  input ``(N, 32, 32, 3)``;
- ``gtsrb``: a third block of 128 filters, 2x2 pooling, FC 512, 43 classes, input ``(N, 48, 48, 3)``.

The paper leaves padding unstated; convolutions and pooling here use "SAME" padding. There are no
published weights: the model is for training (``robustjax.train``) and for attacks on models
users bring. ``RULES`` read a PyTorch state dict with modules ``conv1..conv{4,6}``, ``fc1``, ``fc2``
(``fc1`` over the NCHW flattening, permuted here to NHWC). Input is used in [0, 1] as is.

Dropout: the paper trains "with dropout regularization" without rates; :data:`DROPOUT` uses those
of the Keras CIFAR-10 example whose layout the paper's network repeats (0.25 after each pooling,
0.5 after FC 512). It is active only when ``__call__`` gets a ``dropout_key`` (training).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from robustjax import layers
from robustjax.porting import Rule, conv_kernel

VARIANTS = {
    "cifar10": {"widths": (32, 64), "pool": 3, "input_size": 32, "num_classes": 10},
    "gtsrb": {"widths": (32, 64, 128), "pool": 2, "input_size": 48, "num_classes": 43},
}
DROPOUT = (0.25, 0.5)  # after each pooling, after fc1
PREPROCESSING = {"resize": None, "crop": None, "scale": "none ([0, 1] input)"}


class SmallCNN(nnx.Module):
    def __init__(self, variant: str = "cifar10", rngs: nnx.Rngs | None = None):
        if variant not in VARIANTS:
            raise ValueError(f"small CNN variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        rngs = rngs or nnx.Rngs(0)
        cfg = VARIANTS[variant]
        self.pool = cfg["pool"]
        convs, cin = [], 3
        for width in cfg["widths"]:
            convs += [layers.Conv(cin, width, (3, 3), padding="SAME", rngs=rngs),
                      layers.Conv(width, width, (3, 3), padding="SAME", rngs=rngs)]
            cin = width
        self.convs = nnx.List(convs)
        side = cfg["input_size"] // 2 ** len(cfg["widths"])
        self.fc1 = nnx.Linear(side * side * cin, 512, rngs=rngs)
        self.fc2 = nnx.Linear(512, cfg["num_classes"], rngs=rngs)

    def __call__(self, x, dropout_key=None):
        """Logits of ``(N, S, S, 3)`` images in [0, 1]; ``dropout_key`` (training only) turns dropout on."""
        keys = None if dropout_key is None else list(jax.random.split(dropout_key, len(self.convs) // 2 + 1))
        for i in range(0, len(self.convs), 2):
            x = jax.nn.relu(self.convs[i + 1](jax.nn.relu(self.convs[i](x))))
            x = layers.max_pool(x, (self.pool, self.pool), (2, 2), "SAME")
            x = x if keys is None else _dropout(x, DROPOUT[0], keys.pop())
        x = jax.nn.relu(self.fc1(x.reshape(x.shape[0], -1)))
        x = x if keys is None else _dropout(x, DROPOUT[1], keys.pop())
        return self.fc2(x)


def _dropout(x, rate: float, key):
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def create(variant: str = "cifar10", rngs: nnx.Rngs | None = None, **_) -> SmallCNN:
    return SmallCNN(variant, rngs)


def _fc1_from_nchw(a: np.ndarray, channels: int) -> np.ndarray:
    """torch Linear over an NCHW flattening (out, C*H*W) -> Flax kernel over NHWC (H*W*C, out)."""
    out, features = a.shape
    side = int(round((features // channels) ** 0.5))
    return a.reshape(out, channels, side, side).transpose(2, 3, 1, 0).reshape(features, out)


def rules(variant: str = "cifar10") -> list[Rule]:
    n = 2 * len(VARIANTS[variant]["widths"])
    last = VARIANTS[variant]["widths"][-1]
    return [
        *[Rule(rf"conv{i + 1}\.weight", f"convs.{i}.kernel", conv_kernel) for i in range(n)],
        *[Rule(rf"conv{i + 1}\.bias", f"convs.{i}.bias") for i in range(n)],
        Rule(r"fc1\.weight", "fc1.kernel", functools.partial(_fc1_from_nchw, channels=last)),
        Rule(r"fc1\.bias", "fc1.bias"),
        Rule(r"fc2\.weight", "fc2.kernel", np.transpose),
        Rule(r"fc2\.bias", "fc2.bias"),
    ]


RULES = rules("cifar10")
