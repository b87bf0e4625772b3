"""Shared helpers of the benchmarks: allocator settings, timing, peak FLOP/s of this machine."""

from __future__ import annotations

import os
import sys
import time


def reexec_with_allocator_settings() -> None:
    """glibc's allocator slows the first timings of both frameworks 2-3x (DESIGN.md). glibc reads
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
    """FLOP/s of a large float32 matmul in PyTorch on this machine: the practical peak."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    t = best_of(lambda: a @ b, repeats)
    return 2 * 2048**3 / t
