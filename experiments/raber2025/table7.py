"""Räber et al. 2025, Table 7: HiFiC quality ablation (low, med, hi) under iFGSM, oblivious vs through.

Needs the published HiFiC checkpoints in $ROBUSTJAX_WEIGHTS/hific/hific_{low,med,hi}.pt (not
available offline; see ``robustjax.defenses.hific`` and the README) and the ImageNet weights of
ResNet-50 / ViT-B/16. HiFiC takes 224x224 directly (reflect-padded to a multiple of 16 inside, so no
resize). The paper's header says "l_2 norm value" but the budgets 2, 4, 8, 12 are the L-inf eps /255
of its iFGSM runs; they are L-inf here (as Table 8, ``raber2025/table8.py``).
"""

from experiments.common import imagenette

VARIANTS = ("low", "med", "hi")


def get_config():
    return imagenette(models=["resnet50", "vit_b16"], defenses=[f"hific:{v}" for v in VARIANTS],
                      eps=[0.0, 2 / 255, 4 / 255, 8 / 255, 12 / 255], threats=["oblivious", "through"], batch_size=8,
                      out="results/raber2025_table7")
