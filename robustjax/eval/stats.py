"""Uncertainty of accuracies measured on a few hundred images: Wilson intervals and McNemar's exact test.

Why: with 200 images a 95% interval on an accuracy near 0.5 is about +-0.07, wider than many of
the differences a table seems to show; two rows measured on the same images are compared on their
discordant images (paired), which is far more sensitive than comparing two intervals.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054
ALPHA = 0.05


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes of ``n`` (default 95%); (0, 1) when n == 0.

    Raises ValueError unless 0 <= k <= n."""
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact at the ends: float rounding left lo > p at k = 0
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: ``b`` images right under A only, ``c`` right under B only
    (the discordant pairs), tested as Binomial(b + c, 1/2); 1.0 when there are none."""
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b}, {c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def paired(a, b) -> dict:
    """McNemar on two boolean per-image arrays of the same images (True = correct): the discordant
    counts, the p-value and whether the difference is within noise (p >= :data:`ALPHA`)."""
    import numpy as np

    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need the same images, got shapes {a.shape} and {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = mcnemar(only_a, only_b)
    return {"only_a": only_a, "only_b": only_b, "p": p, "within_noise": p >= ALPHA}


def ci_text(k: int, n: int, digits: int = 2) -> str:
    lo, hi = wilson(k, n)
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"
