"""Threat models: which function of the images the attacker differentiates.

Given a classifier ``f`` and a defense ``d`` (``d(x, key)``), the *evaluated* model is always
``f(d(x))``. What the attack sees:

- ``oblivious``: ``f`` alone (seed 000's through=False: adversarial examples made on the bare
  classifier, then passed through the defense);
- ``through``: ``f(d(x))`` with the defense's own differentiable surrogate (seed 000's through=True);
- ``bpda``: ``d`` forward, identity backward (Athalye et al. 2018): ``f(x + sg(d(x) - x))``;
- ``eot``: the mean of the logits ``f(d(x, k_i))`` over ``eot_samples`` draws of a randomised
  defense's randomness (expectation over transformation of the model output); for a deterministic
  defense this is ``through``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

THREATS = ("oblivious", "through", "bpda", "eot")


def bpda(defense, key=None):
    """``x -> d(x)`` in the forward pass with an identity backward pass."""
    return lambda x: x + jax.lax.stop_gradient(defense(x, key) - x)


def attacker_view(threat: str, f, defense, key=None, eot_samples: int = 8):
    """The function ``x -> logits`` the attacker differentiates under ``threat``."""
    if threat == "oblivious":
        return f
    if threat == "through":
        return lambda x: f(defense(x, key))
    if threat == "bpda":
        undefended = bpda(defense, key)
        return lambda x: f(undefended(x))
    if threat == "eot":
        if not getattr(defense, "randomised", False):
            return lambda x: f(defense(x, key))
        if key is None:
            raise ValueError("eot on a randomised defense needs a key")
        keys = jax.random.split(key, eot_samples)
        return lambda x: jnp.mean(jnp.stack([f(defense(x, k)) for k in keys]), axis=0)
    raise ValueError(f"unknown threat model {threat!r}; valid: {', '.join(THREATS)}")
