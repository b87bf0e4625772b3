"""CIFAR-10 ResNet-20/32/44/56 (He et al. 2016, "option A" shortcuts), the layout of the
published weights in ``cifar10-resnet/resnet{20,32,44,56}-*.th``.

Input: float ``(N, 32, 32, 3)`` in [0, 1]; normalised inside with the ImageNet mean/std the
weights were trained with. Output: 10 logits (airplane ... truck).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from robustjax import layers
from robustjax.porting import Rule, batchnorm_rules, conv_kernel, linear_kernel

NUM_CLASSES = 10
INPUT_SIZE = 32
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PREPROCESSING = {"resize": None, "crop": None, "mean": MEAN, "std": STD}
LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DEPTHS = (20, 32, 44, 56)


def _conv3x3(cin, cout, stride, rngs):
    return layers.Conv(cin, cout, (3, 3), strides=stride, padding=((1, 1), (1, 1)), use_bias=False, rngs=rngs)


def _bn(c, rngs):
    return nnx.BatchNorm(c, use_running_average=True, epsilon=1e-5, momentum=0.9, rngs=rngs)


class BasicBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, stride: int, rngs: nnx.Rngs):
        self.conv1, self.bn1 = _conv3x3(cin, cout, stride, rngs), _bn(cout, rngs)
        self.conv2, self.bn2 = _conv3x3(cout, cout, 1, rngs), _bn(cout, rngs)
        self.stride, self.extra = stride, cout - cin

    def __call__(self, x):
        out = jax.nn.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1 or self.extra:
            # Option A: subsample and zero-pad the channels, no parameters.
            shortcut = x[:, :: self.stride, :: self.stride, :]
            shortcut = jnp.pad(shortcut, ((0, 0), (0, 0), (0, 0), (self.extra // 2, self.extra - self.extra // 2)))
        return jax.nn.relu(out + shortcut)


class CifarResNet(nnx.Module):
    def __init__(self, depth: int = 20, num_classes: int = NUM_CLASSES, rngs: nnx.Rngs | None = None):
        if depth not in DEPTHS:
            raise ValueError(f"CIFAR ResNet depth must be one of {DEPTHS}, got {depth}")
        rngs = rngs or nnx.Rngs(0)
        n = (depth - 2) // 6
        self.conv1, self.bn1 = _conv3x3(3, 16, 1, rngs), _bn(16, rngs)
        stages, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(cin, cout, stride if i == 0 else 1, rngs))
                cin = cout
            stages.append(nnx.List(blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nnx.Linear(64, num_classes, rngs=rngs)

    def __call__(self, x):
        x = (x - jnp.asarray(MEAN, x.dtype)) / jnp.asarray(STD, x.dtype)
        x = jax.nn.relu(self.bn1(self.conv1(x)))
        for stage in (self.layer1, self.layer2, self.layer3):
            for block in stage:
                x = block(x)
        return self.linear(jnp.mean(x, axis=(1, 2)))


def create(depth: int = 20, rngs: nnx.Rngs | None = None, **_) -> CifarResNet:
    return CifarResNet(depth, rngs=rngs)


RULES = [
    Rule(r"conv1\.weight", "conv1.kernel", conv_kernel),
    *batchnorm_rules(r"bn1", "bn1"),
    Rule(r"layer(\d)\.(\d+)\.conv(\d)\.weight", r"layer\1.\2.conv\3.kernel", conv_kernel),
    *batchnorm_rules(r"layer(\d)\.(\d+)\.bn(\d)", r"layer\1.\2.bn\3"),
    Rule(r"linear\.weight", "linear.kernel", linear_kernel),
    Rule(r"linear\.bias", "linear.bias"),
]
