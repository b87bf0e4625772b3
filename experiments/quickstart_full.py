"""The earlier, larger quick-start grid: FGSM, iFGSM and PGD at 0, 2, 4, 8 /255 on foolbox's 20
ImageNet photos, undefended and JPEG q25, oblivious / through / BPDA (nine compiled programs;
minutes on 2 CPU cores).

    python -m robustjax.eval --config experiments/quickstart_full.py
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict({"name": "quickstart_full", "attacks": ["fgsm", "ifgsm", "pgd"],
                                      "eps": [0.0, 2 / 255, 4 / 255, 8 / 255], "batch_size": 10,
                                      "out": "results/quickstart_full"})
