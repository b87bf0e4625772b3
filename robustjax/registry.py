"""One registry pattern for every named family: defenses, attacks, models and checkpoint families.

An entry is a name, the object it stands for (a factory, a class, a model entry, a checkpoint
family), a one-line usage and free-form traits (``minimum_norm=True`` for an attack with no eps
budget, ...). The command line, configs and the README's catalogue all read the same entries, so
a name is valid in one place exactly when it is valid everywhere.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any

PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_plain_name(kind: str, name: str) -> None:
    """ValueError unless ``name`` is letters, digits, ``_``, ``.`` and ``-`` (starting with a letter or
    digit): the names a plugin may register, since ``,`` separates names on the command line and
    ``:``/``+`` build specs (``jpeg:25+seq:2:NAME``)."""
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
        raise ValueError(f"{kind} name {name!r} must be letters, digits, '_', '.' and '-' (no ':', '+', ',' or spaces)")


class UnknownNameError(ValueError):
    """A name that no entry of the registry carries; the message lists the valid names."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """``obj`` is what the name stands for; ``usage`` the one line a user reads; ``traits`` flags."""

    name: str
    obj: Any
    usage: str = ""
    traits: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class Registry:
    """Names -> :class:`Entry` for one ``kind`` of thing (used in error messages: "unknown attack").

    ``register(name, obj, usage=..., **traits)`` adds an entry (also usable as a decorator when
    ``obj`` is omitted); registering a name twice with a different object raises ``ValueError``.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, obj: Any = None, *, usage: str = "", **traits):
        if obj is None:
            return lambda o: self.register(name, o, usage=usage, **traits)
        old = self._entries.get(name)
        if old is not None and old.obj != obj:
            raise ValueError(f"{self.kind} {name!r} is registered already (as {old.obj!r})")
        self._entries[name] = Entry(name, obj, usage or name, dict(traits))
        return obj

    def unregister(self, name: str) -> None:
        """Forget ``name`` (``UnknownNameError`` when absent): a plugin's names, once a test or a
        session trying it is done with them."""
        self.entry(name)
        del self._entries[name]

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")
        return self._entries[name]

    def get(self, name: str) -> Any:
        """The object registered under ``name`` (``UnknownNameError`` listing the valid names)."""
        return self.entry(name).obj

    def names(self, **traits) -> list[str]:
        """Sorted names, only those whose traits equal every given ``trait=value``."""
        return sorted(n for n, e in self._entries.items() if all(e.traits.get(k) == v for k, v in traits.items()))

    def trait(self, name: str, trait: str, default: Any = None) -> Any:
        return self.entry(name).traits.get(trait, default)

    def usages(self) -> list[str]:
        return [self._entries[n].usage for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
