"""The defense contract: :class:`Defense`, a pure image-to-image function, and composition."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax

DefenseFn = Callable[..., jax.Array]


@dataclasses.dataclass(frozen=True)
class Defense:
    """A pure image-to-image defense ``d(x, key=None)``: float ``(N, H, W, C)`` in [0, 1] -> same.

    ``randomised`` says whether the output depends on ``key`` (EOT only makes sense then).
    """

    spec: str
    fn: DefenseFn
    randomised: bool = False

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        return self.fn(x, key)

    def __repr__(self) -> str:
        return f"Defense({self.spec!r})"


def identity() -> Defense:
    return Defense("none", lambda x, key=None: x)


def compose(defenses: list[Defense], spec: str | None = None) -> Defense:
    """``x -> d_k(...d_1(x))``; each randomised stage gets its own fold of the key."""

    def fn(x, key=None):
        for i, d in enumerate(defenses):
            sub = None if key is None else jax.random.fold_in(key, i)
            x = d(x, sub)
        return x

    return Defense(spec or "+".join(d.spec for d in defenses), fn, any(d.randomised for d in defenses))
