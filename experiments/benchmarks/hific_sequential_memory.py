"""Peak memory of the gradient through N sequential HiFiC rounds (Räber et al. 2025's Table 10 goes to 20).

    PYTHONPATH=. python experiments/benchmarks/hific_sequential_memory.py \
        [--rounds 1 7 20] [--size 224] [--batch 1] [--variant low]

Each N runs in its own subprocess under ``/usr/bin/time -v`` (peak resident set size, compile and the
~0.6-0.7 GB of weights included); the child jits ``grad(sum(seq:N:hific(x)))`` through
``robustjax.defenses.sequential`` (lax.scan + jax.checkpoint: one round's activations live at a time,
plus one image per round), runs it once and checks the gradient is finite. Weights are the seeded
random ones of the tests (``tests/hific_reference.py``, published layout; memory does not depend on
their values).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child(rounds: int, size: int, batch: int, variant: str) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    sys.path.insert(0, str(ROOT / "tests"))
    from hific_reference import NPZ, VARIANTS, load_reference, published_checkpoint, reference_args

    from robustjax.defenses import hific, sequential

    meta = load_reference(NPZ)["meta"]
    args = reference_args(variant, meta["base_args"])
    ckpt = published_checkpoint(meta["layouts"][str(args["n_residual_blocks"])], VARIANTS[variant][0], args, False)
    model, _ = hific.load_state_dict(ckpt)
    del ckpt
    d = sequential(hific.make_defense(model, f"hific:{variant}"), rounds)
    x = jnp.asarray(np.random.default_rng(0).random((batch, size, size, 3), dtype=np.float32))
    g = jax.jit(jax.grad(lambda x: jnp.sum(d(x) ** 2)))
    t0 = time.perf_counter()
    out = g(x).block_until_ready()
    t1 = time.perf_counter()
    print(json.dumps({"rounds": rounds, "compile_and_first_s": t1 - t0,
                      "grad_finite": bool(np.isfinite(np.asarray(out)).all()),
                      "grad_abs_mean": float(np.abs(np.asarray(out)).mean())}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, nargs="+", default=[1, 7, 20])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--variant", default="low", choices=["low", "med", "hi"])
    p.add_argument("--child", type=int, default=None)
    a = p.parse_args()
    if a.child is not None:
        return child(a.child, a.size, a.batch, a.variant)
    rows = []
    for n in a.rounds:
        cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--child", str(n), "--size", str(a.size),
               "--batch", str(a.batch), "--variant", a.variant]
        r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
        if r.returncode:
            print(r.stdout, r.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"rounds={n} failed")
        info = json.loads(r.stdout.strip().splitlines()[-1])
        info["peak_rss_gib"] = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)[1]) / 2**20
        rows.append(info)
        print(json.dumps(info), flush=True)
    if len(rows) >= 2:
        lo, hi = rows[0], rows[-1]
        print(f"peak RSS {hi['rounds']} rounds / {lo['rounds']} rounds = {hi['peak_rss_gib'] / lo['peak_rss_gib']:.2f} "
              f"({hi['peak_rss_gib']:.2f} GiB vs {lo['peak_rss_gib']:.2f} GiB), "
              f"batch {a.batch}, {a.size}x{a.size}, CPU")


if __name__ == "__main__":
    main()
