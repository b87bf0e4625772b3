"""Runner overhead: a grid cell's per-image time vs the same attack called directly, same process.

    PYTHONPATH=. python experiments/benchmarks/eval_overhead.py --model efficientnet_lite0 \
        --defense jpeg:25 --attack ifgsm --threat through --eps 8/255 --n 16 --batch-size 8

"direct" jits ``attack(view, x, y, key)`` for one eps (view = the threat model's function) plus the
defended model's forward pass on the result (what the runner must do to score it), runs it over
the same batches and times it; "runner" runs the same cell through ``robustjax.eval.runner.Runner``
(prefetching loader, sharded program, vmapped eps grid of one value, results store) and reads its
recorded per-image time. Both exclude compilation and the first execution's one-off start-up (the
runner records it apart as ``first_batch_s`` and takes its per-image time from the second batch
on). Prints both and their ratio.
``--standins`` uses the tests' tiny CNN and jax attacks instead of the registries.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from robustjax import data as rdata
from robustjax.attacks.threat import attacker_view
from robustjax.eval import config as C
from robustjax.eval.components import default, model_info
from robustjax.eval.runner import Runner


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="foolbox_imagenet")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--head", default=None)
    p.add_argument("--defense", default="jpeg:25")
    p.add_argument("--attack", default="ifgsm")
    p.add_argument("--threat", default="through")
    p.add_argument("--eps", default="8/255")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--standins", action="store_true")
    a = p.parse_args(argv)
    if a.standins:
        from tests.eval_standins import components

        comp = components()
    else:
        comp = default()
    eps = C.parse_eps(a.eps)[0]
    f = comp.load_model(a.model, weights=None, head=a.head)
    info = model_info(f, a.model)
    ds = comp.load_data(a.dataset, None, a.head).subset(a.n, 0)
    resize = rdata.Resize.from_preprocessing(info["preprocessing"], int(info["input_size"]))
    d = comp.get_defense(a.defense)
    batches = list(rdata.batches(ds, a.batch_size, resize))

    def direct(x, y, key, index):
        dkey, akey = jax.random.split(jax.random.fold_in(key, index))
        view = attacker_view(a.threat, f, d, dkey)
        x_adv = comp.get_attack(a.attack, eps=eps)(view, x, y, key=akey)
        return jnp.sum(jnp.argmax(f(d(x_adv, dkey)), -1) == y)

    fn = jax.jit(direct)
    key = jax.random.PRNGKey(0)
    fn(batches[0].x, batches[0].y, key, 0).block_until_ready()  # compile
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        for b in batches:
            fn(b.x, b.y, key, b.index).block_until_ready()
        times.append(time.perf_counter() - t0)
    direct_s = min(times) / len(ds)

    runner_s, first_s = [], []
    for r in range(a.repeats):
        with tempfile.TemporaryDirectory() as out:
            cfg = C.quickstart()
            cfg.update(dict(dataset=a.dataset, models=[a.model], head=a.head, defenses=[a.defense], attacks=[a.attack],
                            eps=[eps], threats=[a.threat], batch_size=a.batch_size, n=a.n, out=out))
            rec = Runner(cfg, comp, progress=False, log=lambda *_: None).run()[0]
            runner_s.append(rec["timing"]["per_image_s"])
            first_s.append(rec["timing"]["first_batch_s"])
    runner = min(runner_s)
    print(f"{a.model} {a.defense} {a.attack} {a.threat} eps={a.eps}, {len(ds)} images, batch {a.batch_size}, "
          f"{jax.devices()[0].platform}")
    print(f"direct jitted attack + scoring: {direct_s:.4f} s/image")
    print(f"runner grid cell:               {runner:.4f} s/image (first batch {min(first_s):.2f} s)")
    print(f"ratio runner/direct: {runner / direct_s:.3f}")


if __name__ == "__main__":
    main()
