"""HiFiC as a defense: padding, the forward (reconstruction, likelihoods, bpp) and the ``hific:V`` spec.

Spec: ``hific:low``, ``hific:med``, ``hific:hi`` (any H, W: the image is reflect-padded to a multiple
of 16 and the reconstruction cropped back, as the reference's evaluation mode), option
``weights=PATH`` (a published ``.pt`` or a converted folder); default
``$ROBUSTJAX_WEIGHTS/hific/hific_{low,med,hi}.pt``, converted on first use into ``$ROBUSTJAX_CACHE/hific``.
``seq:N:hific:V`` runs N rounds (``robustjax.defenses.sequential``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from robustjax.checks import check_images
from robustjax.defenses.base import Defense
from robustjax.defenses.entropy import LIKELIHOOD_BOUND, bits
from robustjax.defenses.hific.net import HiFiC, reflect
from robustjax.defenses.hific.params import STRIDE, VARIANTS, load
from robustjax.defenses.registry import register


def pad_to(x, multiple: int):
    h, w = x.shape[1:3]
    return reflect(x, 0, (-h) % multiple, 0, (-w) % multiple)


MIN_SIZE = 65


def check_size(x) -> None:
    """Raise ValueError unless ``x`` is (N, H, W, 3) float in [0, 1] with H, W >= 65.

    Smaller images give hyper-analysis maps of 2 pixels, which the reference's reflection pad of 2
    cannot pad (PyTorch raises there too).
    """
    check_images(x, channels=(3,))
    h, w = x.shape[1:3]
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ValueError(f"HiFiC needs H, W >= {MIN_SIZE} (its hyperprior's reflection pads), got {h}x{w}")


def forward(model: HiFiC, x: jax.Array) -> dict:
    """The reference's evaluation forward on ``x`` (N, H, W, 3) in [0, 1], any H, W.

    Reflect-pad to a multiple of 16, encode, reflect-pad y to a multiple of 4, ``z_hat = floor(z + 0.5)``
    (zero gradient), ``y_hat = floor(y - mu + 0.5) + mu`` (straight-through), generate, crop, clamp.
    Returns ``{"x_hat": (N, H, W, 3) in [0, 1], "likelihoods": {"y", "z"}, "bpp": (N,)}``; ``bpp`` is
    the reference's ``total_qbpp``: ``-sum log2(p + 1e-9)`` over the padded latents, divided by the
    pixels of the padded image (equal to H * W when both are multiples of 16).
    """
    check_size(x)
    n, h, w, _ = x.shape
    xp = pad_to(x, STRIDE)
    out = model(xp)
    x_hat = jnp.clip(out["x_hat"][:, :h, :w], 0.0, 1.0)
    lik = out["likelihoods"]
    bpp = sum(bits(p + LIKELIHOOD_BOUND) for p in lik.values()) / float(xp.shape[1] * xp.shape[2])
    return {"x_hat": x_hat, "likelihoods": lik, "bpp": bpp}


def make_defense(model: HiFiC, spec: str = "hific") -> Defense:
    """Defense ``x -> clamp(crop(G(y_hat)), 0, 1)``; parameters closed over."""
    graphdef, state = nnx.split(model)

    def fn(x, key=None):
        return forward(nnx.merge(graphdef, state), x)["x_hat"]

    return Defense(spec, fn)


@register("hific", usage="hific:V[:weights=PATH]: HiFiC (Mentzer et al. 2020), published checkpoints, V in "
          + "/".join(VARIANTS))
def _factory(variant: str = "low", weights: str | None = None) -> Defense:
    if variant not in VARIANTS:
        raise ValueError(f"unknown HiFiC variant {variant!r}; published: {', '.join(VARIANTS)}")
    model, _ = load(variant, weights)
    return make_defense(model, f"hific:{variant}")
