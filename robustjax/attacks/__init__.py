"""Attacks written natively in JAX, called as ``x_adv = attack(f, x, y, key=key)``.

``get(name, **hparams)`` builds one from its command-line name (:data:`REGISTRY`): ``fgsm``,
``ifgsm``/``bim``, ``pgd`` (``norm="linf"|"l2"``), ``mifgsm``, ``cw``, ``deepfool``, and AutoAttack's
``apgd-ce``, ``apgd-dlr``, ``apgd-t``, ``fab``, ``fab-t`` and ``square`` (Croce & Hein 2020; Andriushchenko et al.
2020). Defaults follow torchattacks 3.5.1 and Räber et al. 2025's Table 3 (step size ``alpha = eps / 4``, 10
steps; CW c=1, kappa=0, 50 steps, lr 0.01; DeepFool 50 steps, overshoot 0.02). Minimum-norm attacks carry the trait
``minimum_norm`` (no eps budget; scored at L2 bounds); FAB searches a minimum norm too but applies its own eps
budget, in its own norm (traits ``searches_minimum_norm`` and ``budget_norm``, see below). Threat models:
:mod:`robustjax.attacks.threat`.
"""

from robustjax.attacks.apgd import APGD, APGDT, APGDResult
from robustjax.attacks.bim import BIM
from robustjax.attacks.cw import CW
from robustjax.attacks.deepfool import DeepFool
from robustjax.attacks.evaluate import l2_bounded_accuracy, min_norm_accuracy, robust_accuracy
from robustjax.attacks.fab import FAB, FABResult
from robustjax.attacks.fgsm import FGSM
from robustjax.attacks.mifgsm import MIFGSM
from robustjax.attacks.pgd import PGD
from robustjax.attacks.registry import REGISTRY, get, is_minimum_norm, names
from robustjax.attacks.square import Square, SquareResult
from robustjax.attacks.threat import THREATS, EOTView, View, attacker_view, bpda

__all__ = ["APGD", "APGDResult", "APGDT", "FAB", "FABResult", "Square", "SquareResult", "BIM", "CW", "DeepFool",
           "EOTView", "FGSM", "MIFGSM", "PGD", "REGISTRY", "THREATS", "View", "attacker_view", "bpda",
           "get", "is_minimum_norm", "l2_bounded_accuracy", "min_norm_accuracy", "names", "robust_accuracy"]
