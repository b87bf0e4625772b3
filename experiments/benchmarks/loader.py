"""The loader with and without the decode cache, against what an attack consumes.

    PYTHONPATH=. python experiments/benchmarks/loader.py            # Imagenette, efficientnet_lite0's resize
    PYTHONPATH=. python experiments/benchmarks/loader.py --grid-n 64  # plus a 6-cell grid, cache off vs on

Part 1: images per second out of ``robustjax.data.batches`` (float32 batches of 32, 2 decode
threads) over ``--n`` Imagenette images: cold (decode + resize every image, as every job did before
the cache), filling the cache (the first job) and cached (every later job).
Part 2 (``--grid-n`` > 0): a 6-cell grid (FGSM at 0 and 2/255, JPEG q25/q50/q75 x through/BPDA: six
jobs, each reading the same images) run by the ``Runner`` with ``ROBUSTJAX_IMAGE_CACHE=off`` and
on, after a one-batch warm-up grid that fills the compilation cache (so neither timed grid compiles
from scratch); prints each grid's wall time and the attack's consumption rate (images per second of
the cells), which is what the loader must keep up with.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import robustjax.data as D  # noqa: E402
from robustjax.data import cache as C  # noqa: E402


def rate(ds, resize, cache=None, batch=32) -> float:
    t = time.perf_counter()
    n = 0
    for b in D.batches(ds, batch, resize, cache=cache):
        n += int(b.mask.sum())
    return n / (time.perf_counter() - t)


def grid(n: int, out: Path, batch: int, cache_on: bool) -> tuple[float, list[dict]]:
    import ml_collections

    from robustjax.eval.components import default
    from robustjax.eval.runner import Runner

    os.environ["ROBUSTJAX_IMAGE_CACHE"] = "on" if cache_on else "off"
    C.clear()
    cfg = ml_collections.ConfigDict({
        "name": "loader_bench", "dataset": "imagenette", "data_dir": None, "n": n, "seed": 0,
        "models": ["efficientnet_lite0"], "weights": None, "head": None,
        "defenses": ["jpeg:25", "jpeg:50", "jpeg:75"], "attacks": ["fgsm"], "eps": [0.0, 2 / 255],
        "threats": ["through", "bpda"], "eot_samples": 1, "batch_size": batch, "out": str(out), "layout": "table",
    })
    t = time.perf_counter()
    recs = Runner(cfg, default(), progress=False, log=lambda *a: None).run()
    return time.perf_counter() - t, recs


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=3925, help="Imagenette images for the loader rates")
    p.add_argument("--grid-n", type=int, default=0, help="images of the 6-cell grid (0: skip it)")
    p.add_argument("--batch-size", type=int, default=16, help="the grid's batch size")
    a = p.parse_args(argv)
    os.environ.setdefault("ROBUSTJAX_CACHE", tempfile.mkdtemp(prefix="rj-loader-"))
    from robustjax.models.efficientnet_lite import PREPROCESSING

    resize = D.Resize.from_preprocessing(PREPROCESSING, 224)
    ds = D.load("imagenette").subset(a.n, seed=0)
    print(f"loader, {len(ds)} Imagenette images -> {resize}, batches of 32, 2 decode threads:")
    cold = rate(ds, resize)
    C.clear()
    cache = C.decoded(ds, resize)
    filling = rate(ds, resize, cache)
    cached = rate(ds, resize, cache)
    print(f"  cold (decode + resize every time): {cold:8.0f} images/s")
    mib = cache.nbytes / 2**20
    print(f"  first pass, filling the cache:     {filling:8.0f} images/s  ({cache.where}, {mib:.0f} MiB)")
    print(f"  cached:                            {cached:8.0f} images/s  ({cached / cold:.1f}x cold)")
    if a.grid_n <= 0:
        return
    import jax

    from robustjax import compilation_cache

    compilation_cache.enable()
    with tempfile.TemporaryDirectory() as tmp:
        grid(a.batch_size, Path(tmp) / "warm", a.batch_size, False)  # compiles the 6 programs once
        off, recs = grid(a.grid_n, Path(tmp) / "off", a.batch_size, False)
        on, recs_on = grid(a.grid_n, Path(tmp) / "on", a.batch_size, True)
    assert [r["correct"] for r in recs] == [r["correct"] for r in recs_on], "the cache changed a result"
    per_image = sum(r["timing"]["per_image_s"] for r in recs) / len(recs)
    print(f"6-cell grid (efficientnet_lite0, FGSM 0 and 2/255, JPEG q25/50/75 x through/BPDA), {a.grid_n} images, "
          f"batch {a.batch_size}, {jax.device_count()} device(s):")
    print(f"  cache off: {off:7.1f} s   cache on: {on:7.1f} s   ({off / on:.3f}x)")
    print(f"  the cells consume {1 / per_image:.1f} images/s (mean over cells); the cold loader gives {cold:.0f}")


if __name__ == "__main__":
    main()
