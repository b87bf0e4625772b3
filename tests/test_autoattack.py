"""AutoAttack's attacks (APGD-CE, APGD-DLR, APGD-T, Square) against torchattacks 3.5.1 on the real
CIFAR-10 ResNet-20 (ours converted to Flax, theirs the PyTorch network) and real CIFAR-10 test images
(JPEG q75 copies); and the ordering AutoAttack is built on (APGD-CE-100 <= PGD-10, APGD-T <= APGD-CE).

Sizes (stated): the issue asks for 256 images; on this project's 2 shared CPU cores torchattacks
alone spends ~0.05 s per image and step, so the defaults are reduced to keep each test within a few
minutes, and every size is an environment variable (``ROBUSTJAX_AA_N64``/``_STEPS64``/``_EPS64``
for the float64 APGD parity: 32 images, 20 steps, eps 1/255 so that robust accuracy is not 0;
``ROBUSTJAX_AA_NT``/``_STEPST`` for APGD-T: 32 images, 20 steps, eps 1/255; ``ROBUSTJAX_AA_N`` for
Square (4 random streams a side) and the ordering test: 64 images). Each test prints its figures
(``python -m pytest -m slow -rP tests/test_autoattack.py``). The issue's 256 images:
``ROBUSTJAX_AA_N=256 ROBUSTJAX_AA_N64=256 ROBUSTJAX_AA_NT=256`` (about 18 min without the ordering
test on 2 cores).
Fast properties and input errors: test_autoattack_unit.py.
"""

import os
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch_refs import cifar_resnet20_case, nchw, nhwc

from robustjax import attacks

torchattacks = pytest.importorskip("torchattacks")
pytestmark = pytest.mark.slow

N = int(os.environ.get("ROBUSTJAX_AA_N", 64))
N64 = int(os.environ.get("ROBUSTJAX_AA_N64", 32))
STEPS64 = int(os.environ.get("ROBUSTJAX_AA_STEPS64", 20))
EPS64 = float(Fraction(os.environ.get("ROBUSTJAX_AA_EPS64", "1/255")))
NT = int(os.environ.get("ROBUSTJAX_AA_NT", 32))
STEPST = int(os.environ.get("ROBUSTJAX_AA_STEPST", 20))
EPST = float(Fraction(os.environ.get("ROBUSTJAX_AA_EPST", "1/255")))
EPS = 8 / 255


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return cifar_resnet20_case(max(N, N64, NT), tmp_path_factory.mktemp("cache"))


def _torchattacks_start(ref, x, y, eps, norm="Linf", seed=0):
    """torchattacks APGD's first random start, drawn as its ``perturb`` draws it (seeded, on the
    clean-correct images in batch order), scattered back into a full batch (others: the clean image)."""
    xt, yt = nchw(x), torch.from_numpy(y)
    with torch.no_grad():
        correct = (ref(xt).argmax(1) == yt).numpy()
    sub = xt[torch.from_numpy(np.flatnonzero(correct))]
    torch.manual_seed(seed)
    n = sub.shape[0]
    if norm == "Linf":
        t = 2 * torch.rand(sub.shape) - 1
        peak = t.reshape([n, -1]).abs().max(dim=1, keepdim=True)[0].reshape([-1, 1, 1, 1])
        start = sub + eps * torch.ones([n, 1, 1, 1]) * t / peak
    else:
        t = torch.randn(sub.shape)
        start = sub + eps * torch.ones([n, 1, 1, 1]) * t / ((t**2).sum(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-12)
    full = x.copy()
    full[correct] = nhwc(start.clamp(0.0, 1.0))
    return full


def _accuracy(f, x, y):
    return float(np.mean(np.asarray(jax.jit(f)(x)).argmax(1) == y))


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_matches_torchattacks_float64(cifar, loss):
    """From torchattacks' own random start, in float64: the same robust accuracy and >= 99% of
    pixels equal (|diff| <= 1e-6). Only the algorithm is compared (float32 convolutions of the two
    frameworks differ by ~1e-7 relative, enough to flip a sign of a near-zero gradient pixel)."""
    f, ref, x, y = cifar
    x, y = x[:N64], y[:N64]
    ref64 = ref.double()
    try:
        x64 = x.astype(np.float64)
        start = _torchattacks_start(ref64, x64, y, EPS64)
        ta = torchattacks.APGD(ref64, norm="Linf", eps=EPS64, steps=STEPS64, n_restarts=1, seed=0, loss=loss, rho=0.75)
        theirs = nhwc(ta(nchw(x64), torch.from_numpy(y)))
        with torch.no_grad():
            acc_theirs = float((ref64(nchw(theirs)).argmax(1).numpy() == y).mean())
    finally:
        ref.float()
    with jax.enable_x64(True):
        atk = attacks.APGD(eps=EPS64, steps=STEPS64, loss=loss)
        run = jax.jit(lambda v, t, s: atk.run(f, v, t, key=jax.random.key(0), x_init=s))
        res = run(jnp.asarray(x64), jnp.asarray(y), jnp.asarray(start))
        ours = np.asarray(res.x_adv)
        acc_ours = float(1 - np.asarray(res.fooled).mean())
        acc_ours_eval = _accuracy(f, jnp.asarray(ours), y)
    same = np.mean(np.abs(ours - theirs) <= 1e-6)
    images_same = np.mean(np.all(np.abs(ours - theirs).reshape(len(x), -1) <= 1e-6, axis=1))
    print(f"apgd-{loss} float64 N={len(x)} steps={STEPS64} eps={EPS64 * 255:.0f}/255: {same:.5f} of pixels equal "
          f"({images_same:.4f} of images); "
          f"robust accuracy ours {acc_ours:.4f} torchattacks {acc_theirs:.4f}")
    assert acc_ours == acc_ours_eval  # `fooled` is what the model says of x_adv
    assert same >= 0.99
    assert acc_ours == acc_theirs


def test_apgd_t_robust_accuracy_matches_torchattacks(cifar):
    """APGD-T (9 target classes, 1 restart each), float32, own random starts: robust accuracy
    within 1 image of torchattacks'."""
    f, ref, x, y = cifar
    x, y = x[:NT], y[:NT]
    ta = torchattacks.APGDT(ref, norm="Linf", eps=EPST, steps=STEPST, n_restarts=1, seed=0, n_classes=10)
    theirs = nhwc(ta(nchw(x), torch.from_numpy(y)))
    with torch.no_grad():
        acc_theirs = float((ref(nchw(theirs)).argmax(1).numpy() == y).mean())
    res = jax.jit(lambda v, t: attacks.APGDT(eps=EPST, steps=STEPST).run(f, v, t, key=jax.random.key(0)))(x, y)
    acc_ours = float(1 - np.asarray(res.fooled).mean())
    print(f"apgd-t N={NT} steps={STEPST} eps={EPST * 255:.0f}/255: robust accuracy ours {acc_ours:.4f} "
          f"torchattacks {acc_theirs:.4f}")
    assert abs(acc_ours - acc_theirs) * NT <= 1 + 1e-9


def test_square_matches_torchattacks(cifar):
    """Square L-inf, 1,000 queries, different random streams: robust accuracy within 2 points, and
    the median query count of the images fooled within 20% of torchattacks'. A median over ~60
    fooled images moves by ~25% from one random stream to the next (measured: ours 25.5, 23, 16 with
    3 keys; torchattacks 20.5, 24 with 2 seeds, 64 images; at 256 images 2 streams a side gave 23.0
    against 18.5, 4 gave 22.5 against 23.0), so each side pools ``SEEDS`` (4) streams."""
    f, ref, x, y = cifar
    x, y = x[:N], y[:N]
    queries, seeds = 1000, int(os.environ.get("ROBUSTJAX_AA_SQUARE_SEEDS", 4))
    xt, yt = nchw(x), torch.from_numpy(y)
    with torch.no_grad():
        correct = ref(xt).argmax(1) == yt
    acc_theirs, q_theirs = [], []
    for seed in range(seeds):
        ta = torchattacks.Square(ref, norm="Linf", eps=EPS, n_queries=queries, n_restarts=1, p_init=0.8, seed=seed)
        ta.init_hyperparam(xt)
        torch.manual_seed(seed)
        with torch.no_grad():
            used, adv = ta.attack_single_run(xt[correct], yt[correct])  # what perturb() runs, with the counts
            fooled_sub = ref(adv).argmax(1) != yt[correct]
        acc_theirs.append(float((correct.sum() - fooled_sub.sum()) / len(y)))
        q_theirs.append(used[fooled_sub].numpy())
    run = jax.jit(lambda v, t, k: attacks.Square(eps=EPS, queries=queries).run(f, v, t, key=k))
    acc_ours, q_ours = [], []
    for seed in range(seeds):
        res = run(x, y, jax.random.key(seed))
        fooled, used = np.asarray(res.fooled), np.asarray(res.queries)
        assert np.abs(np.asarray(res.x_adv) - x).max() <= EPS + 1e-6
        acc_ours.append(float(1 - fooled.mean()))
        q_ours.append(used[fooled & (used > 0)])
    med_ours, med_theirs = float(np.median(np.concatenate(q_ours))), float(np.median(np.concatenate(q_theirs)))
    print(f"square N={N} queries={queries} {seeds} streams: robust accuracy ours {acc_ours} torchattacks {acc_theirs}; "
          f"median queries of fooled images ours {med_ours:.1f} torchattacks {med_theirs:.1f} "
          f"(per stream ours {[float(np.median(q)) for q in q_ours]}, "
          f"torchattacks {[float(np.median(q)) for q in q_theirs]})")
    assert abs(np.mean(acc_ours) - np.mean(acc_theirs)) <= 0.02
    assert abs(med_ours - med_theirs) <= 0.2 * med_theirs


def test_autoattack_ordering_on_undefended_resnet20(cifar):
    """At eps 8/255: APGD-CE-100 robust accuracy <= PGD-10's and APGD-T-100 <= APGD-CE-100; and at
    1/255, where the accuracies are not 0, APGD-CE-100 <= PGD-10."""
    f, _, x, y = cifar
    x, y = jnp.asarray(x[:N]), jnp.asarray(y[:N])
    key = jax.random.key(0)

    def acc(make, eps):
        run = jax.jit(jax.vmap(lambda e: make(e)(f, x, y, key=key)))
        return [_accuracy(f, a, np.asarray(y)) for a in run(jnp.asarray(eps, jnp.float32))]

    pgd = acc(lambda e: attacks.PGD(eps=e, steps=10), [1 / 255, EPS])
    ce = acc(lambda e: attacks.APGD(eps=e, steps=100), [1 / 255, EPS])
    (t,) = acc(lambda e: attacks.APGDT(eps=e, steps=100), [EPS])
    print(f"N={N} robust accuracy at 1/255: PGD-10 {pgd[0]:.4f}, APGD-CE-100 {ce[0]:.4f}; "
          f"at 8/255: PGD-10 {pgd[1]:.4f}, APGD-CE-100 {ce[1]:.4f}, APGD-T-100 {t:.4f}")
    assert ce[0] <= pgd[0] and ce[1] <= pgd[1]
    assert t <= ce[1]
