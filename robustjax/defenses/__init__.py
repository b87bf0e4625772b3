"""Image-compression defenses: ``d(x, key=None)`` on float ``(N, H, W, C)`` images in [0, 1].

Build one from a spec string with :func:`get` (``none``, ``jpeg:25``, ``seq:7:jpeg:25``, ``a+b``).
One sub-package per codec (``jpeg``, ``comdefend``, ``elic``, ``hific``), each registering its spec
family on import; ``entropy`` holds the learned codecs' shared entropy models.
"""

from robustjax.defenses import (  # noqa: E402  register their specs and checkpoint families
           comdefend,
           elic,
           hific,
           jpeg,  # noqa: E402  registers "jpeg"; callable as jpeg(x, quality)
)
from robustjax.defenses.base import Defense, compose
from robustjax.defenses.registry import FAMILIES, get, register, usages, valid_forms
from robustjax.defenses.sequential import sequential

__all__ = ["FAMILIES", "Defense", "comdefend", "compose", "elic", "get", "hific", "jpeg", "register", "sequential",
           "usages", "valid_forms"]
