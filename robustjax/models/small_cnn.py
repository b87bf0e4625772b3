"""Seed 001's small CNNs for CIFAR-10 (32x32, 10 classes) and GTSRB (48x48, 43 classes).

The paper: "2 Conv-Conv-Pooling blocks, having Conv layer filter depths of 32 and 64 ... filter size
3x3 ... followed by a fully connected layer of 512 units that feeds into a softmax output layer of 10
classes. The same architecture is extended for GTSRB with an additional Conv-Conv-Pooling block of
filter depth 128 and a softmax output layer of 43 classes. The Pooling filter size is made 2x2",
trained with dropout and Adam. It does not give the padding; we follow the Keras CIFAR-10 example
that description matches: in each block the first 3x3 conv is "same", the second "valid", ReLU
after each, 2x2 max-pool stride 2, dropout 0.25 after each block and 0.5 after the FC layer.
No normalisation beyond [0, 1] input. Output: logits (the softmax is in the loss).

Key map (``RULES``): from a PyTorch state dict with keys ``conv{1..6}.{weight,bias}``,
``fc1.*``, ``fc2.*`` whose ``fc1`` takes the flattened NCHW feature map (PyTorch order); the
columns are permuted to our NHWC flatten order.
"""

from __future__ import annotations

import numpy as np
from flax import nnx

from robustjax.porting import Rule, conv_kernel

NUM_CLASSES = 10
INPUT_SIZE = 32
PREPROCESSING = {"resize": "CIFAR-10 32x32; GTSRB resized to 48x48", "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
VARIANTS = {
    # name: (input size, block widths, classes)
    "cifar10": (32, (32, 64), 10),
    "gtsrb": (48, (32, 64, 128), 43),
}


def _final_hw(size: int, blocks: int) -> int:
    for _ in range(blocks):
        size = (size - 2) // 2  # "same" conv keeps, "valid" conv -2, pool /2
    return size


class SmallCNN(nnx.Module):
    def __init__(self, variant: str = "cifar10", rngs: nnx.Rngs | None = None):
        if variant not in VARIANTS:
            raise ValueError(f"unknown small_cnn variant '{variant}'; known: {', '.join(VARIANTS)}")
        rngs = rngs if rngs is not None else nnx.Rngs(0)
        size, widths, classes = VARIANTS[variant]
        self.variant, self.input_size, self.num_classes = variant, size, classes
        convs, cin = [], 3
        for w in widths:
            convs.append(nnx.Conv(cin, w, (3, 3), padding="SAME", rngs=rngs))
            convs.append(nnx.Conv(w, w, (3, 3), padding="VALID", rngs=rngs))
            cin = w
        self.convs = nnx.List(convs)
        hw = _final_hw(size, len(widths))
        self.fc1 = nnx.Linear(hw * hw * cin, 512, rngs=rngs)
        self.fc2 = nnx.Linear(512, classes, rngs=rngs)
        self.drop_block = nnx.Dropout(0.25, deterministic=True)  # rngs given at call time when training
        self.drop_fc = nnx.Dropout(0.5, deterministic=True)

    def __call__(self, x):
        """x: (N, S, S, 3) float in [0, 1] (S = 32 CIFAR-10, 48 GTSRB) -> (N, classes) logits."""
        for i in range(0, len(self.convs), 2):
            x = nnx.relu(self.convs[i](x))
            x = nnx.relu(self.convs[i + 1](x))
            x = nnx.max_pool(x, (2, 2), strides=(2, 2))
            x = self.drop_block(x)
        x = x.reshape(x.shape[0], -1)
        x = self.drop_fc(nnx.relu(self.fc1(x)))
        return self.fc2(x)


def create(rngs: nnx.Rngs | None = None, variant: str = "cifar10") -> SmallCNN:
    """Random-init small CNN (dropout off; ``model.train()`` turns it on for training)."""
    return SmallCNN(variant, rngs)


def _fc1_kernel(a: np.ndarray) -> np.ndarray:
    """PyTorch fc1 (512, C*H*W) in NCHW flatten order -> Flax (H*W*C, 512) in NHWC order."""
    out_f, in_f = a.shape
    for size, widths, _ in VARIANTS.values():
        c = widths[-1]
        hw = _final_hw(size, len(widths))
        if c * hw * hw == in_f:
            return a.reshape(out_f, c, hw, hw).transpose(2, 3, 1, 0).reshape(in_f, out_f)
    raise ValueError(f"fc1 weight with {in_f} inputs fits no small_cnn variant")


RULES = [
    *[Rule(rf"conv{i + 1}\.weight", f"convs.{i}.kernel", conv_kernel) for i in range(6)],
    *[Rule(rf"conv{i + 1}\.bias", f"convs.{i}.bias") for i in range(6)],
    Rule(r"fc1\.weight", "fc1.kernel", _fc1_kernel),
    Rule(r"fc1\.bias", "fc1.bias"),
    Rule(r"fc2\.weight", "fc2.kernel", np.transpose),
    Rule(r"fc2\.bias", "fc2.bias"),
]
