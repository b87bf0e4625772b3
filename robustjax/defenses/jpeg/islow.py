"""libjpeg's accurate integer DCT ("islow", the default of libjpeg and Pillow), bit-exact, in JAX.

A float DCT decides a coefficient's rounding differently from libjpeg whenever the coefficient
sits within libjpeg's integer error of a rounding tie. Images that were JPEG files before
(ImageNet, Imagenette) put many coefficients on exact ties when they are re-quantised, so the
libjpeg mode of :func:`robustjax.defenses.jpeg` computes its forward value with this integer
pipeline (its gradient comes from the float DCT).

Each 1-D pass of the Loeffler-Ligtenberg-Moschytz butterfly is linear in its integer inputs with
13-bit fixed-point constants, followed by a rounding right shift. So each pass is an exact integer
8x8 matrix (derived below by running the butterfly on unit vectors) and a per-output shift.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

CONST_BITS = 13
PASS1_BITS = 2


def _fix(x: float) -> int:
    return int(x * (1 << CONST_BITS) + 0.5)


F0298, F0390, F0541, F0765 = _fix(0.298631336), _fix(0.390180644), _fix(0.541196100), _fix(0.765366865)
F0899, F1175, F1501, F1847 = _fix(0.899976223), _fix(1.175875602), _fix(1.501321110), _fix(1.847759065)
F1961, F2053, F2562, F3072 = _fix(1.961570560), _fix(2.053119869), _fix(2.562915447), _fix(3.072711026)


def _odd_part(a7: int, a5: int, a3: int, a1: int) -> tuple[int, int, int, int]:
    """The shared odd-part rotation of both butterflies; returns the four mixed terms."""
    z1, z2, z3, z4 = a7 + a1, a5 + a3, a7 + a3, a5 + a1
    z5 = (z3 + z4) * F1175
    z1, z2 = z1 * -F0899, z2 * -F2562
    z3, z4 = z3 * -F1961 + z5, z4 * -F0390 + z5
    return a7 * F0298 + z1 + z3, a5 * F2053 + z2 + z4, a3 * F3072 + z2 + z3, a1 * F1501 + z1 + z4


def _fdct_1d(d: list[int]) -> list[int]:
    """Forward pass before its final shifts: outputs 0 and 4 unscaled, the others x 2**13."""
    t0, t7, t1, t6 = d[0] + d[7], d[0] - d[7], d[1] + d[6], d[1] - d[6]
    t2, t5, t3, t4 = d[2] + d[5], d[2] - d[5], d[3] + d[4], d[3] - d[4]
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    z1 = (t12 + t13) * F0541
    o7, o5, o3, o1 = _odd_part(t4, t5, t6, t7)
    return [t10 + t11, o1, z1 + t13 * F0765, o3, t10 - t11, o5, z1 - t12 * F1847, o7]


def _idct_1d(c: list[int]) -> list[int]:
    """Inverse pass before its final shift (all outputs x 2**13)."""
    z1 = (c[2] + c[6]) * F0541
    t2, t3 = z1 - c[6] * F1847, z1 + c[2] * F0765
    t0, t1 = (c[0] + c[4]) << CONST_BITS, (c[0] - c[4]) << CONST_BITS
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    o0, o1, o2, o3 = _odd_part(c[7], c[5], c[3], c[1])
    return [t10 + o3, t11 + o2, t12 + o1, t13 + o0, t13 - o0, t12 - o1, t11 - o2, t10 - o3]


def _matrix(pass_fn) -> np.ndarray:
    """The exact integer matrix M with pass_fn(d) == M @ d."""
    return np.array([pass_fn([int(i == j) for i in range(8)]) for j in range(8)], np.int32).T


FDCT = _matrix(_fdct_1d)
IDCT = _matrix(_idct_1d)
_PLAIN = np.array([k in (0, 4) for k in range(8)])  # forward outputs 0 and 4 carry no constant


def _shift(v: jax.Array, bits) -> jax.Array:
    """libjpeg's DESCALE: round half up by an arithmetic right shift."""
    bits = jnp.asarray(bits, jnp.int32)
    return jnp.right_shift(v + jnp.left_shift(1, bits) // 2, bits)


def codec(plane: jax.Array, table: jax.Array) -> jax.Array:
    """8-bit planes ``(N, C, H, W)`` (H, W multiples of 8, integral values 0..255) -> what libjpeg
    decodes after encoding them with quantisation tables ``(N, 8, 8)``: integral float32 0..255.

    Forward islow DCT, quantisation (round half away from zero of coef / (8 q), as jcdctmgr.c),
    dequantisation and islow IDCT with range limiting, all in exact int32 arithmetic. Not
    differentiable (integers); callers add the float path's gradient.
    """
    n, c, h, w = plane.shape
    x = jnp.round(plane).astype(jnp.int32).reshape(n, c, h // 8, 8, w // 8, 8) - 128
    # Forward: rows (horizontal frequency) then columns; outputs 0/4 use the plain shifts.
    p = jnp.einsum("kj,nchiwj->nchiwk", FDCT, x, preferred_element_type=jnp.int32)
    p = jnp.where(_PLAIN, jnp.left_shift(p, PASS1_BITS), _shift(p, jnp.where(_PLAIN, 0, CONST_BITS - PASS1_BITS)))
    p = jnp.einsum("ui,nchiwv->nchuwv", FDCT, p, preferred_element_type=jnp.int32)
    plain_u = _PLAIN[:, None, None]
    coef8 = _shift(p, jnp.where(plain_u, PASS1_BITS, CONST_BITS + PASS1_BITS))
    # Quantise: libjpeg's reciprocal multiply equals (|x| + 4q) // 8q, sign restored.
    q = jnp.round(table).astype(jnp.int32)[:, None, None, :, None, :]
    level = jnp.sign(coef8) * ((jnp.abs(coef8) + 4 * q) // (8 * q))
    # Inverse: columns (vertical frequency) then rows, range-limited around the centre sample.
    e = jnp.einsum("iu,nchuwv->nchiwv", IDCT, level * q, preferred_element_type=jnp.int32)
    e = _shift(e, CONST_BITS - PASS1_BITS)
    e = jnp.einsum("jv,nchiwv->nchiwj", IDCT, e, preferred_element_type=jnp.int32)
    out = jnp.clip(_shift(e, CONST_BITS + PASS1_BITS + 3) + 128, 0, 255)
    return jax.lax.stop_gradient(out.reshape(n, c, h, w).astype(jnp.float32))
