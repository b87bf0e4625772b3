"""FGSM (Goodfellow et al. 2015): one signed-gradient step of size eps, clipped to [0, 1]."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from robustjax.attacks.base import check_inputs, check_nonnegative, loss_grad


@dataclasses.dataclass(frozen=True)
class FGSM:
    eps: float = 8 / 255

    def __call__(self, f, x, y, key=None):
        check_inputs(f, x, y)
        check_nonnegative(eps=self.eps)
        return jnp.clip(x + self.eps * jnp.sign(loss_grad(f, x, y)), 0.0, 1.0)
