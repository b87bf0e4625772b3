"""Seed 003 (ComDefend), Table 5, "in test time" rows: CIFAR-10 at L-inf 2/8/16 (/255).

Clean, FGSM and BIM against no defense, ComDefend (the authors' weights, sigma 0: the deterministic
binarisation; sigma=1.0 as the original test code makes the defense random) and JPEG q75, attacker
oblivious or differentiating through the defense (straight-through binarisation for ComDefend, the
cubic surrogate for JPEG). The paper used its own ResNet-50; the CIFAR-10 classifier with published
weights is ``cifar_resnet56``. Caveat: ``$ROBUSTJAX_DATA/cifar10-test-jpeg`` is already JPEG q75,
so the clean images carry JPEG artefacts and JPEG q75 re-encodes them almost losslessly.

DeepFool and C&W are minimum-norm attacks, scored at L2 bounds: see ``seed003_table5_minnorm.py``.
Seed 001's JPEG qualities: ``--defense none,comdefend:sigma=0,jpeg:20,jpeg:40,jpeg:60,jpeg:80,jpeg:100``.

    python -m robustjax.eval --config experiments/seed003_table5.py --n 1000
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict(
        {
            "name": "seed003_table5",
            "dataset": "cifar10_jpeg",
            "data_dir": None,  # $ROBUSTJAX_DATA/cifar10-test-jpeg
            "n": None,
            "seed": 0,
            "models": ["cifar_resnet56"],
            "defenses": ["none", "comdefend:sigma=0", "jpeg:75"],
            "attacks": ["fgsm", "ifgsm"],  # BIM: alpha = eps/4, 10 steps
            "eps": [0.0, 2 / 255, 8 / 255, 16 / 255],
            "threats": ["oblivious", "through"],
            "batch_size": 100,
            "out": "results/seed003",
        }
    )
