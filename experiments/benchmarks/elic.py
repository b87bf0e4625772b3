"""ELIC forward and forward+backward: robustjax (Flax, jitted) vs compressai 1.2.8 in the same run.

    PYTHONPATH=. python experiments/benchmarks/elic.py [--batch 1] [--size 256] [--repeats 3]

Both sides hold the same random weights (compressai's Elic2022Chandelier converted through the
Chandelier key map) and run the defense forward (eval mode, two-pass checkerboard,
straight-through rounding) on real Kodak crops; the backward is the gradient of
sum(x_hat**2) w.r.t. the input. Prints s/image and the ratio compressai / robustjax (> 1: JAX faster).
Set the same allocator environment for both (see docs/xla_cpu.md):
MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()

    import jax
    import jax.numpy as jnp
    import torch
    from elic_reference import chandelier_state_dict, kodak_crop, reference_model
    from flax import nnx

    from robustjax.defenses import elic

    data = Path(os.environ.get("ROBUSTJAX_DATA", ROOT.parent / "shared" / "data"))
    names = sorted(p.name for p in (data / "kodak").glob("*.png"))
    x = np.concatenate([kodak_crop(data, names[i % len(names)], a.size, 0, 0) for i in range(a.batch)])
    net = reference_model()
    model = elic.load_state_dict(chandelier_state_dict(net))
    graphdef, state = nnx.split(model)
    fwd = jax.jit(lambda s, v: nnx.merge(graphdef, s)(v)["x_hat"])
    grad = jax.jit(jax.grad(lambda v, s: jnp.sum(nnx.merge(graphdef, s)(v)["x_hat"] ** 2)))
    xj = jnp.asarray(x)
    t_jf = best_of(lambda: fwd(state, xj).block_until_ready(), a.repeats)
    t_jb = best_of(lambda: grad(xj, state).block_until_ready(), a.repeats)

    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()

    def torch_fwd():
        with torch.no_grad():
            net(xt)

    def torch_bwd():
        v = xt.clone().requires_grad_()
        (net(v)["x_hat"] ** 2).sum().backward()

    t_tf = best_of(torch_fwd, a.repeats)
    t_tb = best_of(torch_bwd, a.repeats)
    n = a.batch
    print(f"ELIC {a.size}x{a.size}, batch {n}, torch threads {torch.get_num_threads()}, jax {jax.devices()}")
    print(f"forward          robustjax {t_jf / n:.3f} s/img  compressai {t_tf / n:.3f} s/img  ratio {t_tf / t_jf:.2f}")
    print(f"forward+backward robustjax {t_jb / n:.3f} s/img  compressai {t_tb / n:.3f} s/img  ratio {t_tb / t_jb:.2f}")


if __name__ == "__main__":
    main()
