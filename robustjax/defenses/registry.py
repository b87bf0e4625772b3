"""Defense spec strings -> defense functions.

Grammar (also in the README)::

    spec   := part ("+" part)*              composition, applied left to right
    part   := "none" | "seq:" N ":" part | NAME (":" arg)*
    arg    := VALUE | KEY "=" VALUE          positional or keyword option

Examples: ``none``, ``jpeg:25``, ``jpeg:25:rounding=ste``, ``seq:7:jpeg:25``, ``jpeg:50+jpeg:25``.
Each codec registers a factory ``factory(*positional: str, **options: str) -> Defense`` with
``@register("name", usage="name:Q ...")`` in :data:`FAMILIES`.
"""

from __future__ import annotations

import dataclasses

from robustjax.defenses.base import Defense, compose, identity
from robustjax.defenses.sequential import sequential
from robustjax.registry import Registry

FAMILIES = Registry("defense")


def register(name: str, usage: str, **traits):
    """Decorator: register ``factory(*positional: str, **options: str) -> Defense`` under ``name``."""
    return FAMILIES.register(name, usage=usage, **traits)


def valid_forms() -> list[str]:
    return ["none", "seq:N:<spec>", "<spec>+<spec>"] + FAMILIES.usages()


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
    return dataclasses.replace(defense, spec=spec)
