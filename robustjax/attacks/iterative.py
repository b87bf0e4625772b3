"""Budgeted iterative attacks as parts: a start, a step (update, then projection) and the point.

Why: the grid runs an attack's whole loop and scores its final iterate (torchattacks' semantics,
the papers' tables); the adaptive suite runs the *same* parts and only adds "stop this image at its
first fooling step". One loop per attack written twice lets the two drift apart: the suite's copy
once ran an L-inf step for an L2 member.

An iterative attack (:class:`Iterative`: FGSM, BIM/iFGSM, PGD L-inf and L2, MI-FGSM) is a frozen
dataclass with an ``eps`` budget, an int ``steps`` and

- ``check(f, x, y, key)``: input and hyper-parameter checks (ValueError), before any compute;
- ``start(f, x, y, key) -> state``: a tuple whose first entry is the adversarial point ``(N, H, W, C)``
  (the clean images, or a random start inside the ball), the rest the attack's memory (momentum);
- ``update(state, x, grad) -> state``: the move given the cross-entropy gradient ``grad`` of the
  attacker's view at the point, projected onto the ``eps`` ball around ``x`` and the [0, 1] box.

:func:`step` composes them (gradient at the point, then update); :func:`iterate` is the grid's loop,
:func:`advance` the suite's tracked loop; with its early stop turned off, :func:`advance` returns
exactly :func:`iterate`'s final points.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from robustjax.attacks.base import loop, loss_grad, loss_grad_and_logits


@runtime_checkable
class Iterative(Protocol):
    steps: int

    def check(self, f, x, y, key) -> None: ...

    def start(self, f, x, y, key) -> tuple: ...

    def update(self, state: tuple, x, grad) -> tuple: ...


def is_iterative(attack) -> bool:
    """Whether ``attack`` exposes the start / update parts (and so can be a tracked suite member)."""
    return isinstance(attack, Iterative)


def point(state: tuple) -> jax.Array:
    """The adversarial images held in ``state``."""
    return state[0]


def step(attack, f, state: tuple, x, y) -> tuple:
    """One step of ``attack``: the gradient of the view ``f`` at the point, then the attack's update."""
    return attack.update(state, x, loss_grad(f, point(state), y))


def iterate(attack, f, x, y, key=None) -> jax.Array:
    """``attack.steps`` steps from ``attack.start`` in one ``fori_loop`` (no host round trip);
    the final iterate ``(N, H, W, C)``. ``attack.unroll`` picks the loop form (:func:`loop`)."""
    attack.check(f, x, y, key)
    state = attack.start(f, x, y, key)
    state = loop(attack.steps, lambda _, s: step(attack, f, s, x, y), state, getattr(attack, "unroll", None))
    return point(state)


def advance(attack, f, score, x, y, state: tuple, found, pred, i0, stop, early_stop: bool = True,
            shared: bool = False):
    """Steps ``i0 + 1 .. stop`` of ``attack`` on ONE image (``x`` ``(1, H, W, C)``, ``y`` ``(1,)``), in a
    ``lax.while_loop``.

    ``score(images) -> (1,)`` int32 is the defended model's prediction. ``found`` () int32 is the
    first step whose point fooled ``score`` (-1 while none has), ``pred`` () int32 the prediction
    there. With ``early_stop`` the loop ends at the first fooling step and ``state`` keeps that
    point (the suite's best adversarial); without it every step runs and ``state`` is the final
    iterate, as :func:`iterate`. Returns ``(state, found, pred, gradient passes run)``.

    ``shared``: the view ``f`` computes the scored model's logits (a plain view, no ``loss_grad`` of
    its own), so whether a point fools is read from the forward pass of the gradient taken there,
    not from a second forward pass: each call checks the points ``i0 .. stop - 1`` as it takes their
    gradients, and the last point ``stop`` is checked by the next call (whose first gradient is taken
    there) or, when ``stop`` is the attack's last step, by ``score``. Unshared, each step's new point
    is scored (the point ``i0`` was checked before). Both give the same ``found``, ``pred`` and points.
    """
    def cond(c):  # the carry starts (i, state, found, ...) in both forms
        i, _, f_ = c[:3]
        return (i < stop) & ((f_ < 0) if early_stop else True)

    if not shared:
        def body(c):
            i, s, f_, p_ = c
            s = step(attack, f, s, x, y)
            p = score(point(s))[0]
            fooled_now = (p != y[0]) & (f_ < 0)
            found_now = jnp.where(fooled_now, i + 1, f_).astype(jnp.int32)
            return i + 1, s, found_now, jnp.where(fooled_now, p, p_).astype(jnp.int32)

        i, state, found, pred = jax.lax.while_loop(cond, body, (jnp.asarray(i0, jnp.int32), state, found, pred))
        return state, found, pred, i - i0

    if getattr(f, "loss_grad", None) is not None:
        raise ValueError(f"a shared check needs a plain view; {f!r} takes its own gradient")

    def shared_body(c):
        i, s, f_, p_, n = c
        g, logits = loss_grad_and_logits(f, point(s), y)
        p = jnp.argmax(logits, axis=-1)[0].astype(jnp.int32)
        fooled_here = (f_ < 0) & (p != y[0])
        found_now = jnp.where(fooled_here, i, f_).astype(jnp.int32)
        pred_now = jnp.where(fooled_here, p, p_).astype(jnp.int32)
        moved = attack.update(s, x, g)
        if early_stop:  # the fooling point is kept and the loop ends there
            moved = jax.tree.map(lambda a, b: jnp.where(fooled_here, a, b), s, moved)
            return jnp.where(fooled_here, i, i + 1), moved, found_now, pred_now, n + 1
        return i + 1, moved, found_now, pred_now, n + 1

    init = (jnp.asarray(i0, jnp.int32), state, found, pred, jnp.zeros((), jnp.int32))
    _, state, found, pred, n = jax.lax.while_loop(cond, shared_body, init)

    def last(c):  # the attack's final point, which no later gradient checks
        s, f_, p_ = c
        p = score(point(s))[0]
        hit = (f_ < 0) & (p != y[0])
        return jnp.where(hit, stop, f_).astype(jnp.int32), jnp.where(hit, p, p_).astype(jnp.int32)

    found, pred = jax.lax.cond(stop >= attack.steps, last, lambda c: (c[1], c[2]), (state, found, pred))
    return state, found, pred, n
