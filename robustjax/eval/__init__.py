"""The experiment runner: ``python -m robustjax.eval`` (see :mod:`robustjax.eval.cli`).

Modules, in the order a run uses them: ``config`` (experiment files + overrides), ``plan`` (the
config resolved once: jobs, suite members, built defenses), ``runner`` (plan -> executor -> store),
``context`` (what an executor gets), ``grid`` and ``suite`` (the two executors: final iterate with
the eps grid vmapped; the adaptive suite and AutoAttack's versions, ``autoattack``), ``program``
(the per-image program bodies), ``records`` (the one record constructor), ``store`` (append-only
JSON-lines results), ``outcomes`` (per-image outcomes: :func:`load_outcomes`), ``adversarials``
(stored adversarial examples: :func:`load_adversarials`), ``gallery`` (their static page), ``partial``
(per-batch progress inside a cell), ``mesh`` (devices, multi-host), ``report`` (tables, plots,
worst case, checks), ``catalogue`` (every valid name); threat models come from
``robustjax.attacks.threat``, keys from ``robustjax.keys``.
"""

from robustjax.eval.adversarials import load_adversarials
from robustjax.eval.cli import main
from robustjax.eval.outcomes import load_outcomes

__all__ = ["load_adversarials", "load_outcomes", "main"]
