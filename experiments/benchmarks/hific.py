"""HiFiC forward+backward per image: robustjax (Flax, jitted) vs the reference PyTorch network, same run.

    PYTHONPATH=.:/path/to/autograd-dir python experiments/benchmarks/hific.py \
        /path/to/high-fidelity-generative-compression [--variant low] [--batch 1] [--size 224] [--repeats 3]

The reference repository (Justin-Tan/high-fidelity-generative-compression) is not part of the project:
pass a local copy (and put its dependency ``autograd`` on the path). Both sides hold the same seeded
random weights (``tests/hific_reference.py``) in the published layout; the JAX side is converted
through the strict key map. The timed step is the defense forward (eval mode: pad, encode, floor z,
straight-through y, generate, crop, clamp) and the gradient of ``sum((x_hat - x)^2)`` w.r.t. the input,
on Kodak crops. Prints s/image and the ratio reference / robustjax (> 1: JAX faster). Use the same
allocator environment for both (docs/xla_cpu.md): MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reference", help="local copy of Justin-Tan/high-fidelity-generative-compression")
    p.add_argument("--variant", default="low", choices=["low", "med", "hi"])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()

    import jax
    import jax.numpy as jnp
    import torch
    from flax import nnx

    sys.path.insert(0, str(Path(a.reference).resolve()))
    from default_config import hific_args
    from hific_reference import VARIANTS, kodak_crops, published_checkpoint, random_state_dict, reference_args
    from hific_reference_make import build, forward

    from robustjax.defenses import hific

    base = json.loads(json.dumps({n: getattr(hific_args, n) for n in dir(hific_args) if not n.startswith("_")}))
    args = reference_args(a.variant, base)
    seed = VARIANTS[a.variant][0]
    net = build(a.reference, args["n_residual_blocks"], args["likelihood_type"])
    layout = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    net.load_state_dict({k: torch.from_numpy(v) for k, v in random_state_dict(layout, seed).items()})
    net.eval()
    model, _ = hific.load_state_dict(published_checkpoint(layout, seed, args, with_training_state=False))

    data = Path(os.environ.get("ROBUSTJAX_DATA", ROOT.parent / "shared" / "data"))
    names = sorted(p.name for p in (data / "kodak").glob("*.png"))
    x = kodak_crops(data, [(names[i % len(names)], 0, 0) for i in range(a.batch)], a.size)
    graphdef, state = nnx.split(model)

    def loss(v, s):
        return jnp.sum((hific.forward(nnx.merge(graphdef, s), v)["x_hat"] - jax.lax.stop_gradient(v)) ** 2)

    grad = jax.jit(jax.grad(loss))
    xj = jnp.asarray(x)
    t = time.perf_counter()
    grad(xj, state).block_until_ready()
    compile_s = time.perf_counter() - t
    t_j = best_of(lambda: grad(xj, state).block_until_ready(), a.repeats)

    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()

    def torch_step():
        v = xt.clone().requires_grad_()
        r, _, _ = forward(net, v, args["normalize_input_image"])
        ((r - xt) ** 2).sum().backward()

    t_t = best_of(torch_step, a.repeats)
    n = a.batch
    print(f"HiFiC {a.variant} {a.size}x{a.size}, batch {n}, torch threads {torch.get_num_threads()}, "
          f"jax {jax.devices()}")
    print(f"forward+backward robustjax {t_j / n:.3f} s/img (compile+first {compile_s:.1f} s)  "
          f"reference {t_t / n:.3f} s/img  ratio reference/robustjax {t_t / t_j:.2f}")


if __name__ == "__main__":
    main()
