"""JPEG as a defense: the differentiable codec, libjpeg's integer DCT, rounding surrogates, Pillow files.

``codec`` holds ``jpeg(x, quality, ...)`` and the ``jpeg:Q`` spec; ``islow`` libjpeg's integer
"islow" DCT/IDCT; ``spec`` the ``jpeg:Q`` and ``jpeg:slq`` specs; ``rounding`` the quantiser
surrogates (cubic, ste, exact); ``files`` real JPEG files through Pillow (the bitstream: size in
bits per pixel, encode/decode round trips).

The package itself is callable, ``robustjax.defenses.jpeg(x, quality)`` being ``codec.jpeg``: the
function was public under that name before the codec became a package.
"""

import sys
import types

from robustjax.defenses.jpeg import files, islow, rounding, spec
from robustjax.defenses.jpeg.codec import jpeg


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return jpeg(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["files", "islow", "jpeg", "rounding", "spec"]
