"""N sequential rounds of a defense, with the gradient through every round in bounded memory."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from robustjax.defenses.base import Defense


def sequential(defense: Defense, n: int) -> Defense:
    """``d^n``: apply ``defense`` ``n`` times (Räber et al. 2025's sequential compression).

    The rounds run in one ``lax.scan`` whose body is wrapped in ``jax.checkpoint``: the backward
    pass keeps only each round's input image (n x the image batch) and recomputes a round's
    internals when it reaches it, so memory grows with the image size per round, not with the
    codec's intermediate activations. A randomised defense gets ``fold_in(key, round)``.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"sequential needs n >= 1 rounds, got {n!r}")

    def fn(x, key=None):
        @jax.checkpoint
        def one_round(carry, i):
            sub = None if key is None else jax.random.fold_in(key, i)
            return defense(carry, sub).astype(carry.dtype), None

        out, _ = jax.lax.scan(one_round, x, jnp.arange(n))
        return out

    return Defense(f"seq:{n}:{defense.spec}", fn, defense.randomised)
