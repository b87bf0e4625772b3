"""The HiFiC network (Mentzer et al. 2020, Justin-Tan/high-fidelity-generative-compression) in Flax NNX, NHWC.

Module paths mirror the published ``model_state_dict`` (``Encoder.conv_block1.1.weight`` ->
``Encoder.conv_block1.conv.kernel``, ``Generator.resblock_0.conv1.weight`` ->
``Generator.resblocks.0.conv1.kernel``, ``Hyperprior.hyperlatent_likelihood.H_0`` ->
``Hyperprior.hyperlatent_likelihood.H.0``), so the key map in ``params.py`` is mechanical.

- ``ChannelNorm``: per pixel across channels, unbiased variance (ddof=1), eps 1e-3, gamma/beta.
- ``Encoder`` (3 -> C=220, /16): reflect-pad 3, conv7x7 -> 60, norm, ReLU; four times
  [reflect-pad (left 0, right 1, top 1, bottom 0), conv3x3/2 (valid), norm, ReLU] up to 960;
  reflect-pad 1, conv3x3 960 -> C.
- ``Generator`` (C -> 3, x16): norm, reflect-pad 1, conv3x3 -> 960, norm (the "head"); n residual
  blocks ``x + norm(conv(pad(relu(norm(conv(pad(x)))))))``; plus the head (global skip); four
  ConvTranspose2d(3, stride 2, padding 1, output_padding 1) + norm + ReLU; reflect-pad 3, conv7x7 -> 3.
- ``Hyperprior``: analysis conv3x3 (zero pad 1), ReLU, conv5x5/2 (reflect pad 2), ReLU, conv5x5/2
  (reflect pad 2); synthesis (mean and scale nets alike) ConvT5x5/2 (pad 2, output pad 1) + ReLU twice,
  ConvT3x3 (pad 1) -> C; ``HyperpriorDensity`` for z (filters 3, 3, 3; tanh gate on every layer).
- Latent likelihood: Gaussian or logistic CDF of ``floor(y - mu + 0.5)`` at scale ``max(sigma, 0.11)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from robustjax import layers
from robustjax.defenses.entropy import (
    LIKELIHOOD_BOUND,
    SCALE_BOUND,
    conditional_likelihood,
    lower_bound,
    ste_round_around,
)

ENCODER_FILTERS = (60, 120, 240, 480, 960)
GENERATOR_FILTERS = (960, 480, 240, 120, 60)
HYPER_FILTERS = 320
LIKELIHOODS = ("gaussian", "logistic")


def reflect(x, top, bottom, left, right):
    """``nn.ReflectionPad2d((left, right, top, bottom))`` on NHWC."""
    return jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), mode="reflect")


def conv(cin, cout, k, stride, rngs, padding=0):
    """PyTorch ``Conv2d(cin, cout, k, stride, padding)`` with zero padding (0 = valid)."""
    p = padding
    return layers.Conv(cin, cout, (k, k), strides=(stride, stride), padding=((p, p), (p, p)), rngs=rngs)


class ConvT(nnx.Module):
    """PyTorch ``ConvTranspose2d(cin, cout, k, stride, padding, output_padding)``.

    ``kernel`` (k, k, cin, cout) is the spatially flipped PyTorch weight (``porting.conv_transpose_kernel``).
    """

    def __init__(self, cin, cout, k, stride, padding, output_padding, *, rngs: nnx.Rngs):
        fan_in = cin * k * k
        self.kernel = nnx.Param(jax.random.uniform(rngs.params(), (k, k, cin, cout), jnp.float32, -1, 1)
                                / np.sqrt(fan_in))
        self.bias = nnx.Param(jnp.zeros((cout,), jnp.float32))
        self.k, self.stride, self.padding, self.output_padding = k, stride, padding, output_padding

    def __call__(self, x):
        lo = self.k - 1 - self.padding
        hi = lo + self.output_padding
        y = layers.conv_general_dilated(
            x, self.kernel[...], (1, 1), ((lo, hi), (lo, hi)), lhs_dilation=(self.stride, self.stride),
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + self.bias[...]


class ChannelNorm(nnx.Module):
    """``(x - mean_c) / sqrt(var_c + 1e-3) * gamma + beta`` over the channel axis; var unbiased (ddof=1)."""

    def __init__(self, channels: int, eps: float = 1e-3):
        self.gamma = nnx.Param(jnp.ones((channels,), jnp.float32))
        self.beta = nnx.Param(jnp.zeros((channels,), jnp.float32))
        self.eps = eps

    def __call__(self, x):
        mu = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.var(x, axis=-1, keepdims=True, ddof=1)
        return (x - mu) * jax.lax.rsqrt(var + self.eps) * self.gamma[...] + self.beta[...]


class Block(nnx.Module):
    """One ``nn.Sequential`` block of the encoder / generator: [pad] conv|convT [norm] [ReLU].

    Paths: ``conv`` and ``norm`` (the torch indices differ per block; the key map says which).
    """

    def __init__(self, layer, norm=None, pad=None, relu=True):
        self.conv = layer
        self.norm = norm
        self.pad = pad
        self.relu = relu

    def __call__(self, x):
        if self.pad is not None:
            x = reflect(x, *self.pad)
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return jax.nn.relu(x) if self.relu else x


ASYMMETRIC = (1, 0, 0, 1)  # ReflectionPad2d((0, 1, 1, 0)): top 1, bottom 0, left 0, right 1


class Encoder(nnx.Module):
    def __init__(self, C: int = 220, *, rngs: nnx.Rngs):
        f = ENCODER_FILTERS
        self.conv_block1 = Block(conv(3, f[0], 7, 1, rngs), ChannelNorm(f[0]), pad=(3, 3, 3, 3))
        for i in range(4):
            setattr(self, f"conv_block{i + 2}",
                    Block(conv(f[i], f[i + 1], 3, 2, rngs), ChannelNorm(f[i + 1]), pad=ASYMMETRIC))
        self.conv_block_out = Block(conv(f[4], C, 3, 1, rngs), pad=(1, 1, 1, 1), relu=False)
        self.n_downsampling_layers = 4

    def __call__(self, x):
        for name in ("conv_block1", "conv_block2", "conv_block3", "conv_block4", "conv_block5", "conv_block_out"):
            x = getattr(self, name)(x)
        return x


class ResidualBlock(nnx.Module):
    def __init__(self, channels: int, *, rngs: nnx.Rngs):
        self.conv1 = conv(channels, channels, 3, 1, rngs)
        self.conv2 = conv(channels, channels, 3, 1, rngs)
        self.norm1 = ChannelNorm(channels)
        self.norm2 = ChannelNorm(channels)

    def __call__(self, x):
        res = jax.nn.relu(self.norm1(self.conv1(reflect(x, 1, 1, 1, 1))))
        res = self.norm2(self.conv2(reflect(res, 1, 1, 1, 1)))
        return res + x


class Generator(nnx.Module):
    def __init__(self, C: int = 220, n_residual_blocks: int = 9, *, rngs: nnx.Rngs):
        f = GENERATOR_FILTERS
        self.n_residual_blocks = int(n_residual_blocks)
        self.norm_in = ChannelNorm(C)  # conv_block_init.0
        self.conv_block_init = Block(conv(C, f[0], 3, 1, rngs), ChannelNorm(f[0]), pad=(1, 1, 1, 1), relu=False)
        self.resblocks = nnx.List([ResidualBlock(f[0], rngs=rngs) for _ in range(self.n_residual_blocks)])
        for i in range(4):
            setattr(self, f"upconv_block{i + 1}",
                    Block(ConvT(f[i], f[i + 1], 3, 2, 1, 1, rngs=rngs), ChannelNorm(f[i + 1])))
        self.conv_block_out = Block(conv(f[4], 3, 7, 1, rngs), pad=(3, 3, 3, 3), relu=False)

    def __call__(self, y):
        head = self.conv_block_init(self.norm_in(y))
        x = head
        for block in self.resblocks:
            x = block(x)
        x = x + head
        for i in range(4):
            x = getattr(self, f"upconv_block{i + 1}")(x)
        return self.conv_block_out(x)


class HyperpriorAnalysis(nnx.Module):
    def __init__(self, C: int = 220, N: int = HYPER_FILTERS, *, rngs: nnx.Rngs):
        self.conv1 = conv(C, N, 3, 1, rngs, padding=1)  # zero padding
        self.conv2 = conv(N, N, 5, 2, rngs)  # reflect padding 2, applied in __call__
        self.conv3 = conv(N, N, 5, 2, rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.conv1(x))
        x = jax.nn.relu(self.conv2(reflect(x, 2, 2, 2, 2)))
        return self.conv3(reflect(x, 2, 2, 2, 2))


class HyperpriorSynthesis(nnx.Module):
    def __init__(self, C: int = 220, N: int = HYPER_FILTERS, *, rngs: nnx.Rngs):
        self.conv1 = ConvT(N, N, 5, 2, 2, 1, rngs=rngs)
        self.conv2 = ConvT(N, N, 5, 2, 2, 1, rngs=rngs)
        self.conv3 = ConvT(N, C, 3, 1, 1, 0, rngs=rngs)

    def __call__(self, z):
        return self.conv3(jax.nn.relu(self.conv2(jax.nn.relu(self.conv1(z)))))


class HyperpriorDensity(nnx.Module):
    """Balle's factorized density of the hyper-latents, HiFiC's variant: ``H_k, a_k, b_k`` (k = 0..3),
    ``logits = softplus(H_k) @ logits + b_k; logits += tanh(a_k) * tanh(logits)`` on every layer.

    Shapes as PyTorch: ``H.k`` (C, f_{k+1}, f_k), ``a.k`` / ``b.k`` (C, f_{k+1}, 1), filters (1, 3, 3, 3, 1).
    """

    def __init__(self, channels: int = HYPER_FILTERS, filters=(3, 3, 3), init_scale: float = 10.0, *, rngs: nnx.Rngs):
        self.channels = int(channels)
        f = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1 / (len(filters) + 1))
        H, a, b = [], [], []
        for k in range(len(filters) + 1):
            init = float(np.log(np.expm1(1 / scale / f[k + 1])))
            H.append(nnx.Param(jnp.full((channels, f[k + 1], f[k]), init, jnp.float32)))
            a.append(nnx.Param(jnp.zeros((channels, f[k + 1], 1), jnp.float32)))
            b.append(nnx.Param(jax.random.uniform(rngs.params(), (channels, f[k + 1], 1), jnp.float32, -0.5, 0.5)))
        self.H, self.a, self.b = nnx.List(H), nnx.List(a), nnx.List(b)

    def cdf_logits(self, v):
        """``v`` (C, 1, L) -> (C, 1, L)."""
        logits = v
        for k in range(len(self.H)):
            logits = jnp.einsum("cij,cjl->cil", jax.nn.softplus(self.H[k][...]), logits) + self.b[k][...]
            logits = logits + jnp.tanh(self.a[k][...]) * jnp.tanh(logits)
        return logits

    def pmf(self, v):
        """Probability mass of the interval ``v +- 0.5`` (C, 1, L), with the reference's sign trick
        (``|sigmoid(s u) - sigmoid(s l)|``, ``s = -sign(u + l)``), floored at 1e-9."""
        upper = self.cdf_logits(v + 0.5)
        lower = self.cdf_logits(v - 0.5)
        sign = jax.lax.stop_gradient(-jnp.sign(upper + lower))
        p = jnp.abs(jax.nn.sigmoid(sign * upper) - jax.nn.sigmoid(sign * lower))
        return lower_bound(p, LIKELIHOOD_BOUND)

    def __call__(self, z):
        """``z`` (N, H, W, C) -> likelihoods (N, H, W, C)."""
        n, h, w, c = z.shape
        v = jnp.transpose(z, (3, 0, 1, 2)).reshape(c, 1, -1)
        return jnp.transpose(self.pmf(v).reshape(c, n, h, w), (1, 2, 3, 0))


class Hyperprior(nnx.Module):
    def __init__(self, C: int = 220, N: int = HYPER_FILTERS, likelihood: str = "gaussian", *, rngs: nnx.Rngs):
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown HiFiC latent likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
        self.analysis_net = HyperpriorAnalysis(C, N, rngs=rngs)
        self.synthesis_mu = HyperpriorSynthesis(C, N, rngs=rngs)
        self.synthesis_std = HyperpriorSynthesis(C, N, rngs=rngs)
        self.hyperlatent_likelihood = HyperpriorDensity(N, rngs=rngs)
        self.likelihood = likelihood

    def params_of(self, z_hat):
        """Means and scales (scales lower-bounded at 0.11 with the LowerBoundToward gradient)."""
        return self.synthesis_mu(z_hat), lower_bound(self.synthesis_std(z_hat), SCALE_BOUND)


class HiFiC(nnx.Module):
    """HiFiC's compression model: ``Encoder``, ``Generator``, ``Hyperprior`` (the published module tree).

    ``normalize_input_image`` (from the checkpoint's ``args``): the network sees ``2x - 1`` and its
    output goes through ``tanh`` and back to ``(t + 1) / 2``.
    """

    def __init__(self, C: int = 220, n_residual_blocks: int = 9, likelihood: str = "gaussian",
                 normalize_input_image: bool = False, *, rngs: nnx.Rngs):
        self.Encoder = Encoder(C, rngs=rngs)
        self.Generator = Generator(C, n_residual_blocks, rngs=rngs)
        self.Hyperprior = Hyperprior(C, HYPER_FILTERS, likelihood, rngs=rngs)
        self.normalize_input_image = bool(normalize_input_image)
        self.likelihood = likelihood

    def __call__(self, x):
        """``x`` (N, H, W, 3) in [0, 1], H, W multiples of 16 -> dict (see ``hific.forward``); no crop/clamp."""
        h = 2.0 * x - 1.0 if self.normalize_input_image else x
        y = self.Encoder(h)
        fy = 4
        py, px = (-y.shape[1]) % fy, (-y.shape[2]) % fy
        if py or px:
            y = reflect(y, 0, py, 0, px)
        z = self.Hyperprior.analysis_net(y)
        z_hat = jax.lax.stop_gradient(jnp.floor(z + 0.5))  # floor has zero gradient in torch
        z_lik = self.Hyperprior.hyperlatent_likelihood(z_hat)
        mu, scale = self.Hyperprior.params_of(z_hat)
        y_lik = conditional_likelihood(y, scale, mu, cdf=self.likelihood, rounding="half_up")
        y_hat = ste_round_around(y, mu, rounding="half_up")
        out = self.Generator(y_hat)
        if self.normalize_input_image:
            out = (jnp.tanh(out) + 1.0) / 2.0
        return {"x_hat": out, "y_hat": y_hat, "likelihoods": {"y": y_lik, "z": z_lik}}
