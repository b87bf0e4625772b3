"""ResNet-50's 1x1 convolutions and stem max-pool, EfficientNet-Lite0's depthwise convolutions: lax /
flax vs robustjax.layers vs PyTorch, in one run.

    python experiments/benchmarks/layers.py [--repeats 5] [--parts pointwise maxpool depthwise]

Milliseconds per call at batch 8, forward and forward + input gradient (what an attack computes).
``lax``: ``jax.lax.conv_general_dilated`` / ``flax.nnx.max_pool``; ``layers``: the matrix-product
1x1 path and the max-pool with its own backward pass (robustjax/layers.py); ``torch``: PyTorch's
``conv2d`` / ``max_pool2d`` (oneDNN) with the same shapes in NCHW.

Depthwise (batch ``--batch``): each of EfficientNet-Lite0's depthwise shapes followed by its
BatchNorm scale and ReLU6, as in the model; ``lax``: the grouped ``conv_general_dilated``;
``autodiff``: the same shifted products as ``layers.depthwise_conv`` differentiated by JAX (the
model's form before its backward pass was written out); ``layers``: ``layers.depthwise_conv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from common import best_of, reexec_with_allocator_settings  # noqa: E402

# (height = width, in channels, out channels, stride) of ResNet-50's distinct 1x1 convolutions
POINTWISE = [(56, 64, 64, 1), (56, 64, 256, 1), (56, 256, 64, 1), (56, 256, 512, 2), (28, 512, 128, 1),
             (28, 128, 512, 1), (14, 1024, 256, 1), (14, 256, 1024, 1), (7, 2048, 512, 1), (7, 512, 2048, 1)]
# (input height = width, channels, kernel, stride) of EfficientNet-Lite0's distinct depthwise convolutions
DEPTHWISE = [(112, 32, 3, 1), (112, 96, 3, 2), (56, 144, 3, 1), (56, 144, 5, 2), (28, 240, 5, 1), (28, 240, 3, 2),
             (14, 480, 3, 1), (14, 480, 5, 1), (14, 672, 5, 1), (14, 672, 5, 2), (7, 1152, 5, 1), (7, 1152, 3, 1)]


def main():
    reexec_with_allocator_settings()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--parts", nargs="+", default=["pointwise", "maxpool", "depthwise"])
    a = p.parse_args()
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from robustjax import layers

    rng = np.random.default_rng(0)
    n = a.batch
    ms = lambda t: f"{1000 * t:7.2f}"  # noqa: E731

    def jax_pair(f, *args):
        fwd = jax.jit(f)
        bwd = jax.jit(jax.grad(lambda x, *rest: jnp.sum(jnp.sin(f(x, *rest)))))
        return (best_of(lambda: fwd(*args).block_until_ready(), a.repeats),
                best_of(lambda: bwd(*args).block_until_ready(), a.repeats))

    def torch_pair(f, x):
        def fwd():
            with torch.no_grad():
                f(x)

        def bwd():
            v = x.clone().requires_grad_()
            torch.sin(f(v)).sum().backward()
        return best_of(fwd, a.repeats), best_of(bwd, a.repeats)

    print(f"batch {n}, ms per call: forward / forward + input gradient")
    totals = np.zeros((3, 2))
    for hw, cin, cout, s in POINTWISE if "pointwise" in a.parts else ():
        x = rng.random((n, hw, hw, cin), dtype=np.float32)
        w = (rng.standard_normal((1, 1, cin, cout)) * 0.05).astype(np.float32)
        kw = dict(window_strides=(s, s), padding="VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        t_lax = jax_pair(lambda v, k: jax.lax.conv_general_dilated(v, k, **kw), jnp.asarray(x), jnp.asarray(w))
        t_ours = jax_pair(lambda v, k: layers.conv_general_dilated(v, k, **kw), jnp.asarray(x), jnp.asarray(w))
        wt = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous()
        t_torch = torch_pair(lambda v: torch.nn.functional.conv2d(v, wt, stride=s),
                             torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())
        totals += np.array([t_lax, t_ours, t_torch])
        print(f"1x1 {hw}x{hw} {cin:4d}->{cout:4d} /{s}:  lax {ms(t_lax[0])} / {ms(t_lax[1])}   "
              f"layers {ms(t_ours[0])} / {ms(t_ours[1])}   torch {ms(t_torch[0])} / {ms(t_torch[1])}")
    if "pointwise" in a.parts:
        print(f"1x1 total:                 lax {ms(totals[0, 0])} / {ms(totals[0, 1])}   layers {ms(totals[1, 0])} / "
              f"{ms(totals[1, 1])}   torch {ms(totals[2, 0])} / {ms(totals[2, 1])}")
    if "maxpool" in a.parts:
        _maxpool(a, rng, n, jax_pair, torch_pair, ms)
    if "depthwise" in a.parts:
        _depthwise(rng, n, jax_pair, torch_pair, ms)


def _maxpool(a, rng, n, jax_pair, torch_pair, ms):
    import jax.numpy as jnp
    import numpy as np
    import torch
    from flax import nnx

    from robustjax import layers

    x = np.maximum(rng.standard_normal((n, 112, 112, 64)), 0).astype(np.float32)  # after the stem's ReLU
    t_nnx = jax_pair(lambda v: nnx.max_pool(v, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1))), jnp.asarray(x))
    t_ours = jax_pair(lambda v: layers.max_pool(v, (3, 3), (2, 2), ((1, 1), (1, 1))), jnp.asarray(x))
    t_torch = torch_pair(lambda v: torch.nn.functional.max_pool2d(v, 3, 2, 1),
                         torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())
    print(f"max-pool 3x3/2 112x112x64: nnx {ms(t_nnx[0])} / {ms(t_nnx[1])}   "
          f"layers {ms(t_ours[0])} / {ms(t_ours[1])}   torch {ms(t_torch[0])} / {ms(t_torch[1])}")


def _depthwise(rng, n, jax_pair, torch_pair, ms):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    from robustjax import layers

    def block(conv):  # the model's depthwise -> BatchNorm -> ReLU6
        return lambda v, k, scale, shift: jax.nn.relu6(conv(v, k) * scale + shift)

    totals = np.zeros((4, 2))
    for hw, c, k, s in DEPTHWISE:
        x = rng.random((n, hw, hw, c), dtype=np.float32)
        w = (rng.standard_normal((k, k, 1, c)) * 0.3).astype(np.float32)
        scale, shift = rng.random(c, dtype=np.float32) + 0.5, rng.standard_normal(c).astype(np.float32)
        args = [jnp.asarray(v) for v in (x, w, scale, shift)]
        t_lax = jax_pair(block(lambda v, kk: jax.lax.conv_general_dilated(
            v, kk, (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)), *args)
        def autodiff(v, kk, s=s):  # layers' shifted products without their written-out backward pass
            xp, oh, ow = layers.same_padded(v, kk.shape[0], s)
            return layers.shifted_products(xp, kk, s, oh, ow)

        t_auto = jax_pair(block(autodiff), *args)
        t_ours = jax_pair(block(lambda v, kk: layers.depthwise_conv(v, kk, s)), *args)
        wt = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous()
        st, sh = torch.from_numpy(scale).view(1, c, 1, 1), torch.from_numpy(shift).view(1, c, 1, 1)
        pad = max((-(-hw // s) - 1) * s + k - hw, 0)

        def torch_block(v):
            v = torch.nn.functional.pad(v, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
            return torch.clamp(torch.nn.functional.conv2d(v, wt, stride=s, groups=c) * st + sh, 0, 6)

        t_torch = torch_pair(torch_block, torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())
        totals += np.array([t_lax, t_auto, t_ours, t_torch])
        print(f"depthwise {k}x{k}/{s} {hw}x{hw}x{c}:  lax {ms(t_lax[0])} / {ms(t_lax[1])}   autodiff {ms(t_auto[0])} / "
              f"{ms(t_auto[1])}   layers {ms(t_ours[0])} / {ms(t_ours[1])}   torch {ms(t_torch[0])} / {ms(t_torch[1])}")
    print(f"depthwise total: lax {ms(totals[0, 0])} / {ms(totals[0, 1])}   autodiff {ms(totals[1, 0])} / "
          f"{ms(totals[1, 1])}   layers {ms(totals[2, 0])} / {ms(totals[2, 1])}   "
          f"torch {ms(totals[3, 0])} / {ms(totals[3, 1])}")


if __name__ == "__main__":
    main()
