"""Attacks end to end: parity with torchattacks 3.5.1 on the real CIFAR ResNet-20 (ours converted
to Flax, theirs the PyTorch network) and 256 real CIFAR-10 test images. Properties, threat models
and input errors: test_attacks_unit.py; the attack rules alone: test_attacks_parity.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torchattacks
from torch_refs import cifar_resnet20_case

from robustjax import attacks
from robustjax.attacks.base import l2_norms

pytestmark = pytest.mark.slow  # real weights / data: parity with the reference

N_PARITY = 256


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return cifar_resnet20_case(N_PARITY, tmp_path_factory.mktemp("cache"))


def _torch_attack(ref, attack, x, y):
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    return attack(xt, torch.from_numpy(y)).permute(0, 2, 3, 1).numpy()


def _accuracy(f, x, y):
    return float(np.mean(np.asarray(jax.jit(f)(x)).argmax(1) == y))


SIGNED = [
    ("fgsm", {"eps": 8 / 255}, lambda m: torchattacks.FGSM(m, eps=8 / 255)),
    ("bim", {"eps": 8 / 255, "alpha": 2 / 255, "steps": 10},
     lambda m: torchattacks.BIM(m, eps=8 / 255, alpha=2 / 255, steps=10)),
    ("pgd", {"eps": 8 / 255, "alpha": 2 / 255, "steps": 10, "random_start": False},
     lambda m: torchattacks.PGD(m, eps=8 / 255, alpha=2 / 255, steps=10, random_start=False)),
    ("mifgsm", {"eps": 8 / 255, "alpha": 2 / 255, "steps": 10, "decay": 1.0},
     lambda m: torchattacks.MIFGSM(m, eps=8 / 255, alpha=2 / 255, steps=10, decay=1.0)),
]


@pytest.mark.parametrize("name, hparams, make_ref", SIGNED, ids=[s[0] for s in SIGNED])
def test_signed_gradient_attacks_match_torchattacks(cifar, name, hparams, make_ref):
    """>= 99.9% of pixels equal and the same robust accuracy.

    Both sides run in float64. In float32 the two frameworks' convolutions differ by ~1e-7
    relative; a pixel whose gradient is that close to 0 can take the other sign, and over 10 steps
    such an image follows another trajectory (measured: FGSM 100% of pixels equal in float32, BIM
    97.5%). In float64 only the algorithm is compared."""
    f, ref, x, y = cifar
    with jax.enable_x64(True):
        x64 = jnp.asarray(x, jnp.float64)
        ours = np.asarray(jax.jit(lambda v, t: attacks.get(name, **hparams)(f, v, t))(x64, jnp.asarray(y)))
    ref64 = ref.double()
    theirs = _torch_attack(ref64, make_ref(ref64), x.astype(np.float64), y)
    ref.float()
    same = np.mean(np.abs(ours - theirs) <= 1e-6)
    print(f"{name}: {same:.5f} of pixels equal; robust accuracy ours {_accuracy(f, ours, y):.4f} "
          f"torchattacks {_accuracy(f, theirs, y):.4f}")
    assert same >= 0.999
    assert _accuracy(f, ours, y) == _accuracy(f, theirs, y)


# torchattacks' DeepFool takes one image at a time through 50 steps of full Jacobians: on 256 images it
# was half the slow tier's time, so it is compared on the first 96 (84 of them clean-correct).
N_MIN_NORM = {"cw": N_PARITY, "deepfool": 96}


@pytest.mark.parametrize("name", ["cw", "deepfool"])
def test_minimum_norm_attacks_match_torchattacks(cifar, name):
    """Success rate within 2 points and median L2 (of successful attacks) within 5%."""
    f, ref, x, y = cifar
    x, y = x[:N_MIN_NORM[name]], y[:N_MIN_NORM[name]]
    attack = attacks.get(name)
    ours = np.asarray(jax.jit(lambda v, t: attack(f, v, t))(x, y))
    make = {"cw": lambda m: torchattacks.CW(m, c=1, kappa=0, steps=50, lr=0.01),
            "deepfool": lambda m: torchattacks.DeepFool(m, steps=50, overshoot=0.02)}[name]
    theirs = _torch_attack(ref, make(ref), x, y)
    clean_ok = np.asarray(f(x)).argmax(1) == y

    def stats(adv):
        fooled = clean_ok & (np.asarray(f(adv)).argmax(1) != y)
        return fooled.sum() / clean_ok.sum(), np.median(np.asarray(l2_norms(jnp.asarray(adv - x)))[fooled])

    (s_ours, l2_ours), (s_theirs, l2_theirs) = stats(ours), stats(theirs)
    print(f"{name}: success ours {s_ours:.4f} torchattacks {s_theirs:.4f}; "
          f"median L2 ours {l2_ours:.4f} torchattacks {l2_theirs:.4f}")
    assert abs(s_ours - s_theirs) <= 0.02
    assert abs(l2_ours - l2_theirs) <= 0.05 * l2_theirs
