"""The experiment runner: ``python -m robustjax.eval`` (see :mod:`robustjax.eval.cli`).

Modules: ``config`` (experiment files + overrides), ``runner`` (the grid: one compiled program per
cell, eps vmapped, sharded over devices), ``store`` (append-only JSON-lines results), ``report``
(tables + plots); threat models come from ``robustjax.attacks.threat``, ``mesh`` (devices, multi-host).
"""

from robustjax.eval.cli import main

__all__ = ["main"]
