"""Robust accuracy of a defended classifier under an attack, over a grid of budgets."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from robustjax.attacks.base import l2_norms
from robustjax.attacks.threat import attacker_view


def robust_accuracy(f, x, y, make_attack: Callable, eps: Sequence[float], defense=None, threat: str = "oblivious",
                    key=None, eot_samples: int = 8) -> jax.Array:
    """Accuracy of ``f(d(x_adv))`` for each budget in ``eps`` (one compiled program, eps vmapped).

    ``make_attack(eps) -> attack`` (e.g. ``lambda e: PGD(eps=e)``); ``defense`` None means none.
    Returns ``(len(eps),)`` accuracies in [0, 1].
    """
    key = jax.random.key(0) if key is None else key
    d = defense if defense is not None else (lambda v, k=None: v)
    dkey, akey = jax.random.split(key)
    view = attacker_view(threat, f, d, dkey, eot_samples)

    @jax.jit
    def run(x, y, eps):
        def one(e):
            x_adv = make_attack(e)(view, x, y, key=akey)
            return jnp.mean(jnp.argmax(f(d(x_adv, dkey)), axis=1) == y)

        return jax.vmap(one)(eps)

    return run(x, y, jnp.asarray(eps, x.dtype))


def l2_bounded_accuracy(f, x, x_adv, y, bounds: Sequence[float]) -> jax.Array:
    """Seed 000's protocol for minimum-norm attacks (CW, DeepFool): for each L2 bound, an image
    counts as attacked only if its perturbation ``||x_adv - x||_2`` (pixel units, [0, 1] scale) is
    at most the bound; otherwise its clean prediction counts. ``f`` is the evaluated model
    (defense included). Returns ``(len(bounds),)`` accuracies.

    (Seed 000 measured the norm in normalised-input space; here it is measured in pixel space so
    the bound means the same for every model.)
    """
    clean_ok = jnp.argmax(f(x), axis=1) == y
    adv_ok = jnp.argmax(f(x_adv), axis=1) == y
    norms = l2_norms(x_adv - x)
    bounds = jnp.asarray(bounds, x.dtype)
    within = norms[None, :] <= bounds[:, None]
    return jnp.mean(jnp.where(within, adv_ok[None], clean_ok[None]), axis=1)
