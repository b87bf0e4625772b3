"""Seed 001's small CNNs: parity with an equivalent PyTorch network (random weights) through RULES."""

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as F
from flax import nnx

from robustjax.models import small_cnn
from robustjax.porting import load_into


class TorchSmallCNN(tnn.Module):
    def __init__(self, widths, hw, classes):
        super().__init__()
        cin = 3
        for i, w in enumerate(widths):
            setattr(self, f"conv{2 * i + 1}", tnn.Conv2d(cin, w, 3, padding=1))
            setattr(self, f"conv{2 * i + 2}", tnn.Conv2d(w, w, 3))
            cin = w
        self.n = len(widths)
        self.fc1 = tnn.Linear(cin * hw * hw, 512)
        self.fc2 = tnn.Linear(512, classes)

    def forward(self, x):
        for i in range(self.n):
            x = F.relu(getattr(self, f"conv{2 * i + 1}")(x))
            x = F.max_pool2d(F.relu(getattr(self, f"conv{2 * i + 2}")(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


@pytest.mark.parametrize("variant,hw", [("cifar10", 6), ("gtsrb", 4)])
def test_parity_with_torch(variant, hw):
    size, widths, classes = small_cnn.VARIANTS[variant]
    torch.manual_seed(0)
    ref = TorchSmallCNN(widths, hw, classes).eval()
    ours = small_cnn.create(nnx.Rngs(1), variant=variant)
    load_into(ours, {k: v.detach().numpy() for k, v in ref.state_dict().items()}, small_cnn.RULES)
    x = np.random.default_rng(0).random((3, size, size, 3), dtype=np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    got = np.asarray(ours(x))
    assert got.shape == (3, classes)
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max())


def test_unknown_variant():
    with pytest.raises(ValueError, match="variant"):
        small_cnn.create(variant="mnist")
