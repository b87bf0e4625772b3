"""Räber et al. 2025, Table 11: sequential JPEG q25 (N = 1..10 rounds) under iFGSM, through vs BPDA.

Räber et al. 2025 reports the through (white-box) accuracy rising from .29 (N=1) to .98 (N=10) at 4/255
and reads it as JPEG "scaling" with N. The report puts BPDA beside it: if BPDA stays low while
through rises, the N-fold chain of rounding surrogates is masking the gradient (obfuscated
gradients, Athalye et al. 2018), not defending.
"""

from experiments.common import imagenette

ROUNDS = range(1, 11)


def get_config():
    return imagenette(defenses=["jpeg:25:mode=kornia" if n == 1 else f"seq:{n}:jpeg:25:mode=kornia" for n in ROUNDS],
                      eps=[0.0, 4 / 255, 8 / 255, 16 / 255], threats=["through", "bpda"],
                      out="results/raber2025_table11", layout="sequential")
