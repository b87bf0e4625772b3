"""ELIC (He et al. 2022) as compressai 1.2.8's ``Elic2022Chandelier``, as a defense.

``net`` holds the network, ``params`` the key map from the published checkpoints and their loading,
``defense`` the size policies, the forward and the ``elic:Q`` spec, ``codec`` the real bitstream.
"""

from robustjax.defenses.elic.defense import apply_policy, check_size, forward, make_defense
from robustjax.defenses.elic.params import (
                                            POLICIES,
                                            QUALITIES,
                                            SOURCE_URL,
                                            STRIDE,
                                            MissingCheckpointError,
                                            NotElicCheckpointError,
                                            abstract,
                                            chandelier_flat,
                                            config_of,
                                            create,
                                            load,
                                            load_state_dict,
                                            published_name,
                                            random_fast,
                                            read,
                                            rules,
)

__all__ = ["POLICIES", "QUALITIES", "SOURCE_URL", "STRIDE", "MissingCheckpointError", "NotElicCheckpointError",
           "abstract", "apply_policy", "chandelier_flat", "check_size", "config_of", "create", "forward", "load",
           "load_state_dict", "make_defense", "published_name", "random_fast", "read", "rules"]
