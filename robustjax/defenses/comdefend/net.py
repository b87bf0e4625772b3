"""ComDefend (Jia, Wei, Cao & Foroosh, CVPR 2019): ComCNN -> binary code -> RecCNN, as a defense.

Networks (fully convolutional, 3x3 SAME stride-1 convolutions, no normalisation, no downsampling):

- ComCNN: ``x - 0.5``, then convs with ELU through the hidden widths, then a linear conv to the
  code channels. CIFAR variant 3-16-32-64-128-256-128-64-32-12; MNIST variant
  1-32-64-128-256-128-64-64-32-4.
- RecCNN: convs with ELU, a linear conv to the image channels, sigmoid. CIFAR
  12-32-64-128-256-128-64-32-16-3; MNIST 4-32-64-128-256-128-64-64-32-1.

Defense ``d(x, key)`` on float ``(N, H, W, C)`` images in [0, 1]: ``code = ComCNN(x)``;
``bits = (code - n > 0)`` with ``n ~ N(0, sigma^2)`` (the original test code keeps sigma = 1; sigma
= 0 is deterministic); ``RecCNN(bits)``. The hard threshold has zero gradient almost everywhere, so
the backward pass uses a surrogate (``grad``): ``ste`` (identity w.r.t. ``code - n``, default) or
``sigmoid`` (the derivative of the training-time ``sigmoid(code - n)``).

Colour order: the CIFAR weights were trained on ``keras.datasets.cifar10`` arrays, i.e. RGB (the
authors' ``Train_comdefend_TF.py``); their ImageNet demo read files with ``cv2.imread`` (BGR) and
fed those unchanged, a quirk we do not copy: robustjax feeds RGB. Measured on the 10,000
``cifar10-test-jpeg`` images at sigma 0 (``experiments/jia2019/comdefend_psnr.py``), RGB gives the higher
PSNR, consistent with RGB training.

Weights: the authors' files ``enc*.npy`` / ``dec*.npy`` (NumPy ``.npz`` zips with one object array
``w`` of 18 arrays ``[W0, b0, ...]``, HWIO kernels), or a PyTorch state dict in the layout of the
authors' ``Train_comdefend_Torch.py`` (``{"enc": {"features.0.weight", ...}, "dec": {...}}``,
nested or flattened, ``module.`` prefixes stripped; ``com``/``rec``/``encoder``/``decoder`` accepted
as the two prefixes). Checkpoint family ``comdefend`` (``python -m checkpoints_convert comdefend
SRC DST [--set variant=mnist]``).
"""

from __future__ import annotations

import jax
from flax import nnx

from robustjax import layers

VARIANTS: dict[str, dict] = {
    "cifar": dict(image_channels=3, code_channels=12, com=(16, 32, 64, 128, 256, 128, 64, 32),
                  rec=(32, 64, 128, 256, 128, 64, 32, 16)),
    "mnist": dict(image_channels=1, code_channels=4, com=(32, 64, 128, 256, 128, 64, 64, 32),
                  rec=(32, 64, 128, 256, 128, 64, 64, 32)),
}
GRADS = ("ste", "sigmoid")


def variant_config(variant: str) -> dict:
    if variant not in VARIANTS:
        raise ValueError(f"unknown ComDefend variant {variant!r}; choose one of {sorted(VARIANTS)}")
    return VARIANTS[variant]


class ConvStack(nnx.Module):
    """3x3 SAME stride-1 convs ``widths[0] -> ... -> widths[-1]``, ELU after every conv but the last."""

    def __init__(self, widths: tuple[int, ...], *, rngs: nnx.Rngs):
        init = nnx.initializers.variance_scaling(2.0, "fan_in", "normal")  # He et al. 2015, as the paper
        self.layers = nnx.List(
            [layers.Conv(a, b, (3, 3), padding="SAME", kernel_init=init, rngs=rngs)
             for a, b in zip(widths[:-1], widths[1:])]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for i, conv in enumerate(self.layers):
            x = conv(x)
            if i < len(self.layers) - 1:
                x = jax.nn.elu(x)
        return x


class ComCNN(nnx.Module):
    """Images ``(N, H, W, C)`` in [0, 1] -> real-valued code ``(N, H, W, code_channels)``."""

    def __init__(self, image_channels: int, code_channels: int, hidden: tuple[int, ...], *, rngs: nnx.Rngs):
        self.net = ConvStack((image_channels, *hidden, code_channels), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.net(x - 0.5)


class RecCNN(nnx.Module):
    """Code ``(N, H, W, code_channels)`` (binary at test time) -> images ``(N, H, W, C)`` in (0, 1)."""

    def __init__(self, image_channels: int, code_channels: int, hidden: tuple[int, ...], *, rngs: nnx.Rngs):
        self.net = ConvStack((code_channels, *hidden, image_channels), rngs=rngs)

    def __call__(self, bits: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(self.net(bits))


class ComDefendNet(nnx.Module):
    """ComCNN (``.com``) and RecCNN (``.rec``) of one variant (``cifar`` or ``mnist``)."""

    def __init__(self, variant: str = "cifar", *, rngs: nnx.Rngs):
        v = variant_config(variant)
        self.variant = variant
        self.image_channels = v["image_channels"]
        self.code_channels = v["code_channels"]
        self.com = ComCNN(v["image_channels"], v["code_channels"], v["com"], rngs=rngs)
        self.rec = RecCNN(v["image_channels"], v["code_channels"], v["rec"], rngs=rngs)

    def __call__(self, x: jax.Array, noise: jax.Array | float = 0.0, grad: str = "ste") -> jax.Array:
        """Test-time forward: ``RecCNN(binarise(ComCNN(x) - noise))`` (``noise`` broadcast to the code)."""
        return self.rec(binarise(self.com(x) - noise, grad))


def create(rngs: nnx.Rngs | None = None, variant: str = "cifar") -> ComDefendNet:
    """Random (He-normal) initialisation of one variant."""
    return ComDefendNet(variant, rngs=rngs if rngs is not None else nnx.Rngs(0))


def binarise(z: jax.Array, grad: str = "ste") -> jax.Array:
    """``1[z > 0]`` as float; backward: identity (``ste``) or ``sigmoid'(z)`` (``sigmoid``)."""
    hard = (z > 0).astype(z.dtype)
    if grad == "ste":
        soft = z
    elif grad == "sigmoid":
        soft = jax.nn.sigmoid(z)
    else:
        raise ValueError(f"grad must be one of {GRADS}, got {grad!r}")
    return soft + jax.lax.stop_gradient(hard - soft)


# ----------------------------------------------------------------------------- weights


