"""The attack registry: command-line names -> attack classes, with usage lines and traits.

Defaults follow torchattacks 3.5.1 and Räber et al. 2025's Table 3 (step size ``alpha = eps / 4``,
10 steps; CW c=1, kappa=0, 50 steps, lr 0.01; DeepFool 50 steps, overshoot 0.02). Minimum-norm
attacks carry the trait ``minimum_norm`` (no eps budget; scored at L2 bounds).
"""

import dataclasses
import functools

from robustjax.attacks.apgd import APGD, APGDT
from robustjax.attacks.bim import BIM
from robustjax.attacks.cw import CW
from robustjax.attacks.deepfool import DeepFool
from robustjax.attacks.fgsm import FGSM
from robustjax.attacks.mifgsm import MIFGSM
from robustjax.attacks.pgd import PGD
from robustjax.attacks.square import Square
from robustjax.registry import Registry

REGISTRY = Registry("attack")
REGISTRY.register("fgsm", FGSM, usage="fgsm: one signed-gradient step of size eps (Goodfellow et al. 2015)")
REGISTRY.register("ifgsm", BIM, usage="ifgsm[:steps=10][:alpha=eps/4]: iterated FGSM (Kurakin et al. 2017)")
REGISTRY.register("bim", BIM, usage="bim: the same attack as ifgsm")
REGISTRY.register("pgd", PGD, usage="pgd[:steps=10][:alpha=eps/4][:norm=linf|l2]: iFGSM from a random start "
                  "(Madry et al. 2018)")
REGISTRY.register("mifgsm", MIFGSM, usage="mifgsm[:steps=10][:decay=1.0]: momentum iFGSM (Dong et al. 2018)")
REGISTRY.register("cw", CW, usage="cw[:c=1][:kappa=0][:steps=50][:lr=0.01]: minimum-norm L2 (Carlini & Wagner 2017)",
                  minimum_norm=True)
REGISTRY.register("deepfool", DeepFool, usage="deepfool[:steps=50][:overshoot=0.02]: minimum-norm L2 "
                  "(Moosavi-Dezfooli et al. 2016)", minimum_norm=True)
REGISTRY.register("apgd-ce", APGD, usage="apgd-ce[:steps=100][:norm=linf|l2][:restarts=1][:rho=0.75]: "
                  "step-size-free PGD, cross-entropy (Croce & Hein 2020)")
REGISTRY.register("apgd-dlr", functools.partial(APGD, loss="dlr"), usage="apgd-dlr[:steps=100]: APGD on the DLR loss "
                  "(Croce & Hein 2020)")
REGISTRY.register("apgd-t", APGDT, usage="apgd-t[:steps=100][:targets=9]: targeted APGD on the DLR loss "
                  "(Croce & Hein 2020)")
REGISTRY.register("square", Square, usage="square[:queries=5000][:p_init=0.8][:norm=linf|l2]: "
                  "gradient-free random search (Andriushchenko et al. 2020)")


def names() -> list[str]:
    return REGISTRY.names()


def is_minimum_norm(name: str) -> bool:
    """Whether ``name`` searches for a minimum-norm perturbation (no eps budget; scored at L2 bounds)."""
    return bool(REGISTRY.trait(name, "minimum_norm", False))


def get(name: str, **hparams):
    """The attack ``name`` with ``hparams`` (unknown names or hyper-parameters raise ValueError)."""
    cls = REGISTRY.get(name)
    if is_minimum_norm(name):
        hparams.pop("eps", None)  # scored by l2_bounded_accuracy instead of a budget
    try:
        return cls(**hparams)
    except TypeError as e:
        fields = [f.name for f in dataclasses.fields(getattr(cls, "func", cls))]
        raise ValueError(f"bad hyper-parameters for {name}: {e}; valid: {', '.join(fields)}") from None


