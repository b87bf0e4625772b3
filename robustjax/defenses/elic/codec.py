"""Real ELIC bitstreams with ``constriction`` (range/ANS coding), so bits per pixel can be measured.

``ElicCodec(model).compress(x) -> list[bytes]`` (one file per image) and ``.decompress(data) -> x_hat``.
Order, as compressai: z (factorized prior, per-channel categorical over the symbols
``round(z - median)``), then for each channel group k = 0..4 the anchors (i + j even) and then
the non-anchors, each with a quantised Gaussian of mean 0 and scale ``max(scale, 0.11)`` over
``round(y - mean)``. Means and scales come from the same jitted functions in encoder and
decoder, fed the same decoded values, so they agree bit for bit.

File layout: magic ``b"ELC1"``, then int32 header ``[H, W, z_lo, z_hi, y_radius, n_strings,
len_0 .. len_{n-1}]`` (lengths in 32-bit words), then the ANS words of each string.
"""

from __future__ import annotations

import functools

import constriction
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from robustjax.defenses.elic.net import Elic, anchor_mask
from robustjax.defenses.entropy import LIKELIHOOD_BOUND, SCALE_BOUND

MAGIC = b"ELC1"


class ElicCodec:
    """Entropy-coded ELIC for images (N, H, W, 3) in [0, 1] with H, W multiples of 64."""

    def __init__(self, model: Elic):
        self.graphdef, self.state = nnx.split(model)
        self.groups = model.groups
        self.bounds = np.cumsum((0,) + tuple(model.groups))
        m = lambda s: nnx.merge(self.graphdef, s)  # noqa: E731
        self._analysis = jax.jit(lambda s, x: (lambda net, y: (y, net.h_a(y)))(m(s), m(s).g_a(x)))
        eb = m(self.state).entropy_bottleneck
        self._medians = np.asarray(eb.medians())
        q = np.asarray(eb.quantiles[...])[:, 0, :]
        # symbol range the prior covers (as compressai: quantiles at tail mass 1e-9), widened on demand
        self._z_range = (int(np.floor((q[:, 0] - q[:, 1]).min())), int(np.ceil((q[:, 2] - q[:, 1]).max())))
        self._hyper = jax.jit(lambda s, z_hat: m(s).h_s(z_hat))
        self._synthesis = jax.jit(lambda s, y_hat: m(s).g_s(y_hat))
        self._z_pmf = jax.jit(lambda s, v: m(s).entropy_bottleneck.likelihood_of(v))

        @functools.partial(jax.jit, static_argnums=(1, 2))
        def step(s, k, anchors_step, hyper, prev, y_hat_anchor):
            net = m(s)
            ch = net.channel_context(k, list(prev))
            if anchors_step:
                n, h, w, _ = hyper.shape
                ctx = jnp.zeros((n, h, w, 2 * net.groups[k]), hyper.dtype)
            else:
                ctx = net.context_prediction[k](y_hat_anchor)
            means, scales = net.group_params(k, ctx, ch, hyper)
            return means, jnp.maximum(scales, SCALE_BOUND)

        self._step = step

    # -- helpers ---------------------------------------------------------------------------------
    def _z_table(self, lo: int, hi: int) -> np.ndarray:
        """(C, hi - lo + 1) probabilities of the z symbols lo..hi per channel."""
        sym = np.arange(lo, hi + 1, dtype=np.float32)
        v = jnp.asarray(sym[None, None, :] + self._medians[:, None, None])
        p = np.asarray(self._z_pmf(self.state, v))[:, 0, :].astype(np.float64)
        return np.maximum(p, LIKELIHOOD_BOUND)

    def _groups_pass(self, hyper, encode_or_decode):
        """Run the group/checkerboard schedule; ``encode_or_decode(k, step, mask, means, scales) -> symbols``."""
        n, h, w, _ = hyper.shape
        anchors = np.asarray(anchor_mask(h, w))
        y_hats = []
        for k, g in enumerate(self.groups):
            mask_a = np.broadcast_to(anchors, (n, h, w, g))
            zero = jnp.zeros((n, h, w, g), jnp.float32)
            means, scales = self._step(self.state, k, True, hyper, tuple(y_hats), zero)
            sym = encode_or_decode(k, 0, mask_a, np.asarray(means), np.asarray(scales))
            y_hat_a = jnp.where(mask_a, jnp.asarray(sym, jnp.float32) + means, 0.0)
            means, scales = self._step(self.state, k, False, hyper, tuple(y_hats), y_hat_a)
            sym = encode_or_decode(k, 1, ~mask_a, np.asarray(means), np.asarray(scales))
            y_hat_n = jnp.where(mask_a, 0.0, jnp.asarray(sym, jnp.float32) + means)
            y_hats.append(y_hat_a + y_hat_n)
        return jnp.concatenate(y_hats, axis=-1)

    # -- public ----------------------------------------------------------------------------------
    def compress(self, x) -> list[bytes]:
        """Images (N, H, W, 3) in [0, 1], H, W % 64 == 0 -> one byte string per image."""
        from robustjax.defenses.elic.defense import check_size

        check_size(x, "exact")
        return [self._compress_one(jnp.asarray(x[i : i + 1])) for i in range(x.shape[0])]

    def _compress_one(self, x) -> bytes:
        y, z = self._analysis(self.state, x)
        y = np.asarray(y)
        z_sym = np.rint(np.asarray(z) - self._medians).astype(np.int32)
        lo, hi = min(int(z_sym.min()), self._z_range[0]), max(int(z_sym.max()), self._z_range[1])
        z_hat = jnp.asarray(z_sym.astype(np.float32) + self._medians)
        hyper = self._hyper(self.state, z_hat)
        strings = []
        table = self._z_table(lo, hi)
        chan = np.broadcast_to(np.arange(z_sym.shape[-1]), z_sym.shape).ravel()
        enc = constriction.stream.stack.AnsCoder()
        enc.encode_reverse((z_sym.ravel() - lo).astype(np.int32), constriction.stream.model.Categorical(perfect=False),
                           table[chan])
        strings.append(enc.get_compressed())
        # y symbols depend on the means, so the radius is only known after a first pass
        y_syms: list = []

        def collect(k, step, mask, means, scales):
            yk = y[..., self.bounds[k] : self.bounds[k + 1]]
            sym = np.rint(yk - means).astype(np.int32)
            y_syms.append((mask, sym, scales))
            return sym

        self._groups_pass(hyper, collect)
        radius = max(1, max(int(np.abs(s[m]).max(initial=0)) for m, s, _ in y_syms))
        model = constriction.stream.model.QuantizedGaussian(-radius, radius)
        for mask, sym, scales in y_syms:
            enc = constriction.stream.stack.AnsCoder()
            enc.encode_reverse(sym[mask].astype(np.int32), model, np.zeros(int(mask.sum())),
                               scales[mask].astype(np.float64))
            strings.append(enc.get_compressed())
        header = np.asarray([x.shape[1], x.shape[2], lo, hi, radius, len(strings)] + [len(s) for s in strings],
                            np.int32)
        return MAGIC + header.tobytes() + b"".join(np.asarray(s, np.uint32).tobytes() for s in strings)

    def decompress(self, data: list[bytes]) -> jax.Array:
        """Byte strings from ``compress`` -> reconstructions (N, H, W, 3) (not clamped, as the forward)."""
        return jnp.concatenate([self._decompress_one(d) for d in data], axis=0)

    def _decompress_one(self, data: bytes) -> jax.Array:
        if not isinstance(data, (bytes, bytearray)) or data[:4] != MAGIC:
            raise ValueError("not an ELIC bitstream from ElicCodec.compress (bad magic)")
        head = np.frombuffer(data[4:28], np.int32)
        H, W, lo, hi, radius, count = (int(v) for v in head)
        lengths = np.frombuffer(data[28 : 28 + 4 * count], np.int32)
        words = np.frombuffer(data[28 + 4 * count :], np.uint32)
        if words.size != lengths.sum():
            raise ValueError(f"truncated ELIC bitstream: {words.size} words, header says {int(lengths.sum())}")
        strings = np.split(words, np.cumsum(lengths)[:-1])
        zh, zw, C = H // 64, W // 64, len(self._medians)
        table = self._z_table(lo, hi)
        chan = np.broadcast_to(np.arange(C), (1, zh, zw, C)).ravel()
        dec = constriction.stream.stack.AnsCoder(strings[0])
        z_sym = dec.decode(constriction.stream.model.Categorical(perfect=False), table[chan]).reshape(1, zh, zw, C) + lo
        z_hat = jnp.asarray(z_sym.astype(np.float32) + self._medians)
        hyper = self._hyper(self.state, z_hat)
        model = constriction.stream.model.QuantizedGaussian(-radius, radius)
        it = iter(strings[1:])

        def decode(k, step, mask, means, scales):
            d = constriction.stream.stack.AnsCoder(next(it))
            sym = np.zeros(mask.shape, np.int32)
            sym[mask] = d.decode(model, np.zeros(int(mask.sum())), scales[mask].astype(np.float64))
            return sym

        y_hat = self._groups_pass(hyper, decode)
        return self._synthesis(self.state, y_hat)
