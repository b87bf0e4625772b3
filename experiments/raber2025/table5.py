"""Räber et al. 2025, Table 5: FGSM, iFGSM and PGD at eps 2..12/255 on Imagenette val, defenses none / JPEG q25.

Model and codec substitutions as in raber2025/table2.py (``--model ...,resnet50,vit_b16`` and
``--defense ...,elic:0016,hific:low`` where the weights exist). BPDA rows are added beside the
through rows (not in the paper).
"""

from experiments.common import imagenette


def get_config():
    return imagenette(defenses=["none", "jpeg:25:mode=kornia"], attacks=["fgsm", "ifgsm", "pgd"],
                      eps=[0.0, 2 / 255, 4 / 255, 6 / 255, 8 / 255, 10 / 255, 12 / 255],
                      threats=["oblivious", "through", "bpda"], out="results/raber2025")
