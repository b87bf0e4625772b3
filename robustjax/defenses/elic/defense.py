"""ELIC as a defense: size policies, the forward (reconstruction, likelihoods, bpp) and the ``elic:Q`` spec.

Spec: ``elic:0016`` (Räber et al. 2025's policy: resize each image to the next multiple of 64, e.g.
224 -> 256, run ELIC, resize back), ``elic:0016:pad`` (zero-pad bottom/right to a multiple of 64,
crop back), ``elic:0016:exact`` (H, W must already be multiples of 64). Option
``weights=PATH``: a published ``.pth.tar`` or a converted folder; default
``$ROBUSTJAX_WEIGHTS/elic/ELIC_{Q}_ft_3980_Plateau.pth.tar``, converted on first use into
``$ROBUSTJAX_CACHE/elic``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from robustjax.checks import check_images
from robustjax.defenses.base import Defense
from robustjax.defenses.elic.net import Elic
from robustjax.defenses.elic.params import POLICIES, QUALITIES, STRIDE, load
from robustjax.defenses.entropy import bits_per_pixel
from robustjax.defenses.registry import register


def check_size(x, policy: str = "exact") -> None:
    """Raise ValueError unless ``x`` is (N, H, W, 3) float in [0, 1] and fits ``policy``."""
    check_images(x, channels=(3,))
    if policy not in POLICIES:
        raise ValueError(f"unknown ELIC size policy {policy!r}; choose one of {', '.join(POLICIES)}")
    h, w = x.shape[1:3]
    if policy == "exact" and (h % STRIDE or w % STRIDE):
        raise ValueError(f"ELIC needs H and W multiples of {STRIDE} under the 'exact' policy, got {h}x{w}; "
                         f"use elic:Q (resize to {_ceil(h)}x{_ceil(w)} and back) or elic:Q:pad")


def _ceil(n: int) -> int:
    return max(STRIDE, int(math.ceil(n / STRIDE)) * STRIDE)


def forward(model: Elic, x: jax.Array) -> dict:
    """x (N, H, W, 3) in [0, 1], H, W % 64 == 0 -> {"x_hat", "likelihoods": {"y", "z"}, "bpp": (N,)}."""
    check_size(x, "exact")
    out = model(x)
    out["bpp"] = bits_per_pixel(out["likelihoods"], x.shape[1] * x.shape[2])
    return out


def apply_policy(run, x: jax.Array, policy: str) -> jax.Array:
    """Fit ``x`` to ELIC's grid by ``policy``, apply ``run`` (images -> images) and undo the fit."""
    n, h, w, c = x.shape
    if policy == "exact":
        return run(x)
    H, W = _ceil(h), _ceil(w)
    if policy == "resize":
        up = x if (H, W) == (h, w) else jax.image.resize(x, (n, H, W, c), "bilinear")
        y = run(up)
        return y if (H, W) == (h, w) else jax.image.resize(y, (n, h, w, c), "bilinear")
    y = run(jnp.pad(x, ((0, 0), (0, H - h), (0, W - w), (0, 0))))
    return y[:, :h, :w]


def make_defense(model: Elic, policy: str = "resize", spec: str = "elic") -> Defense:
    """Defense ``x -> clip(g_s(y_hat), 0, 1)`` under the size ``policy``; parameters closed over."""
    if policy not in POLICIES:
        raise ValueError(f"unknown ELIC size policy {policy!r}; choose one of {', '.join(POLICIES)}")
    graphdef, state = nnx.split(model)

    def run(x):
        return nnx.merge(graphdef, state)(x)["x_hat"]

    def fn(x, key=None):
        check_size(x, policy)
        return jnp.clip(apply_policy(run, x, policy), 0.0, 1.0)

    return Defense(spec, fn)


@register("elic", usage="elic:Q[:resize|pad|exact][:weights=PATH]: ELIC (He et al. 2022), published checkpoints, "
          "Q in " + "/".join(QUALITIES) + "; sizes not a multiple of 64 resized (default) or padded, "
          "exact refuses them")
def _factory(quality: str = "0016", policy: str = "resize", weights: str | None = None) -> Defense:
    if quality not in QUALITIES:
        raise ValueError(f"unknown ELIC quality {quality!r}; published: {', '.join(QUALITIES)}")
    if policy not in POLICIES:
        raise ValueError(f"unknown ELIC size policy {policy!r}; choose one of {', '.join(POLICIES)}")
    model, _ = load(quality, weights)
    return make_defense(model, policy, f"elic:{quality}")
