"""AutoAttack's attacks (APGD-CE, APGD-DLR, APGD-T, Square) against torchattacks 3.5.1 on the real
CIFAR-10 ResNet-20 (ours converted to Flax, theirs the PyTorch network) and real CIFAR-10 test images
(JPEG q75 copies); and the ordering AutoAttack is built on (APGD-CE-100 <= PGD-10, APGD-T <= APGD-CE).

Sizes (stated; this CI has 2 loaded CPU cores): ``ROBUSTJAX_AA_N`` images (default 256 for the
float32 tests; the float64 APGD parity uses ``ROBUSTJAX_AA_N64``, default 64, and 20 steps) so each
test stays within a few minutes; notes/issue-14.md gives the figures measured at each size.
Fast properties and input errors: test_autoattack_unit.py.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from PIL import Image

from robustjax import attacks, models

from conftest import DATA, WEIGHTS, need
from torch_refs import load_cifar_resnet

torchattacks = pytest.importorskip("torchattacks")
pytestmark = pytest.mark.slow

N = int(os.environ.get("ROBUSTJAX_AA_N", 256))
N64 = int(os.environ.get("ROBUSTJAX_AA_N64", 64))
STEPS64 = int(os.environ.get("ROBUSTJAX_AA_STEPS64", 20))
EPS = 8 / 255


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    os.environ.setdefault("ROBUSTJAX_CACHE", str(tmp_path_factory.mktemp("cache")))
    os.environ["ROBUSTJAX_WEIGHTS"] = str(WEIGHTS)
    files = sorted(need(DATA / "cifar10-test-jpeg").glob("*/*.jpg"))
    idx = np.random.default_rng(0).choice(len(files), max(N, N64), replace=False)
    labels = models.zoo.ENTRIES["cifar_resnet20"].labels
    x = np.stack([np.asarray(Image.open(files[i]).convert("RGB")) for i in idx]).astype(np.float32) / 255.0
    y = np.array([labels.index(files[i].parent.name) for i in idx])
    ref = load_cifar_resnet(next(need(WEIGHTS / "cifar10-resnet").glob("resnet20-*.th")), 20)
    return models.load("cifar_resnet20"), ref, x, y


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous()


def _nhwc(t):
    return t.permute(0, 2, 3, 1).detach().numpy()


def _torchattacks_start(ref, x, y, eps, norm="Linf", seed=0):
    """torchattacks APGD's first random start, drawn as its ``perturb`` draws it (seeded, on the
    clean-correct images in batch order), scattered back into a full batch (others: the clean image)."""
    xt, yt = _nchw(x), torch.from_numpy(y)
    with torch.no_grad():
        correct = (ref(xt).argmax(1) == yt).numpy()
    sub = xt[torch.from_numpy(np.flatnonzero(correct))]
    torch.manual_seed(seed)
    n = sub.shape[0]
    if norm == "Linf":
        t = 2 * torch.rand(sub.shape) - 1
        start = sub + eps * torch.ones([n, 1, 1, 1]) * t / t.reshape([n, -1]).abs().max(dim=1, keepdim=True)[0].reshape([-1, 1, 1, 1])
    else:
        t = torch.randn(sub.shape)
        start = sub + eps * torch.ones([n, 1, 1, 1]) * t / ((t**2).sum(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-12)
    full = x.copy()
    full[correct] = _nhwc(start.clamp(0.0, 1.0))
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
        start = _torchattacks_start(ref64, x64, y, EPS)
        ta = torchattacks.APGD(ref64, norm="Linf", eps=EPS, steps=STEPS64, n_restarts=1, seed=0, loss=loss, rho=0.75)
        theirs = _nhwc(ta(_nchw(x64), torch.from_numpy(y)))
        with torch.no_grad():
            acc_theirs = float((ref64(_nchw(theirs)).argmax(1).numpy() == y).mean())
    finally:
        ref.float()
    with jax.enable_x64(True):
        atk = attacks.APGD(eps=EPS, steps=STEPS64, loss=loss)
        run = jax.jit(lambda v, t, s: atk.run(f, v, t, key=jax.random.key(0), x_init=s))
        res = run(jnp.asarray(x64), jnp.asarray(y), jnp.asarray(start))
        ours = np.asarray(res.x_adv)
        acc_ours = float(1 - np.asarray(res.fooled).mean())
        acc_ours_eval = _accuracy(f, jnp.asarray(ours), y)
    same = np.mean(np.abs(ours - theirs) <= 1e-6)
    images_same = np.mean(np.all(np.abs(ours - theirs).reshape(len(x), -1) <= 1e-6, axis=1))
    print(f"apgd-{loss} float64 N={len(x)} steps={STEPS64}: {same:.5f} of pixels equal ({images_same:.4f} of images); "
          f"robust accuracy ours {acc_ours:.4f} torchattacks {acc_theirs:.4f}")
    assert acc_ours == acc_ours_eval  # `fooled` is what the model says of x_adv
    assert same >= 0.99
    assert acc_ours == acc_theirs


def test_apgd_t_robust_accuracy_matches_torchattacks(cifar):
    """APGD-T (9 target classes, 1 restart each), float32, own random starts: robust accuracy
    within 1 image of torchattacks'."""
    f, ref, x, y = cifar
    steps = int(os.environ.get("ROBUSTJAX_AA_STEPS_T", 100))
    ta = torchattacks.APGDT(ref, norm="Linf", eps=EPS, steps=steps, n_restarts=1, seed=0, n_classes=10)
    theirs = _nhwc(ta(_nchw(x[:N]), torch.from_numpy(y[:N])))
    with torch.no_grad():
        acc_theirs = float((ref(_nchw(theirs)).argmax(1).numpy() == y[:N]).mean())
    res = jax.jit(lambda v, t: attacks.APGDT(eps=EPS, steps=steps).run(f, v, t, key=jax.random.key(0)))(x[:N], y[:N])
    acc_ours = float(1 - np.asarray(res.fooled).mean())
    print(f"apgd-t N={N} steps={steps}: robust accuracy ours {acc_ours:.4f} torchattacks {acc_theirs:.4f}")
    assert abs(acc_ours - acc_theirs) * N <= 1 + 1e-9


def test_square_matches_torchattacks(cifar):
    """Square L-inf, 1,000 queries, different random streams: robust accuracy within 2 points, and
    the median query count of the images fooled within 20% of torchattacks'."""
    f, ref, x, y = cifar
    x, y = x[:N], y[:N]
    queries = 1000
    ta = torchattacks.Square(ref, norm="Linf", eps=EPS, n_queries=queries, n_restarts=1, p_init=0.8, seed=0)
    xt, yt = _nchw(x), torch.from_numpy(y)
    with torch.no_grad():
        correct = ref(xt).argmax(1) == yt
    ta.init_hyperparam(xt)
    torch.manual_seed(0)
    with torch.no_grad():
        q_theirs, adv = ta.attack_single_run(xt[correct], yt[correct])  # perturb() does this, without the counts
        fooled_sub = ref(adv).argmax(1) != yt[correct]
    acc_theirs = float((correct.sum() - fooled_sub.sum()) / len(y))
    med_theirs = float(np.median(q_theirs[fooled_sub].numpy()))
    res = jax.jit(lambda v, t: attacks.Square(eps=EPS, queries=queries).run(f, v, t, key=jax.random.key(0)))(x, y)
    fooled, q_ours = np.asarray(res.fooled), np.asarray(res.queries)
    acc_ours = float(1 - fooled.mean())
    med_ours = float(np.median(q_ours[fooled & (q_ours > 0)]))
    print(f"square N={N} queries={queries}: robust accuracy ours {acc_ours:.4f} torchattacks {acc_theirs:.4f}; "
          f"median queries of fooled images ours {med_ours:.1f} torchattacks {med_theirs:.1f}")
    assert abs(acc_ours - acc_theirs) <= 0.02
    assert abs(med_ours - med_theirs) <= 0.2 * med_theirs
    assert np.abs(np.asarray(res.x_adv) - x).max() <= EPS + 1e-6


def test_autoattack_ordering_on_undefended_resnet20(cifar):
    """At eps 8/255: APGD-CE-100 robust accuracy <= PGD-10's, APGD-T <= APGD-CE (each allowed to
    exceed by at most the 95% binomial half-width of the difference when the two are close)."""
    f, _, x, y = cifar
    x, y = jnp.asarray(x[:N]), jnp.asarray(y[:N])
    key = jax.random.key(0)

    def acc(atk):
        return _accuracy(f, jax.jit(lambda v, t: atk(f, v, t, key=key))(x, y), np.asarray(y))

    pgd, ce, t = acc(attacks.PGD(eps=EPS, steps=10)), acc(attacks.APGD(eps=EPS, steps=100)), acc(attacks.APGDT(eps=EPS, steps=100))
    half = lambda a, b: 1.96 * np.sqrt((a * (1 - a) + b * (1 - b)) / N)  # noqa: E731
    print(f"N={N} eps 8/255 robust accuracy: PGD-10 {pgd:.4f}, APGD-CE-100 {ce:.4f}, APGD-T-100 {t:.4f}")
    assert ce <= pgd + (half(ce, pgd) if ce == pgd else 0.0)
    assert t <= ce + (half(t, ce) if t == ce else 0.0)
