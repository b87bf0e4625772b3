"""Räber et al. 2025 Table 1, JPEG column: bits per pixel of real JPEG files (Pillow/libjpeg, 4:2:0).

    python experiments/raber2025/table1_jpeg_bpp.py [--data DIR] [--n N] [--out FILE.md]

Measures the mean bpp over Kodak (24 lossless photos, 768x512) and over the Imagenette validation
images (224x224; note they are stored as JPEG q75 already, which lowers their entropy a little), at
the paper's qualities, next to the paper's figures (100 random 224x224 ImageNet images). Also the
PSNR of the decoded images and the MAE between robustjax's differentiable JPEG (exact rounding,
libjpeg mode) and Pillow's decode, so the table says how faithful the defense being attacked is.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image

from robustjax.defenses import jpeg
from robustjax.defenses.jpeg import files as jpeg_files

QUALITIES = (5, 10, 15, 25, 35, 50, 75, 95)
PAPER_BPP = (0.35, 0.48, 0.59, 0.78, 0.94, 1.14, 1.65, 3.80)  # Räber et al. 2025 Table 1


def load(folder: Path, pattern: str, n: int | None, seed: int = 0) -> list[np.ndarray]:
    files = sorted(folder.glob(pattern))
    if not files:
        raise SystemExit(f"no images matching {pattern} under {folder} (set --data or ROBUSTJAX_DATA)")
    if n is not None and n < len(files):
        files = [files[i] for i in sorted(np.random.default_rng(seed).choice(len(files), n, replace=False))]
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def measure(images: list[np.ndarray]) -> list[tuple[float, float, float]]:
    import jax

    codec = jax.jit(lambda x, q: jpeg(x, q, rounding="exact"))
    rows = []
    for q in QUALITIES:
        bpp, psnr, mae = [], [], []
        for im in images:
            ref = jpeg_files.roundtrip(im[None], q)
            bpp.append(jpeg_files.bits_per_pixel(im[None], q)[0])
            mse = np.mean((ref - im[None] / 255.0) ** 2)
            psnr.append(10 * np.log10(1.0 / mse))
            mae.append(255 * np.abs(np.asarray(codec(im[None] / 255.0, q)) - ref).mean())
        rows.append((float(np.mean(bpp)), float(np.mean(psnr)), float(np.mean(mae))))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path,
                   default=Path(os.environ.get("ROBUSTJAX_DATA",
                                               Path(__file__).resolve().parents[2] / "shared" / "data")))
    p.add_argument("--n", type=int, default=None, help="seeded subset of Imagenette (default: all 3,925)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    sets = {
        "Kodak (24, 768x512)": load(a.data / "kodak", "*.png", None),
        f"Imagenette val ({a.n or 'all'}, 224x224)": load(a.data / "imagenette2-val", "*/*.JPEG", a.n),
    }
    results = {name: measure(images) for name, images in sets.items()}
    lines = ["| quality | paper bpp (ImageNet 224) | "
             + " | ".join(f"{n} bpp / PSNR dB / MAE ours-vs-libjpeg" for n in results) + " |"]
    lines.append("|---" * (2 + len(results)) + "|")
    for i, (q, paper) in enumerate(zip(QUALITIES, PAPER_BPP)):
        cells = [f"{r[i][0]:.3f} / {r[i][1]:.2f} / {r[i][2]:.3f}" for r in results.values()]
        lines.append(f"| {q} | {paper:.2f} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if a.out:
        a.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
