"""DeepFool (Moosavi-Dezfooli et al. 2016), L2, as torchattacks 3.5.1 runs it: per image, step to
the nearest linearised decision boundary with an overshoot of ``overshoot`` on each step, until the
prediction changes or ``steps`` run out (finished images are frozen inside the compiled loop, which
ends once all are; the stopping test is made at the start of a step, so a step is spent detecting
success, as there).

``candidates``: None uses every class (torchattacks); an int k restricts the boundaries to the k
classes ranked highest on the clean image (the label included), as the original paper does with
k = 10. A step costs one forward pass and k backward passes (one per Jacobian row), so k matters
for ImageNet models.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from robustjax.attacks.base import check_inputs, check_nonnegative, check_steps, default_unroll, loop


@dataclasses.dataclass(frozen=True)
class DeepFool:
    steps: int = 50
    overshoot: float = 0.02
    candidates: int | None = None
    # None (default): a while loop that ends once every image is fooled, except on CPU for a
    # model with plain lax/nnx convolutions (unrolled there, xla_cpu.default_unroll) or when
    # ROBUSTJAX_ATTACK_LOOP says otherwise. False: always the while loop. True: all ``steps``
    # unrolled, finished images frozen (same result). With robustjax.layers convolutions (all
    # robustjax models) XLA:CPU runs the while loop as fast per step as the unrolled one and
    # compiles it several times faster (docs/xla_cpu.md).
    unroll: bool | None = None

    def __call__(self, f, x, y, key=None):
        check_inputs(f, x, y)
        check_steps(self.steps)
        check_nonnegative(overshoot=self.overshoot)
        if self.candidates is not None and (isinstance(self.candidates, bool) or not isinstance(self.candidates, int)
                                            or self.candidates < 2):
            raise ValueError(f"candidates must be None (all classes) or an int >= 2, got {self.candidates!r}")
        n = x.shape[0]
        logits0 = f(x)
        num = logits0.shape[1]
        k = num if self.candidates is None else min(self.candidates, num)
        # Classes considered per image: the label first, then the k-1 others ranked highest.
        classes = jnp.concatenate([y[:, None], _top_others(logits0, y, k - 1)], axis=1)  # (N, k)

        def step(_, state):
            adv, active = state
            logits, vjp = jax.vjp(f, adv)
            active = active & (jnp.argmax(logits, axis=1) == y)
            fs = jnp.take_along_axis(logits, classes, axis=1)  # (N, k)
            # Jacobian rows of the candidate logits, one backward pass per candidate.
            cot = jax.nn.one_hot(classes, num, dtype=logits.dtype)  # (N, k, num)
            ws = jax.vmap(lambda c: vjp(c)[0], in_axes=1, out_axes=1)(cot).reshape(n, k, -1)
            f_prime = fs[:, 1:] - fs[:, :1]
            w_prime = ws[:, 1:] - ws[:, :1]
            norms = jnp.linalg.norm(w_prime, axis=2)
            ratio = jnp.where(norms > 0, jnp.abs(f_prime) / jnp.where(norms > 0, norms, 1.0), jnp.inf)
            best = jnp.argmin(ratio, axis=1)
            f_hat = jnp.take_along_axis(f_prime, best[:, None], axis=1)[:, 0]
            w_hat = jnp.take_along_axis(w_prime, best[:, None, None], axis=1)[:, 0]
            n_hat = jnp.take_along_axis(norms, best[:, None], axis=1)[:, 0]
            scale = jnp.where(n_hat > 0, jnp.abs(f_hat) / jnp.where(n_hat > 0, n_hat, 1.0) ** 2, 0.0)
            delta = (scale[:, None] * w_hat).reshape(adv.shape)
            moved = jnp.clip(adv + (1 + self.overshoot) * delta, 0.0, 1.0)
            return jnp.where(active[:, None, None, None], moved, adv), active

        init = (x, jnp.ones((n,), bool))
        if default_unroll(step, init) if self.unroll is None else self.unroll:
            adv, _ = loop(self.steps, step, init, True)
            return adv

        # Rolled: a device-side while loop that ends once every image is fooled (typically after
        # a few steps of the 50); the result equals that of running all steps (finished images are
        # frozen), without the idle steps' k backward passes.
        def more(state):
            i, _, active = state
            return (i < self.steps) & jnp.any(active)

        def body(state):
            i, adv, active = state
            return (i + 1, *step(i, (adv, active)))

        _, adv, _ = jax.lax.while_loop(more, body, (jnp.asarray(0), *init))
        return adv


def _top_others(logits, y, count):
    """Per image, the ``count`` highest-ranked classes other than the label ``(N, count)``."""
    masked = jnp.where(jax.nn.one_hot(y, logits.shape[1], dtype=bool), -jnp.inf, logits)
    return jnp.argsort(-masked, axis=1)[:, :count]
