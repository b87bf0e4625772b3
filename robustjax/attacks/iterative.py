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
- ``step(f, state, x, y) -> state``: one gradient step of the attacker's view ``f``, projected onto
  the ``eps`` ball around ``x`` and the [0, 1] box.

:func:`iterate` is the grid's loop, :func:`advance` the suite's tracked loop; with its early stop
turned off, :func:`advance` returns exactly :func:`iterate`'s final points.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from robustjax.attacks.base import loop


@runtime_checkable
class Iterative(Protocol):
    steps: int

    def check(self, f, x, y, key) -> None: ...

    def start(self, f, x, y, key) -> tuple: ...

    def step(self, f, state: tuple, x, y) -> tuple: ...


def is_iterative(attack) -> bool:
    """Whether ``attack`` exposes the start / step parts (and so can be a tracked suite member)."""
    return isinstance(attack, Iterative)


def point(state: tuple) -> jax.Array:
    """The adversarial images held in ``state``."""
    return state[0]


def iterate(attack, f, x, y, key=None) -> jax.Array:
    """``attack.steps`` steps from ``attack.start`` in one ``fori_loop`` (no host round trip);
    the final iterate ``(N, H, W, C)``. ``attack.unroll`` picks the loop form (:func:`loop`)."""
    attack.check(f, x, y, key)
    state = attack.start(f, x, y, key)
    state = loop(attack.steps, lambda _, s: attack.step(f, s, x, y), state, getattr(attack, "unroll", None))
    return point(state)


def advance(attack, f, score, x, y, state: tuple, found, pred, i0, stop, early_stop: bool = True):
    """Steps ``i0 + 1 .. stop`` of ``attack`` on ONE image (``x`` ``(1, H, W, C)``, ``y`` ``(1,)``), in a
    ``lax.while_loop``.

    ``score(images) -> (1,)`` int32 is the defended model's prediction. ``found`` () int32 is the
    first step whose point fooled ``score`` (-1 while none has), ``pred`` () int32 the prediction
    there. With ``early_stop`` the loop ends at the first fooling step and ``state`` keeps that
    point (the suite's best adversarial); without it every step runs and ``state`` is the final
    iterate, as :func:`iterate`. Returns ``(state, found, pred, steps run)``.
    """

    def cond(c):
        i, _, f_, _ = c
        return (i < stop) & ((f_ < 0) if early_stop else True)

    def body(c):
        i, s, f_, p_ = c
        s = attack.step(f, s, x, y)
        p = score(point(s))[0]
        fooled_now = (p != y[0]) & (f_ < 0)
        found_now = jnp.where(fooled_now, i + 1, f_).astype(jnp.int32)
        return i + 1, s, found_now, jnp.where(fooled_now, p, p_).astype(jnp.int32)

    i, state, found, pred = jax.lax.while_loop(cond, body, (jnp.asarray(i0, jnp.int32), state, found, pred))
    return state, found, pred, i - i0
