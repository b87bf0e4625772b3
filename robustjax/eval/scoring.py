"""Scoring a randomised defense honestly: the defended prediction over several independent draws.

Why: a randomised defense (``jpeg:slq``, ``comdefend`` with ``sigma > 0``) decides an image's fate on
a draw of its randomness; one lucky draw can make an image count as robust. And the draw the
attacker optimised against is not the one a deployed defense makes.

- An image counts as correct only if the defended model classifies it correctly in *every* one of
  ``draws`` draws (default :data:`DEFAULT_DRAWS` for a randomised defense, 1 for a deterministic one,
  where every draw is the same). The majority-vote and single-draw (the first draw) accuracies and
  each draw's accuracy (its spread) are recorded beside it.
- By default the scoring draws are independent of every key the attacker used
  (:func:`robustjax.keys.score_keys`). ``fixed_randomness`` scores the attacker's own draw (one
  draw): the "deterministic white-box" setting.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from robustjax.keys import score_keys

DEFAULT_DRAWS = 10


@dataclasses.dataclass(frozen=True)
class Scoring:
    """``draws`` scoring draws; ``fixed``: the attacker's draw is the scored one (then ``draws`` is 1)."""

    draws: int = 1
    fixed: bool = False

    @classmethod
    def for_defense(cls, defense, draws: int | None = None, fixed: bool = False) -> Scoring:
        """The scoring of ``defense`` under the config's ``draws`` (None: the default) and ``fixed_randomness``."""
        if not getattr(defense, "randomised", False):
            return cls(1, False)  # deterministic: one draw is every draw
        if fixed:
            return cls(1, True)
        return cls(DEFAULT_DRAWS if draws is None else int(draws), False)

    def keys(self, key, row, attacker_key) -> list:
        """The image's scoring keys: the attacker's defense key when fixed, else independent ones."""
        if self.fixed:
            return [attacker_key]
        return list(score_keys(key, row, self.draws))

    def settings(self) -> dict:
        """What enters a randomised cell's settings (and so its store key)."""
        return {"draws": self.draws, "fixed_randomness": self.fixed}


def check(draws, fixed) -> None:
    """ValueError for a bad ``draws`` (an int >= 1 or None) or ``fixed_randomness`` (a bool), before compute."""
    if draws is not None and (isinstance(draws, bool) or not isinstance(draws, int) or draws < 1):
        raise ValueError(f"--draws must be an integer >= 1 (scoring draws of a randomised defense), got {draws!r}")
    if not isinstance(fixed, bool):
        raise ValueError(f"fixed_randomness must be True or False, got {fixed!r}")
    if fixed and draws is not None and draws > 1:
        raise ValueError(f"--fixed-randomness scores the attacker's own draw, one draw: --draws must be 1, got {draws}")


def draw_preds(f, defense, keys, xs) -> jnp.ndarray:
    """``(K, B)`` int32: the defended model's classes on ``xs`` under each of the K ``keys``."""
    return jnp.stack([jnp.argmax(f(defense(xs, k)), axis=-1).astype(jnp.int32) for k in keys])


def representative(draws, y, xp=jnp):
    """``(B,)``: the label where every draw ``(K, B)`` is correct, else the first wrong draw's class, so
    ``representative == y`` is the all-draws criterion (``xp``: jnp on the device, np on the host)."""
    wrong = draws != y[None]
    first = xp.argmax(wrong, axis=0)
    picked = xp.take_along_axis(draws, first[None], axis=0)[0]
    return xp.where(wrong.any(axis=0), picked, y).astype(draws.dtype)


def summary(pred_draws: np.ndarray, labels: np.ndarray) -> dict:
    """A randomised cell's record fields from its per-draw predictions ``(E, K, N)`` (eps 0 = clean):
    majority-vote and single-draw accuracies, and each draw's accuracy's range, per budget."""
    right = pred_draws == labels[None, None, :]  # (E, K, N)
    K = right.shape[1]
    per_draw = right.mean(axis=2)  # (E, K)
    return {"draws": K,
            "accuracy_majority": [float(a) for a in (right.sum(axis=1) * 2 > K).mean(axis=1)],
            "accuracy_single_draw": [float(a) for a in right[:, 0].mean(axis=1)],
            "draw_accuracy_min": [float(a) for a in per_draw.min(axis=1)],
            "draw_accuracy_max": [float(a) for a in per_draw.max(axis=1)]}
