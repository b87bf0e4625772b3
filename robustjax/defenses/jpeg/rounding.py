"""Rounding and its gradient surrogates, as used by the quantisers of the codecs.

Every function here has the forward value named in its docstring and the stated gradient:

- ``exact``: true rounding, zero gradient (what a real codec does);
- ``ste``: true rounding forward, identity gradient (straight-through estimator);
- ``cubic``: ``round(x) + (x - round(x))**3`` forward and gradient ``3 (x - round(x))**2``
  (Shin & Song 2017; kornia's differentiable JPEG; Räber et al. 2025).

``round`` is the tie rule: ``jnp.round`` (half to even, as torch/kornia) or :func:`round_half_away`
(libjpeg's quantiser rounds halves away from zero).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Rounder = Callable[[jax.Array], jax.Array]


def round_half_away(x: jax.Array) -> jax.Array:
    """Round to nearest, halves away from zero (libjpeg's quantiser)."""
    return jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5)


def exact(x: jax.Array, round: Rounder = jnp.round) -> jax.Array:
    return jax.lax.stop_gradient(round(x))


def ste(x: jax.Array, round: Rounder = jnp.round) -> jax.Array:
    return x + jax.lax.stop_gradient(round(x) - x)


def cubic(x: jax.Array, round: Rounder = jnp.round) -> jax.Array:
    r = jax.lax.stop_gradient(round(x))
    return r + (x - r) ** 3


SURROGATES: dict[str, Callable[..., jax.Array]] = {"exact": exact, "ste": ste, "cubic": cubic}


def get(name: str) -> Callable[..., jax.Array]:
    """The rounding surrogate called ``name`` (``exact``, ``ste`` or ``cubic``)."""
    if name not in SURROGATES:
        raise ValueError(f"unknown rounding {name!r}; valid: {', '.join(SURROGATES)}")
    return SURROGATES[name]
