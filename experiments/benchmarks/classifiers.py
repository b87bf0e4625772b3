"""Classifiers: robustjax (Flax) vs PyTorch, forward and forward+backward (gradient w.r.t. the
input) per image, in the same run with the same thread count.

    python experiments/benchmarks/classifiers.py [--repeats 5] [--models resnet20 resnet50]

ResNet-50 at batch 8 x 224 (torchvision, random weights), CIFAR ResNet-20 at batch 256 x 32 (real
weights when ROBUSTJAX_WEIGHTS is set). Prints ms/image, the ratio torch/robustjax (> 1: we are
faster) and, for ResNet-50, the fraction of this machine's peak FLOP/s (common.peak_flops) both sides reach.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of, peak_flops, reexec_with_allocator_settings  # noqa: E402

RESNET50_GFLOP = 4.09 * 2  # forward FLOPs per 224x224 image (torchvision's 4.09 G counts multiply-adds)


def pair(name, ours_module, torch_model, batch, size, repeats):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    from flax import nnx

    ours_module.eval()
    graphdef, state = nnx.split(ours_module)
    f = lambda s, x: nnx.merge(graphdef, s)(x)  # noqa: E731
    fwd = jax.jit(f)
    bwd = jax.jit(jax.grad(lambda s, x: jnp.sum(jax.nn.log_softmax(f(s, x))[:, 0]), argnums=1))
    x = np.random.default_rng(0).random((batch, size, size, 3), dtype=np.float32)
    xj = jnp.asarray(x)
    t_jf = best_of(lambda: fwd(state, xj).block_until_ready(), repeats)
    t_jb = best_of(lambda: bwd(state, xj).block_until_ready(), repeats)
    torch_model.eval()
    for p in torch_model.parameters():  # the gradient w.r.t. the input only, as on the JAX side
        p.requires_grad_(False)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()

    def torch_fwd():
        with torch.no_grad():
            torch_model(xt)

    def torch_bwd():
        v = xt.clone().requires_grad_()
        torch.log_softmax(torch_model(v), -1)[:, 0].sum().backward()

    t_tf = best_of(torch_fwd, repeats)
    t_tb = best_of(torch_bwd, repeats)
    ms = lambda t: 1000 * t / batch  # noqa: E731
    print(f"{name} batch {batch}x{size}: forward {ms(t_jf):.2f} vs torch {ms(t_tf):.2f} ms/image "
          f"(ratio {t_tf / t_jf:.2f}x); fwd+bwd {ms(t_jb):.2f} vs {ms(t_tb):.2f} ms/image (ratio {t_tb / t_jb:.2f}x)")
    return t_jb / batch, t_tb / batch


def main():
    reexec_with_allocator_settings()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--models", nargs="*", default=["resnet20", "resnet50"])
    a = p.parse_args()
    import torch
    import torchvision

    from robustjax.models import cifar_resnet, resnet

    print(f"torch threads {torch.get_num_threads()}")
    if "resnet20" in a.models:
        ref = _torch_cifar_resnet20()
        pair("cifar_resnet20", cifar_resnet.create(20), ref, 256, 32, a.repeats)
    if "resnet50" in a.models:
        t_j, t_t = pair("resnet50", resnet.create(), torchvision.models.resnet50(weights=None), 8, 224, a.repeats)
        peak = peak_flops()
        work = 2 * RESNET50_GFLOP * 1e9  # the backward w.r.t. the input only costs about one forward
        print(f"resnet50 fwd+bwd: robustjax {work / t_j / 1e9:.0f} GFLOP/s ({work / t_j / peak:.0%} of the "
              f"{peak / 1e9:.0f} GFLOP/s peak), torch {work / t_t / 1e9:.0f} GFLOP/s ({work / t_t / peak:.0%})")


def _torch_cifar_resnet20():
    """The PyTorch reference network of tests/test_models.py (same layout as the published file)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    from torch_refs import TorchCifarResNet

    return TorchCifarResNet(20)


if __name__ == "__main__":
    main()
