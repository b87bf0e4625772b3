"""Defense spec strings -> defense functions.

Grammar (also in the README)::

    spec   := part ("+" part)*              composition, applied left to right
    part   := "none" | "seq:" N ":" part | NAME (":" arg)*
    arg    := VALUE | KEY "=" VALUE          positional or keyword option

Examples: ``none``, ``jpeg:25``, ``jpeg:25:rounding=ste``, ``seq:7:jpeg:25``, ``jpeg:50+jpeg:25``.
Each codec registers a factory ``factory(*positional: str, **options: str) -> Defense`` with
``@register("name", usage="name:Q ...: what it is")`` in :data:`FAMILIES`; a plugin registers a
fixed pure function with ``register("name", d, usage=..., randomised=...)``. A registered name
composes like the built-ins (``seq:3:name``, ``name+jpeg:50``).
"""

from __future__ import annotations

import dataclasses

from robustjax.defenses.base import Defense, compose, identity
from robustjax.defenses.sequential import sequential
from robustjax.registry import Registry, check_plain_name

FAMILIES = Registry("defense")
GRAMMAR = ("none: no defense",
           "seq:N:<spec>: N rounds of the inner spec, the gradient through all of them in bounded memory",
           "<spec>+<spec>: composition, applied left to right")


def register(name: str, defense=None, *, usage: str = "", randomised: bool = False, **traits):
    """Add the defense family ``name``, in one of two forms.

    ``register(name, d, usage=..., randomised=False)``: a fixed defense, ``d`` a pure function
    ``d(x, key=None)`` of float ``(N, H, W, C)`` images in [0, 1] returning the same shape (or a
    :class:`Defense`); ``randomised`` says its output depends on ``key`` (EOT averages over it). The
    spec is the bare name. ``@register(name, usage=...)`` over ``factory(*positional: str,
    **options: str) -> Defense`` (or a plain function, made a Defense with ``randomised``): the spec
    ``name:a:k=v`` calls ``factory("a", k="v")``. ``usage`` is the line ``list`` prints
    (``"name[:k=..]: what it is"``). ValueError for a name that is not plain, is part of the
    grammar (``none``, ``seq``) or is registered already as another defense.
    """
    check_plain_name("defense", name)
    if name in ("none", "seq"):
        raise ValueError(f"defense name {name!r} is part of the spec grammar")
    usage = usage or f"{name}: a plugin's defense"
    if defense is None:
        return FAMILIES.register(name, usage=usage, **({"randomised": True} if randomised else {}), **traits)
    fixed = defense if isinstance(defense, Defense) else Defense(name, defense, randomised)
    FAMILIES.register(name, _Fixed(fixed), usage=usage, randomised=fixed.randomised, **traits)
    return defense


@dataclasses.dataclass(frozen=True)
class _Fixed:
    """The factory of a fixed defense: no options."""

    defense: Defense

    def __call__(self, *positional: str, **options: str) -> Defense:
        if positional or options:
            raise ValueError(f"defense {self.defense.spec!r} takes no options, got {[*positional, *options]}")
        return self.defense


def valid_forms() -> list[str]:
    """The spec forms (grammar, then one per family), as error messages list them."""
    return [u.split(": ", 1)[0] for u in usages()]


def usages() -> list[str]:
    """One ``form: what`` line per spec form (``list`` and the README's catalogue)."""
    return list(GRAMMAR) + FAMILIES.usages()


class UnknownDefenseError(ValueError):
    pass


def _error(spec: str, why: str) -> UnknownDefenseError:
    return UnknownDefenseError(f"bad defense spec {spec!r}: {why}. Valid forms: " + ", ".join(valid_forms()))


def get(spec: str) -> Defense:
    """Build the defense named by ``spec`` (see the module docstring for the grammar).

    Raises :class:`UnknownDefenseError` (a ``ValueError``) naming the spec, the reason and the valid forms.
    """
    if isinstance(spec, Defense):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise _error(str(spec), "expected a non-empty string")
    spec = spec.strip()
    if "+" in spec:
        return compose([get(p) for p in spec.split("+")], spec)
    if spec == "none":
        return identity()
    head, _, rest = spec.partition(":")
    if head == "seq":
        count, _, inner = rest.partition(":")
        if not count.isdigit() or int(count) < 1 or not inner:
            raise _error(spec, "expected seq:N:<spec> with N >= 1")
        return sequential(get(inner), int(count))
    if head not in FAMILIES:
        raise _error(spec, f"unknown defense {head!r}")
    positional, options = [], {}
    for arg in rest.split(":") if rest else []:
        if "=" in arg:
            k, v = arg.split("=", 1)
            options[k] = v
        else:
            positional.append(arg)
    entry = FAMILIES.entry(head)
    try:
        defense = entry.obj(*positional, **options)
    except (TypeError, ValueError) as e:
        raise _error(spec, f"{e} (usage: {entry.usage})") from e
    if not isinstance(defense, Defense):  # a plugin factory returning a plain function
        defense = Defense(spec, defense, bool(entry.traits.get("randomised", False)))
    return dataclasses.replace(defense, spec=spec)
