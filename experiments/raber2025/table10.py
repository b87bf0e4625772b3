"""Räber et al. 2025, Table 10: sequential HiFiC (N rounds, gradient through all of them) under iFGSM.

The paper reports N = 1..7 for ResNet-50; its clean accuracy (0.995 at N = 1) matches Table 7's
HiFiC ``med`` row (low gives 0.976, hi 0.992), so ``med`` is the variant here (switch VARIANT to
check the others). The rounds run in one lax.scan under jax.checkpoint (``seq:N:hific:med``), so
N = 10 and 20 fit in memory too (experiments/benchmarks/hific_sequential_memory.py). BPDA is
reported beside "through": a through-accuracy that rises with N while BPDA stays low points at
masked gradients, not defense. Needs $ROBUSTJAX_WEIGHTS/hific/hific_med.pt and ResNet-50 weights.
"""

from experiments.common import imagenette

VARIANT = "med"
ROUNDS = (1, 2, 3, 4, 5, 6, 7, 10, 20)


def get_config():
    return imagenette(models=["resnet50"],
                      defenses=[f"hific:{VARIANT}" if n == 1 else f"seq:{n}:hific:{VARIANT}" for n in ROUNDS],
                      eps=[0.0, 4 / 255, 8 / 255, 16 / 255], threats=["through", "bpda"], batch_size=4,
                      out="results/raber2025_table10", layout="sequential")
