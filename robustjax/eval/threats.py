"""Threat models: which function the attacker differentiates, given classifier ``f`` and defense ``d``.

The defended model that is *evaluated* is always ``f(d(x))``. What the attack sees:

- ``oblivious``: ``f`` alone (seed 000's through=False: the attacker ignores the defense);
- ``through``: ``f(d(x))`` with ``d``'s own differentiable surrogate (seed 000's through=True);
- ``bpda``: ``d`` forward, identity backward (Athalye et al. 2018), ``f(x + sg(d(x) - x))``;
- ``eot``: the mean of ``f(d(x, k_i))`` logits over ``eot_samples`` defense draws (randomised defenses;
  equals ``through`` for a deterministic one).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from robustjax.eval.config import THREATS


def attacker_view(threat: str, f, defense, key, eot_samples: int = 8):
    """The function ``x -> logits`` the attacker differentiates under ``threat``."""
    if threat == "oblivious":
        return f
    if threat == "through":
        return lambda x: f(defense(x, key))
    if threat == "bpda":
        return lambda x: f(x + jax.lax.stop_gradient(defense(x, key) - x))
    if threat == "eot":
        if not getattr(defense, "randomised", False):
            return lambda x: f(defense(x, key))
        keys = jax.random.split(key, eot_samples)
        return lambda x: jnp.mean(jnp.stack([f(defense(x, k)) for k in keys]), axis=0)
    raise ValueError(f"unknown threat model {threat!r}; valid: {', '.join(THREATS)}")
