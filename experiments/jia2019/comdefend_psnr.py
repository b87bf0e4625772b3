"""ComDefend reconstruction PSNR with the authors' CIFAR-10 weights (acceptance figure of issue 6).

Mean per-image PSNR (dB, pixels in [0, 1]) of ``comdefend:sigma=S`` over the images of an image
folder (default: all 10,000 of ``$ROBUSTJAX_DATA/cifar10-test-jpeg``, which are JPEG q75 re-saves
of the CIFAR-10 test set), fed as RGB and, for the record, as BGR (the channel order of the
authors' cv2 demo).

    PYTHONPATH=. python experiments/jia2019/comdefend_psnr.py [--data DIR] [--n N] [--sigma 0] [--bgr]
"""

from __future__ import annotations

import argparse
import glob
import os
import time

import jax
import numpy as np
from PIL import Image

from robustjax.defenses import comdefend as cd


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data",
                   default=os.path.join(os.environ.get("ROBUSTJAX_DATA", "../shared/data"), "cifar10-test-jpeg"))
    p.add_argument("--n", type=int, default=0, help="seeded random subset of N images (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sigma", type=float, default=0.0)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--bgr", action="store_true", help="also measure with the channels reversed")
    a = p.parse_args()
    files = sorted(glob.glob(os.path.join(a.data, "*", "*.jpg")) + glob.glob(os.path.join(a.data, "*", "*.png")))
    if not files:
        raise SystemExit(f"no images under {a.data}")
    if a.n:
        files = [files[i] for i in sorted(np.random.default_rng(a.seed).choice(len(files), a.n, replace=False))]
    defense = cd.comdefend(cd.load(None, "cifar"), sigma=a.sigma)
    fwd = jax.jit(lambda x, k: defense(x, k))
    orders = {"RGB": lambda x: x}
    if a.bgr:
        orders["BGR"] = lambda x: x[..., ::-1]
    scores = {k: [] for k in orders}
    t0 = time.time()
    for start in range(0, len(files), a.batch):
        x = np.stack([np.asarray(Image.open(f).convert("RGB"), np.float32) / 255
                      for f in files[start : start + a.batch]])
        for name, perm in orders.items():
            y = perm(np.asarray(fwd(np.ascontiguousarray(perm(x)), jax.random.PRNGKey(start))))
            scores[name] += list(-10 * np.log10(np.mean((y - x) ** 2, axis=(1, 2, 3))))
        print(f"{start + len(x)}/{len(files)} images, RGB mean so far {np.mean(scores['RGB']):.3f} dB, "
              f"{time.time() - t0:.0f} s", flush=True)
    for name, s in scores.items():
        print(f"{name}: mean per-image PSNR {np.mean(s):.3f} dB over {len(s)} images "
              f"(sigma={a.sigma}, median {np.median(s):.3f}, min {np.min(s):.3f})")


if __name__ == "__main__":
    main()
