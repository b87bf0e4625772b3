"""ELIC rate/distortion on Kodak: estimated and real (constriction) bits per pixel, PSNR, per quality.

    PYTHONPATH=. python experiments/elic_rate_distortion.py [--weights DIR] [--data DIR] [--n N] [--out FILE.md]

For every published checkpoint found under ``DIR/elic/`` (default ``$ROBUSTJAX_WEIGHTS``; they are
not available offline, see ``robustjax.defenses.elic``), runs the 24 Kodak photos (768x512, on
ELIC's 64 grid, no resizing) through the differentiable forward (estimated bpp from the
likelihoods, PSNR of the clamped reconstruction) and through the real codec (bytes of the file,
and a check that the decoded image equals the forward's). Räber et al. 2025 Table 1 is given beside (its
figures are on 224x224 ImageNet images resized to 256, so only the ordering is comparable).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image

PAPER_BPP = {"0004": 0.063, "0008": 0.093, "0016": 0.136, "0032": 0.194, "0150": 0.415, "0450": 0.693}


def main() -> None:
    import jax
    import jax.numpy as jnp

    from robustjax.defenses import elic
    from robustjax.defenses.elic.codec import ElicCodec

    root = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path,
                   default=Path(os.environ.get("ROBUSTJAX_WEIGHTS", root.parent / "shared" / "weights")))
    p.add_argument("--data", type=Path, default=Path(os.environ.get("ROBUSTJAX_DATA", root.parent / "shared" / "data")))
    p.add_argument("--n", type=int, default=None, help="first N Kodak images (default all 24)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    files = sorted((a.data / "kodak").glob("*.png"))[: a.n]
    if not files:
        raise SystemExit(f"no Kodak PNGs under {a.data / 'kodak'} (set --data or ROBUSTJAX_DATA)")
    found = [q for q in elic.QUALITIES if (a.weights / "elic" / elic.published_name(q)).is_file()]
    if not found:
        raise SystemExit(f"no ELIC checkpoints under {a.weights / 'elic'}: download ELIC_<Q>_ft_3980_Plateau.pth.tar "
                         f"from {elic.SOURCE_URL} and put them there")
    lines = ["| ELIC | bpp (estimate) | bpp (real file) | PSNR dB | max abs decode vs forward "
             "| Räber et al. 2025 bpp |",
             "| --- | --- | --- | --- | --- | --- |"]
    for q in found:
        model, _ = elic.load(q, a.weights / "elic" / elic.published_name(q))
        fwd = jax.jit(lambda v: elic.forward(model, v))
        codec = ElicCodec(model)
        est, real, psnr, err = [], [], [], []
        for f in files:
            im = np.asarray(Image.open(f).convert("RGB"), np.float32)[None] / 255.0
            if im.shape[1] > im.shape[2]:  # portrait Kodak photos: rotate onto the 768x512 grid
                im = np.ascontiguousarray(np.rot90(im, axes=(1, 2)))
            out = fwd(jnp.asarray(im))
            x_hat = np.clip(np.asarray(out["x_hat"]), 0, 1)
            est.append(float(out["bpp"][0]))
            psnr.append(float(10 * np.log10(1 / np.mean((x_hat - im) ** 2))))
            data = codec.compress(im)
            real.append(8 * len(data[0]) / (im.shape[1] * im.shape[2]))
            err.append(float(np.abs(np.asarray(codec.decompress(data)) - np.asarray(out["x_hat"])).max()))
        lines.append(f"| {q} | {np.mean(est):.4f} | {np.mean(real):.4f} | {np.mean(psnr):.2f} | {max(err):.1e} "
                     f"| {PAPER_BPP[q]} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if a.out:
        a.out.write_text(f"ELIC rate/distortion on Kodak ({len(files)} images)\n\n{text}\n")


if __name__ == "__main__":
    main()
