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


def image_keys(key: jax.Array, row, member: int | None = None) -> tuple[jax.Array, jax.Array]:
    """``(defense key, attack key)`` of the image at ``row`` (traced or concrete int), for the adaptive
    suite's ``member`` (None: a grid cell, whose keys are also the clean prediction's)."""
    k = jax.random.fold_in(key, row)
    if member is not None:
        k = jax.random.fold_in(k, member)
    dkey, akey = jax.random.split(k)
    return dkey, akey
