"""FGSM (Goodfellow et al. 2015): one signed-gradient step of size eps, clipped to [0, 1]."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from robustjax.attacks.base import check_inputs, check_nonnegative, loss_grad


@dataclasses.dataclass(frozen=True)
class FGSM:
    """An iterative attack of one step (:mod:`robustjax.attacks.iterative`), from the clean images."""

    eps: float = 8 / 255
    steps = 1  # not a field: FGSM is one step by definition
    unroll = None

    def check(self, f, x, y, key=None):
        check_inputs(f, x, y)
        check_nonnegative(eps=self.eps)

    def start(self, f, x, y, key=None):
        return (x,)

    def step(self, f, state, x, y):
        (adv,) = state
        return (jnp.clip(adv + self.eps * jnp.sign(loss_grad(f, adv, y)), 0.0, 1.0),)

    def __call__(self, f, x, y, key=None):
        """The one step from the start, without a loop (what :func:`iterate` computes for one step)."""
        self.check(f, x, y, key)
        return self.step(f, self.start(f, x, y, key), x, y)[0]
