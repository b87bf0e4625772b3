"""Convolution whose input gradient XLA:CPU runs at full speed inside loops and conditionals.

JAX differentiates a convolution w.r.t. its input with another convolution whose kernel has its
input and output feature axes swapped (HLO ``dim_labels=..._01oi->...``). In a program's top-level
computation XLA:CPU rewrites that into the canonical ``01io`` form and calls its fast convolution
kernels; inside a ``while`` or ``conditional`` body (a rolled ``lax.fori_loop`` attack, a DeepFool
loop that stops early) it does not, and emits a naive loop nest instead. Measured on CIFAR
ResNet-20, batch 64, 2 cores: one such convolution took ~100 ms inside the body against ~3 ms
outside, and a rolled 3-step gradient loop ran 11x slower than the same steps unrolled
(3,368 vs 293 ms); experiments/benchmarks/conv_in_loops.py measures PGD-10 both ways.

:func:`conv_general_dilated` is a drop-in for ``jax.lax.conv_general_dilated`` with the same value
and derivatives, whose forward-mode rule feeds the input tangent through a kernel transposed
ahead of time (behind an optimisation barrier, so XLA cannot fold the transpose back into the
convolution): its transpose, the input gradient, is then a canonical convolution wherever it sits.
:class:`Conv` is ``flax.nnx.Conv`` using it; the models and ComDefend build their convolutions
with it. Grouped convolutions fall back to ``lax`` unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax
from jax.custom_derivatives import SymbolicZero


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, batch_group_count=1, precision=None, preferred_element_type=None, **kwargs):
    """``lax.conv_general_dilated`` (same arguments, value, gradients and JVP), see the module docstring."""
    options = dict(window_strides=window_strides, padding=padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                   feature_group_count=feature_group_count, batch_group_count=batch_group_count, precision=precision,
                   preferred_element_type=preferred_element_type, **kwargs)
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    if feature_group_count != 1 or batch_group_count != 1:
        return lax.conv_general_dilated(lhs, rhs, dimension_numbers=dn, **options)
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


class Conv(nnx.Conv):
    """``flax.nnx.Conv`` (same parameters and checkpoint layout) computed with :func:`conv_general_dilated`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("conv_general_dilated", conv_general_dilated)
        super().__init__(*args, **kwargs)
