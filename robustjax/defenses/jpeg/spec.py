"""The ``jpeg:Q[:...]`` and ``jpeg:slq[:...]`` defense specs, registered with :mod:`robustjax.defenses.registry`."""

from __future__ import annotations

from robustjax.defenses.base import Defense
from robustjax.defenses.jpeg import rounding as rounding_lib
from robustjax.defenses.jpeg.codec import CHROMAS, MODES, jpeg
from robustjax.defenses.jpeg.slq import defense as slq_defense
from robustjax.defenses.registry import register


@register("jpeg", usage="jpeg:Q[:rounding=cubic|ste|exact][:chroma=420|444][:mode=libjpeg|kornia] | "
                        "jpeg:slq[:qualities=20/40/60/80][:block=8|16][:rounding=cubic|ste|exact]: "
                        "differentiable JPEG at quality Q in 1..100, bit-exact with libjpeg (rounding=exact: libjpeg's "
                        "output, zero gradient); slq: SHIELD's stochastic local quantization, a quality drawn per "
                        "block, randomised (Das et al. 2018)")
def _jpeg_defense(quality: str, rounding: str = "cubic", chroma: str = "420", mode: str = "libjpeg",
                  **slq_options) -> Defense:
    if quality == "slq":
        if chroma != "420" or mode != "libjpeg":
            raise ValueError("SLQ uses the libjpeg mode with 4:2:0 chroma")
        return slq_defense(rounding=rounding, **slq_options)
    if slq_options:
        raise ValueError(f"unknown JPEG options {sorted(slq_options)} (qualities/block belong to jpeg:slq)")
    try:
        q = float(quality)
    except ValueError:
        raise ValueError(f"JPEG quality must be a number in 1..100, got {quality!r}") from None
    if not 1 <= q <= 100:
        raise ValueError(f"JPEG quality must lie in 1..100, got {q:g}")
    rounding_lib.get(rounding)
    if mode not in MODES or chroma not in CHROMAS:
        raise ValueError(f"mode must be one of {MODES} and chroma one of {CHROMAS}")
    return Defense(f"jpeg:{quality}", lambda x, key=None: jpeg(x, q, rounding=rounding, chroma=chroma, mode=mode))
