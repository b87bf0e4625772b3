"""BIM / iFGSM (Kurakin et al. 2017): ``steps`` signed-gradient steps of size ``alpha``, each
projected back to the L-inf ball (torchattacks 3.5.1's clipping order)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from robustjax.attacks.base import check_inputs, check_nonnegative, check_steps, project_linf_bim
from robustjax.attacks.iterative import iterate


@dataclasses.dataclass(frozen=True)
class BIM:
    """An iterative attack (:mod:`robustjax.attacks.iterative`) from the clean images."""

    eps: float = 8 / 255
    alpha: float | None = None  # None: eps / 4 (Räber et al. 2025 Table 3; 2/255 at eps 8/255 as torchattacks)
    steps: int = 10
    unroll: bool | None = None

    def check(self, f, x, y, key=None):
        check_inputs(f, x, y)
        check_steps(self.steps)
        check_nonnegative(eps=self.eps, alpha=self.alpha)

    def start(self, f, x, y, key=None):
        return (x,)

    def update(self, state, x, grad):
        (adv,) = state
        alpha = self.eps / 4 if self.alpha is None else self.alpha
        return (project_linf_bim(adv + alpha * jnp.sign(grad), x, self.eps),)

    def __call__(self, f, x, y, key=None):
        return iterate(self, f, x, y, key)
