"""Plugins: modules from outside the package that register classifiers, defenses and datasets.

A plugin is an importable module whose import calls :func:`robustjax.models.register`,
:func:`robustjax.defenses.register` and/or :func:`robustjax.data.register`. The command line
imports the modules named by ``--plugin`` (or a config's ``plugins``) and every installed
distribution's entry point in the :data:`GROUP` group before it validates any name, so a
plugin's names are valid exactly like the built-in ones and a misspelt name still fails before
compute. An entry point names a module (imported) or a function (imported, then called with no
arguments). Why entry points too: a pip-installed plugin is then available without a flag.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable

GROUP = "robustjax.plugins"


class PluginError(ImportError):
    """A plugin that could not be imported or failed while registering; the message names it."""


def import_modules(modules: Iterable[str]) -> list[str]:
    """Import each dotted module path (a module already imported is not run again); their names, in order.

    Raises :class:`PluginError` naming the module and the cause."""
    done = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # a plugin's own bug (ValueError from register, SyntaxError...) is named too
            raise PluginError(f"plugin {name!r} could not be imported: {type(e).__name__}: {e}") from e
        done.append(name)
    return done


def load_entry_points(group: str = GROUP) -> list[str]:
    """Load every installed entry point of ``group``: a module is imported, a function called.

    Returns the entry points' ``name = value`` strings; :class:`PluginError` naming the one that failed."""
    done = []
    for ep in importlib.metadata.entry_points(group=group):
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except Exception as e:
            raise PluginError(f"plugin entry point {ep.name} = {ep.value} ({group}) failed: "
                              f"{type(e).__name__}: {e}") from e
        done.append(f"{ep.name} = {ep.value}")
    return done


def load(modules: Iterable[str] = (), entry_points: bool = True) -> list[str]:
    """The installed entry points (when ``entry_points``), then ``modules``: what was loaded."""
    return (load_entry_points() if entry_points else []) + import_modules(modules)
