"""Räber et al. 2025, Table 2: iFGSM on Imagenette val, defenses none / JPEG q25, oblivious vs through (+ BPDA).

Räber et al. 2025 used ResNet-50 and ViT-B/16 with kornia's differentiable JPEG; the pretrained weights
available offline are efficientnet_lite0's, so that is the default model (with the 10-logit
Imagenette head). Users with the torchvision weights converted add them:
``--model efficientnet_lite0,resnet50,vit_b16``; learned codecs with their weights:
``--defense none,jpeg:25:mode=kornia,elic:0016,hific:low``.

All 3,925 images by default (GPU); on a CPU use the seeded subset ``--n 1000``.
"""

from experiments.common import imagenette


def get_config():
    return imagenette(defenses=["none", "jpeg:25:mode=kornia"], eps=[0.0, 4 / 255, 8 / 255, 12 / 255],
                      threats=["oblivious", "through", "bpda"], out="results/raber2025")
