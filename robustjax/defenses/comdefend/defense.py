"""The ComDefend defense ``comdefend[:sigma=..][:patch=..]...``: ComCNN -> noisy binary code -> RecCNN."""

from __future__ import annotations

import os

import jax
import numpy as np
from flax import nnx

from robustjax.checks import check_images
from robustjax.defenses.base import Defense
from robustjax.defenses.comdefend.net import GRADS, ComDefendNet, binarise, variant_config
from robustjax.defenses.comdefend.params import load
from robustjax.defenses.registry import register


def to_patches(x: jax.Array, size: int) -> jax.Array:
    """``(N, H, W, C)`` -> ``(N * H/size * W/size, size, size, C)``, row-major over the tiles."""
    n, h, w, c = x.shape
    if h % size or w % size:
        raise ValueError(f"patch mode needs H and W divisible by the patch size {size}, got {h}x{w}")
    x = x.reshape(n, h // size, size, w // size, size, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, size, size, c)


def from_patches(p: jax.Array, shape: tuple[int, ...], size: int) -> jax.Array:
    """Inverse of :func:`to_patches` for an image batch of ``shape``."""
    n, h, w, c = shape
    p = p.reshape(n, h // size, w // size, size, size, c).transpose(0, 1, 3, 2, 4, 5)
    return p.reshape(n, h, w, c)


def comdefend(
    net: ComDefendNet, sigma: float = 1.0, patch: int = 0, grad: str = "ste", spec: str = "comdefend"
) -> Defense:
    """The defense ``d(x, key=None)`` around ``net``.

    ``sigma``: std of the code noise (0: deterministic). With ``sigma > 0`` and ``key=None`` a fixed
    key (``PRNGKey(0)``) is used, so repeated calls agree; pass keys for fresh noise (EOT).
    ``patch``: 0 runs on whole images (the networks are fully convolutional); ``k > 0`` cuts images
    into ``k x k`` tiles processed independently (Jia et al. 2019's 32x32 mode for ImageNet-size inputs;
    H and W must be multiples of ``k``).
    """
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    if not (isinstance(patch, int) and patch >= 0):
        raise ValueError(f"patch must be an integer >= 0 (0 = whole image), got {patch!r}")
    if grad not in GRADS:
        raise ValueError(f"grad must be one of {GRADS}, got {grad!r}")
    graphdef, state = nnx.split(net)
    channels = net.image_channels

    def fn(x, key=None):
        check_images(x, "x", channels=(channels,))
        if patch and (x.shape[1] % patch or x.shape[2] % patch):
            raise ValueError(
                f"ComDefend patch mode cannot tile {x.shape[1]}x{x.shape[2]} images into {patch}x{patch} patches; "
                f"resize/crop to multiples of {patch} or use patch=0 (whole image)"
            )
        model = nnx.merge(graphdef, state)
        xin = to_patches(x, patch) if patch else x
        code = model.com(xin)
        if sigma > 0:
            k = jax.random.PRNGKey(0) if key is None else key
            code = code - sigma * jax.random.normal(k, code.shape, code.dtype)
        out = model.rec(binarise(code, grad))
        return from_patches(out, x.shape, patch) if patch else out

    return Defense(spec, fn, randomised=sigma > 0)


@register(
    "comdefend",
    usage="comdefend[:sigma=1.0][:patch=0|K][:variant=cifar|mnist][:grad=ste|sigmoid][:weights=PATH]: ComDefend "
    "(Jia et al. 2019) with the authors' weights; code noise sigma (randomised when > 0), patch=K: K x K tiles "
    "(the authors' 32 for ImageNet sizes), 0: whole images",
)
def _comdefend_defense(sigma: str = "1.0", patch: str = "0", variant: str = "cifar", grad: str = "ste",
                       weights: str | None = None) -> Defense:
    try:
        s = float(sigma)
    except ValueError:
        raise ValueError(f"sigma must be a number, got {sigma!r}") from None
    if not patch.isdigit():
        raise ValueError(f"patch must be a non-negative integer, got {patch!r}")
    variant_config(variant)
    if weights is not None:
        weights = os.path.expanduser(weights)
    return comdefend(load(weights, variant), sigma=s, patch=int(patch), grad=grad)
