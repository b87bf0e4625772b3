"""CIFAR-10 ResNet-20/32/44/56 (He et al. 2016, "option A" shortcuts) in Flax NNX.

Layout and key names follow the widely used PyTorch implementation whose weights are in
``$ROBUSTJAX_WEIGHTS/cifar10-resnet/resnet{20,32,44,56}-*.th`` (keys ``conv1``, ``bn1``,
``layer{1,2,3}.{i}.{conv,bn}{1,2}``, ``linear``; all prefixed ``module.``, stripped by the reader).

Input: float32 NHWC images in [0, 1], 32x32 RGB. Normalisation with the mean/std the weights were
trained with happens inside. Output: 10 CIFAR-10 logits (airplane ... truck).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from robustjax.porting import Ignore, Rule, conv_kernel, linear_kernel

NUM_CLASSES = 10
INPUT_SIZE = 32
PREPROCESSING = {
    "resize": "none (32x32 CIFAR images)",
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
}
LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DEPTHS = (20, 32, 44, 56)

_PAD1 = ((1, 1), (1, 1))  # PyTorch padding=1 (symmetric also for stride 2, unlike "SAME")


def _bn(c, rngs):
    # PyTorch momentum 0.1 == NNX momentum 0.9; eps 1e-5 as torch.
    return nnx.BatchNorm(c, use_running_average=True, momentum=0.9, epsilon=1e-5, rngs=rngs)


class BasicBlock(nnx.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU. Option A: subsample by 2 and zero-pad channels."""

    def __init__(self, cin: int, cout: int, stride: int, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(cin, cout, (3, 3), strides=stride, padding=_PAD1, use_bias=False, rngs=rngs)
        self.bn1 = _bn(cout, rngs)
        self.conv2 = nnx.Conv(cout, cout, (3, 3), padding=_PAD1, use_bias=False, rngs=rngs)
        self.bn2 = _bn(cout, rngs)
        self.stride = stride
        self.pad = (cout - cin) // 2 if (stride != 1 or cin != cout) else 0
        self.reshape = stride != 1 or cin != cout

    def __call__(self, x):
        out = nnx.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x
        if self.reshape:
            short = x[:, :: self.stride, :: self.stride, :]
            short = jnp.pad(short, ((0, 0), (0, 0), (0, 0), (self.pad, self.pad)))
        return nnx.relu(out + short)


class CifarResNet(nnx.Module):
    """ResNet-(6n+2) for 32x32 inputs: 16-32-64 channels, n blocks per stage, global pool, linear."""

    def __init__(self, depth: int = 20, num_classes: int = NUM_CLASSES, rngs: nnx.Rngs | None = None):
        if depth not in DEPTHS and (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, ...), got {depth}")
        rngs = rngs if rngs is not None else nnx.Rngs(0)
        n = (depth - 2) // 6
        self.depth = depth
        self.num_classes = num_classes
        self.input_size = INPUT_SIZE
        self.conv1 = nnx.Conv(3, 16, (3, 3), padding=_PAD1, use_bias=False, rngs=rngs)
        self.bn1 = _bn(16, rngs)
        cin = 16
        for i, cout in enumerate((16, 32, 64), start=1):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if (b == 0 and i > 1) else 1, rngs))
                cin = cout
            setattr(self, f"layer{i}", nnx.List(blocks))
        self.linear = nnx.Linear(64, num_classes, rngs=rngs)
        self.mean = tuple(PREPROCESSING["mean"])  # constants, not parameters
        self.std = tuple(PREPROCESSING["std"])

    def __call__(self, x):
        """x: (N, 32, 32, 3) float in [0, 1] -> (N, num_classes) logits."""
        x = (x - jnp.asarray(self.mean, x.dtype)) / jnp.asarray(self.std, x.dtype)
        x = nnx.relu(self.bn1(self.conv1(x)))
        for layer in (self.layer1, self.layer2, self.layer3):
            for block in layer:
                x = block(x)
        x = jnp.mean(x, axis=(1, 2))
        return self.linear(x)


def create(rngs: nnx.Rngs | None = None, depth: int = 20, num_classes: int = NUM_CLASSES) -> CifarResNet:
    """Random-init CIFAR ResNet (eval-mode BatchNorm; call ``.train()`` to train)."""
    return CifarResNet(depth=depth, num_classes=num_classes, rngs=rngs)


_BN = [("weight", "scale"), ("bias", "bias"), ("running_mean", "mean"), ("running_var", "var")]

RULES = [
    Rule(r"conv1\.weight", "conv1.kernel", conv_kernel),
    *[Rule(rf"bn1\.{s}", f"bn1.{t}") for s, t in _BN],
    Rule(r"layer(\d)\.(\d+)\.conv(\d)\.weight", r"layer\1.\2.conv\3.kernel", conv_kernel),
    *[Rule(rf"layer(\d)\.(\d+)\.bn(\d)\.{s}", rf"layer\1.\2.bn\3.{t}") for s, t in _BN],
    Rule(r"linear\.weight", "linear.kernel", linear_kernel),
    Rule(r"linear\.bias", "linear.bias"),
    Ignore(r".*num_batches_tracked"),
]
