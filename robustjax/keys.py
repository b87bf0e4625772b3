"""The one key scheme of the package: every image's randomness from the run's seed and its row.

Why: an image's defense draws and attack randomness must not depend on the batch it runs in, the
device count, the process count or the resume point, so they are derived from the image's row in
the evaluated set alone; the adaptive suite's member ``i`` folds in its index, so two members
draw independently. Written once so the grid, the suite and the library API cannot disagree.
"""

from __future__ import annotations

import jax


def seed_key(seed: int) -> jax.Array:
    """The run's root key (a raw ``uint32[2]`` key, as the stored results were made with)."""
    return jax.random.PRNGKey(int(seed))


SCORE_STREAM = 0x5C0E  # folded into an image's key for its scoring draws: a stream no attacker key comes from


def score_keys(key: jax.Array, row, draws: int) -> jax.Array:
    """``draws`` keys for scoring the image at ``row`` under a randomised defense, independent of the
    defense and attack keys :func:`image_keys` gives the attacker."""
    return jax.random.split(jax.random.fold_in(jax.random.fold_in(key, row), SCORE_STREAM), draws)


def image_keys(key: jax.Array, row) -> tuple[jax.Array, jax.Array]:
    """``(defense key, attack key)`` of the image at ``row`` (traced or concrete int); the defense key
    is also the one the clean prediction is scored with."""
    dkey, akey = jax.random.split(jax.random.fold_in(key, row))
    return dkey, akey
