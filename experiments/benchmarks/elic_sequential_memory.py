"""Peak memory of the gradient through N sequential ELIC rounds (Räber et al. 2025 stopped at 7; we go to 50).

    PYTHONPATH=. python experiments/benchmarks/elic_sequential_memory.py [--rounds 7 50] [--size 256] [--batch 2]

Each N runs in its own subprocess under ``/usr/bin/time -v`` (peak resident set size, compile
included); the child jits ``grad(sum(seq:N:elic(x)))`` through ``robustjax.defenses.sequential``
(lax.scan + jax.checkpoint), runs it once (``--repeat``: and once more, timed), and checks the gradient is
finite. Weights are random (the memory does not depend on their values); policy 'exact'.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time


def child(rounds: int, size: int, batch: int, repeat: bool, analyse: bool = False) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from robustjax.defenses import elic, sequential

    model = elic.random_fast()
    d = sequential(elic.make_defense(model, "exact", "elic:random"), rounds)
    x = jnp.asarray(np.random.default_rng(0).random((batch, size, size, 3), dtype=np.float32))
    g = jax.jit(jax.grad(lambda x: jnp.sum(d(x) ** 2)))
    if analyse:  # XLA's own buffer plan of the compiled program, without running it
        mem = g.lower(x).compile().memory_analysis()
        print(json.dumps({"rounds": rounds, "xla_temp_gib": mem.temp_size_in_bytes / 2**30,
                          "xla_args_out_gib": (mem.argument_size_in_bytes + mem.output_size_in_bytes) / 2**30,
                          "xla_constants_gib": getattr(mem, "generated_code_size_in_bytes", 0) / 2**30}))
        return
    t0 = time.perf_counter()
    out = g(x).block_until_ready()
    t1 = time.perf_counter()
    timed = None
    if repeat:
        out = g(x).block_until_ready()
        timed = time.perf_counter() - t1
    print(json.dumps({"rounds": rounds, "compile_and_first_s": t1 - t0, "second_s": timed,
                      "grad_finite": bool(np.isfinite(np.asarray(out)).all()),
                      "grad_abs_mean": float(np.abs(np.asarray(out)).mean())}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, nargs="+", default=[7, 50])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--child", type=int, default=None)
    p.add_argument("--analyse", action="store_true", help="only compile, print XLA's memory analysis (fast)")
    p.add_argument("--repeat", action="store_true", help="also time a second (compiled) call")
    a = p.parse_args()
    if a.child is not None:
        return child(a.child, a.size, a.batch, a.repeat, a.analyse)
    rows = []
    for n in a.rounds:
        cmd = (["/usr/bin/time", "-v", sys.executable, __file__, "--child", str(n), "--size", str(a.size),
                "--batch", str(a.batch)]
               + (["--repeat"] if a.repeat else []) + (["--analyse"] if a.analyse else []))
        r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
        if r.returncode:
            print(r.stdout, r.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"rounds={n} failed")
        info = json.loads(r.stdout.strip().splitlines()[-1])
        if a.analyse:
            print(json.dumps(info), flush=True)
            continue
        info["peak_rss_gib"] = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)[1]) / 2**20
        rows.append(info)
        print(json.dumps(info), flush=True)
    if len(rows) >= 2 and not a.analyse:
        lo, hi = rows[0], rows[-1]
        print(f"peak RSS {hi['rounds']} rounds / {lo['rounds']} rounds = {hi['peak_rss_gib'] / lo['peak_rss_gib']:.2f} "
              f"({hi['peak_rss_gib']:.2f} GiB vs {lo['peak_rss_gib']:.2f} GiB), "
              f"batch {a.batch}, {a.size}x{a.size}, CPU")


if __name__ == "__main__":
    main()
