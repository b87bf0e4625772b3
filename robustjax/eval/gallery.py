"""``python -m robustjax.eval gallery --out DIR``: a static page of stored adversarial examples.

Writes ``DIR/gallery/index.html`` and its PNGs in ``DIR/gallery/img`` (plain HTML and CSS, no script:
open the file in a browser, no server). Per (dataset, model, defense), per budget and per cell
(attack, threat model) it shows up to ``per_cell`` broken images (the lowest rows), each as: the clean
image with its label, the adversarial image, the perturbation amplified, the defense's output on the
adversarial image with the defended model's class there, and the defense's output on the clean image
with its class, plus the perturbation's L-inf and L2 norms. Everything comes from the cells'
adversarial files (:mod:`robustjax.eval.adversarials`, written by ``--save-adversarials``) joined
with their outcomes; norms are measured on the stored uint8 images, in pixel units on [0, 1].

The amplified perturbation is ``128 + k * (x_adv - x)`` in 8-bit levels, ``k = 127 / max|x_adv - x|``
per image (grey: unchanged; the largest change reaches 1 or 255); the page states each ``k``.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import numpy as np

from robustjax.eval.adversarials import load_adversarials

DIRNAME = "gallery"
TILE_PX = 160  # the displayed width and height of each image (small images are scaled up, pixelated)

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 2px solid #ccc; } h3 { margin-top: 1.2em; }
h4 { margin: 0.8em 0 0.3em; font-weight: 600; }
.example { display: flex; gap: 8px; align-items: flex-start; margin: 0 0 12px; padding: 8px; background: #fff;
  border: 1px solid #ddd; border-radius: 4px; width: fit-content; }
figure { margin: 0; width: %(px)dpx; }
img { width: %(px)dpx; height: %(px)dpx; image-rendering: pixelated; display: block; border: 1px solid #bbb; }
figcaption { font-size: 0.8em; line-height: 1.3; margin-top: 3px; }
.norms { font-size: 0.8em; align-self: center; min-width: 9em; }
.wrong { color: #b00020; font-weight: 600; } .right { color: #1b5e20; }
.note { max-width: 60em; }
""" % {"px": TILE_PX}


def write(out, per_cell: int = 4) -> Path:
    """Write the gallery of ``out``'s stored adversarial examples; returns the path of ``index.html``.

    Raises :class:`robustjax.eval.adversarials.NoAdversarialsError` when ``out`` holds none (and
    FileNotFoundError when it holds no results store)."""
    if per_cell < 1:
        raise ValueError(f"per_cell must be at least 1, got {per_cell}")
    df = load_adversarials(out)
    names = df.attrs.get("class_names", {})
    root = Path(out) / DIRNAME
    shutil.rmtree(root / "img", ignore_errors=True)
    (root / "img").mkdir(parents=True)
    body = [f"<h1>Adversarial examples in {_e(str(out))}</h1>", _intro(df)]
    groups = list(df.groupby(["dataset", "model", "defense"], sort=True))
    body.append("<ul>" + "".join(f'<li><a href="#g{i}">{_e(m)} / {_e(d)} ({_e(ds)})</a></li>'
                                 for i, ((ds, m, d), _) in enumerate(groups)) + "</ul>")
    for i, ((ds, model, defense), g) in enumerate(groups):
        body.append(f'<h2 id="g{i}">{_e(model)} / defense {_e(defense)} <small>({_e(ds)})</small></h2>')
        for (budget, eps), b in g.groupby(["budget", "eps"], sort=True):
            body.append(f"<h3>budget {_e(_budget(eps, budget))}</h3>")
            for (attack, threat, key), cell in b.groupby(["attack", "threat", "key"], sort=True):
                shown = cell.sort_values("row").head(per_cell)
                body.append(f"<h4>{_e(attack)} ({_e(threat)}): {len(shown)} of the {len(cell)} images it broke</h4>")
                body += [_example(root, r, names.get(key)) for r in shown.itertuples(index=False)]
    page = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            f"<title>Adversarial examples: {_e(str(out))}</title>", f"<style>{CSS}</style></head><body>",
            *body, "</body></html>", ""]
    index = root / "index.html"
    index.write_text("\n".join(page), encoding="utf-8")
    return index


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _intro(df) -> str:
    cells = df["key"].nunique()
    return (f'<p class="note">{len(df)} stored (image, budget) pairs of {cells} cell(s). Each row: the clean '
            "image (as the model saw it, resized) with its label; the adversarial image; the perturbation "
            "amplified by k around grey (128 + k &middot; (x<sub>adv</sub> &minus; x) in 8-bit levels); the "
            "defense's output on the adversarial image with the defended model's class there; the defense's "
            "output on the clean image with its class. Norms are of x<sub>adv</sub> &minus; x on the stored "
            "8-bit images, pixel units on [0, 1]. Red: a wrong class.</p>")


def _budget(eps: float, budget: str) -> str:
    if budget == "linf":
        return f"L-inf {eps * 255:g}/255"
    return f"{'L2 bound' if budget == 'l2_bound' else 'L2'} {eps:.4g}"


def _name(c: int, names) -> str:
    c = int(c)
    return f"{names[c]} ({c})" if names and 0 <= c < len(names) else str(c)


def _png(root: Path, name: str, image: np.ndarray) -> str:
    from PIL import Image

    Image.fromarray(np.asarray(image, np.uint8), "RGB").save(root / "img" / name, optimize=True)
    return f"img/{name}"


def _amplified(delta: np.ndarray) -> tuple[np.ndarray, float]:
    """The perturbation (int levels) as an image around grey, and its factor ``k``."""
    m = int(np.abs(delta).max())
    k = 127 / m if m else 1.0
    return np.clip(np.round(128 + k * delta), 0, 255).astype(np.uint8), k


def _example(root: Path, r, names) -> str:
    stem = f"{r.key}-r{int(r.row)}"
    delta = r.image.astype(np.int16) - r.clean.astype(np.int16)
    vis, k = _amplified(delta)
    linf, l2 = np.abs(delta).max() / 255, float(np.sqrt(((delta / 255.0) ** 2).sum()))
    label, clean_pred, pred = int(r.label), int(r.clean_pred), int(r.pred)

    def cls(c: int) -> str:
        return f'<span class="{"right" if c == label else "wrong"}">{_e(_name(c, names))}</span>'

    e = int(r.eps_index)
    tiles = [  # (file, alt text, title, caption)
        (_png(root, f"{stem}-clean.png", r.clean), "clean", "clean x", f"label {_e(_name(label, names))}"),
        (_png(root, f"{stem}-e{e}-adv.png", r.image), "adversarial", "adversarial x<sub>adv</sub>", ""),
        (_png(root, f"{stem}-e{e}-delta.png", vis), "perturbation", f"perturbation &times;{k:.3g}", ""),
        (_png(root, f"{stem}-e{e}-defended.png", r.defended), "defense output on the adversarial image",
         "defense d(x<sub>adv</sub>)", f"classified {cls(pred)}"),
        (_png(root, f"{stem}-clean-defended.png", r.clean_defended), "defense output on the clean image",
         "defense d(x)", f"classified {cls(clean_pred)}"),
    ]
    figs = "".join(f'<figure><img src="{src}" alt="{alt}"><figcaption><b>{title}</b>'
                   f"{'<br>' + cap if cap else ''}</figcaption></figure>" for src, alt, title, cap in tiles)
    norms = (f'<div class="norms">row {int(r.row)} ({_e(str(r.id))})<br>L-inf {linf:.4f} ({linf * 255:.0f}/255)<br>'
             f"L2 {l2:.4f}</div>")
    return f'<div class="example">{figs}{norms}</div>'
