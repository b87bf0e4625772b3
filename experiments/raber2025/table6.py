"""Räber et al. 2025, Table 6: JPEG quality ablation (q 5..95) under iFGSM, oblivious vs through.

The paper's header says "l_2 norm value" but the budgets 2, 4, 8, 12 are the L-inf eps /255 of its
iFGSM runs; they are L-inf here.
"""

from experiments.common import imagenette

QUALITIES = (5, 10, 15, 25, 35, 50, 75, 95)


def get_config():
    return imagenette(defenses=[f"jpeg:{q}:mode=kornia" for q in QUALITIES],
                      eps=[0.0, 2 / 255, 4 / 255, 8 / 255, 12 / 255],
                      threats=["oblivious", "through"], out="results/raber2025")
