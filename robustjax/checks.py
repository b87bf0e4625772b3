"""Input validation shared by defenses, attacks and models: clear errors before any compute."""

from __future__ import annotations

import jax
import numpy as np


def is_concrete(x) -> bool:
    """True when ``x`` holds values we can read now (not a tracer inside jit/grad/vmap)."""
    return not isinstance(x, jax.core.Tracer)


def check_images(x, name: str = "x", channels: tuple[int, ...] = (1, 3), check_range: bool = True) -> None:
    """Raise ``ValueError`` unless ``x`` is a float ``(N, H, W, C)`` array with C in ``channels``.

    Values are checked to lie in ``[0, 1]`` and be finite when they are concrete (eager calls);
    inside ``jit`` only the shape and dtype can be checked.
    """
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is None or dtype is None:
        raise ValueError(f"{name} must be an array of shape (N, H, W, C), got {type(x).__name__}")
    if len(shape) != 4:
        raise ValueError(f"{name} must have rank 4 (N, H, W, C), got shape {tuple(shape)}")
    if shape[-1] not in channels:
        raise ValueError(f"{name} must have {' or '.join(map(str, channels))} channels in the last axis (NHWC), "
                         f"got shape {tuple(shape)}")
    if not jax.numpy.issubdtype(dtype, jax.numpy.floating):  # bfloat16 too (numpy says it is not)
        raise ValueError(f"{name} must be a float array with values in [0, 1], got dtype {np.dtype(dtype).name} "
                         "(divide uint8 images by 255)")
    if check_range and is_concrete(x) and np.size(x):
        values = np.asarray(x)  # on the host: a jax op here would be staged into an enclosing jit
        lo, hi = float(values.min()), float(values.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or infinite values")
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
