"""Peak host memory (RSS) of an adaptive-suite cell against its image count: streaming, not stacking.

    python experiments/benchmarks/suite_memory.py [--n 400 0] [--batch 32]

Each image count runs ``python -m robustjax.eval`` in its own subprocess (a fresh interpreter, the
decode cache in memory, the persistent compilation cache off): one suite cell with one ``fgsm``
member (``fgsm@oblivious``) on the undefended ``efficientnet_lite0`` with the Imagenette head, eps
0 and 4/255, on ``--n`` Imagenette images (0 = all 3,925). The child's peak resident set size is
read from ``getrusage(RUSAGE_CHILDREN)`` after it exits; the ratio of the largest count's peak to
the smallest's is printed. A suite that held the whole set as float32 on the host grew with it
(3,925 images are 2.4 GB as float32); the streamed suite keeps the uint8 decode cache (0.6 GB at
3,925 images) and per-image outcome arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = '''
def get_config():
    return {"name": "suite_memory", "dataset": "imagenette", "models": ["efficientnet_lite0"], "head": "imagenette",
            "defenses": ["none"], "threats": ["oblivious"], "eps": [0.0, 4 / 255],
            "attacks": [{"name": "adaptive", "members": ["fgsm@oblivious"]}]}
'''


def peak_rss_gib(n: int, batch: int, out: Path) -> tuple[float, float, dict]:
    """(peak RSS GiB, wall s, record) of one suite cell over ``n`` images (0: all) in a fresh process."""
    config = out / "suite_memory_config.py"
    config.write_text(CONFIG)
    env = dict(os.environ, JAX_PLATFORMS="cpu", ROBUSTJAX_COMPILATION_CACHE="0")
    cmd = [sys.executable, "-m", "robustjax.eval", "--config", str(config), "--n", str(n), "--batch-size", str(batch),
           "--out", str(out / f"n{n}"), "--no-progress", "--no-report"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"n={n} failed:\n{p.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB; the max over children so far
    if peak <= before:
        raise SystemExit("run the smaller --n first: RUSAGE_CHILDREN keeps the largest child's peak")
    (line,) = (out / f"n{n}" / "results.jsonl").read_text().splitlines()
    return peak / 2**20, wall, json.loads(line)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[400, 0], help="image counts, smallest first (0 = all)")
    p.add_argument("--batch", type=int, default=32)
    a = p.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="suite_memory_"))
    rows = []
    for n in a.n:
        gib, wall, rec = peak_rss_gib(n, a.batch, out)
        rows.append((rec["n_images"], gib, wall, rec["accuracy"]))
        print(f"{rec['n_images']} images: peak RSS {gib:.2f} GiB, {wall:.0f} s wall, accuracy {rec['accuracy']}",
              flush=True)
    (n0, g0, _, _), (n1, g1, _, _) = rows[0], rows[-1]
    print(f"peak RSS ratio {n1} / {n0} images: {g1 / g0:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
