"""Räber et al. 2025, Table 9: sequential ELIC 0016 (N rounds, gradient through all of them) under iFGSM.

The paper stopped at N = 7 "because of the large amount of gradient information"; the rounds here
run in one lax.scan under jax.checkpoint (``seq:N:elic:0016``), so N = 10, 20, 50 fit in memory
(see experiments/benchmarks/elic_sequential_memory.py). BPDA is reported beside "through": a
through-accuracy that rises with N while BPDA stays low points at masked gradients, not defense.
Needs the published ELIC 0016 checkpoint in $ROBUSTJAX_WEIGHTS/elic/ and ResNet-50 weights.
"""

from experiments.common import imagenette

ROUNDS = (1, 2, 3, 4, 5, 6, 7, 10, 20, 50)


def get_config():
    return imagenette(models=["resnet50"], defenses=["elic:0016" if n == 1 else f"seq:{n}:elic:0016" for n in ROUNDS],
                      eps=[0.0, 4 / 255, 8 / 255, 16 / 255], threats=["through", "bpda"], batch_size=8,
                      out="results/raber2025_table9", layout="sequential")
