"""Differentiable JPEG (baseline, JFIF YCbCr), jitted, vmapped over images, per-image quality.

Two modes share the DCT/quantiser core:

``mode="libjpeg"`` (default) reproduces what Pillow/libjpeg(-turbo) does when it saves and reloads an
8-bit image: the input is stored as 8-bit samples, colour conversion with libjpeg's fixed-point
constants and rounding, 2x2 box chroma downsampling with libjpeg's alternating bias, the standard
tables scaled as ``jpeg_set_quality`` does (integer arithmetic, clamped to 1..255), quantiser rounding
halves away from zero, and on decoding 8-bit IDCT output, libjpeg's "fancy" triangular chroma
upsampling (9/16, 3/16, 3/16, 1/16 with its 8/7 rounding bias) and fixed-point YCbCr->RGB. Each of
those 8-bit storage roundings is exact in the forward pass and straight-through in the backward pass;
``rounding`` chooses the surrogate of the coefficient quantiser only, which is where the information
is lost.

``mode="kornia"`` reproduces ``kornia.enhance.jpeg_codec_differentiable`` (kornia 0.9) exactly, for
reproducing Räber et al. 2025: kornia's colour constants, chroma downsampling by a 3-tap Gaussian (sigma 0.5,
reflect border) then 2x2 mean, bilinear upsampling, its quantisation tables built with a polynomial
"floor" (so not integer), no intermediate 8-bit rounding, a hard clamp of the RGB output.

In both modes the image is edge-padded at the bottom/right to whole MCUs (16 px for 4:2:0, 8 px for
4:4:4) and cropped back; saturated output pixels get zero gradient (hard clamp), as in kornia.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.checks import check_images, is_concrete
from robustjax.defenses.jpeg import islow
from robustjax.defenses.jpeg import rounding as rounding_lib

# ITU-T T.81 Annex K tables, in natural (row-major) order.
LUMA_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    np.float32,
)
CHROMA_TABLE = np.full((8, 8), 99, np.float32)
CHROMA_TABLE[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]

MODES = ("libjpeg", "kornia")
CHROMAS = ("420", "444")


def _dct_matrix() -> np.ndarray:
    """Orthonormal 8-point DCT-II matrix D (rows = frequencies): coef = D @ block @ D.T."""
    k = np.arange(8)
    d = np.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d.astype(np.float32)


DCT = _dct_matrix()


def _fix(c: float) -> float:
    """libjpeg's 16-bit fixed-point constant FIX(c), as a float."""
    return int(c * 65536 + 0.5) / 65536


def _stage(x: jax.Array) -> jax.Array:
    """Materialise a stage's output. Without this barrier XLA:CPU fuses each resampling stage into
    every shifted read of the next one and recomputes it there (chroma down + up sampling ran
    several times slower fused than staged, forward + backward)."""
    return jax.lax.optimization_barrier(x)


# --------------------------------------------------------------------------- quantisation tables


def _quality_scale_libjpeg(q: jax.Array) -> jax.Array:
    """jpeg_quality_scaling: 5000/q (integer division) below 50, else 200 - 2q; percent."""
    return jnp.where(q < 50, jnp.floor(5000.0 / q), 200.0 - 2.0 * q)


def _tables_libjpeg(q: jax.Array) -> tuple[jax.Array, jax.Array]:
    scale = _quality_scale_libjpeg(q)[:, None, None]
    luma = jnp.clip(jnp.floor((LUMA_TABLE * scale + 50.0) / 100.0), 1.0, 255.0)
    chroma = jnp.clip(jnp.floor((CHROMA_TABLE * scale + 50.0) / 100.0), 1.0, 255.0)
    return luma, chroma


def _poly_floor(x: jax.Array) -> jax.Array:
    """kornia's differentiable 'floor': floor(x) + (x - 0.5 - floor(x))**3."""
    f = jax.lax.stop_gradient(jnp.floor(x))
    return f + (x - 0.5 - f) ** 3


def _soft_clip(x: jax.Array, lo: float, hi: float, scale: float = 0.02) -> jax.Array:
    """kornia's differentiable clipping (exponential approach beyond the bounds)."""
    x = jnp.where(x > hi, -scale * (jnp.exp(-jnp.maximum(x - hi, 0.0)) - 1.0) + hi, x)
    return jnp.where(x < lo, scale * (jnp.exp(jnp.minimum(x - lo, 0.0)) - 1.0) + lo, x)


def tables_kornia(q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """kornia's luma and chroma tables ``(N, 8, 8)`` for qualities ``q`` ``(N,)``, computed in ``q``'s
    dtype (``quantization_tables(q, mode="kornia")`` computes them in float32). Not integers: kornia
    scales the standard tables with its polynomial "floor". Quality 0 is read as 1."""
    q = jnp.where(q == 0.0, 1.0, q)
    scale = _poly_floor(jnp.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q))[:, None, None]
    luma = _poly_floor(_soft_clip((LUMA_TABLE * scale + 50.0) / 100.0, 1.0, 255.0))
    chroma = _poly_floor(_soft_clip((CHROMA_TABLE * scale + 50.0) / 100.0, 1.0, 255.0))
    return luma, chroma


def quantization_tables(quality, mode: str = "libjpeg") -> tuple[jax.Array, jax.Array]:
    """Luma and chroma tables ``(N, 8, 8)`` for qualities ``(N,)`` (natural order)."""
    q = jnp.atleast_1d(jnp.asarray(quality, jnp.float32))
    return _tables_libjpeg(q) if mode == "libjpeg" else tables_kornia(q)


# --------------------------------------------------------------------------- DCT core


def blockwise_codec(plane: jax.Array, table: jax.Array, quantise) -> jax.Array:
    """Level-shift, 8x8 DCT, quantise, dequantise, IDCT of planes ``(N, C, H, W)`` (samples on the
    0..255 scale, H and W multiples of 8): the core both modes share, without colour conversion,
    padding or clamping.

    ``table`` is ``(N, 8, 8)``, one per image. ``quantise`` is called once, on the coefficients divided
    by the table, and returns their quantised values: a surrogate of ``robustjax.defenses.jpeg.rounding``,
    or the identity to read what the quantiser sees. The coefficients stay in the layout
    ``(N, C, Hb, u, Wb, v)`` so the DCT is two small matrix products and needs no transposes.
    """
    n, c, h, w = plane.shape
    blocks = plane.reshape(n, c, h // 8, 8, w // 8, 8) - 128.0
    coef = jnp.einsum("ui,nchiwj,vj->nchuwv", DCT, blocks, DCT)
    t = table[:, None, None, :, None, :]
    coef = quantise(coef / t) * t
    out = jnp.einsum("ui,nchuwv,vj->nchiwj", DCT, coef, DCT) + 128.0
    return out.reshape(n, c, h, w)


# --------------------------------------------------------------------------- libjpeg mode


def _store8(x: jax.Array, offset=0.5) -> jax.Array:
    """An 8-bit storage rounding ``floor(x + offset)``: exact forward, straight-through backward."""
    return x + jax.lax.stop_gradient(jnp.floor(x + offset) - x)


def _rgb_to_ycc_libjpeg(rgb: jax.Array) -> jax.Array:
    """jccolor.c rgb_ycc_convert on 0..255 samples ``(N, H, W, 3)`` -> planes ``(N, 3, H, W)``."""
    r, g, b = (rgb[..., i] for i in range(3))
    y = _fix(0.299) * r + _fix(0.587) * g + _fix(0.114) * b
    cb = -_fix(0.16874) * r - _fix(0.33126) * g + 0.5 * b + 128.0
    cr = 0.5 * r - _fix(0.41869) * g - _fix(0.08131) * b + 128.0
    half_down = 0.5 - 1.0 / 65536  # ONE_HALF - 1 in the chroma rows
    return jnp.stack([_store8(y), _store8(cb, half_down), _store8(cr, half_down)], axis=1)


def _downsample_libjpeg(c: jax.Array) -> jax.Array:
    """jcsample.c h2v2_downsample: (sum of 2x2 + bias) >> 2 with bias 1, 2, 1, 2, ... by column."""
    n, k, h, w = c.shape
    mean = c.reshape(n, k, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
    bias = jnp.where(jnp.arange(w // 2) % 2 == 0, 0.25, 0.5)
    return _store8(mean, bias)


def _upsample_libjpeg(c: jax.Array, out_h: int, out_w: int) -> jax.Array:
    """jdsample.c h2v2_fancy_upsample (triangle filter, edges replicated) -> ``(N, K, out_h, out_w)``.

    ``c`` must already be cropped to the real chroma size ceil(H/2) x ceil(W/2), where libjpeg puts
    the edge it replicates.
    """
    p = jnp.pad(c, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    centre = p[:, :, 1:-1]
    # Vertical: each chroma row gives an upper output row (3*this + above) and a lower one (3*this + below).
    upper = 3.0 * centre + p[:, :, :-2]
    lower = 3.0 * centre + p[:, :, 2:]
    rows = jnp.stack([upper, lower], axis=3)  # (N, K, h, 2, w+2)
    n, k, h, _, w2 = rows.shape
    rows = rows.reshape(n, k, 2 * h, w2)
    mid = rows[..., 1:-1]
    left = (3.0 * mid + rows[..., :-2] + 8.0) / 16.0
    right = (3.0 * mid + rows[..., 2:] + 7.0) / 16.0
    out = jnp.stack([_store8(left, 0.0), _store8(right, 0.0)], axis=-1).reshape(n, k, 2 * h, 2 * (w2 - 2))
    return out[:, :, :out_h, :out_w]


def _ycc_to_rgb_libjpeg(y: jax.Array, c: jax.Array) -> jax.Array:
    """jdcolor.c ycc_rgb_convert: luma ``(N, 1, H, W)`` and chroma ``(N, 2, H, W)`` planes, 0..255
    -> ``(N, H, W, 3)`` 0..255. Computed plane by plane and transposed once at the end (stacking
    on the minor axis of size 3 is slow on XLA:CPU)."""
    y, cb, cr = y[:, 0], c[:, 0] - 128.0, c[:, 1] - 128.0
    r = y + _store8(_fix(1.402) * cr)
    g = y + _store8(-_fix(0.34414) * cb - _fix(0.71414) * cr)
    b = y + _store8(_fix(1.772) * cb)
    planes = _stage(jnp.clip(jnp.stack([r, g, b], axis=1), 0.0, 255.0))
    return jnp.transpose(planes, (0, 2, 3, 1))


def _jpeg_libjpeg(x, q, rounding, chroma):
    n, h, w, channels = x.shape
    mcu = 16 if (chroma == "420" and channels == 3) else 8
    hp, wp = -(-h // mcu) * mcu, -(-w // mcu) * mcu
    samples = _store8(x * 255.0)
    samples = jnp.pad(samples, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)), mode="edge")
    luma_t, chroma_t = _tables_libjpeg(q)
    quantise = rounding_lib.get(rounding)

    def code(plane, table):
        """8-bit planes -> decoded 8-bit planes. The forward value of exact/ste is libjpeg's integer
        islow pipeline; ste's gradient is the float DCT's with the quantiser passed straight through;
        cubic's value and gradient are the float DCT with the cubic quantiser."""
        if rounding == "exact":
            return islow.codec(plane, table)
        decoded = jnp.clip(_store8(blockwise_codec(plane, table, lambda v: quantise(v, rounding_lib.round_half_away))),
                           0.0, 255.0)
        if rounding == "ste":
            decoded = decoded + jax.lax.stop_gradient(islow.codec(plane, table) - decoded)
        return decoded

    if channels == 1:
        return code(samples[..., 0][:, None], luma_t)[:, 0, :h, :w, None] / 255.0
    ycc = _stage(_rgb_to_ycc_libjpeg(samples))
    y = _stage(code(ycc[:, :1], luma_t)[:, :, :h, :w])
    if chroma == "444":
        c = _stage(code(ycc[:, 1:], chroma_t)[:, :, :h, :w])
    else:
        c = _stage(code(_stage(_downsample_libjpeg(ycc[:, 1:])), chroma_t))
        c = _stage(_upsample_libjpeg(c[:, :, : -(-h // 2), : -(-w // 2)], h, w))
    return _ycc_to_rgb_libjpeg(y, c) / 255.0


# --------------------------------------------------------------------------- kornia mode


def _gauss3(sigma: float = 0.5) -> np.ndarray:
    k = np.exp(-(np.arange(-1, 2, dtype=np.float32) ** 2) / (2 * sigma**2))
    return (k / k.sum()).astype(np.float32)


def _downsample_kornia(c: jax.Array) -> jax.Array:
    """kornia rescale(0.5, bilinear, antialias): 3-tap Gaussian (sigma 0.5, reflect) then 2x2 mean."""
    k = _gauss3()
    p = jnp.pad(c, ((0, 0), (0, 0), (1, 1), (0, 0)), mode="reflect")
    c = k[0] * p[:, :, :-2] + k[1] * p[:, :, 1:-1] + k[2] * p[:, :, 2:]
    p = jnp.pad(c, ((0, 0), (0, 0), (0, 0), (1, 1)), mode="reflect")
    c = k[0] * p[..., :-2] + k[1] * p[..., 1:-1] + k[2] * p[..., 2:]
    n, m, h, w = c.shape
    return c.reshape(n, m, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def _upsample_bilinear2(c: jax.Array) -> jax.Array:
    """torch bilinear x2, align_corners=False (edge-clamped): 3/4 nearest + 1/4 next."""
    p = jnp.pad(c, ((0, 0), (0, 0), (1, 1), (0, 0)), mode="edge")
    rows = jnp.stack([0.75 * p[:, :, 1:-1] + 0.25 * p[:, :, :-2], 0.75 * p[:, :, 1:-1] + 0.25 * p[:, :, 2:]], axis=3)
    n, m, h, _, w = rows.shape
    rows = rows.reshape(n, m, 2 * h, w)
    p = jnp.pad(rows, ((0, 0), (0, 0), (0, 0), (1, 1)), mode="edge")
    cols = jnp.stack([0.75 * p[..., 1:-1] + 0.25 * p[..., :-2], 0.75 * p[..., 1:-1] + 0.25 * p[..., 2:]], axis=-1)
    return cols.reshape(n, m, 2 * h, 2 * w)


def _jpeg_kornia(x, q, quantise, chroma):
    n, h, w, channels = x.shape
    mcu = 16 if chroma == "420" else 8
    hp, wp = -(-h // mcu) * mcu, -(-w // mcu) * mcu
    x = jnp.pad(x, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)), mode="edge")
    luma_t, chroma_t = tables_kornia(q)
    if channels == 1:
        gray = blockwise_codec(x[..., 0][:, None] * 255.0, luma_t, quantise) / 255.0
        return jnp.clip(gray, 0.0, 1.0)[:, 0, :h, :w, None]
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = (b - y) * 0.564 + 0.5
    cr = (r - y) * 0.713 + 0.5
    luma = _stage(blockwise_codec(y[:, None] * 255.0, luma_t, quantise))
    c = _stage(jnp.stack([cb, cr], axis=1) * 255.0)
    if chroma == "420":
        c = _stage(blockwise_codec(_stage(_downsample_kornia(c)), chroma_t, quantise))
        c = _stage(_upsample_bilinear2(c))
    else:
        c = _stage(blockwise_codec(c, chroma_t, quantise))
    y, cb, cr = luma[:, 0] / 255.0, c[:, 0] / 255.0 - 0.5, c[:, 1] / 255.0 - 0.5
    rgb = jnp.stack(
        [y + 1.4025245442 * cr, y - 0.7144034731 * cr - 0.3443401356 * cb, y + 1.7730496454 * cb], axis=-1
    )
    return jnp.clip(rgb, 0.0, 1.0)[:, :h, :w]


# --------------------------------------------------------------------------- public API


def _check_quality(quality, n: int) -> jax.Array:
    q = jnp.asarray(quality)
    if q.ndim > 1 or (q.ndim == 1 and q.shape[0] not in (1, n)):
        raise ValueError(f"quality must be a scalar or shape ({n},) for {n} images, got shape {q.shape}")
    if is_concrete(q):
        qv = np.asarray(q, np.float64)
        if not np.all(np.isfinite(qv)) or qv.min() < 1 or qv.max() > 100:
            raise ValueError("JPEG quality must lie in 1..100, got "
                             f"{qv.tolist() if qv.size <= 8 else (qv.min(), qv.max())}")
    return jnp.broadcast_to(q.astype(jnp.float32), (n,))


def jpeg(x: jax.Array, quality, *, rounding: str = "cubic", chroma: str = "420", mode: str = "libjpeg") -> jax.Array:
    """JPEG-compress and decompress images, differentiably.

    Args:
      x: float ``(N, H, W, 3)`` RGB or ``(N, H, W, 1)`` grey images in [0, 1], any H and W.
      quality: libjpeg quality 1..100, a scalar or per-image ``(N,)``; may be traced (one compiled
        program serves every quality).
      rounding: surrogate of the coefficient quantiser: ``"exact"`` (zero gradient), ``"ste"``
        (straight-through) or ``"cubic"`` (``round(x) + (x - round(x))**3``, kornia's and Räber et al. 2025's).
      chroma: ``"420"`` (2x2 chroma subsampling, Pillow's default) or ``"444"``.
      mode: ``"libjpeg"`` (default, matches Pillow/libjpeg decoding of its own JPEG) or ``"kornia"``
        (matches ``kornia.enhance.jpeg_codec_differentiable``); see the module docstring.

    Returns:
      The decoded images, same shape and dtype as ``x``, in [0, 1].
    """
    check_images(x, "x")
    if mode not in MODES:
        raise ValueError(f"unknown JPEG mode {mode!r}; valid: {', '.join(MODES)}")
    if chroma not in CHROMAS:
        raise ValueError(f"unknown chroma subsampling {chroma!r}; valid: {', '.join(CHROMAS)}")
    rounding_lib.get(rounding)
    q = _check_quality(quality, x.shape[0])
    compute = jnp.promote_types(x.dtype, jnp.float32)  # float16/bfloat16 are too coarse for 0..255 DCTs
    if mode == "libjpeg":
        out = _jpeg_libjpeg(x.astype(compute), q.astype(compute), rounding, chroma)
    else:
        out = _jpeg_kornia(x.astype(compute), q.astype(compute), rounding_lib.get(rounding), chroma)
    return out.astype(x.dtype)
