"""Typed attack specs: ``NAME[:key=value...]`` parsed, and formatted, in one place.

Why: the same spec is read from the command line, config dicts, suite members and stored records;
parsing or formatting it in several places lets them disagree (a value read as a string in one,
a float in another, and cells no longer found on resume).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any


def parse_value(text: str):
    """``"20"`` -> 20, ``"8/255"`` -> 0.0313..., ``"true"`` -> True, ``"l2"`` -> ``"l2"``."""
    try:
        if "/" in text:
            return float(Fraction(text))
        return int(text) if text.lstrip("-").isdigit() else float(text)
    except (ValueError, ZeroDivisionError):
        return {"true": True, "false": False}.get(text.lower(), text)


def format_options(hparams) -> str:
    """``{"steps": 20, "norm": "l2"}`` (or sorted pairs) -> ``":norm=l2:steps=20"`` (sorted keys)."""
    items = sorted(hparams.items()) if isinstance(hparams, dict) else sorted(hparams)
    return "".join(f":{k}={list(v) if isinstance(v, tuple) else v}" for k, v in items)


def _frozen(v):
    return tuple(_frozen(x) for x in v) if isinstance(v, list | tuple) else v


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """An attack name and its hyper-parameters as sorted ``(key, value)`` pairs (lists as tuples)."""

    name: str
    hparams: tuple = ()

    @classmethod
    def parse(cls, text: str) -> AttackSpec:
        """``"pgd:steps=20:norm=l2"`` -> AttackSpec; ValueError for an option without ``=``."""
        name, *opts = str(text).strip().split(":")
        hp = {}
        for o in opts:
            if "=" not in o:
                raise ValueError(f"bad attack option {o!r} in {text!r}: use NAME:key=value")
            k, v = o.split("=", 1)
            hp[k] = parse_value(v)
        return cls.of(name, hp)

    @classmethod
    def of(cls, name: str, hparams: dict | None = None) -> AttackSpec:
        return cls(str(name), tuple(sorted((k, _frozen(v)) for k, v in (hparams or {}).items())))

    @classmethod
    def from_entry(cls, entry) -> AttackSpec:
        """A config ``attacks`` entry: a spec string or a dict ``{"name": ..., **hparams}``."""
        if isinstance(entry, AttackSpec):
            return entry
        if isinstance(entry, str):
            return cls.parse(entry)
        d = dict(entry.to_dict() if hasattr(entry, "to_dict") else entry)
        if "name" not in d:
            raise ValueError(f"attack entry {d} has no 'name'")
        return cls.of(d.pop("name"), d)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.hparams)

    @property
    def norm(self) -> str:
        """The budget's norm: the ``norm`` hyper-parameter, L-inf when the attack takes none."""
        return str(self.kwargs.get("norm", "linf"))

    def settings(self) -> dict:
        """The hyper-parameters as stored in a record's settings (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.hparams}

    def entry(self):
        """The config-file form: the name alone, or ``{"name": ..., **hparams}``."""
        return self.name if not self.hparams else {"name": self.name, **self.settings()}

    def __str__(self) -> str:
        return self.name + format_options(self.hparams)
