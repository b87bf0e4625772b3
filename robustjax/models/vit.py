"""ViT-B/16 in torchvision's ``vit_b_16`` layout, for its IMAGENET1K_V1 weights
(``vit_b_16-c867db91.pth``).

Input: float ``(N, 224, 224, 3)`` in [0, 1], normalised inside with the ImageNet mean/std.
Preprocessing policy of the V1 weights for other sizes: resize the shorter side to 256
(bilinear), centre-crop 224. Pre-norm encoder, LayerNorm eps 1e-6, exact GELU, 12 heads.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from robustjax import layers
from robustjax.porting import Rule, conv_kernel, linear_kernel

NUM_CLASSES = 1000
INPUT_SIZE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PREPROCESSING = {"resize": 256, "crop": 224, "mean": MEAN, "std": STD}
PATCH, DIM, DEPTH, HEADS, MLP = 16, 768, 12, 12, 3072


class EncoderBlock(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.ln_1 = nnx.LayerNorm(DIM, epsilon=1e-6, rngs=rngs)
        self.in_proj = nnx.Linear(DIM, 3 * DIM, rngs=rngs)  # torch's fused q, k, v projection
        self.out_proj = nnx.Linear(DIM, DIM, rngs=rngs)
        self.ln_2 = nnx.LayerNorm(DIM, epsilon=1e-6, rngs=rngs)
        self.mlp_0 = nnx.Linear(DIM, MLP, rngs=rngs)
        self.mlp_3 = nnx.Linear(MLP, DIM, rngs=rngs)

    def attention(self, x):
        n, t, _ = x.shape
        q, k, v = jnp.split(self.in_proj(x).reshape(n, t, 3, HEADS, DIM // HEADS), 3, axis=2)
        q, k, v = (a[:, :, 0].transpose(0, 2, 1, 3) for a in (q, k, v))  # (N, heads, T, d)
        weights = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / jnp.sqrt(DIM // HEADS).astype(x.dtype), axis=-1)
        return self.out_proj((weights @ v).transpose(0, 2, 1, 3).reshape(n, t, DIM))

    def __call__(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp_3(jax.nn.gelu(self.mlp_0(self.ln_2(x)), approximate=False))


class ViTB16(nnx.Module):
    def __init__(self, num_classes: int = NUM_CLASSES, rngs: nnx.Rngs | None = None):
        rngs = rngs or nnx.Rngs(0)
        self.conv_proj = layers.Conv(3, DIM, (PATCH, PATCH), strides=PATCH, padding="VALID", rngs=rngs)
        self.class_token = nnx.Param(jnp.zeros((1, 1, DIM)))
        self.pos_embedding = nnx.Param(
            jax.random.normal(rngs.params(), (1, (INPUT_SIZE // PATCH) ** 2 + 1, DIM)) * 0.02)
        self.layers = nnx.List([EncoderBlock(rngs) for _ in range(DEPTH)])
        self.ln = nnx.LayerNorm(DIM, epsilon=1e-6, rngs=rngs)
        self.head = nnx.Linear(DIM, num_classes, rngs=rngs)

    def __call__(self, x):
        x = (x - jnp.asarray(MEAN, x.dtype)) / jnp.asarray(STD, x.dtype)
        x = self.conv_proj(x)
        n = x.shape[0]
        x = x.reshape(n, -1, DIM)
        x = jnp.concatenate([jnp.broadcast_to(self.class_token[...], (n, 1, DIM)), x], axis=1) + self.pos_embedding[...]
        for layer in self.layers:
            x = layer(x)
        return self.head(self.ln(x)[:, 0])


def create(rngs: nnx.Rngs | None = None, **_) -> ViTB16:
    return ViTB16(rngs=rngs)


_LAYER = r"encoder\.layers\.encoder_layer_(\d+)\."
RULES = [
    Rule(r"conv_proj\.weight", "conv_proj.kernel", conv_kernel),
    Rule(r"conv_proj\.bias", "conv_proj.bias"),
    Rule(r"class_token", "class_token"),
    Rule(r"encoder\.pos_embedding", "pos_embedding"),
    Rule(_LAYER + r"ln_(\d)\.weight", r"layers.\1.ln_\2.scale"),
    Rule(_LAYER + r"ln_(\d)\.bias", r"layers.\1.ln_\2.bias"),
    Rule(_LAYER + r"self_attention\.in_proj_weight", r"layers.\1.in_proj.kernel", linear_kernel),
    Rule(_LAYER + r"self_attention\.in_proj_bias", r"layers.\1.in_proj.bias"),
    Rule(_LAYER + r"self_attention\.out_proj\.weight", r"layers.\1.out_proj.kernel", linear_kernel),
    Rule(_LAYER + r"self_attention\.out_proj\.bias", r"layers.\1.out_proj.bias"),
    Rule(_LAYER + r"mlp\.(\d)\.weight", r"layers.\1.mlp_\2.kernel", linear_kernel),
    Rule(_LAYER + r"mlp\.(\d)\.bias", r"layers.\1.mlp_\2.bias"),
    Rule(r"encoder\.ln\.weight", "ln.scale"),
    Rule(r"encoder\.ln\.bias", "ln.bias"),
    Rule(r"heads\.head\.weight", "head.kernel", linear_kernel),
    Rule(r"heads\.head\.bias", "head.bias"),
]
