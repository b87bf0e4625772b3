"""Entropy models shared by the learned codecs (ELIC, HiFiC), in compressai 1.2.8's eval semantics.

Public API (layout NHWC throughout; ``y``/``z`` are latents, float32):

- ``ste_round_around(x, center, rounding="half_even")``: ``round(x - c) + c`` with a straight-through
  gradient (identity w.r.t. ``x``, zero w.r.t. ``c``), computed with compressai's exact float ops;
  ``rounding="half_up"`` is HiFiC's ``floor(x - c + 0.5) + c``.
- ``lower_bound(x, bound)``: ``max(x, bound)`` with compressai's ``LowerBound`` gradient
  (passes where ``x >= bound`` or the incoming gradient is negative).
- ``gaussian_likelihood(y, scales, means)``: probability mass of ``round(y - means)`` under a
  Gaussian of scale ``max(scales, 0.11)``, floored at ``1e-9`` (``GaussianConditional`` in eval
  mode: the rounding carries no gradient, the scales do).
- ``gaussian_conditional(y, scales, means) -> (y_hat, likelihoods)``: both of the above.
- ``conditional_likelihood(y, scales, means, cdf="gaussian"|"logistic", rounding=...)``: the same
  mass under a Gaussian or a logistic CDF (HiFiC's latent likelihoods).
- ``EntropyBottleneck``: Balle's factorized density per channel (``matrices``, ``biases``,
  ``factors``, ``quantiles``); ``__call__(z) -> (z_hat, likelihoods)`` quantises around the
  medians ``quantiles[:, 0, 1]`` with a straight-through gradient.
- ``bits(likelihoods)``: ``-log2`` summed per image -> ``(N,)``;
  ``bits_per_pixel(likelihoods_list, num_pixels)`` -> ``(N,)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.scipy.special import erfc

SCALE_BOUND = 0.11
LIKELIHOOD_BOUND = 1e-9


ROUNDINGS = ("half_even", "half_up")


def quantize(d: jax.Array, rounding: str = "half_even") -> jax.Array:
    """``round(d)``: half to even (``torch.round``, compressai) or half up (``floor(d + 0.5)``, HiFiC)."""
    if rounding == "half_even":
        return jnp.round(d)
    if rounding == "half_up":
        return jnp.floor(d + 0.5)
    raise ValueError(f"unknown rounding {rounding!r}; choose one of {', '.join(ROUNDINGS)}")


def ste_round_around(x: jax.Array, center: jax.Array | float, rounding: str = "half_even") -> jax.Array:
    """``round(x - c) + c`` forward (``rounding`` as ``quantize``); d/dx = 1, d/dc = 0."""
    d = x - center
    q = d + jax.lax.stop_gradient(quantize(d, rounding) - d)
    return q + center


@jax.custom_vjp
def _lower_bound(x, bound):
    return jnp.maximum(x, bound)


def _lb_fwd(x, bound):
    return jnp.maximum(x, bound), (x, bound)


def _lb_bwd(res, g):
    x, bound = res
    keep = (x >= bound) | (g < 0)
    return jnp.where(keep, g, 0.0).astype(g.dtype), jnp.zeros_like(bound)


_lower_bound.defvjp(_lb_fwd, _lb_bwd)


def lower_bound(x: jax.Array, bound: float) -> jax.Array:
    """``max(x, bound)`` whose gradient lets ``x`` move up from below the bound (compressai LowerBound)."""
    return _lower_bound(x, jnp.asarray(bound, x.dtype))


def _std_cumulative(v):
    return 0.5 * erfc(-(2**-0.5) * v)


_CDFS = {"gaussian": _std_cumulative, "logistic": jax.nn.sigmoid}


def conditional_likelihood(
    y: jax.Array,
    scales: jax.Array,
    means: jax.Array | None = None,
    cdf: str = "gaussian",
    rounding: str = "half_even",
    scale_bound: float = SCALE_BOUND,
    likelihood_bound: float = LIKELIHOOD_BOUND,
) -> jax.Array:
    """Likelihood of the quantised ``y`` (``round(y - means) + means``) under a ``cdf`` ("gaussian" or
    "logistic") location-scale law at ``means`` with scale ``max(scales, 0.11)``.

    ``CDF((0.5 - |v|) / s) - CDF((-0.5 - |v|) / s)``: same shape as ``y``, values in ``[1e-9, 1]``.
    Gradient flows to ``scales`` only (as compressai and HiFiC).
    """
    if cdf not in _CDFS:
        raise ValueError(f"unknown latent likelihood {cdf!r}; choose one of {', '.join(_CDFS)}")
    m = 0.0 if means is None else means
    outputs = jax.lax.stop_gradient(quantize(y - m, rounding)) + m
    values = jnp.abs(outputs - m)
    s = lower_bound(scales, scale_bound)
    upper = _CDFS[cdf]((0.5 - values) / s)
    lower = _CDFS[cdf]((-0.5 - values) / s)
    return lower_bound(upper - lower, likelihood_bound)


def gaussian_likelihood(
    y: jax.Array,
    scales: jax.Array,
    means: jax.Array | None = None,
    scale_bound: float = SCALE_BOUND,
    likelihood_bound: float = LIKELIHOOD_BOUND,
) -> jax.Array:
    """Likelihood of the quantised ``y`` (``round(y - means) + means``) under N(means, max(scales, 0.11)).

    Same shape as ``y``, values in ``[1e-9, 1]``. Gradient flows to ``scales`` only (as compressai).
    """
    return conditional_likelihood(y, scales, means, "gaussian", "half_even", scale_bound, likelihood_bound)


def gaussian_conditional(y, scales, means=None):
    """``(y_hat, likelihoods)``: straight-through ``y_hat`` around ``means`` and its likelihoods."""
    y_hat = ste_round_around(y, 0.0 if means is None else means)
    return y_hat, gaussian_likelihood(y, scales, means)


def bits(likelihoods: jax.Array) -> jax.Array:
    """Total information ``-sum log2 p`` per image: ``(N, ...)`` -> ``(N,)`` bits."""
    return -jnp.sum(jnp.log(likelihoods), axis=tuple(range(1, likelihoods.ndim))) / math.log(2.0)


def bits_per_pixel(likelihoods, num_pixels: int) -> jax.Array:
    """Estimated rate ``(N,)`` in bits per pixel from a list/dict of likelihood arrays ``(N, ...)``."""
    items = likelihoods.values() if isinstance(likelihoods, dict) else likelihoods
    return sum(bits(p) for p in items) / float(num_pixels)


class EntropyBottleneck(nnx.Module):
    """Factorized prior (Balle et al. 2018) over ``channels`` latent channels, compressai layout.

    Parameters (PyTorch shapes kept): ``matrices[i]`` (C, f_{i+1}, f_i), ``biases[i]`` (C, f_{i+1}, 1),
    ``factors[i]`` (C, f_{i+1}, 1) for filters ``(1, 3, 3, 3, 3, 1)``; ``quantiles`` (C, 1, 3), whose
    middle entry is the median used as the quantisation offset.
    """

    def __init__(self, channels: int, filters=(3, 3, 3, 3), init_scale: float = 10.0, *, rngs: nnx.Rngs):
        self.channels = int(channels)
        self.filters = tuple(int(f) for f in filters)
        f = (1,) + self.filters + (1,)
        scale = init_scale ** (1 / (len(self.filters) + 1))
        mats, biases, factors = [], [], []
        for i in range(len(self.filters) + 1):
            init = float(np.log(np.expm1(1 / scale / f[i + 1])))
            mats.append(nnx.Param(jnp.full((channels, f[i + 1], f[i]), init, jnp.float32)))
            biases.append(nnx.Param(jax.random.uniform(rngs.params(), (channels, f[i + 1], 1), jnp.float32, -0.5, 0.5)))
            if i < len(self.filters):
                factors.append(nnx.Param(jnp.zeros((channels, f[i + 1], 1), jnp.float32)))
        self.matrices = nnx.List(mats)
        self.biases = nnx.List(biases)
        self.factors = nnx.List(factors)
        q = jnp.asarray([-init_scale, 0.0, init_scale], jnp.float32)
        self.quantiles = nnx.Param(jnp.tile(q, (channels, 1, 1)))

    def medians(self) -> jax.Array:
        """``(C,)`` quantisation offsets."""
        return self.quantiles[...][:, 0, 1]

    def logits_cumulative(self, v: jax.Array) -> jax.Array:
        """``v`` (C, 1, L) -> logits of the cumulative density (C, 1, L)."""
        logits = v
        for i in range(len(self.filters) + 1):
            logits = jnp.einsum("cij,cjl->cil", jax.nn.softplus(self.matrices[i][...]), logits) + self.biases[i][...]
            if i < len(self.filters):
                logits = logits + jnp.tanh(self.factors[i][...]) * jnp.tanh(logits)
        return logits

    def likelihood_of(self, values: jax.Array) -> jax.Array:
        """Probability mass of the integer-offset ``values`` (C, 1, L): sigmoid(upper) - sigmoid(lower)."""
        lower = self.logits_cumulative(values - 0.5)
        upper = self.logits_cumulative(values + 0.5)
        return jax.nn.sigmoid(upper) - jax.nn.sigmoid(lower)

    def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``z`` (N, H, W, C) -> ``(z_hat, likelihoods)``, both (N, H, W, C).

        ``z_hat = round(z - median) + median`` with a straight-through gradient; the likelihoods
        are those of ``round(z - median) + median`` (no gradient through the rounding), floored at 1e-9.
        """
        if z.ndim != 4 or z.shape[-1] != self.channels:
            raise ValueError(f"EntropyBottleneck expects (N, H, W, {self.channels}) latents, got shape {z.shape}")
        med = self.medians()
        z_hat = ste_round_around(z, med)
        outputs = jax.lax.stop_gradient(jnp.round(z - med)) + med
        n, h, w, c = z.shape
        values = jnp.transpose(outputs, (3, 0, 1, 2)).reshape(c, 1, -1)
        lik = lower_bound(self.likelihood_of(values), LIKELIHOOD_BOUND)
        lik = jnp.transpose(lik.reshape(c, n, h, w), (1, 2, 3, 0))
        return z_hat, lik
