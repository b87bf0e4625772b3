"""One table of what an accelerator gives robustjax, ready for the day one is at hand.

    PYTHONPATH=. python experiments/benchmarks/device_check.py            # full size on GPU/TPU (< 5 min)
    PYTHONPATH=. python experiments/benchmarks/device_check.py --reduced  # CPU: small sizes (< 3 min)

Rows, each for 1 device and for all devices (batch split over a 1-D mesh; one row when there is one):

- ResNet-50 forward + input gradient (random weights, the cost is the same): TFLOP/s from XLA's
  cost analysis of the compiled program over the best of 3 timed calls, and its share of the
  device's peak (a table of published float32 peaks by device kind, under the float32 matmul
  precision this script sets; on CPU the measured peak of a JAX matmul).
- PGD-10 through JPEG q25 (efficientnet_lite0, pip weights, eps 4/255, the ``through`` attacker),
  images/s as the grid runner records them (second batch on), on Imagenette (3,925 images; reduced:
  8) with the decode cache filled first.
- ELIC and HiFiC: the gradient through 50 sequential rounds (random weights; reduced: 3 rounds at
  128 x 128, HiFiC with 1 residual block), seconds of one compiled call and peak memory (the device's
  ``peak_bytes_in_use`` where it reports one, else XLA's plan of the program).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# Published dense float32 peaks (TFLOP/s, no tensor cores / TF32), by a substring of device_kind.
FP32_PEAK_TFLOPS = {"H200": 67.0, "H100": 67.0, "A100": 19.5, "L40S": 91.6, "L4": 30.3, "A10": 31.2, "V100": 15.7,
                    "T4": 8.1, "TPU v4": 275.0, "TPU v5 lite": 197.0, "TPU v5e": 197.0, "TPU v5p": 459.0,
                    "TPU v6": 918.0}  # TPUs: bfloat16 passes (their float32 matmuls are built from them)


def best_time(fn, repeats=3) -> float:
    fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def peak_tflops(device) -> tuple[float | None, str]:
    import jax
    import jax.numpy as jnp

    kind = getattr(device, "device_kind", device.platform)
    for k, v in FP32_PEAK_TFLOPS.items():
        if k.lower() in kind.lower():
            return v, f"published {k}"
    if device.platform == "cpu":
        n = 1024
        a = jax.device_put(jnp.ones((n, n), jnp.float32), device)
        dot = jax.jit(jnp.dot)
        return 2 * n**3 / best_time(lambda: dot(a, a).block_until_ready()) / 1e12, "measured JAX matmul"
    return None, f"unknown for {kind}"


def mesh_of(devices):
    from robustjax.eval.mesh import BatchMesh

    return BatchMesh(devices)


def resnet_row(devices, per_device_batch: int, size: int):
    import jax
    import numpy as np
    import optax
    from flax import nnx

    from robustjax.models import resnet
    from robustjax.models.classifier import Classifier

    f = Classifier(resnet.create(nnx.Rngs(0)), "resnet50", size, 1000)
    m = mesh_of(devices)
    b = per_device_batch * m.size

    def prog(state, x, y):
        def loss(x):
            g = Classifier.__new__(Classifier)
            g.__dict__.update(f.__dict__, state=state)
            return optax.softmax_cross_entropy_with_integer_labels(g(x), y).sum()

        return jax.grad(loss)(x)

    state = jax.device_put(f.state, m.replicated)
    x = jax.device_put(np.random.default_rng(0).random((b, size, size, 3), dtype=np.float32), m.data)
    y = jax.device_put(np.zeros((b,), np.int32), m.data)
    jitted = jax.jit(prog, in_shardings=(m.replicated, m.data, m.data), out_shardings=m.data)
    compiled = jitted.lower(state, x, y).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    # XLA's cost analysis of an SPMD program counts one partition's work (to check on the first
    # multi-device run: the 1-device and all-device TFLOP/s per device should then agree).
    flops = float(cost.get("flops", 0.0)) * m.size
    t = best_time(lambda: compiled(state, x, y).block_until_ready())
    return flops / t / 1e12, b, t


def pgd_row(devices, n: int, per_device_batch: int, out: Path):
    import ml_collections

    from robustjax import data as D
    from robustjax.data import cache
    from robustjax.eval.components import default
    from robustjax.eval.runner import Runner
    from robustjax.models.efficientnet_lite import PREPROCESSING

    m = mesh_of(devices)
    ds = D.load("imagenette").subset(n, seed=0)
    c = cache.decoded(ds, D.Resize.from_preprocessing(PREPROCESSING, 224))
    for i in range(len(ds)):  # cache warm: the row times the attack, not JPEG decoding
        c.get(i)
    cfg = ml_collections.ConfigDict({
        "name": "device_check", "dataset": "imagenette", "data_dir": None, "n": n, "seed": 0,
        "models": ["efficientnet_lite0"], "weights": None, "head": None, "defenses": ["jpeg:25"],
        "attacks": [{"name": "pgd", "steps": 10}], "eps": [4 / 255], "threats": ["through"], "eot_samples": 1,
        "batch_size": per_device_batch * m.size, "precision": "float32", "out": str(out / f"pgd-{m.size}"),
        "layout": "table"})
    rec = Runner(cfg, default(), mesh=m, progress=False, log=lambda *a: None).run()[0]
    return 1 / rec["timing"]["per_image_s"], rec["batch_size"]


def codec_row(name: str, rounds: int, size: int, batch: int, reduced: bool, device):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from robustjax.defenses import sequential

    if name == "elic":
        from robustjax.defenses import elic

        model = elic.random_fast()
        d = elic.make_defense(model, "exact", "elic:random")
    else:
        from flax import nnx

        from robustjax.defenses import hific

        model = hific.abstract(n_residual_blocks=1 if reduced else 9)
        graphdef, state = nnx.split(model)
        rng = np.random.default_rng(0)  # random weights drawn by NumPy: seconds, unlike eager init
        state = jax.tree.map(lambda v: (rng.standard_normal(v.shape) * 0.02).astype(v.dtype)
                             if jnp.issubdtype(v.dtype, jnp.floating) else np.zeros(v.shape, v.dtype), state)
        model = nnx.merge(graphdef, state)
        d = hific.make_defense(model, "hific:random")
    d = sequential(d, rounds)
    x = jax.device_put(np.random.default_rng(0).random((batch, size, size, 3), dtype=np.float32), device)
    g = jax.jit(jax.grad(lambda x: jnp.sum(d(x) ** 2)))
    compiled = g.lower(x).compile()
    t = best_time(lambda: compiled(x).block_until_ready(), repeats=1)
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:
        pass
    if stats and stats.get("peak_bytes_in_use"):
        return t, stats["peak_bytes_in_use"], "device peak"
    from robustjax.eval.batching import program_bytes

    return t, program_bytes(compiled), "XLA plan"


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--reduced", action="store_true", help="small sizes (the default on CPU)")
    a = p.parse_args(argv)
    import jax

    from robustjax import compilation_cache

    compilation_cache.enable()
    jax.config.update("jax_default_matmul_precision", "float32")
    devs = jax.devices()
    dev = devs[0]
    reduced = a.reduced or dev.platform == "cpu"
    sets = [devs[:1]] + ([devs] if len(devs) > 1 else [])
    peak, peak_src = peak_tflops(dev)
    size = 224
    rn_batch, pgd_n, pgd_batch = (2, 8, 4) if reduced else (64, 3925, 64)
    rounds, csize, cbatch = (3, 128, 1) if reduced else (50, 256, 2)
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for ds in sets:
            tf, b, t = resnet_row(ds, rn_batch, size)
            share = f"{tf / (peak * len(ds)):.0%}" if peak else "n/a"
            rows.append((f"ResNet-50 fwd+bwd, batch {b}", len(ds), f"{tf:.3f} TFLOP/s", f"{share} of peak"))
            ips, b = pgd_row(ds, pgd_n, pgd_batch, Path(tmp))
            rows.append((f"PGD-10 through JPEG q25, {pgd_n} images, batch {b}", len(ds), f"{ips:.2f} images/s", ""))
    for codec in ("elic", "hific"):
        t, mem, src = codec_row(codec, rounds, csize, cbatch, reduced, dev)
        rows.append((f"{codec.upper()} gradient, {rounds} rounds, {cbatch} x {csize}^2", 1, f"{t:.2f} s",
                     f"{mem / 2**30:.2f} GiB ({src})"))
    kind = getattr(dev, "device_kind", dev.platform)
    print(f"device check: {len(devs)} x {kind} ({dev.platform}), {'reduced' if reduced else 'full'} size, "
          f"peak {peak and f'{peak:.2f}'} TFLOP/s float32 ({peak_src}), {time.perf_counter() - t0:.0f} s")
    print("| row | devices | figure | note |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    return rows


if __name__ == "__main__":
    os.environ.setdefault("ROBUSTJAX_CACHE", tempfile.mkdtemp(prefix="rj-device-check-"))
    main()
