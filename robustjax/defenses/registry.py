"""Defense spec strings -> defense functions.

Grammar (also in the README)::

    spec   := part ("+" part)*              composition, applied left to right
    part   := "none" | "seq:" N ":" part | NAME (":" arg)*
    arg    := VALUE | KEY "=" VALUE          positional or keyword option

Examples: ``none``, ``jpeg:25``, ``jpeg:25:rounding=ste``, ``seq:7:jpeg:25``, ``jpeg:50+jpeg:25``.
Each family registers a factory with ``@register("name", usage="name:Q ...")``.
"""

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


_FACTORIES: dict[str, tuple[Callable[..., Defense], str]] = {}


def register(name: str, usage: str):
    """Register ``factory(*positional: str, **options: str) -> Defense`` under ``name``."""

    def wrap(factory):
        _FACTORIES[name] = (factory, usage)
        return factory

    return wrap


def valid_forms() -> list[str]:
    return ["none", "seq:N:<spec>", "<spec>+<spec>"] + [usage for _, usage in _FACTORIES.values()]


class UnknownDefenseError(ValueError):
    pass


def _error(spec: str, why: str) -> UnknownDefenseError:
    return UnknownDefenseError(f"bad defense spec {spec!r}: {why}. Valid forms: " + ", ".join(valid_forms()))


def get(spec: str) -> Defense:
    """Build the defense named by ``spec`` (see the module docstring for the grammar)."""
    if isinstance(spec, Defense):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise _error(str(spec), "expected a non-empty string")
    spec = spec.strip()
    if "+" in spec:
        parts = [get(p) for p in spec.split("+")]
        return compose(parts, spec)
    if spec == "none":
        return Defense("none", lambda x, key=None: x)
    head, _, rest = spec.partition(":")
    if head == "seq":
        count, _, inner = rest.partition(":")
        if not count.isdigit() or int(count) < 1 or not inner:
            raise _error(spec, "expected seq:N:<spec> with N >= 1")
        from robustjax.defenses.sequential import sequential

        return sequential(get(inner), int(count))
    if head not in _FACTORIES:
        raise _error(spec, f"unknown defense {head!r}")
    positional, options = [], {}
    for arg in rest.split(":") if rest else []:
        if "=" in arg:
            k, v = arg.split("=", 1)
            options[k] = v
        else:
            positional.append(arg)
    factory, usage = _FACTORIES[head]
    try:
        defense = factory(*positional, **options)
    except (TypeError, ValueError) as e:
        raise _error(spec, f"{e} (usage: {usage})") from e
    return dataclasses.replace(defense, spec=spec)


def compose(defenses: list[Defense], spec: str | None = None) -> Defense:
    """``x -> d_k(...d_1(x))``; each randomised stage gets its own fold of the key."""

    def fn(x, key=None):
        for i, d in enumerate(defenses):
            sub = None if key is None else jax.random.fold_in(key, i)
            x = d(x, sub)
        return x

    return Defense(spec or "+".join(d.spec for d in defenses), fn, any(d.randomised for d in defenses))
