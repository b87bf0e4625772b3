"""MI-FGSM (Dong et al. 2018): signed steps along an accumulated, L1-normalised gradient."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from robustjax.attacks.base import check_inputs, check_nonnegative, check_steps, project_linf_pgd
from robustjax.attacks.iterative import iterate


@dataclasses.dataclass(frozen=True)
class MIFGSM:
    """An iterative attack (:mod:`robustjax.attacks.iterative`); its state carries the momentum."""

    eps: float = 8 / 255
    alpha: float | None = None  # None: eps / 4 (torchattacks' 2/255 at eps 8/255)
    steps: int = 10
    decay: float = 1.0
    unroll: bool | None = None

    def check(self, f, x, y, key=None):
        check_inputs(f, x, y)
        check_steps(self.steps)
        check_nonnegative(eps=self.eps, alpha=self.alpha, decay=self.decay)

    def start(self, f, x, y, key=None):
        return (x, jnp.zeros_like(x))

    def update(self, state, x, grad):
        adv, momentum = state
        alpha = self.eps / 4 if self.alpha is None else self.alpha
        g = grad
        scale = jnp.mean(jnp.abs(g), axis=tuple(range(1, g.ndim)), keepdims=True)
        g = g / jnp.where(scale > 0, scale, 1.0)  # an all-zero gradient stays zero (torchattacks: NaN)
        g = g + momentum * self.decay
        return project_linf_pgd(adv + alpha * jnp.sign(g), x, self.eps), g

    def __call__(self, f, x, y, key=None):
        return iterate(self, f, x, y, key)
