"""AutoAttack standard as a robustjax suite against torchattacks 3.5.1's members run as ``MultiAttack``,
in one run: robust accuracy, the images each member broke, and the wall time.

    python experiments/benchmarks/autoattack_standard.py [--n 256] [--eps 8/255 1/255] [--out DIR]

On the undefended CIFAR ResNet-20 (the published weights via ROBUSTJAX_WEIGHTS, else random) and
``--n`` JPEG CIFAR-10 test images (ROBUSTJAX_DATA; the runner's seeded subset, the same on both
sides). robustjax side: ``python -m robustjax.eval``'s runner with ``autoattack`` (APGD-CE, APGD-T
9 targets, FAB-T 9 targets, Square 5,000 queries: the suite attacks only the images still
standing, budgets nested). torchattacks side: ``APGD``
(100 steps, 1 restart), ``APGDT`` (9 targets), ``FAB`` (``multi_targeted=True``, 100 steps, 9
targets) and ``Square`` (5,000 queries) combined by ``MultiAttack`` (each later attack sees only the
images the earlier ones left correctly classified), once per budget. The torch / robustjax wall
ratio counts robustjax's compilation (> 1: robustjax faster).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

BATCH = 64  # robustjax's calls: at most 64 images, gathered from windows of 4 x 64 (all 256 at the default --n)

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def torch_side(ref, x, y, eps):
    """(robust accuracy, seconds) of torchattacks' AutoAttack-standard members as MultiAttack."""
    import torch
    import torchattacks

    xt, yt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y)
    members = [torchattacks.APGD(ref, eps=eps, steps=100, n_restarts=1, loss="ce"),
               torchattacks.APGDT(ref, eps=eps, steps=100, n_restarts=1, n_classes=10),
               torchattacks.FAB(ref, eps=eps, steps=100, n_restarts=1, multi_targeted=True, n_classes=10),
               torchattacks.Square(ref, eps=eps, n_queries=5000, n_restarts=1)]
    t0 = time.perf_counter()
    adv = torchattacks.MultiAttack(members)(xt, yt)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        return float((ref(adv).argmax(1) == yt).float().mean()), seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--eps", nargs="+", default=["8/255", "1/255"])
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    import numpy as np
    from common import torch_cifar_resnet

    from robustjax import data
    from robustjax.eval import config as C
    from robustjax.eval.components import default
    from robustjax.eval.runner import Runner

    ref, real = torch_cifar_resnet()
    ds = data.load("cifar10_jpeg").subset(a.n, 0)  # the images the runner evaluates, in its order
    x = np.stack([ds.read(i) for i in range(len(ds))]).astype(np.float32) / 255
    y = np.asarray(ds.labels, np.int64)
    print(f"CIFAR ResNet-20 ({'real' if real else 'random'} weights), {len(ds)} CIFAR-10 test images (JPEG q75)")
    out = Path(a.out or tempfile.mkdtemp(prefix="aa_standard_"))
    for text in a.eps:
        eps = float(Fraction(text))
        cfg = C.quickstart()
        cfg.update(dict(dataset="cifar10_jpeg", models=["cifar_resnet20"], defenses=["none"], threats=["oblivious"],
                        attacks=[{"name": "autoattack"}], eps=[0.0, eps], n=a.n, batch_size=BATCH,
                        out=str(out / text.replace("/", "_")), name="autoattack_standard"))
        t0 = time.perf_counter()
        (rec,) = Runner(cfg, default(), progress=False, log=lambda *m: None).run()
        ours_s = time.perf_counter() - t0
        acc_t, theirs_s = torch_side(ref, x, y, eps)
        broke = ", ".join(f"{m['member'].split(':')[0]} {m['broken'][0]}" for m in rec["suite"])
        print(f"eps {text}: robustjax robust accuracy {rec['accuracy'][1]:.4f} ({broke}; {ours_s:.0f} s wall, "
              f"{rec['timing']['compile_s']:.0f} s of it compiling) | torchattacks MultiAttack {acc_t:.4f} "
              f"({theirs_s:.0f} s) | torch / robustjax wall {theirs_s / ours_s:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
