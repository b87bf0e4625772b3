"""The experiment runner: ``python -m robustjax.eval`` (see :mod:`robustjax.eval.cli`).

Modules: ``config`` (experiment files + overrides), ``runner`` (the grid: one compiled program per
cell, eps vmapped, sharded over devices), ``store`` (append-only JSON-lines results), ``report``
(tables + plots), ``outcomes`` (per-image outcomes: :func:`load_outcomes`), ``adversarials``
(stored adversarial examples: :func:`load_adversarials`), ``gallery`` (their static page), ``partial``
(per-batch progress inside a cell), ``mesh`` (devices, multi-host); threat models come from
``robustjax.attacks.threat``.
"""

from robustjax.eval.adversarials import load_adversarials
from robustjax.eval.cli import main
from robustjax.eval.outcomes import load_outcomes

__all__ = ["load_adversarials", "load_outcomes", "main"]
