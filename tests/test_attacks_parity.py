"""Parity with torchattacks 3.5.1 on CIFAR ResNet-20 with the real weights and real CIFAR-10 test
images (JPEG q75 copies).

The end-to-end comparison (our attacks on the converted Flax network) is in test_attacks.py; here:
- *rules*: our attacks driven by the PyTorch model itself (its logits and input gradients reach
  JAX through ``pure_callback``), so the only difference left is the attack code: FGSM, BIM and PGD
  (no random start) must give torchattacks' adversarial images on >= 99.9% of pixels. MI-FGSM is
  left to the float64 comparison in test_attacks.py: its L1 normalisation and momentum turn the
  ~1e-8 float32 differences of the two loss gradients into sign flips of near-zero momentum
  entries (98.7% of pixels equal in float32, 100% in float64).
(In float32 the two frameworks' convolutions differ by ~1e-7 relative, and an image whose input
gradient has a pixel within that of zero can take another trajectory over 10 steps; test_attacks.py
therefore compares end to end in float64.)

CI size (stated): 64 images.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import WEIGHTS, need
from torch_refs import TorchCifarResNet as _TorchCifarResNet
from torch_refs import cifar_test_images

from robustjax import attacks as A
from robustjax import models

pytestmark = pytest.mark.slow  # real weights / data: parity with the reference

torchattacks = pytest.importorskip("torchattacks")
N = 64
EPS = 8 / 255


@pytest.fixture(scope="module")
def setup():
    path = next(need(WEIGHTS / "cifar10-resnet").glob("resnet20-*.th"))
    ref = _TorchCifarResNet(20)
    ref.load_state_dict({k[len("module."):]: v
                         for k, v in torch.load(path, map_location="cpu", weights_only=True)["state_dict"].items()})
    ref.eval()
    x, y = cifar_test_images(step=39)
    x, y = x[:N], y[:N]
    return ref, models.load("cifar_resnet20"), x, y


def torch_as_jax(model, num_classes=10):
    """The PyTorch classifier as a JAX function of NHWC images, forward and backward done by torch."""

    def to_t(a):
        return torch.from_numpy(np.array(a)).permute(0, 3, 1, 2)

    def fwd(x):
        with torch.no_grad():
            return model(to_t(x)).numpy()

    def bwd(x, g):
        xt = to_t(x).requires_grad_(True)
        (gx,) = torch.autograd.grad(model(xt), xt, torch.from_numpy(np.array(g)))
        return gx.permute(0, 2, 3, 1).numpy()

    @jax.custom_vjp
    def f(x):
        return jax.pure_callback(fwd, jax.ShapeDtypeStruct((x.shape[0], num_classes), jnp.float32), x)

    f.defvjp(lambda x: (f(x), x), lambda x, g: (jax.pure_callback(bwd, jax.ShapeDtypeStruct(x.shape, x.dtype), x, g),))
    return A.View(f, num_classes, "torch")


def _cases(ref):
    return {
        "fgsm": (torchattacks.FGSM(ref, eps=EPS), A.FGSM(eps=EPS)),
        "bim": (torchattacks.BIM(ref, eps=EPS, alpha=EPS / 4, steps=10), A.BIM(eps=EPS)),
        "pgd": (torchattacks.PGD(ref, eps=EPS, alpha=EPS / 4, steps=10, random_start=False),
                A.PGD(eps=EPS, random_start=False)),
    }


def _torch_adv(atk, x, y):
    return atk(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y)).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("name", ["fgsm", "bim", "pgd"])
def test_rules_match_torchattacks(setup, name):
    ref, _, x, y = setup
    ta, ours = _cases(ref)[name]
    want = _torch_adv(ta, x, y)
    got = np.asarray(jax.jit(lambda x, y: ours(torch_as_jax(ref), x, y))(x, y))
    same = np.mean(np.abs(got - want) <= 1e-6)
    assert same >= 0.999, same
