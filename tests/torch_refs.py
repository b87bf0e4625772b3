"""PyTorch reference networks written for the tests (from the papers, not copied code), and the real CIFAR-10
test images the parity tests compare them on."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from robustjax.models import cifar_resnet


class TorchBlock(nn.Module):
    """Reference option-A basic block (He et al. 2016), written from the paper for the test."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, (cout - cin) // 2

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        sc = x
        if self.stride != 1 or self.pad:
            sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + sc)


class TorchCifarResNet(nn.Module):
    """Reference CIFAR ResNet-``depth`` (option-A shortcuts, input normalised inside), the layout of the
    published ``resnet{depth}-*.th`` files (their keys without the ``module.`` prefix)."""

    def __init__(self, depth):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
        cin, stages = 16, []
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(TorchBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        mean = torch.tensor(cifar_resnet.MEAN, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(cifar_resnet.STD, dtype=x.dtype).view(1, 3, 1, 1)
        x = F.relu(self.bn1(self.conv1((x - mean) / std)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(x.mean(dim=(2, 3)))


def load_cifar_resnet(path, depth):
    """The reference network with the published weights of ``path``, in eval mode."""
    model = TorchCifarResNet(depth)
    sd = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k[len("module."):]: v for k, v in sd.items()})
    return model.eval()


def nchw(x):
    """NHWC numpy images -> a contiguous NCHW torch tensor."""
    import numpy as np

    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous()


def nhwc(t):
    """An NCHW torch tensor -> NHWC numpy images."""
    return t.permute(0, 2, 3, 1).detach().numpy()


def cifar_resnet20_case(n: int, cache_dir):
    """``(ours, theirs, x, y)``: the real CIFAR ResNet-20 converted (robustjax) and in PyTorch, and ``n``
    JPEG CIFAR-10 test images drawn with seed 0 (float32 NHWC in [0, 1]) with their labels; the
    conversion cache under ``cache_dir`` unless ROBUSTJAX_CACHE is set. Skips when the shared
    weights or data are absent."""
    import os

    import numpy as np
    from conftest import DATA, WEIGHTS, need
    from PIL import Image

    from robustjax import models

    os.environ.setdefault("ROBUSTJAX_CACHE", str(cache_dir))
    os.environ["ROBUSTJAX_WEIGHTS"] = str(WEIGHTS)
    files = sorted(need(DATA / "cifar10-test-jpeg").glob("*/*.jpg"))
    idx = np.random.default_rng(0).choice(len(files), n, replace=False)
    labels = models.zoo.MODELS.get("cifar_resnet20").labels
    x = np.stack([np.asarray(Image.open(files[i]).convert("RGB")) for i in idx]).astype(np.float32) / 255.0
    y = np.array([labels.index(files[i].parent.name) for i in idx])
    ref = load_cifar_resnet(next(need(WEIGHTS / "cifar10-resnet").glob("resnet20-*.th")), 20)
    return models.load("cifar_resnet20"), ref, x, y


def cifar_test_images(step: int = 100):
    """``(x, y)``: every ``step``-th JPEG CIFAR-10 test image in sorted file order (float32 NHWC in [0, 1])
    and its label (an index into ``cifar_resnet.LABELS``). Skips when the shared data are absent."""
    import numpy as np
    from conftest import DATA, need
    from PIL import Image

    files = sorted(need(DATA / "cifar10-test-jpeg").glob("*/*.jpg"))[::step]
    x = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]).astype(np.float32) / 255.0
    y = np.array([cifar_resnet.LABELS.index(f.parent.name) for f in files])
    return x, y
