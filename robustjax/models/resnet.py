"""ResNet-50 in torchvision's layout (v1.5: stride on the 3x3 convolution), for its
IMAGENET1K_V2 weights (``resnet50-11ad3fa6.pth``).

Input: float ``(N, 224, 224, 3)`` in [0, 1], normalised inside with the ImageNet mean/std.
Preprocessing policy of the V2 weights for other sizes: resize the shorter side to 232
(bilinear), centre-crop 224.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from robustjax import layers
from robustjax.porting import Rule, batchnorm_rules, conv_kernel, linear_kernel

NUM_CLASSES = 1000
INPUT_SIZE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PREPROCESSING = {"resize": 232, "crop": 224, "mean": MEAN, "std": STD}
BLOCKS = (3, 4, 6, 3)


def _conv(cin, cout, k, stride, pad, rngs):
    return layers.Conv(cin, cout, (k, k), strides=stride, padding=((pad, pad), (pad, pad)), use_bias=False, rngs=rngs)


def _bn(c, rngs):
    return nnx.BatchNorm(c, use_running_average=True, epsilon=1e-5, momentum=0.9, rngs=rngs)


class Bottleneck(nnx.Module):
    def __init__(self, cin: int, width: int, stride: int, rngs: nnx.Rngs):
        cout = 4 * width
        self.conv1, self.bn1 = _conv(cin, width, 1, 1, 0, rngs), _bn(width, rngs)
        self.conv2, self.bn2 = _conv(width, width, 3, stride, 1, rngs), _bn(width, rngs)
        self.conv3, self.bn3 = _conv(width, cout, 1, 1, 0, rngs), _bn(cout, rngs)
        needs_projection = stride != 1 or cin != cout
        self.downsample = nnx.List([_conv(cin, cout, 1, stride, 0, rngs), _bn(cout, rngs)] if needs_projection else [])

    def __call__(self, x):
        out = jax.nn.relu(self.bn1(self.conv1(x)))
        out = jax.nn.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = self.downsample[1](self.downsample[0](x)) if len(self.downsample) else x
        return jax.nn.relu(out + shortcut)


class ResNet50(nnx.Module):
    def __init__(self, num_classes: int = NUM_CLASSES, rngs: nnx.Rngs | None = None):
        rngs = rngs or nnx.Rngs(0)
        self.conv1, self.bn1 = _conv(3, 64, 7, 2, 3, rngs), _bn(64, rngs)
        cin, stages = 64, []
        for i, (n, width) in enumerate(zip(BLOCKS, (64, 128, 256, 512))):
            blocks = []
            for j in range(n):
                blocks.append(Bottleneck(cin, width, 2 if (j == 0 and i > 0) else 1, rngs))
                cin = 4 * width
            stages.append(nnx.List(blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nnx.Linear(2048, num_classes, rngs=rngs)

    def __call__(self, x):
        x = (x - jnp.asarray(MEAN, x.dtype)) / jnp.asarray(STD, x.dtype)
        x = jax.nn.relu(self.bn1(self.conv1(x)))
        x = layers.max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x = block(x)
        return self.fc(jnp.mean(x, axis=(1, 2)))


def create(rngs: nnx.Rngs | None = None, **_) -> ResNet50:
    return ResNet50(rngs=rngs)


RULES = [
    Rule(r"conv1\.weight", "conv1.kernel", conv_kernel),
    *batchnorm_rules(r"bn1", "bn1"),
    Rule(r"layer(\d)\.(\d+)\.conv(\d)\.weight", r"layer\1.\2.conv\3.kernel", conv_kernel),
    *batchnorm_rules(r"layer(\d)\.(\d+)\.bn(\d)", r"layer\1.\2.bn\3"),
    Rule(r"layer(\d)\.(\d+)\.downsample\.0\.weight", r"layer\1.\2.downsample.0.kernel", conv_kernel),
    *batchnorm_rules(r"layer(\d)\.(\d+)\.downsample\.1", r"layer\1.\2.downsample.1"),
    Rule(r"fc\.weight", "fc.kernel", linear_kernel),
    Rule(r"fc\.bias", "fc.bias"),
]
