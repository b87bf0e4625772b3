"""FAB and FAB-T against torchattacks 3.5.1's ``FAB`` on the real CIFAR-10 ResNet-20 (ours converted to Flax,
theirs the PyTorch network) and real CIFAR-10 test images (JPEG q75 copies), drawn as test_autoattack.py draws them.

- float32, ``ROBUSTJAX_FAB_N`` images (128 in CI, to keep the slow tier within its time; the measured
  parity at 256 images is in experiments/benchmarks/README.md), ``ROBUSTJAX_FAB_STEPS`` steps (10, torchattacks'
  default; AutoAttack runs 100), one run from the clean image on both sides: robust accuracy at L-inf 1/255 and
  at L2 0.1 within 2 images, and the median norm of the perturbations found within 5%. torchattacks runs with no
  effective budget (eps 1e10) and its accuracy at a budget is read off its norms: with one run eps only thresholds
  the result (checked point for point in test_fab_unit.py). About 3 min per norm on 2 cores, mostly torchattacks.
- float64, from the same start, ``ROBUSTJAX_FAB_N64`` images (16 in CI; 32 measured), 10 steps: >= 99% of
  pixels within 1e-6 of torchattacks' and the same robust accuracy, as the APGD parity test asks, for FAB L-inf,
  FAB L2 and FAB-T L-inf (9 targets). torchattacks' FAB computes in float32 whatever its input (``.float()``
  and default-dtype buffers); test_fab_unit.torch_float64 makes it float64.

Each test prints its figures (``python -m pytest -n0 -m slow -rP tests/test_fab.py``). L1 has no torchattacks
run to compare with (its ``perturb`` fails on L1); the L1 projection's optimality is proven in test_fab_unit.py.
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from test_fab_unit import torch_float64
from torch_refs import cifar_resnet20_case, nchw, nhwc

from robustjax import attacks

torchattacks = pytest.importorskip("torchattacks")
pytestmark = pytest.mark.slow

N = int(os.environ.get("ROBUSTJAX_FAB_N", 128))
STEPS = int(os.environ.get("ROBUSTJAX_FAB_STEPS", 10))
N64 = int(os.environ.get("ROBUSTJAX_FAB_N64", 16))
STEPS64 = int(os.environ.get("ROBUSTJAX_FAB_STEPS64", 10))
TORCH_NORM = {"linf": "Linf", "l2": "L2"}


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return cifar_resnet20_case(max(N, N64), tmp_path_factory.mktemp("cache"))


def _norms(v, norm):
    v = v.reshape(len(v), -1)
    return np.abs(v).max(1) if norm == "linf" else np.sqrt((v.astype(np.float64) ** 2).sum(1))


@pytest.mark.parametrize("norm,eps", [("linf", 1 / 255), ("l2", 0.1)])
def test_fab_robust_accuracy_and_median_norm_match_torchattacks(cifar, norm, eps):
    f, ref, x, y = cifar
    x, y = x[:N], y[:N]
    t0 = time.perf_counter()
    ta = torchattacks.FAB(ref, norm=TORCH_NORM[norm], eps=1e10, steps=STEPS, n_restarts=1, n_classes=10)
    theirs = nhwc(ta(nchw(x), torch.from_numpy(y)))
    t_theirs = time.perf_counter() - t0
    with torch.no_grad():
        clean_ok = ref(nchw(x)).argmax(1).numpy() == y
        wrong_theirs = ref(nchw(theirs)).argmax(1).numpy() != y
    norm_theirs = np.where(clean_ok & wrong_theirs, _norms(theirs - x, norm), np.inf)
    norm_theirs[~clean_ok] = 0.0

    run = jax.jit(lambda v, t: attacks.FAB(norm=norm, eps=eps, steps=STEPS, restarts=1).run(f, v, t))
    jax.block_until_ready(run(x, y))  # compile
    t0 = time.perf_counter()
    res = jax.tree.map(np.asarray, run(x, y))
    t_ours = time.perf_counter() - t0
    acc_ours, acc_theirs = 1 - res.fooled.mean(), np.mean(norm_theirs > eps)
    found_ours = res.norm[clean_ok & np.isfinite(res.norm)]
    found_theirs = norm_theirs[clean_ok & np.isfinite(norm_theirs)]
    med_ours, med_theirs = np.median(found_ours), np.median(found_theirs)
    print(f"fab {norm} N={N} steps={STEPS}: robust accuracy at {eps:.5f} ours {acc_ours:.4f} torchattacks "
          f"{acc_theirs:.4f}; found ours {found_ours.size} torchattacks {found_theirs.size} of {clean_ok.sum()} "
          f"clean-correct; median norm ours {med_ours:.6f} torchattacks {med_theirs:.6f} "
          f"({med_ours / med_theirs - 1:+.2%}); "
          f"time ours {t_ours:.1f} s (compiled) torchattacks {t_theirs:.1f} s")
    assert (res.norm[res.fooled & clean_ok] <= eps).all()
    assert abs(acc_ours - acc_theirs) * N <= 2 + 1e-9
    assert abs(med_ours / med_theirs - 1) <= 0.05


@pytest.mark.parametrize("norm,targeted", [("linf", False), ("l2", False), ("linf", True)])
def test_fab_matches_torchattacks_float64(cifar, norm, targeted):
    """Both from the clean image, in float64: the same robust accuracy at a budget and >= 99% of pixels equal
    (|diff| <= 1e-6), as APGD's parity test asks."""
    f, ref, x, y = cifar
    x, y = x[:N64].astype(np.float64), y[:N64]
    eps = {"linf": 1 / 255, "l2": 0.1}[norm]
    ref64 = ref.double()
    try:
        with torch_float64(torch):
            ta = torchattacks.FAB(ref64, norm=TORCH_NORM[norm], eps=eps, steps=STEPS64, n_restarts=1,
                                  multi_targeted=targeted, n_classes=10)
            theirs = nhwc(ta(nchw(x), torch.from_numpy(y)))
            with torch.no_grad():
                acc_theirs = float((ref64(nchw(theirs)).argmax(1).numpy() == y).mean())
    finally:
        ref.float()
    with jax.enable_x64(True):
        atk = attacks.FAB(norm=norm, eps=eps, steps=STEPS64, restarts=1, targeted=targeted)
        res = jax.tree.map(np.asarray, jax.jit(lambda v, t: atk.run(f, v, t))(jnp.asarray(x), jnp.asarray(y)))
    same = np.mean(np.abs(res.x_adv - theirs) <= 1e-6)
    images_same = np.mean(np.all(np.abs(res.x_adv - theirs).reshape(len(x), -1) <= 1e-6, axis=1))
    acc_ours = float(1 - res.fooled.mean())
    print(f"fab{'-t' if targeted else ''} {norm} float64 N={len(x)} steps={STEPS64} eps={eps:.5f}: {same:.5f} of "
          f"pixels equal ({images_same:.4f} of images); robust accuracy ours {acc_ours:.4f} "
          f"torchattacks {acc_theirs:.4f}")
    assert same >= 0.99
    assert acc_ours == acc_theirs
