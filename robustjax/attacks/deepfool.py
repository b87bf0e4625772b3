"""DeepFool (Moosavi-Dezfooli et al. 2016), L2, as torchattacks 3.5.1 runs it: per image, step to
the nearest linearised decision boundary with an overshoot of ``overshoot`` on each step, until the
prediction changes or ``steps`` run out (finished images are frozen inside the compiled loop).

``candidates``: None uses every class (torchattacks); an int k restricts the boundaries to the k
classes ranked highest on the clean image, as the original paper does with k = 10 (the cost of a
step is one backward pass per candidate, so k matters for ImageNet models).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from robustjax.attacks.base import check_inputs, check_nonnegative, check_steps, loop


@dataclasses.dataclass(frozen=True)
class DeepFool:
    steps: int = 50
    overshoot: float = 0.02
    candidates: int | None = None
    unroll: bool | None = False

    def __call__(self, f, x, y, key=None):
        check_inputs(f, x, y)
        check_steps(self.steps)
        check_nonnegative(overshoot=self.overshoot)
        n = x.shape[0]
        logits0 = f(x)
        k = logits0.shape[1] if self.candidates is None else min(int(self.candidates), logits0.shape[1])
        # Classes considered per image: the label first, then the other candidates.
        classes = jnp.concatenate([y[:, None], _top_others(logits0, y, k - 1)], axis=1)  # (N, k)

        def selected(v):
            return jnp.take_along_axis(f(v), classes, axis=1)  # (N, k), per image its own classes

        def step(_, state):
            adv, active = state
            logits = f(adv)
            active = active & (jnp.argmax(logits, axis=1) == y)
            fs, vjp = jax.vjp(selected, adv)
            # Jacobian rows: one backward pass per candidate class.
            ws = jax.vmap(lambda e: vjp(jnp.broadcast_to(e, fs.shape))[0])(jnp.eye(k, dtype=fs.dtype))  # (k, N, ...)
            ws = jnp.moveaxis(ws, 0, 1).reshape(n, k, -1)
            f_prime = fs[:, 1:] - fs[:, :1]
            w_prime = ws[:, 1:] - ws[:, :1]
            norms = jnp.linalg.norm(w_prime, axis=2)
            best = jnp.argmin(jnp.abs(f_prime) / norms, axis=1)
            f_hat = jnp.take_along_axis(f_prime, best[:, None], axis=1)[:, 0]
            w_hat = jnp.take_along_axis(w_prime, best[:, None, None], axis=1)[:, 0]
            n_hat = jnp.take_along_axis(norms, best[:, None], axis=1)[:, 0]
            delta = (jnp.abs(f_hat) / n_hat**2)[:, None] * w_hat
            moved = jnp.clip(adv + (1 + self.overshoot) * delta.reshape(adv.shape), 0.0, 1.0)
            return jnp.where(active[:, None, None, None], moved, adv), active

        adv, _ = loop(self.steps, step, (x, jnp.ones((n,), bool)), self.unroll)
        return adv


def _top_others(logits, y, count):
    """Per image, the ``count`` highest-ranked classes other than the label ``(N, count)``."""
    masked = jnp.where(jax.nn.one_hot(y, logits.shape[1], dtype=bool), -jnp.inf, logits)
    order = jnp.argsort(-masked, axis=1)
    return order[:, :count]
