"""Seed 003 (ComDefend), Table 5, DeepFool and C&W columns (see ``seed003_table5.py``).

Both attacks are minimum-norm (L2): the runner scores them as robust accuracy at L2 bounds, an
attack that needs a larger perturbation than the bound counting as failed. The paper quotes them
"at L-inf 2/8/16"; the bounds here are the L2 radii of those L-inf balls on 32x32x3 images,
eps * sqrt(3072) = 0.43, 1.74, 3.48, so an image counted as broken here may need a larger L-inf
perturbation than the paper allowed (a stricter test of the defense).

    python -m robustjax.eval --config experiments/seed003_table5_minnorm.py --n 1000
"""

import math

import ml_collections

L2_OF_LINF = [e / 255 * math.sqrt(32 * 32 * 3) for e in (2, 8, 16)]


def get_config():
    return ml_collections.ConfigDict(
        {
            "name": "seed003_table5_minnorm",
            "dataset": "cifar10_jpeg",
            "data_dir": None,
            "n": None,
            "seed": 0,
            "models": ["cifar_resnet56"],
            "defenses": ["none", "comdefend:sigma=0", "jpeg:75"],
            "attacks": ["deepfool", "cw"],
            "eps": [0.0] + L2_OF_LINF,
            "threats": ["oblivious", "through"],
            "batch_size": 100,
            "out": "results/seed003",
        }
    )
