"""Real HiFiC bitstreams with ``constriction`` (ANS coding, as ``elic.codec``), so bits per pixel can be measured.

``HificCodec(model).compress(x) -> list[bytes]`` (one file per image) and ``.decompress(data) -> x_hat``,
where ``x_hat`` equals ``hific.forward(model, x)["x_hat"]`` (cropped, clamped).

Order: the hyper-latents ``z`` (symbols ``floor(z + 0.5)``, per channel a categorical over the
symbols ``lo..hi`` with the probabilities of ``HyperpriorDensity``; the range covers the prior's
tails, not only this image's symbols), then the latents ``y`` (symbols ``floor(y - mu + 0.5)``, each
with its own categorical over ``-r..r`` whose masses are the Gaussian or logistic CDF differences at
scale ``max(sigma, 0.11)``, exactly the forward's likelihood model; ``r`` covers this image's symbols
and the tails of the 99th-percentile scale, up to 128). Truncated tables are renormalised by the coder,
so covering the tails keeps the real size at the estimate.
``mu`` and ``sigma`` come from the same jitted function in encoder and decoder, fed the same decoded
``z``, so the two sides build identical tables.

File layout: magic ``b"HFC1"``, int32 header ``[H, W, z_lo, z_hi, y_radius, len_z, len_y]`` (lengths
in 32-bit words), then the ANS words of z and of y.
"""

from __future__ import annotations

import constriction
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from scipy.special import expit, ndtr

from robustjax.defenses.entropy import LIKELIHOOD_BOUND
from robustjax.defenses.hific.net import HiFiC

MAGIC = b"HFC1"
_HEADER = 7
_Z_LIMIT = 256  # hyper-latent symbols searched for the prior's tails
_Y_TAIL = {"gaussian": 6.5, "logistic": 21.0}  # scales covering all but ~1e-10 of the mass per side
_Y_LIMIT = 128


class HificCodec:
    """Entropy-coded HiFiC for images (N, H, W, 3) in [0, 1], any H, W (padded and cropped as the forward)."""

    def __init__(self, model: HiFiC):
        from robustjax.defenses.hific import defense as hific

        self.graphdef, self.state = nnx.split(model)
        self.likelihood = model.likelihood
        self.channels = model.Hyperprior.hyperlatent_likelihood.channels
        m = lambda s: nnx.merge(self.graphdef, s)  # noqa: E731

        def analysis(s, x):
            net = m(s)
            xp = hific.pad_to(2.0 * x - 1.0 if net.normalize_input_image else x, hific.STRIDE)
            y = hific.pad_to(net.Encoder(xp), 4)
            return y, net.Hyperprior.analysis_net(y)

        def synthesis(s, y_hat, h, w):
            net = m(s)
            out = net.Generator(y_hat)
            if net.normalize_input_image:
                out = (jnp.tanh(out) + 1.0) / 2.0
            return jnp.clip(out[:, :h, :w], 0.0, 1.0)

        self._analysis = jax.jit(analysis)
        self._params = jax.jit(lambda s, z_hat: m(s).Hyperprior.params_of(z_hat))
        self._synthesis = jax.jit(synthesis, static_argnums=(2, 3))
        self._z_pmf = jax.jit(lambda s, v: m(s).Hyperprior.hyperlatent_likelihood.pmf(v))
        # The symbol range the prior covers (tail mass 1e-9 per side, as the reference's tables), so the
        # coder's renormalised tables keep the model's probabilities; widened on demand per image.
        grid = np.arange(-_Z_LIMIT, _Z_LIMIT + 1, dtype=np.float32)
        logits = np.asarray(jax.jit(lambda s, v: m(s).Hyperprior.hyperlatent_likelihood.cdf_logits(v))(
            self.state, jnp.asarray(np.broadcast_to(grid, (self.channels, 1, grid.size)))))[:, 0, :]
        tail = np.log(LIKELIHOOD_BOUND)
        inside = (logits > tail) & (logits < -tail)
        self._z_range = (int(grid[inside.any(0)].min(initial=0)) - 1, int(grid[inside.any(0)].max(initial=0)) + 1)

    # -- tables ----------------------------------------------------------------------------------
    def _z_table(self, lo: int, hi: int) -> np.ndarray:
        """(C, hi - lo + 1) probabilities of the z symbols lo..hi per channel."""
        v = np.broadcast_to(np.arange(lo, hi + 1, dtype=np.float32), (self.channels, 1, hi - lo + 1))
        p = np.asarray(self._z_pmf(self.state, jnp.asarray(v)))[:, 0, :].astype(np.float64)
        return np.maximum(p, LIKELIHOOD_BOUND)

    def _y_table(self, scales: np.ndarray, radius: int) -> np.ndarray:
        """(K, 2r + 1) probabilities of the y symbols -r..r for K latents of the given scales."""
        cdf = ndtr if self.likelihood == "gaussian" else expit
        s = np.asarray(scales, np.float64).reshape(-1, 1)
        k = np.abs(np.arange(-radius, radius + 1, dtype=np.float64))[None, :]
        p = cdf((0.5 - k) / s) - cdf((-0.5 - k) / s)
        return np.maximum(p, LIKELIHOOD_BOUND)

    # -- public ----------------------------------------------------------------------------------
    def compress(self, x) -> list[bytes]:
        """Images (N, H, W, 3) in [0, 1] -> one byte string per image."""
        from robustjax.defenses.hific.defense import check_size

        check_size(x)
        return [self._compress_one(jnp.asarray(x[i : i + 1])) for i in range(x.shape[0])]

    def _compress_one(self, x) -> bytes:
        y, z = self._analysis(self.state, x)
        z_sym = np.floor(np.asarray(z) + 0.5).astype(np.int32)
        lo, hi = min(int(z_sym.min()), self._z_range[0]), max(int(z_sym.max()), self._z_range[1])
        chan = np.broadcast_to(np.arange(self.channels), z_sym.shape).ravel()
        enc = constriction.stream.stack.AnsCoder()
        enc.encode_reverse((z_sym.ravel() - lo).astype(np.int32), constriction.stream.model.Categorical(perfect=False),
                           self._z_table(lo, hi)[chan])
        z_words = enc.get_compressed()
        mu, scale = (np.asarray(a) for a in self._params(self.state, jnp.asarray(z_sym, jnp.float32)))
        y_sym = np.floor(np.asarray(y) - mu + 0.5).astype(np.int32)
        tail = int(np.ceil(_Y_TAIL[self.likelihood] * float(np.percentile(scale, 99))))
        radius = max(1, int(np.abs(y_sym).max()), min(tail, _Y_LIMIT))
        enc = constriction.stream.stack.AnsCoder()
        enc.encode_reverse((y_sym.ravel() + radius).astype(np.int32),
                           constriction.stream.model.Categorical(perfect=False), self._y_table(scale, radius))
        y_words = enc.get_compressed()
        header = np.asarray([x.shape[1], x.shape[2], lo, hi, radius, len(z_words), len(y_words)], np.int32)
        return (MAGIC + header.tobytes() + np.asarray(z_words, np.uint32).tobytes()
                + np.asarray(y_words, np.uint32).tobytes())

    def decompress(self, data: list[bytes]) -> jax.Array:
        """Byte strings from ``compress`` -> reconstructions (N, H, W, 3), cropped and clamped as the forward."""
        return jnp.concatenate([self._decompress_one(d) for d in data], axis=0)

    def _decompress_one(self, data: bytes) -> jax.Array:
        if not isinstance(data, (bytes, bytearray)) or data[:4] != MAGIC:
            raise ValueError("not a HiFiC bitstream from HificCodec.compress (bad magic)")
        head = np.frombuffer(data[4 : 4 + 4 * _HEADER], np.int32)
        H, W, lo, hi, radius, nz, ny = (int(v) for v in head)
        words = np.frombuffer(data[4 + 4 * _HEADER :], np.uint32)
        if words.size != nz + ny:
            raise ValueError(f"truncated HiFiC bitstream: {words.size} words, header says {nz + ny}")
        hp, wp = -(-H // 16) * 16, -(-W // 16) * 16
        yh, yw = -(-hp // 64) * 4, -(-wp // 64) * 4
        zshape = (1, yh // 4, yw // 4, self.channels)
        chan = np.broadcast_to(np.arange(self.channels), zshape).ravel()
        dec = constriction.stream.stack.AnsCoder(words[:nz].copy())
        z_sym = dec.decode(constriction.stream.model.Categorical(perfect=False), self._z_table(lo, hi)[chan]) + lo
        z_hat = jnp.asarray(z_sym.reshape(zshape), jnp.float32)
        mu, scale = (np.asarray(a) for a in self._params(self.state, z_hat))
        dec = constriction.stream.stack.AnsCoder(words[nz:].copy())
        y_sym = dec.decode(constriction.stream.model.Categorical(perfect=False), self._y_table(scale, radius)) - radius
        y_hat = jnp.asarray(y_sym.reshape(mu.shape).astype(np.float32)) + jnp.asarray(mu)
        return self._synthesis(self.state, y_hat, H, W)
