"""Attacks written natively in JAX, called as ``x_adv = attack(f, x, y, key=key)``.

``get(name, **hparams)`` builds one from its command-line name: ``fgsm``, ``ifgsm``/``bim``,
``pgd`` (``norm="linf"|"l2"``), ``mifgsm``, ``cw``, ``deepfool``, and AutoAttack's ``apgd-ce``,
``apgd-dlr``, ``apgd-t`` and ``square`` (Croce & Hein 2020; Andriushchenko et al. 2020). Defaults
follow torchattacks 3.5.1 and seed 000's Table 3 (step size ``alpha = eps / 4``, 10 steps; CW c=1, kappa=0, 50 steps,
lr 0.01; DeepFool 50 steps, overshoot 0.02). Threat models: :mod:`robustjax.attacks.threat`.
"""

import dataclasses
import functools

from robustjax.attacks.apgd import APGD, APGDT, APGDResult
from robustjax.attacks.bim import BIM
from robustjax.attacks.cw import CW
from robustjax.attacks.deepfool import DeepFool
from robustjax.attacks.evaluate import l2_bounded_accuracy, min_norm_accuracy, robust_accuracy
from robustjax.attacks.fgsm import FGSM
from robustjax.attacks.mifgsm import MIFGSM
from robustjax.attacks.pgd import PGD
from robustjax.attacks.square import Square, SquareResult
from robustjax.attacks.threat import THREATS, EOTView, View, attacker_view, bpda

REGISTRY = {"fgsm": FGSM, "ifgsm": BIM, "bim": BIM, "pgd": PGD, "mifgsm": MIFGSM, "cw": CW, "deepfool": DeepFool,
            "apgd-ce": APGD, "apgd-dlr": functools.partial(APGD, loss="dlr"), "apgd-t": APGDT, "square": Square}
# Attacks that search for a minimum-norm perturbation and have no eps budget.
MINIMUM_NORM = ("cw", "deepfool")


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str, **hparams):
    """The attack ``name`` with ``hparams`` (unknown names or hyper-parameters raise ValueError)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown attack {name!r}; valid: {', '.join(names())}")
    cls = REGISTRY[name]
    if name in MINIMUM_NORM:
        hparams.pop("eps", None)  # scored by l2_bounded_accuracy instead of a budget
    try:
        return cls(**hparams)
    except TypeError as e:
        fields = [f.name for f in dataclasses.fields(getattr(cls, "func", cls))]
        raise ValueError(f"bad hyper-parameters for {name}: {e}; valid: {', '.join(fields)}") from None


__all__ = ["APGD", "APGDResult", "APGDT", "BIM", "CW", "DeepFool", "EOTView", "FGSM", "MIFGSM", "PGD", "THREATS",
           "Square", "SquareResult", "View", "attacker_view", "bpda", "get", "l2_bounded_accuracy", "min_norm_accuracy",
           "names", "robust_accuracy"]
