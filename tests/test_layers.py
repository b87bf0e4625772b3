"""robustjax.layers.conv_general_dilated: lax's convolution with the same value and derivatives,
whose input gradient stays a canonical (fast) XLA:CPU convolution inside loop bodies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from robustjax import layers

CASES = [  # (dimension numbers, x shape, w shape, strides, padding, rhs dilation)
    (("NHWC", "HWIO", "NHWC"), (2, 9, 8, 3), (3, 3, 3, 5), (1, 1), "SAME", (1, 1)),
    (("NHWC", "HWIO", "NHWC"), (2, 9, 8, 4), (3, 3, 4, 6), (2, 2), ((1, 1), (1, 1)), (1, 1)),
    (("NHWC", "HWIO", "NHWC"), (1, 16, 16, 3), (4, 4, 3, 8), (4, 4), "VALID", (1, 1)),
    (("NHWC", "HWIO", "NHWC"), (2, 11, 10, 2), (3, 3, 2, 3), (1, 2), ((2, 0), (1, 2)), (2, 1)),
    (("NCHW", "OIHW", "NCHW"), (2, 3, 9, 8), (5, 3, 3, 3), (2, 1), "SAME", (1, 1)),
]


@pytest.mark.parametrize("dn,xs,ws,strides,padding,dil", CASES)
def test_value_gradients_and_jvp_equal_lax(dn, xs, ws, strides, padding, dil):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=xs), jnp.float32)
    w = jnp.asarray(rng.normal(size=ws), jnp.float32)
    kw = dict(window_strides=strides, padding=padding, rhs_dilation=dil, dimension_numbers=dn)
    ours = lambda x, w: layers.conv_general_dilated(x, w, **kw)  # noqa: E731
    ref = lambda x, w: jax.lax.conv_general_dilated(x, w, **kw)  # noqa: E731
    y, y_ref = ours(x, w), ref(x, w)
    np.testing.assert_array_equal(y, y_ref)
    g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)) * g)  # noqa: E731 (non-linear, so the cotangent varies)
    gx, gw = jax.grad(loss(ours), argnums=(0, 1))(x, w)
    gx_ref, gw_ref = jax.grad(loss(ref), argnums=(0, 1))(x, w)
    # float32 sums in a different order: 1e-5 of the gradients' scale
    np.testing.assert_allclose(gx, gx_ref, atol=1e-5 * float(jnp.max(jnp.abs(gx_ref))), rtol=0)
    np.testing.assert_allclose(gw, gw_ref, atol=1e-5 * float(jnp.max(jnp.abs(gw_ref))), rtol=0)
    tx, tw = jnp.ones_like(x), jnp.full_like(w, 0.5)
    _, jvp = jax.jvp(ours, (x, w), (tx, tw))
    _, jvp_ref = jax.jvp(ref, (x, w), (tx, tw))
    np.testing.assert_allclose(jvp, jvp_ref, atol=1e-5 * float(jnp.max(jnp.abs(jvp_ref))), rtol=0)
    # only one argument differentiated (symbolic zero tangent for the other)
    np.testing.assert_allclose(jax.grad(loss(ours))(x, w), gx, atol=0, rtol=0)


def _rolled_gradient_loop_hlo(conv):
    rngs = nnx.Rngs(0)
    layer = conv(3, 4, (3, 3), strides=2, padding="SAME", rngs=rngs)
    layer2 = conv(4, 4, (3, 3), padding=((1, 1), (1, 1)), rngs=rngs)
    f = lambda v: jnp.sum(jnp.tanh(layer2(jax.nn.relu(layer(v)))))  # noqa: E731
    x = jnp.zeros((2, 8, 8, 3))
    step = lambda i, v: v + 0.1 * jax.grad(f)(v)  # noqa: E731
    return jax.jit(lambda v: jax.lax.fori_loop(0, 3, step, v)).lower(x).compile().as_text()


def test_input_gradient_is_canonical_inside_a_rolled_loop():
    hlo = _rolled_gradient_loop_hlo(layers.Conv)
    assert "while(" in hlo and "dim_labels=b01f_01io->b01f" in hlo
    # the swapped-kernel form XLA:CPU runs as a naive loop nest inside a loop body
    assert "01oi->" not in hlo


def test_conv_module_matches_nnx_conv():
    a = layers.Conv(3, 5, (3, 3), strides=2, padding="SAME", rngs=nnx.Rngs(1))
    b = nnx.Conv(3, 5, (3, 3), strides=2, padding="SAME", rngs=nnx.Rngs(1))
    assert jax.tree.map(jnp.shape, nnx.state(a, nnx.Param)) == jax.tree.map(jnp.shape, nnx.state(b, nnx.Param))
    x = jnp.asarray(np.random.default_rng(2).random((2, 7, 7, 3)), jnp.float32)
    np.testing.assert_array_equal(a(x), b(x))


POINTWISE = [  # 1x1 kernels take the matrix-product path
    (("NHWC", "HWIO", "NHWC"), (2, 9, 8, 6), (1, 1, 6, 5), (1, 1), "SAME"),
    (("NHWC", "HWIO", "NHWC"), (2, 9, 7, 4), (1, 1, 4, 8), (2, 2), ((0, 0), (0, 0))),
    (("NHWC", "HWIO", "NHWC"), (2, 9, 7, 4), (1, 1, 4, 3), (2, 3), "VALID"),
    (("NCHW", "OIHW", "NCHW"), (2, 3, 9, 8), (5, 3, 1, 1), (2, 1), "SAME"),
    (("NHWC", "OIHW", "NCHW"), (2, 9, 8, 3), (5, 3, 1, 1), (1, 2), "VALID"),
]


@pytest.mark.parametrize("dn,xs,ws,strides,padding", POINTWISE)
def test_pointwise_convolution_is_a_matrix_product_with_lax_values(dn, xs, ws, strides, padding):
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=xs), jnp.float32)
    w = jnp.asarray(rng.normal(size=ws), jnp.float32)
    kw = dict(window_strides=strides, padding=padding, dimension_numbers=dn)
    ours = lambda x, w: layers.conv_general_dilated(x, w, **kw)  # noqa: E731
    ref = lambda x, w: jax.lax.conv_general_dilated(x, w, **kw)  # noqa: E731
    hlo = jax.jit(ours).lower(x, w).as_text()
    assert "dot_general" in hlo and "convolution" not in hlo
    y, y_ref = ours(x, w), ref(x, w)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, atol=1e-5 * float(jnp.max(jnp.abs(y_ref))), rtol=0)
    g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)) * g)  # noqa: E731
    for a, b in zip(jax.grad(loss(ours), argnums=(0, 1))(x, w), jax.grad(loss(ref), argnums=(0, 1))(x, w)):
        np.testing.assert_allclose(a, b, atol=1e-5 * float(jnp.max(jnp.abs(b))), rtol=0)


@pytest.mark.parametrize("shape,window,strides,padding", [
    ((2, 11, 10, 3), (3, 3), (2, 2), ((1, 1), (1, 1))),  # ResNet-50's stem pool on an odd size
    ((1, 8, 8, 2), (2, 2), (2, 2), "SAME"),
    ((2, 7, 9, 2), (3, 2), (1, 2), "VALID"),
])
def test_max_pool_matches_nnx_and_routes_the_gradient_to_the_first_maximum(shape, window, strides, padding):
    rng = np.random.default_rng(4)
    # ReLU-like input with ties (zeros and a repeated value) to exercise the first-maximum rule
    x = np.maximum(rng.normal(size=shape), 0).astype(np.float32)
    x[0, 1:4, 1:4, 0] = 2.0
    y = layers.max_pool(jnp.asarray(x), window, strides, padding)
    np.testing.assert_array_equal(y, nnx.max_pool(jnp.asarray(x), window, strides=strides, padding=padding))
    g = rng.normal(size=y.shape).astype(np.float32)
    grad = jax.grad(lambda v: jnp.sum(layers.max_pool(v, window, strides, padding) * g))(jnp.asarray(x))
    # reference: loop over windows, the cotangent goes to the first maximum in row-major order (PyTorch's rule)
    pads = jax.lax.padtype_to_pads(shape[1:3], window, strides, padding) if isinstance(padding, str) else padding
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=-np.inf)
    expected = np.zeros_like(xp)
    for n, r, c, ch in np.ndindex(*y.shape):
        patch = xp[n, r * strides[0]:r * strides[0] + window[0], c * strides[1]:c * strides[1] + window[1], ch]
        i, j = np.unravel_index(np.argmax(patch), patch.shape)  # argmax: first maximum
        expected[n, r * strides[0] + i, c * strides[1] + j, ch] += g[n, r, c, ch]
    expected = expected[:, pads[0][0]:pads[0][0] + shape[1], pads[1][0]:pads[1][0] + shape[2]]
    np.testing.assert_allclose(grad, expected, atol=1e-6, rtol=0)


def test_transposed_convolution_form_equals_lax():
    """Input dilation (the transposed convolutions of ELIC and HiFiC): value and both gradients."""
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(2, 5, 6, 4)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(5, 5, 4, 3)), jnp.float32)
    kw = dict(window_strides=(1, 1), padding=((2, 3), (2, 3)), lhs_dilation=(2, 2),
              dimension_numbers=("NHWC", "HWIO", "NHWC"))
    ours = lambda x, w: layers.conv_general_dilated(x, w, **kw)  # noqa: E731
    ref = lambda x, w: jax.lax.conv_general_dilated(x, w, **kw)  # noqa: E731
    np.testing.assert_array_equal(ours(x, w), ref(x, w))
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))  # noqa: E731
    for a, b in zip(jax.grad(loss(ours), argnums=(0, 1))(x, w), jax.grad(loss(ref), argnums=(0, 1))(x, w)):
        np.testing.assert_allclose(a, b, atol=1e-5 * float(jnp.max(jnp.abs(b))), rtol=0)


DEPTHWISE = [  # (x shape, kernel size, stride): odd and even sizes, both strides, EfficientNet-Lite0's kernels
    ((2, 9, 9, 4), 3, 1), ((2, 9, 8, 4), 3, 2), ((1, 12, 11, 3), 5, 2),
]


@pytest.mark.parametrize("xs,k,stride", DEPTHWISE)
def test_depthwise_conv_value_and_gradients_equal_lax_grouped_convolution(xs, k, stride):
    rng = np.random.default_rng(1)
    c = xs[-1]
    x = jnp.asarray(rng.normal(size=xs), jnp.float32)
    w = jnp.asarray(rng.normal(size=(k, k, 1, c)), jnp.float32)
    ref = lambda x, w: jax.lax.conv_general_dilated(  # noqa: E731
        x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)
    y, y_ref = layers.depthwise_conv(x, w, stride), ref(x, w)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, atol=1e-5 * float(jnp.max(jnp.abs(y_ref))), rtol=0)
    g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
    # ReLU6 after the convolution, as in the model: the cotangent then depends on the forward value
    loss = lambda f: lambda x, w: jnp.sum(jax.nn.relu6(f(x, w)) * g)  # noqa: E731
    gx, gw = jax.grad(loss(lambda x, w: layers.depthwise_conv(x, w, stride)), argnums=(0, 1))(x, w)
    gx_ref, gw_ref = jax.grad(loss(ref), argnums=(0, 1))(x, w)
    # float32 sums in a different order: 1e-5 of the gradients' scale
    np.testing.assert_allclose(gx, gx_ref, atol=1e-5 * float(jnp.max(jnp.abs(gx_ref))), rtol=0)
    np.testing.assert_allclose(gw, gw_ref, atol=1e-5 * float(jnp.max(jnp.abs(gw_ref))), rtol=0)
