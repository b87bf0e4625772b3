"""PGD (Madry et al. 2018), L-inf or L2, with torchattacks 3.5.1's update and projection rules."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from robustjax.attacks.base import (check_inputs, check_nonnegative, check_steps, l2_norms, loop, loss_grad,
                                    per_image, project_linf_pgd)

NORMS = ("linf", "l2")


@dataclasses.dataclass(frozen=True)
class PGD:
    eps: float = 8 / 255
    alpha: float | None = None  # None: eps / 4 (seed 000 Table 3; torchattacks' 2/255 at eps 8/255)
    steps: int = 10
    random_start: bool = True
    norm: str = "linf"
    unroll: bool | None = None

    def __call__(self, f, x, y, key=None):
        check_inputs(f, x, y)
        check_steps(self.steps)
        check_nonnegative(eps=self.eps, alpha=self.alpha)
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; valid: {', '.join(NORMS)}")
        if self.random_start and key is None:
            raise ValueError("PGD with random_start needs a key")
        alpha = self.eps / 4 if self.alpha is None else self.alpha
        return (self._linf if self.norm == "linf" else self._l2)(f, x, y, key, alpha)

    def _linf(self, f, x, y, key, alpha):
        adv = x
        if self.random_start:
            adv = jnp.clip(x + jax.random.uniform(key, x.shape, x.dtype, -self.eps, self.eps), 0.0, 1.0)

        def step(_, adv):
            return project_linf_pgd(adv + alpha * jnp.sign(loss_grad(f, adv, y)), x, self.eps)

        return loop(self.steps, step, adv, self.unroll)

    def _l2(self, f, x, y, key, alpha):
        adv = x
        if self.random_start:  # uniform radius in the ball along a Gaussian direction, as torchattacks
            k1, k2 = jax.random.split(key)
            delta = jax.random.normal(k1, x.shape, x.dtype)
            r = jax.random.uniform(k2, (x.shape[0],), x.dtype)
            delta = delta * per_image(r / l2_norms(delta) * self.eps, delta)
            adv = jnp.clip(x + delta, 0.0, 1.0)

        def step(_, adv):
            g = loss_grad(f, adv, y)
            adv = adv + alpha * g / per_image(l2_norms(g) + 1e-10, g)
            delta = adv - x
            factor = jnp.minimum(self.eps / l2_norms(delta), 1.0)
            return jnp.clip(x + delta * per_image(factor, delta), 0.0, 1.0)

        return loop(self.steps, step, adv, self.unroll)
