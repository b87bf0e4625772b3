"""Image-compression defenses: ``d(x, key=None)`` on float ``(N, H, W, C)`` images in [0, 1].

Build one from a spec string with :func:`get` (``none``, ``jpeg:25``, ``seq:7:jpeg:25``, ``a+b``).
"""

from robustjax.defenses.registry import Defense, compose, get, register, valid_forms
from robustjax.defenses.sequential import sequential
from robustjax.defenses.jpeg_codec import jpeg  # registers "jpeg"
from robustjax.defenses import comdefend  # registers "comdefend" and the checkpoint family
from robustjax.defenses import elic  # registers "elic" and checkpoint family "elic"
from robustjax.defenses import hific  # registers "hific" and checkpoint family "hific"

__all__ = ["Defense", "comdefend", "compose", "elic", "get", "hific", "jpeg", "register", "sequential", "valid_forms"]
