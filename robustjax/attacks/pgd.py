"""PGD (Madry et al. 2018), L-inf or L2, with torchattacks 3.5.1's update and projection rules
(``PGD`` and ``PGDL2``)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from robustjax.attacks.base import (
    check_inputs,
    check_nonnegative,
    check_norm,
    check_steps,
    l2_norms,
    per_image,
    project_linf_pgd,
)
from robustjax.attacks.iterative import iterate

NORMS = ("linf", "l2")
DEFAULT_EPS = {"linf": 8 / 255, "l2": 1.0}  # torchattacks PGD / PGDL2 defaults
# alpha = eps/4 (Räber et al. 2025 Table 3; 2/255 at 8/255), PGDL2's 0.2 at 1.0
ALPHA_FRACTION = {"linf": 1 / 4, "l2": 1 / 5}



def project_l2(adv, x, eps):
    """torchattacks PGDL2 order: scale the perturbation into the L2 ball, then clip to [0, 1]."""
    delta = adv - x
    norms = l2_norms(delta)
    factor = jnp.minimum(eps / jnp.where(norms > 0, norms, 1.0), 1.0)
    return jnp.clip(x + delta * per_image(factor, delta), 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class PGD:
    """``eps``: budget in pixel units (L-inf: max per-pixel change; L2: per-image norm over all
    H*W*C values). ``alpha``: step size (None: eps/4 for linf, eps/5 for l2). ``random_start``: a
    uniform start in the L-inf ball, or (L2) a uniform radius along a Gaussian direction.
    An iterative attack (:mod:`robustjax.attacks.iterative`); an unknown ``norm`` raises ValueError
    when the attack is built."""

    eps: float | None = None
    alpha: float | None = None
    steps: int = 10
    random_start: bool = True
    norm: str = "linf"
    unroll: bool | None = None

    def __post_init__(self):
        check_norm(self.norm, NORMS)

    @property
    def budget(self):
        return DEFAULT_EPS[self.norm] if self.eps is None else self.eps

    @property
    def step_size(self):
        return self.budget * ALPHA_FRACTION[self.norm] if self.alpha is None else self.alpha

    def check(self, f, x, y, key=None):
        check_inputs(f, x, y)
        check_steps(self.steps)
        check_nonnegative(eps=self.eps, alpha=self.alpha)
        if self.random_start and key is None:
            raise ValueError("PGD with random_start needs a key")

    def start(self, f, x, y, key=None):
        if not self.random_start:
            return (x,)
        eps = self.budget
        if self.norm == "linf":
            return (jnp.clip(x + jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0) * eps, 0.0, 1.0),)
        k1, k2 = jax.random.split(key)
        delta = jax.random.normal(k1, x.shape, x.dtype)
        r = jax.random.uniform(k2, (x.shape[0],), x.dtype)
        delta = delta * per_image(r / l2_norms(delta) * eps, delta)
        return (jnp.clip(x + delta, 0.0, 1.0),)

    def update(self, state, x, grad):
        (adv,) = state
        eps, alpha, g = self.budget, self.step_size, grad
        if self.norm == "linf":
            return (project_linf_pgd(adv + alpha * jnp.sign(g), x, eps),)
        return (project_l2(adv + alpha * g / per_image(l2_norms(g) + 1e-10, g), x, eps),)

    def __call__(self, f, x, y, key=None):
        return iterate(self, f, x, y, key)
