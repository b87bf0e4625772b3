"""The ELIC network (He et al. 2022, Chandelier's re-implementation = compressai 1.2.8 ``Elic2022Chandelier``).

Flax NNX modules in NHWC. ``Elic.__call__(x)`` is the differentiable forward that Räber et al. 2025 used as a
defense (compressai's eval forward, ``forward_method="twopass"``):

- ``y = g_a(x)``; ``z = h_a(y)``; ``z_hat`` = straight-through rounding around the entropy
  bottleneck's medians; ``hyper = h_s(z_hat)`` (640 channels).
- ``y`` is split into uneven groups [16, 16, 32, 64, 192]. Group k's channel context uses group 0
  and group k-1 (group 1 only group 0). Two passes per group on a checkerboard: anchors (i+j even)
  with a zero spatial context, then non-anchors with the masked-conv context of the anchors;
  ``y_hat = round(y - mean) + mean`` with a straight-through gradient.
- ``x_hat = g_s(y_hat)`` (no clamp), likelihoods of y (Gaussian conditional) and z (factorized).

Module paths mirror Chandelier's flat state dict, so the key map in ``params.py`` is mechanical.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from robustjax import layers
from robustjax.defenses.entropy import EntropyBottleneck, gaussian_likelihood, ste_round_around

GROUPS = (16, 16, 32, 64, 192)


def conv(cin, cout, k, stride, rngs):
    """PyTorch ``Conv2d(cin, cout, k, stride, padding=k // 2)``."""
    p = k // 2
    return layers.Conv(cin, cout, (k, k), strides=(stride, stride), padding=((p, p), (p, p)), rngs=rngs)


class Deconv(nnx.Module):
    """PyTorch ``ConvTranspose2d(cin, cout, k, stride=2, padding=k // 2, output_padding=1)``: H -> 2H.

    ``kernel`` (k, k, cin, cout) is the spatially flipped PyTorch weight (``porting.conv_transpose_kernel``).
    """

    def __init__(self, cin, cout, k=5, stride=2, *, rngs: nnx.Rngs):
        fan_in = cin * k * k
        self.kernel = nnx.Param(jax.random.uniform(rngs.params(), (k, k, cin, cout), jnp.float32, -1, 1)
                                / np.sqrt(fan_in))
        self.bias = nnx.Param(jnp.zeros((cout,), jnp.float32))
        self.k, self.stride = k, stride

    def __call__(self, x):
        p = self.k // 2
        lo, hi = self.k - 1 - p, self.k - 1 - p + self.stride - 1
        y = layers.conv_general_dilated(
            x, self.kernel[...], (1, 1), ((lo, hi), (lo, hi)), lhs_dilation=(self.stride, self.stride),
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + self.bias[...]


class ResidualBottleneck(nnx.Module):
    """x + conv1x1(relu(conv3x3(relu(conv1x1(x))))), N -> N/2 -> N/2 -> N."""

    def __init__(self, n, *, rngs):
        self.conv1 = conv(n, n // 2, 1, 1, rngs)
        self.conv2 = conv(n // 2, n // 2, 3, 1, rngs)
        self.conv3 = conv(n // 2, n, 1, 1, rngs)

    def __call__(self, x):
        return x + self.conv3(jax.nn.relu(self.conv2(jax.nn.relu(self.conv1(x)))))


class ResidualUnit(nnx.Module):
    """relu(x + conv1x1(relu(conv3x3(relu(conv1x1(x)))))); path ``conv.{0,2,4}`` as in compressai."""

    def __init__(self, n, *, rngs):
        self.conv = nnx.Sequential(conv(n, n // 2, 1, 1, rngs), jax.nn.relu, conv(n // 2, n // 2, 3, 1, rngs),
                                   jax.nn.relu, conv(n // 2, n, 1, 1, rngs))

    def __call__(self, x):
        return jax.nn.relu(x + self.conv(x))


class AttentionBlock(nnx.Module):
    """Simplified Cheng 2020 attention: a(x) * sigmoid(b(x)) + x."""

    def __init__(self, n, *, rngs):
        self.conv_a = nnx.Sequential(*[ResidualUnit(n, rngs=rngs) for _ in range(3)])
        self.conv_b = nnx.Sequential(*[ResidualUnit(n, rngs=rngs) for _ in range(3)], conv(n, n, 1, 1, rngs))

    def __call__(self, x):
        return self.conv_a(x) * jax.nn.sigmoid(self.conv_b(x)) + x


def checkerboard_kernel_mask(k: int = 5) -> np.ndarray:
    """(k, k, 1, 1) mask: 1 where i + j is odd (the 4-neighbourhood parity), centre excluded."""
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    m = ((i + j) % 2 == 1).astype(np.float32)
    m[k // 2, k // 2] = 0.0
    return m[:, :, None, None]


class CheckerboardConv(nnx.Module):
    """compressai ``CheckerboardMaskedConv2d`` (5x5, type A): the kernel is masked on every call."""

    def __init__(self, cin, cout, k=5, *, rngs):
        self.conv = conv(cin, cout, k, 1, rngs)
        self.k = k

    def __call__(self, x):
        kernel = self.conv.kernel[...] * jnp.asarray(checkerboard_kernel_mask(self.k))
        y = layers.conv_general_dilated(x, kernel, (1, 1), ((self.k // 2,) * 2,) * 2,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + self.conv.bias[...]


def anchor_mask(h: int, w: int) -> jax.Array:
    """(1, h, w, 1) booleans, True at anchors (i + j even; compressai ``anchor_parity='even'``)."""
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return jnp.asarray(((i + j) % 2 == 0)[None, :, :, None])


class Elic(nnx.Module):
    """ELIC with N=192, M=320 (33,792,771 parameters at the defaults). Inputs (N, H, W, 3), H, W % 64 == 0."""

    def __init__(self, N: int = 192, M: int = 320, groups=GROUPS, *, rngs: nnx.Rngs | None = None):
        rngs = rngs if rngs is not None else nnx.Rngs(0)
        groups = tuple(int(g) for g in groups)
        if sum(groups) != M:
            raise ValueError(f"ELIC channel groups {groups} must sum to M={M}")
        self.N, self.M, self.groups = N, M, groups
        rbb = lambda: ResidualBottleneck(N, rngs=rngs)  # noqa: E731
        self.g_a = nnx.Sequential(
            conv(3, N, 5, 2, rngs), rbb(), rbb(), rbb(),
            conv(N, N, 5, 2, rngs), rbb(), rbb(), rbb(), AttentionBlock(N, rngs=rngs),
            conv(N, N, 5, 2, rngs), rbb(), rbb(), rbb(),
            conv(N, M, 5, 2, rngs), AttentionBlock(M, rngs=rngs))
        self.g_s = nnx.Sequential(
            AttentionBlock(M, rngs=rngs), Deconv(M, N, rngs=rngs), rbb(), rbb(), rbb(),
            Deconv(N, N, rngs=rngs), AttentionBlock(N, rngs=rngs), rbb(), rbb(), rbb(),
            Deconv(N, N, rngs=rngs), rbb(), rbb(), rbb(),
            Deconv(N, 3, rngs=rngs))
        self.h_a = nnx.Sequential(conv(M, N, 3, 1, rngs), jax.nn.relu, conv(N, N, 5, 2, rngs), jax.nn.relu,
                                  conv(N, N, 5, 2, rngs))
        self.h_s = nnx.Sequential(Deconv(N, N, rngs=rngs), jax.nn.relu, Deconv(N, N * 3 // 2, rngs=rngs), jax.nn.relu,
                                  conv(N * 3 // 2, 2 * M, 3, 1, rngs))
        self.entropy_bottleneck = EntropyBottleneck(N, rngs=rngs)
        self.cc_transforms = nnx.List([
            nnx.Sequential(conv(groups[0] + (k > 1) * groups[k - 1], 224, 5, 1, rngs), jax.nn.relu,
                           conv(224, 128, 5, 1, rngs), jax.nn.relu, conv(128, 2 * groups[k], 5, 1, rngs))
            for k in range(1, len(groups))])
        self.context_prediction = nnx.List([CheckerboardConv(g, 2 * g, rngs=rngs) for g in groups])
        self.ParamAggregation = nnx.List([
            nnx.Sequential(conv(2 * g + (k > 0) * 2 * g + 2 * M, 2 * M, 1, 1, rngs), jax.nn.relu,
                           conv(2 * M, 512, 1, 1, rngs), jax.nn.relu, conv(512, 2 * g, 1, 1, rngs))
            for k, g in enumerate(groups)])

    # -- pieces shared by the differentiable forward and the real codec --------------------------
    def channel_context(self, k: int, y_hats: list) -> jax.Array | None:
        """Channel-context parameters (N, h, w, 2 g_k) for group k >= 1 from decoded groups 0 and k-1."""
        if k == 0:
            return None
        inp = y_hats[0] if k == 1 else jnp.concatenate([y_hats[0], y_hats[k - 1]], axis=-1)
        return self.cc_transforms[k - 1](inp)

    def group_params(self, k: int, spatial_ctx: jax.Array, ch_ctx, hyper: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Parameter aggregation -> (means, scales) of group k; concat order [spatial, channel, hyper]."""
        parts = [spatial_ctx] + ([] if ch_ctx is None else [ch_ctx]) + [hyper]
        p = self.ParamAggregation[k](jnp.concatenate(parts, axis=-1))
        g = self.groups[k]
        return p[..., :g], p[..., g:]

    def __call__(self, x: jax.Array) -> dict:
        """x (N, H, W, 3) -> {"x_hat": (N, H, W, 3), "likelihoods": {"y": (N, H/16, W/16, 320),
        "z": (N, H/64, W/64, 192)}}. H and W must be multiples of 64 (checked by the caller)."""
        y = self.g_a(x)
        z = self.h_a(y)
        z_hat, z_lik = self.entropy_bottleneck(z)
        hyper = self.h_s(z_hat)
        n, h, w, _ = y.shape
        anchors = anchor_mask(h, w)
        bounds = np.cumsum((0,) + self.groups)
        y_hats, liks = [], []
        for k, g in enumerate(self.groups):
            y_k = y[..., bounds[k]:bounds[k + 1]]
            ch = self.channel_context(k, y_hats)
            mean_a, scale_a = self.group_params(k, jnp.zeros((n, h, w, 2 * g), y.dtype), ch, hyper)
            y_hat_a = jnp.where(anchors, ste_round_around(y_k, mean_a), 0.0)
            mean_n, scale_n = self.group_params(k, self.context_prediction[k](y_hat_a), ch, hyper)
            y_hat_n = jnp.where(anchors, 0.0, ste_round_around(y_k, mean_n))
            means = jnp.where(anchors, mean_a, mean_n)
            scales = jnp.where(anchors, scale_a, scale_n)
            y_hats.append(y_hat_a + y_hat_n)
            liks.append(gaussian_likelihood(y_k, scales, means))
        y_hat = jnp.concatenate(y_hats, axis=-1)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": jnp.concatenate(liks, axis=-1), "z": z_lik},
                "y_hat": y_hat, "z_hat": z_hat}
