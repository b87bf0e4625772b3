"""Differentiable JPEG: robustjax vs kornia in the same run, plus 50 sequential rounds with the gradient.

    python experiments/benchmarks/jpeg.py [--batch 32] [--size 224] [--quality 25] [--repeats 10]

Prints forward and forward+backward ms/image for both (same thread count, same allocator settings)
and the ratio kornia/robustjax, then the time and peak memory of the gradient through 50 sequential
rounds at batch 8 (measured in a fresh subprocess, ru_maxrss, so JAX's own buffers are counted).
Both sides run on real Kodak crops when ../shared/data is present, random images otherwise.
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of  # noqa: E402


def images(batch: int, size: int) -> np.ndarray:
    data = Path(os.environ.get("ROBUSTJAX_DATA", ROOT.parent / "shared" / "data")) / "kodak"
    files = sorted(glob.glob(str(data / "*.png")))
    if not files:
        return np.random.default_rng(0).random((batch, size, size, 3), dtype=np.float32)
    from PIL import Image

    out = []
    for i in range(batch):
        im = np.asarray(Image.open(files[i % len(files)]).convert("RGB"), np.float32) / 255.0
        y, x = (i // len(files)) * 37 % (im.shape[0] - size), (i // len(files)) * 53 % (im.shape[1] - size)
        out.append(im[y : y + size, x : x + size])
    return np.stack(out)


def bench_pair(batch: int, size: int, quality: float, repeats: int) -> None:
    import jax
    import jax.numpy as jnp
    import torch
    from kornia.enhance import jpeg_codec_differentiable

    from robustjax.defenses import jpeg

    x = images(batch, size)
    threads = torch.get_num_threads()
    print(f"batch {batch} x {size}x{size}, quality {quality}, torch threads {threads}, jax devices {jax.devices()}")

    fwd = jax.jit(lambda v: jpeg(v, quality))
    loss = jax.jit(jax.grad(lambda v: jnp.sum(jpeg(v, quality) ** 2)))
    xj = jnp.asarray(x)
    t_jf = best_of(lambda: fwd(xj).block_until_ready(), repeats)
    t_jb = best_of(lambda: loss(xj).block_until_ready(), repeats)

    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    qt = torch.tensor([float(quality)])

    def torch_fwd():
        with torch.no_grad():
            jpeg_codec_differentiable(xt, qt)

    def torch_bwd():
        v = xt.clone().requires_grad_()
        (jpeg_codec_differentiable(v, qt) ** 2).sum().backward()

    t_tf = best_of(torch_fwd, repeats)
    t_tb = best_of(torch_bwd, repeats)
    ms = lambda t: 1000 * t / batch  # noqa: E731
    print(f"{'':22s}{'robustjax':>12s}{'kornia':>12s}{'ratio':>8s}")
    print(f"{'forward ms/image':22s}{ms(t_jf):12.3f}{ms(t_tf):12.3f}{t_tf / t_jf:8.2f}x")
    print(f"{'fwd+bwd ms/image':22s}{ms(t_jb):12.3f}{ms(t_tb):12.3f}{t_tb / t_jb:8.2f}x")


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sequential_child(rounds: int, batch: int, size: int, quality: float) -> None:
    """Runs in a fresh process: gradient through ``rounds`` JPEG rounds; prints time and peak RSS."""
    import jax
    import jax.numpy as jnp

    from robustjax.defenses import get

    d = get(f"seq:{rounds}:jpeg:{quality:g}")
    grad = jax.jit(jax.grad(lambda v: jnp.sum(d(v) ** 2)))
    x = jnp.asarray(images(batch, size))
    compiled = grad.lower(x).compile()
    mem = compiled.memory_analysis()
    xla_mib = (mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes) / 2**20
    g = compiled(x).block_until_ready()
    t = time.perf_counter()
    g = compiled(x).block_until_ready()
    elapsed = time.perf_counter() - t
    peak = peak_rss_mib()
    print(f"{rounds} rounds: fwd+bwd {elapsed:.3f} s for batch {batch}, peak RSS {peak:.0f} MiB (whole process) "
          f"(XLA buffers {xla_mib:.0f} MiB), finite {bool(jnp.isfinite(g).all())}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--quality", type=float, default=25)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--rounds", type=int, nargs="*", default=[1, 50])
    p.add_argument("--seq-batch", type=int, default=8)
    p.add_argument("--child-rounds", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if not a.child_rounds and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        # glibc's allocator slows the first timings of both frameworks 2-3x (docs/xla_cpu.md); glibc reads
        # these at process start, so re-exec with them set (both frameworks share the process).
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1000000000", MALLOC_TRIM_THRESHOLD_="1000000000")
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)
    if a.child_rounds:
        sequential_child(a.child_rounds, a.seq_batch, a.size, a.quality)
        return
    bench_pair(a.batch, a.size, a.quality, a.repeats)
    for r in a.rounds:
        cmd = [sys.executable, __file__, "--child-rounds", str(r), "--seq-batch", str(a.seq_batch),
               "--size", str(a.size), "--quality", str(a.quality)]
        # The memory child runs with glibc's default allocator: the no-trim settings above keep freed
        # compile-time memory in RSS and would overstate the peak.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        print(subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout.strip())


if __name__ == "__main__":
    main()
