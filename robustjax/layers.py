"""Convolution whose input gradient XLA:CPU runs at full speed inside loops and conditionals.

JAX differentiates a convolution w.r.t. its input with another convolution whose kernel has its
input and output feature axes swapped (HLO ``dim_labels=..._01oi->...``). In a program's top-level
computation XLA:CPU rewrites that into the canonical ``01io`` form and calls its fast convolution
kernels; inside a ``while`` or ``conditional`` body (a rolled ``lax.fori_loop`` attack, a DeepFool
loop that stops early) it does not, and emits a naive loop nest instead, many times slower
(docs/xla_cpu.md; experiments/benchmarks/conv_in_loops.py measures PGD-10 both ways).

:func:`conv_general_dilated` is a drop-in for ``jax.lax.conv_general_dilated`` with the same value
and derivatives, whose forward-mode rule feeds the input tangent through a kernel transposed
ahead of time (behind an optimisation barrier, so XLA cannot fold the transpose back into the
convolution): its transpose, the input gradient, is then a canonical convolution wherever it sits.
:class:`Conv` is ``flax.nnx.Conv`` using it; the classifiers, ComDefend, ELIC and HiFiC build their
convolutions with it. Grouped convolutions fall back to ``lax`` unchanged; 1x1 convolutions are
computed as matrix products, which XLA:CPU runs faster. :func:`max_pool` is a max-pool whose
backward pass XLA:CPU runs faster than ``nnx.max_pool``'s. :func:`depthwise_conv` is a depthwise
convolution (EfficientNet-Lite0's) with a backward pass XLA:CPU runs faster than JAX's own.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax
from jax.custom_derivatives import SymbolicZero


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None, **kwargs):
    """``lax.conv_general_dilated`` (same arguments, value, gradients and JVP), see the module docstring."""
    options = dict(window_strides=window_strides, padding=padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                   feature_group_count=feature_group_count, batch_group_count=batch_group_count, precision=precision,
                   preferred_element_type=preferred_element_type, **kwargs)
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    if feature_group_count != 1 or batch_group_count != 1:
        return lax.conv_general_dilated(lhs, rhs, dimension_numbers=dn, **options)
    if _is_pointwise(rhs, dn, padding, lhs_dilation):
        return _pointwise_as_dot(lhs, rhs, dn, window_strides, precision, preferred_element_type)
    out_axis, in_axis = dn.rhs_spec[0], dn.rhs_spec[1]
    perm = list(range(rhs.ndim))
    perm[out_axis], perm[in_axis] = in_axis, out_axis
    # The same convolution, for the kernel with its feature axes physically swapped.
    dn_swapped = lax.ConvDimensionNumbers(dn.lhs_spec, (in_axis, out_axis, *dn.rhs_spec[2:]), dn.out_spec)

    @jax.custom_jvp
    def conv(x, w):
        return lax.conv_general_dilated(x, w, dimension_numbers=dn, **options)

    def conv_jvp(primals, tangents):
        x, w = primals
        tx, tw = tangents
        y = conv(x, w)
        ty = None
        if not isinstance(tx, SymbolicZero):
            w_swapped = lax.optimization_barrier(jnp.transpose(w, perm))
            ty = lax.conv_general_dilated(tx, w_swapped, dimension_numbers=dn_swapped, **options)
        if not isinstance(tw, SymbolicZero):
            t = lax.conv_general_dilated(x, tw, dimension_numbers=dn, **options)
            ty = t if ty is None else ty + t
        return y, (jnp.zeros_like(y) if ty is None else ty)

    conv.defjvp(conv_jvp, symbolic_zeros=True)
    return conv(lhs, rhs)


def _is_pointwise(rhs, dn, padding, lhs_dilation) -> bool:
    """A 1x1 kernel, no padding, no input dilation: the convolution is a matrix product."""
    spatial = [rhs.shape[a] for a in dn.rhs_spec[2:]]
    unpadded = isinstance(padding, str) or all(tuple(p) == (0, 0) for p in padding)  # "SAME" pads 0 for 1x1
    return all(k == 1 for k in spatial) and unpadded and all(d == 1 for d in (lhs_dilation or ()))


def _pointwise_as_dot(lhs, rhs, dn, window_strides, precision, preferred_element_type):
    """A 1x1 convolution as ``lax.dot_general`` over the feature axis (strides by slicing).

    XLA:CPU runs the product, and its gradients, faster than the same 1x1 convolution
    (experiments/benchmarks/layers.py)."""
    strides = tuple(window_strides or (1,) * (lhs.ndim - 2))
    index = [slice(None)] * lhs.ndim
    for axis, step in zip(dn.lhs_spec[2:], strides):
        index[axis] = slice(None, None, step)
    lhs = lhs[tuple(index)]
    out_axis, in_axis = dn.rhs_spec[0], dn.rhs_spec[1]
    kernel = rhs.reshape(rhs.shape[min(out_axis, in_axis)], rhs.shape[max(out_axis, in_axis)])  # drops the 1x1
    out = lax.dot_general(lhs, kernel, (((dn.lhs_spec[1],), (int(in_axis > out_axis),)), ((), ())),
                          precision=precision, preferred_element_type=preferred_element_type)
    # dot_general puts lhs's remaining axes first (in order) and the output features last
    kept = [a for a in range(lhs.ndim) if a != dn.lhs_spec[1]]
    position = {axis: i for i, axis in enumerate(kept)}
    position[dn.lhs_spec[1]] = lhs.ndim - 1
    # output axis dn.out_spec[k] holds what lhs axis dn.lhs_spec[k] held (batch, feature, spatial...)
    perm = [0] * lhs.ndim
    for k in range(lhs.ndim):
        perm[dn.out_spec[k]] = position[dn.lhs_spec[k]]
    return out if perm == list(range(lhs.ndim)) else jnp.transpose(out, perm)


class Conv(nnx.Conv):
    """``flax.nnx.Conv`` (same parameters and checkpoint layout) computed with :func:`conv_general_dilated`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("conv_general_dilated", conv_general_dilated)
        super().__init__(*args, **kwargs)


def max_pool(x, window: tuple[int, int], strides: tuple[int, int],
             padding: str | tuple[tuple[int, int], tuple[int, int]]):
    """2-D max pooling of ``(N, H, W, C)`` (padding with -inf), whose gradient goes to the first
    maximum of each window in row-major order, as PyTorch's ``max_pool2d`` routes it.

    ``padding``: "SAME", "VALID" or ((top, bottom), (left, right)).
    ``flax.nnx.max_pool`` gives the same value, but XLA:CPU computes its gradient (a
    select-and-scatter) slowly. Here the backward pass compares each window offset's strided view
    with the output and pads the matching cotangents back into place, all element-wise work that
    XLA fuses (experiments/benchmarks/layers.py).
    """
    if x.ndim != 4:
        raise ValueError(f"max_pool expects (N, H, W, C), got shape {x.shape}")
    if isinstance(padding, str):  # "SAME" / "VALID", as lax resolves them
        padding = lax.padtype_to_pads(x.shape[1:3], window, strides, padding)
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = window, strides, padding

    def padded(v):
        return jnp.pad(v, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-jnp.inf)

    def views(xp, ho, wo):
        """Each window offset's strided view of the padded input, shaped like the output."""
        for i in range(kh):
            for j in range(kw):
                yield i, j, lax.slice(xp, (0, i, j, 0),
                                      (xp.shape[0], i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, xp.shape[3]),
                                      (1, sh, sw, 1))

    @jax.custom_vjp
    def pool(v):
        return lax.reduce_window(padded(v), -jnp.inf, lax.max, (1, kh, kw, 1), (1, sh, sw, 1), "VALID")

    def pool_fwd(v):
        y = pool(v)
        return y, (v, y)

    def pool_bwd(residuals, g):
        v, y = residuals
        xp = padded(v)
        ho, wo = y.shape[1:3]
        grad = jnp.zeros_like(xp)
        taken = jnp.zeros(y.shape, bool)
        for i, j, view in views(xp, ho, wo):
            first = (view == y) & ~taken
            taken = taken | first
            placed = lax.pad(jnp.where(first, g, 0).astype(xp.dtype), jnp.zeros((), xp.dtype),
                             ((0, 0, 0), (i, xp.shape[1] - i - sh * (ho - 1) - 1, sh - 1),
                              (j, xp.shape[2] - j - sw * (wo - 1) - 1, sw - 1), (0, 0, 0)))
            grad = grad + placed
        return (grad[:, pt:pt + v.shape[1], pl:pl + v.shape[2], :],)

    pool.defvjp(pool_fwd, pool_bwd)
    return pool(x)


def depthwise_conv(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Depthwise convolution with TensorFlow "SAME" padding, as a sum of k*k shifted products.

    x: ``(N, H, W, C)``; kernel: ``(k, k, 1, C)`` (flax's grouped layout); returns
    ``(N, ceil(H/stride), ceil(W/stride), C)``, the value of ``nnx.Conv`` with
    ``feature_group_count=C``. XLA:CPU's grouped convolution, and above all its gradients, runs
    several times slower than these fused products. The backward pass is written out too: JAX's own
    transpose of the shifted products is a sum of k*k zero-padded arrays, which XLA fuses with a
    recomputation of the forward pass into one slow loop over the input; here the incoming
    cotangent is materialised once and the input gradient is again a sum of shifted products
    (experiments/benchmarks/layers.py). Reverse mode only (a custom VJP): ``jax.jvp`` raises.
    """
    xp, oh, ow = same_padded(x, kernel.shape[0], stride)
    return _depthwise_valid(xp, kernel, stride, oh, ow)


def same_padded(x: jax.Array, k: int, stride: int) -> tuple[jax.Array, int, int]:
    """``x`` (N, H, W, C) zero-padded as TensorFlow's "SAME" pads for a k x k window at ``stride``,
    and the output size ``(ceil(H/stride), ceil(W/stride))``."""
    h, w = x.shape[1:3]
    oh, ow = -(-h // stride), -(-w // stride)
    pad_h = max((oh - 1) * stride + k - h, 0)
    pad_w = max((ow - 1) * stride + k - w, 0)
    xp = jnp.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    return xp, oh, ow


def shifted_products(xp: jax.Array, kernel: jax.Array, stride: int, oh: int, ow: int) -> jax.Array:
    """``sum over (i, j) of kernel[i, j, 0] * xp[:, i + stride*a, j + stride*b, :]`` for a < oh, b < ow:
    a depthwise convolution of the already padded ``xp``, left to JAX's autodiff."""
    k = kernel.shape[0]
    n, c = xp.shape[0], xp.shape[3]
    out = None
    for i in range(k):
        for j in range(k):
            tap = lax.slice(xp, (0, i, j, 0), (n, i + (oh - 1) * stride + 1, j + (ow - 1) * stride + 1, c),
                            (1, stride, stride, 1))
            term = tap * kernel[i, j, 0]
            out = term if out is None else out + term
    return out


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _depthwise_valid(xp, kernel, stride, oh, ow):
    return shifted_products(xp, kernel, stride, oh, ow)


def _depthwise_fwd(xp, kernel, stride, oh, ow):
    return shifted_products(xp, kernel, stride, oh, ow), (xp, kernel)


def _depthwise_bwd(stride, oh, ow, residuals, g):
    xp, kernel = residuals
    k = kernel.shape[0]
    # Materialised, so that XLA does not recompute g's producers (the forward pass) once per tap.
    g = lax.optimization_barrier(g)
    if stride > 1:  # zeros between the cotangent's entries: then a stride-1 correlation
        g = lax.pad(g, jnp.zeros((), g.dtype), ((0, 0, 0), (0, 0, stride - 1), (0, 0, stride - 1), (0, 0, 0)))
        g = lax.optimization_barrier(g)
    gh, gw = g.shape[1:3]
    hp, wp = xp.shape[1:3]
    # dxp[p] = sum_i g[p - i] kernel[i]: correlate the padded cotangent with the flipped kernel.
    gp = jnp.pad(g, ((0, 0), (k - 1, hp - gh), (k - 1, wp - gw), (0, 0)))
    dxp = shifted_products(gp, kernel[::-1, ::-1], 1, hp, wp)
    n, c = xp.shape[0], xp.shape[3]
    dkernel = [[jnp.sum(lax.slice(xp, (0, i, j, 0), (n, i + gh, j + gw, c)) * g, axis=(0, 1, 2)) for j in range(k)]
               for i in range(k)]
    return dxp, jnp.asarray(dkernel)[:, :, None, :].astype(kernel.dtype)


_depthwise_valid.defvjp(_depthwise_fwd, _depthwise_bwd)
