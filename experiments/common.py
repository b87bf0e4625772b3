"""Defaults the paper configs share, so each config states only what its table varies.

A config file is ``get_config() -> ml_collections.ConfigDict`` with the keys of
``robustjax.eval.config.KEYS``; missing keys take the quick-start's values. The two settings below
are the papers' data sets with the classifiers whose weights are available offline.
"""

import math

import ml_collections


def imagenette(**fields) -> ml_collections.ConfigDict:
    """Räber et al. 2025's setting: the 3,925 Imagenette validation images (``--n`` for a seeded
    subset), ``efficientnet_lite0`` with the 10-logit Imagenette head (the paper's ResNet-50 and
    ViT-B/16 weights are not available offline: add them with ``--model ...,resnet50,vit_b16``),
    iFGSM (10 steps, alpha = eps / 4)."""
    return ml_collections.ConfigDict({"dataset": "imagenette", "data_dir": None, "n": None, "seed": 0,
                                      "models": ["efficientnet_lite0"], "head": "imagenette", "attacks": ["ifgsm"],
                                      "batch_size": 32, **fields})


def cifar10_jpeg(**fields) -> ml_collections.ConfigDict:
    """The CIFAR-10 setting of Jia et al. 2019 and Das et al. 2017 on the 10,000 test images stored
    as JPEG q75 (``$ROBUSTJAX_DATA/cifar10-test-jpeg``: clean accuracy is lower than on the
    lossless set), ``cifar_resnet56`` with its published weights in place of the papers' own
    classifiers."""
    return ml_collections.ConfigDict({"dataset": "cifar10_jpeg", "data_dir": None, "n": None, "seed": 0,
                                      "models": ["cifar_resnet56"], "batch_size": 100, **fields})


def l2_radii_of_linf(eps_over_255, pixels: int = 32 * 32 * 3) -> list[float]:
    """The L2 radii of L-inf balls of ``eps/255`` on images of ``pixels`` values: eps * sqrt(pixels)."""
    return [e / 255 * math.sqrt(pixels) for e in eps_over_255]
