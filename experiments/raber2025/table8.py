"""Räber et al. 2025, Table 8: ELIC quality ablation (0004 .. 0450) under iFGSM, oblivious vs through.

Needs the published ELIC checkpoints in $ROBUSTJAX_WEIGHTS/elic/ (not available offline; see
``robustjax.defenses.elic``) and the ImageNet weights of ResNet-50 / ViT-B/16. Size policy as the
paper: 224 -> 256 -> ELIC -> 224 (``elic:Q``). The paper's header says "l_2 norm value" but the
budgets 2, 4, 8, 12 are the L-inf eps /255 of its iFGSM runs; they are L-inf here.
"""

from experiments.common import imagenette

QUALITIES = ("0004", "0008", "0016", "0032", "0150", "0450")


def get_config():
    return imagenette(models=["resnet50", "vit_b16"], defenses=[f"elic:{q}" for q in QUALITIES],
                      eps=[0.0, 2 / 255, 4 / 255, 8 / 255, 12 / 255], threats=["oblivious", "through"], batch_size=16,
                      out="results/raber2025")
