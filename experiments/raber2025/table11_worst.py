"""Räber et al. 2025, Table 11 with the per-image worst case: sequential JPEG q25 at N = 1, 4, 8
rounds, iFGSM-10 at 4/255 and 8/255, through and BPDA (final iterate, as the paper) beside the
adaptive suite (the same iFGSM with BPDA, then through, best adversarial per image), 200 Imagenette
images. The report adds the worst case over all of them, 95% intervals and the gradient-masking
checks. ``--n`` reduces the image count (label any figure with it).

BPDA goes first in the suite: its backward pass is the identity, so a pass costs less than one
through N rounds of the surrogate, and from N = 4 on it breaks far more images than the masked
through attack, which then sees only the survivors. The order never changes which images fall
(an image counts as broken if any member broke it), only what the suite spends.
"""

from experiments.common import imagenette

ROUNDS = (1, 4, 8)


def get_config():
    return imagenette(defenses=["jpeg:25:mode=kornia" if n == 1 else f"seq:{n}:jpeg:25:mode=kornia" for n in ROUNDS],
                      attacks=["ifgsm", {"name": "adaptive", "members": ["ifgsm@bpda", "ifgsm@through"]}],
                      eps=[0.0, 4 / 255, 8 / 255], threats=["through", "bpda"], n=200,
                      out="results/raber2025_table11_worst", layout="sequential")
