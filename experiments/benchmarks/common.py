"""Shared helpers of the benchmarks: allocator settings, timing, peak FLOP/s of this machine, the PyTorch
reference CIFAR ResNet."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def reexec_with_allocator_settings() -> None:
    """glibc's allocator slows the first timings of both frameworks 2-3x (docs/xla_cpu.md). glibc reads
    these variables at process start, so the benchmark re-executes itself with them set."""
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1000000000", MALLOC_TRIM_THRESHOLD_="1000000000")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def best_of(fn, repeats: int) -> float:
    """Fastest of ``repeats`` calls after one warm-up (compilation) call, in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def peak_flops(repeats: int = 5) -> float:
    """This machine's practical float32 peak, FLOP/s: the fastest of three large kernels, a 2048^3
    matmul in PyTorch and in JAX and a 3x3 convolution in PyTorch (oneDNN).

    One kernel alone can mislead: on this workplace's AMD EPYC machines PyTorch's matmul (MKL) runs
    at ~215 GFLOP/s while JAX's matmul and oneDNN's convolution reach ~470 (MKL takes a slower code
    path on AMD processors), so a figure against MKL's matmul reads above 100%."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    t_torch = best_of(lambda: a @ b, repeats)
    aj = jnp.asarray(np.random.default_rng(0).random((n, n), dtype=np.float32))
    dot = jax.jit(jnp.dot)
    t_jax = best_of(lambda: dot(aj, aj).block_until_ready(), repeats)
    x, w = torch.randn(1, 256, 64, 64), torch.randn(256, 256, 3, 3)
    t_conv = best_of(lambda: torch.nn.functional.conv2d(x, w, padding=1), repeats)
    return max(2 * n**3 / t_torch, 2 * n**3 / t_jax, 2 * 256 * 256 * 9 * 64 * 64 / t_conv)


def torch_cifar_resnet(depth: int = 20):
    """``(model, real)``: the parity tests' PyTorch CIFAR ResNet-``depth`` (tests/torch_refs.py) in eval
    mode, with the published weights (the last ``cifar10-resnet/resnet{depth}-*.th`` under
    ROBUSTJAX_WEIGHTS) when there are some, else random ones; ``real`` says which."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    from torch_refs import TorchCifarResNet

    ref = TorchCifarResNet(depth)
    root = os.environ.get("ROBUSTJAX_WEIGHTS")
    hits = sorted((Path(root) / "cifar10-resnet").glob(f"resnet{depth}-*.th")) if root else []
    if hits:
        sd = torch.load(hits[-1], map_location="cpu", weights_only=True)["state_dict"]
        ref.load_state_dict({k[len("module."):]: v for k, v in sd.items()})
    return ref.eval(), bool(hits)
