"""ComDefend (Jia, Wei, Cao & Foroosh 2019): ComCNN -> noisy 12-bit binary code -> RecCNN.

``net`` holds the networks and the binarisation, ``params`` the key map from the authors' weights and
their loading, ``defense`` the ``comdefend`` spec (the binary code is the codec's bitstream).
"""

from robustjax.defenses.comdefend.defense import comdefend, from_patches, to_patches
from robustjax.defenses.comdefend.net import (
           GRADS,
           VARIANTS,
           ComCNN,
           ComDefendNet,
           RecCNN,
           binarise,
           create,
           variant_config,
)
from robustjax.defenses.comdefend.params import FAMILY, WEIGHT_FILES, default_weights, load, read, rules

__all__ = ["FAMILY", "GRADS", "VARIANTS", "WEIGHT_FILES", "ComCNN", "ComDefendNet", "RecCNN", "binarise", "comdefend",
           "create", "default_weights", "from_patches", "load", "read", "rules", "to_patches", "variant_config"]
