"""Stochastic local quantization (SLQ; Das et al. 2018, "SHIELD: Fast, Practical Defense and Vaccination
for Deep Learning using JPEG Compression", KDD): each block of the image compressed at a quality drawn
at random from a set, so an attacker cannot know which quantisation each region will get.

Implementation: the image is JPEG-compressed (robustjax's libjpeg-exact codec) once at every quality
of the set, as one batched call, and each ``block x block`` region takes its pixels from the
compression at its drawn quality. For luma this equals quantising each 8x8 block at its own quality
(the DCT is blockwise); chroma is subsampled 2x2 and upsampled with libjpeg's triangle filter, which
reads one chroma sample across a region's edge. Draws are uniform over the set, independent per
image and region, and come only from the key: the same key gives the same output.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from robustjax.checks import check_images
from robustjax.defenses.base import Defense
from robustjax.defenses.jpeg import rounding as rounding_lib
from robustjax.defenses.jpeg.codec import jpeg

SHIELD_QUALITIES = (20, 40, 60, 80)


def slq(x: jax.Array, key: jax.Array, qualities=SHIELD_QUALITIES, block: int = 8, rounding: str = "cubic") -> jax.Array:
    """SLQ of float ``(N, H, W, 3)`` images in [0, 1] -> same shape; ``key`` (required) draws the
    per-region qualities; ``qualities`` in 1..100; ``block`` the region side in pixels (8 or 16);
    ``rounding`` the quantiser surrogate of :func:`robustjax.defenses.jpeg.jpeg`."""
    check_images(x, "x")
    if key is None:
        raise ValueError("SLQ is randomised: pass a PRNG key (the defense's randomness comes from it)")
    qs = [int(q) for q in qualities]
    if not qs or any(not 1 <= q <= 100 for q in qs):
        raise ValueError(f"SLQ qualities must lie in 1..100, got {qs}")
    if block not in (8, 16):
        raise ValueError(f"SLQ block must be 8 or 16 pixels, got {block}")
    n, h, w, _ = x.shape
    k = len(qs)
    tiled = jnp.broadcast_to(x[None], (k, *x.shape)).reshape(k * n, *x.shape[1:])
    coded = jpeg(tiled, jnp.repeat(jnp.asarray(qs, jnp.float32), n), rounding=rounding).reshape(k, *x.shape)
    hb, wb = -(-h // block), -(-w // block)
    pick = jax.random.randint(key, (n, hb, wb), 0, k)
    mask = jax.nn.one_hot(pick, k, dtype=x.dtype)  # (N, hb, wb, K)
    mask = jnp.repeat(jnp.repeat(mask, block, axis=1), block, axis=2)[:, :h, :w]  # (N, H, W, K)
    return jnp.einsum("knhwc,nhwk->nhwc", coded, mask)


def defense(qualities: str = "20/40/60/80", block: str = "8", rounding: str = "cubic") -> Defense:
    """The ``jpeg:slq[:qualities=Q1/Q2/...][:block=8|16][:rounding=...]`` spec (randomised)."""
    try:
        qs = tuple(int(q) for q in str(qualities).split("/") if q)
        b = int(block)
    except ValueError:
        raise ValueError("SLQ qualities are integers separated by '/', block an integer; "
                         f"got {qualities!r}, {block!r}") from None
    if not qs or any(not 1 <= q <= 100 for q in qs):
        raise ValueError(f"SLQ qualities must lie in 1..100, got {list(qs)}")
    if b not in (8, 16):
        raise ValueError(f"SLQ block must be 8 or 16 pixels, got {b}")
    rounding_lib.get(rounding)
    return Defense(f"jpeg:slq:qualities={'/'.join(map(str, qs))}", lambda x, key=None: slq(x, key, qs, b, rounding),
                   randomised=True)
