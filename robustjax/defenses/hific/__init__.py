"""HiFiC (Mentzer et al. 2020) as ported from Justin-Tan/high-fidelity-generative-compression, as a defense.

``net`` holds the network, ``params`` the key map from the published checkpoints and their loading,
``defense`` the padding, the forward and the ``hific:V`` spec, ``codec`` the real bitstream.
"""

from robustjax.defenses.hific.defense import MIN_SIZE, check_size, forward, make_defense, pad_to
from robustjax.defenses.hific.params import (
                                             SOURCE_URL,
                                             STRIDE,
                                             TRAINING_ENTRIES,
                                             VARIANTS,
                                             MissingCheckpointError,
                                             NotHificCheckpointError,
                                             abstract,
                                             config_from_args,
                                             create,
                                             load,
                                             load_state_dict,
                                             published_name,
                                             read,
                                             read_checkpoint,
                                             rules,
                                             split_checkpoint,
)

__all__ = ["MIN_SIZE", "SOURCE_URL", "STRIDE", "TRAINING_ENTRIES", "VARIANTS", "MissingCheckpointError",
           "NotHificCheckpointError", "abstract", "check_size", "config_from_args", "create", "forward", "load",
           "load_state_dict", "make_defense", "pad_to", "published_name", "read", "read_checkpoint", "rules",
           "split_checkpoint"]
