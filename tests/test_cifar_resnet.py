"""CIFAR ResNet-20..56: parity with a PyTorch reference holding the real weights, and accuracy."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as F

from conftest import DATA, WEIGHTS, need
from robustjax.models import load

CIFAR_WEIGHTS = WEIGHTS / "cifar10-resnet"


# ---- PyTorch reference (He et al. 2016 option-A CIFAR ResNet, the layout of the published files) ----
class _TorchBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2 if (stride != 1 or cin != cout) else None

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        short = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + short)


class TorchCifarResNet(tnn.Module):
    def __init__(self, depth):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = tnn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(16)
        cin = 16
        for i, cout in enumerate((16, 32, 64), 1):
            blocks = []
            for b in range(n):
                blocks.append(_TorchBlock(cin, cout, 2 if (b == 0 and i > 1) else 1))
                cin = cout
            setattr(self, f"layer{i}", tnn.Sequential(*blocks))
        self.linear = tnn.Linear(64, 10)

    def forward(self, x):  # x: normalised NCHW
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _torch_model(depth):
    path = next(iter(sorted(need(CIFAR_WEIGHTS).glob(f"resnet{depth}-*.th"))))
    sd = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    model = TorchCifarResNet(depth)
    model.load_state_dict({k.removeprefix("module."): v for k, v in sd.items()})
    return model.eval()


def _torch_logits(model, x):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        return model((torch.from_numpy(x).permute(0, 3, 1, 2) - mean) / std).numpy()


def foolbox_cifar10():
    """foolbox's 20 lossless CIFAR-10 test PNGs: (20, 32, 32, 3) float32 in [0, 1], labels."""
    from PIL import Image
    import foolbox

    files = sorted((Path(foolbox.__file__).parent / "data").glob("cifar10_*.png"))
    assert len(files) == 20
    x = np.stack([np.asarray(Image.open(f).convert("RGB"), np.float32) / 255 for f in files])
    y = np.array([int(f.stem.split("_")[-1]) for f in files])
    return x, y


@pytest.mark.parametrize("depth", [20, 32, 44, 56])
def test_parity_with_torch_real_weights(depth):
    x, _ = foolbox_cifar10()
    want = _torch_logits(_torch_model(depth), x)
    got = np.asarray(load(f"cifar_resnet{depth}")(x))
    scale = np.abs(want).max()
    err = np.abs(got - want).max() / scale
    assert err <= 1e-5, f"max abs logit diff relative to logit scale {err:.2e}"
    assert (got.argmax(1) == want.argmax(1)).all()


def test_resnet20_foolbox_cifar10_all_correct():
    x, y = foolbox_cifar10()
    clf = load("cifar_resnet20")
    assert clf.num_classes == 10 and clf.input_size == 32 and clf.label_names[0] == "airplane"
    assert (np.asarray(clf(x)).argmax(1) == y).sum() == 20


def cifar10_jpeg(root, n=None, seed=0):
    from PIL import Image

    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    files = [(f, c) for c, name in enumerate(classes) for f in sorted((root / name).glob("*.jpg"))]
    if n is not None:
        idx = np.random.default_rng(seed).choice(len(files), n, replace=False)
        files = [files[i] for i in sorted(idx)]
    x = np.stack([np.asarray(Image.open(f).convert("RGB"), np.float32) / 255 for f, _ in files])
    return x, np.array([c for _, c in files])


def test_resnet20_accuracy_cifar10_jpeg():
    """All 10,000 JPEG-q75 CIFAR-10 test images (fast: ~2 s of compute). Reference (PyTorch): 81.0%.

    Tolerance +-1.0 point: same weights and the same decoded pixels, so only float rounding and
    the stated reference rounding separate the figures; a wrong normalisation or shortcut costs
    far more than a point.
    """
    x, y = cifar10_jpeg(need(DATA / "cifar10-test-jpeg"))
    assert len(y) == 10000
    clf = load("cifar_resnet20")
    pred = np.concatenate([np.asarray(clf(x[i:i + 1000])).argmax(1) for i in range(0, len(x), 1000)])
    acc = (pred == y).mean()
    assert abs(acc - 0.810) <= 0.010, acc


def test_bad_input_is_refused():
    clf = load("cifar_resnet20")
    with pytest.raises(ValueError, match="32x32"):
        clf(np.zeros((1, 28, 28, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        clf(np.full((1, 32, 32, 3), 255.0, np.float32))
    with pytest.raises(ValueError, match="unknown classifier"):
        load("resnet21")
