"""ResNet-50 and ViT-B/16 against torchvision, built with random weights (the ImageNet weights
are not available offline), converted through the published key layout, on real images."""

import jax
import numpy as np
import pytest
import torch
import torchvision
from conftest import DATA, need
from PIL import Image

from robustjax.models import resnet, vit
from robustjax.porting import CheckpointMismatchError, load_into

pytestmark = pytest.mark.slow  # real weights / data: parity with the reference


def _images(n=2):
    files = sorted(need(DATA / "imagenette2-val").glob("*/*.JPEG"))[::997][:n]
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]).astype(np.float32) / 255.0


def _randomise_bn(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("name", ["resnet50", "vit_b16"])
def test_parity_with_torchvision(name):
    torch.manual_seed(0)
    if name == "resnet50":
        ref, port = torchvision.models.resnet50(weights=None), resnet
        _randomise_bn(ref)
    else:
        ref, port = torchvision.models.vit_b_16(weights=None), vit
        with torch.no_grad():  # torchvision zero-initialises the head: give it weights that matter
            ref.heads.head.weight.normal_(0, 0.02)
            ref.class_token.normal_(0, 0.02)
    ref.eval()
    ours = port.create()
    ignored = load_into(ours, {k: v.numpy() for k, v in ref.state_dict().items()}, port.RULES)
    assert all(k.endswith("num_batches_tracked") for k in ignored)
    ours.eval()
    x = _images()
    mean, std = np.array(port.MEAN, np.float32), np.array(port.STD, np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy((x - mean) / std).permute(0, 3, 1, 2)).numpy()
    got = np.asarray(jax.jit(ours)(x))
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_foreign_state_dict_is_named():
    ref = torchvision.models.resnet18(weights=None)
    with pytest.raises(CheckpointMismatchError) as err:
        load_into(resnet.create(), {k: v.numpy() for k, v in ref.state_dict().items()}, resnet.RULES)
    assert ("layer1.0.conv3.kernel" in str(err.value)
            and "layer1.0.conv1.kernel: model (1, 1, 64, 64), checkpoint (3, 3, 64, 64)" in str(err.value))
