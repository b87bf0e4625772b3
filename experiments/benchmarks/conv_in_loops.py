"""Convolutions inside loop bodies on XLA:CPU: plain ``lax`` vs ``robustjax.layers`` convolutions.

    python experiments/benchmarks/conv_in_loops.py [--batch 256] [--repeats 3]

PGD-10 (L-inf, no random start) on CIFAR ResNet-20 (random weights), rolled (``lax.fori_loop``)
and unrolled, once with the model's convolutions as ``flax.nnx.Conv`` (``lax.conv_general_dilated``)
and once as ``robustjax.layers.Conv``. Prints ms/image, compile seconds and the rolled/unrolled
ratio of each. XLA:CPU emits a convolution's input gradient inside a loop body as a naive loop nest
unless its kernel is in the canonical layout, which ``robustjax.layers`` arranges (its docstring).
This is an internal comparison: there is no PyTorch peer for a compiled loop form.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from common import best_of, reexec_with_allocator_settings  # noqa: E402


def main():
    reexec_with_allocator_settings()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from robustjax.attacks import PGD
    from robustjax.models import cifar_resnet

    x = jnp.asarray(np.random.default_rng(0).random((a.batch, 32, 32, 3), dtype=np.float32))
    y = jnp.zeros((a.batch,), jnp.int32)
    for conv in ("lax", "robustjax.layers"):
        model = cifar_resnet.create(20)
        model.eval()
        if conv == "lax":
            for _, m in nnx.iter_modules(model):
                if isinstance(m, nnx.Conv):
                    m.conv_general_dilated = jax.lax.conv_general_dilated
        graphdef, state = nnx.split(model)
        f = lambda v: nnx.merge(graphdef, state)(v)  # noqa: E731
        times = {}
        for form in ("unrolled", "rolled"):
            attack = PGD(eps=8 / 255, alpha=2 / 255, steps=10, random_start=False, unroll=form == "unrolled")
            run = jax.jit(lambda v, t: attack(f, v, t))
            t0 = time.perf_counter()
            compiled = run.lower(x, y).compile()
            compile_s = time.perf_counter() - t0
            times[form] = best_of(lambda: compiled(x, y).block_until_ready(), a.repeats) / a.batch
            print(f"{conv:17s} {form:9s}: {1000 * times[form]:7.2f} ms/image (compile {compile_s:.1f} s)", flush=True)
        print(f"{conv:17s} rolled/unrolled time: {times['rolled'] / times['unrolled']:.2f}", flush=True)


if __name__ == "__main__":
    main()
