"""PGD (Madry et al. 2018), L-inf or L2, with torchattacks 3.5.1's update and projection rules
(``PGD`` and ``PGDL2``)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from robustjax.attacks.base import (
    check_inputs,
    check_nonnegative,
    check_steps,
    l2_norms,
    loop,
    loss_grad,
    per_image,
    project_linf_pgd,
)

NORMS = ("linf", "l2")
DEFAULT_EPS = {"linf": 8 / 255, "l2": 1.0}  # torchattacks PGD / PGDL2 defaults
ALPHA_FRACTION = {"linf": 1 / 4, "l2": 1 / 5}  # alpha = eps/4 (Räber et al. 2025 Table 3; 2/255 at 8/255), PGDL2's 0.2 at 1.0


@dataclasses.dataclass(frozen=True)
class PGD:
    """``eps``: budget in pixel units (L-inf: max per-pixel change; L2: per-image norm over all
    H*W*C values). ``alpha``: step size (None: eps/4 for linf, eps/5 for l2). ``random_start``: a
    uniform start in the L-inf ball, or (L2) a uniform radius along a Gaussian direction."""

    eps: float | None = None
    alpha: float | None = None
    steps: int = 10
    random_start: bool = True
    norm: str = "linf"
    unroll: bool | None = None

    def __call__(self, f, x, y, key=None):
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; valid: {', '.join(NORMS)}")
        check_inputs(f, x, y)
        check_steps(self.steps)
        check_nonnegative(eps=self.eps, alpha=self.alpha)
        if self.random_start and key is None:
            raise ValueError("PGD with random_start needs a key")
        eps = DEFAULT_EPS[self.norm] if self.eps is None else self.eps
        alpha = eps * ALPHA_FRACTION[self.norm] if self.alpha is None else self.alpha
        return (self._linf if self.norm == "linf" else self._l2)(f, x, y, key, eps, alpha)

    def _linf(self, f, x, y, key, eps, alpha):
        adv = x
        if self.random_start:
            adv = jnp.clip(x + jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0) * eps, 0.0, 1.0)

        def step(_, adv):
            return project_linf_pgd(adv + alpha * jnp.sign(loss_grad(f, adv, y)), x, eps)

        return loop(self.steps, step, adv, self.unroll)

    def _l2(self, f, x, y, key, eps, alpha):
        adv = x
        if self.random_start:
            k1, k2 = jax.random.split(key)
            delta = jax.random.normal(k1, x.shape, x.dtype)
            r = jax.random.uniform(k2, (x.shape[0],), x.dtype)
            delta = delta * per_image(r / l2_norms(delta) * eps, delta)
            adv = jnp.clip(x + delta, 0.0, 1.0)

        def step(_, adv):
            g = loss_grad(f, adv, y)
            adv = adv + alpha * g / per_image(l2_norms(g) + 1e-10, g)
            delta = adv - x
            norms = l2_norms(delta)
            factor = jnp.minimum(eps / jnp.where(norms > 0, norms, 1.0), 1.0)
            return jnp.clip(x + delta * per_image(factor, delta), 0.0, 1.0)

        return loop(self.steps, step, adv, self.unroll)
