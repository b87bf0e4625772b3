"""FGSM (Goodfellow et al. 2015): one signed-gradient step of size eps, clipped to [0, 1]."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from robustjax.attacks.base import check_inputs, check_nonnegative
from robustjax.attacks.iterative import step


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

    def update(self, state, x, grad):
        (adv,) = state
        return (jnp.clip(adv + self.eps * jnp.sign(grad), 0.0, 1.0),)

    def __call__(self, f, x, y, key=None):
        """The one step from the start, without a loop (what :func:`iterate` computes for one step)."""
        self.check(f, x, y, key)
        return step(self, f, self.start(f, x, y, key), x, y)[0]
