"""Attack metrics beyond accuracy.

Das et al. 2017's "misclassification success rate": the share of the images the (defended) model
classified correctly whose label the attack flips. Unlike accuracy it does not count the images the
model already got wrong, so it measures the attack, not the model.
"""

from __future__ import annotations

import numpy as np


def misclassification_success_rate(clean_correct, adv_correct) -> float:
    """``sum(clean & ~adv) / sum(clean)`` over per-image booleans of equal shape ``(N,)``.

    Raises ValueError on a shape mismatch or when no image is classified correctly (undefined rate).
    """
    c, a = np.asarray(clean_correct, bool), np.asarray(adv_correct, bool)
    if c.shape != a.shape or c.ndim != 1:
        raise ValueError(f"clean_correct and adv_correct must be (N,) booleans of one shape, "
                         f"got {c.shape} and {a.shape}")
    return msr_from_counts(int(np.sum(c & ~a)), int(np.sum(c)))


def msr_from_counts(flipped: int, clean_correct: int) -> float:
    """``flipped / clean_correct`` (the counts the evaluation runner stores); ValueError when undefined."""
    if clean_correct <= 0:
        raise ValueError("misclassification success rate is undefined: no image was classified correctly")
    if not 0 <= flipped <= clean_correct:
        raise ValueError(f"flipped ({flipped}) must lie in 0..clean_correct ({clean_correct})")
    return flipped / clean_correct
