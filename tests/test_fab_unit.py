"""FAB (robustjax.attacks.fab), fast tier: the three minimum-norm projections against exact optima (scipy's LP
solver for L1 and L-inf, an exhaustive active-set QP for L2) and against torchattacks 3.5.1's projections; the
whole attack against torchattacks' FAB in float64 on a small MLP (same points to 1e-9), L1 included through its
single-run method (its ``perturb`` fails on L1); the result's contract, budget semantics, vmapping over images,
the bounded Jacobian, and bad input before any compute. Parity on the real ResNet-20: test_fab.py (slow)."""

import contextlib
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from small_models import ExplodingClassifier, random_batch, small_classifier

from robustjax import attacks as A
from robustjax.attacks import fab

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- projections: exact optima


def _problem(d, seed, ties, zeros):
    """A point t in [0, 1]^d and a hyperplane w . z = b through a random point of the box (so it meets the box).
    ``ties``: t on the 1/255 grid (many equal rooms, as in real images); ``zeros``: some w_i = 0."""
    r = np.random.default_rng(seed)
    t = r.random(d)
    if ties:
        t = np.round(t * 4) / 4
    w = r.normal(size=d)
    if zeros:
        w[r.random(d) < 0.3] = 0.0
        w[0] = w[0] or 1.0
    return t, w, float(w @ r.random(d))


def _project(name, t, w, b):
    with jax.enable_x64(True):
        return np.asarray(fab.PROJECTIONS[name](jnp.asarray(t), jnp.asarray(w), jnp.asarray(b)))


def _check_feasible(t, w, b, d):
    z = t + d
    assert abs(w @ z - b) <= 1e-9 * max(1.0, np.abs(w).sum())
    assert z.min() >= -1e-12 and z.max() <= 1 + 1e-12


def _lp_optimum(t, w, b, norm):
    """min ||d||_1 or ||d||_inf s.t. w . (t + d) = b, 0 <= t + d <= 1, as a linear program over (d, u): ``|d_i| <=
    u_i`` (L1, minimise sum u) or ``|d_i| <= u`` (L-inf, minimise u)."""
    n = len(t)
    eye = np.eye(n)
    if norm == "l1":
        cost = np.r_[np.zeros(n), np.ones(n)]
        bound = np.block([[eye, -eye], [-eye, -eye]])
        eq = np.r_[w, np.zeros(n)][None]
        box = [(-ti, 1 - ti) for ti in t] + [(0, None)] * n
    else:
        cost = np.r_[np.zeros(n), 1.0]
        bound = np.block([[eye, -np.ones((n, 1))], [-eye, -np.ones((n, 1))]])
        eq = np.r_[w, 0.0][None]
        box = [(-ti, 1 - ti) for ti in t] + [(0, None)]
    out = linprog(cost, A_ub=bound, b_ub=np.zeros(2 * n), A_eq=eq, b_eq=[b - w @ t], bounds=box, method="highs")
    assert out.status == 0, out.message
    return out.fun


def _qp_optimum(t, w, b):
    """min ||d||_2 s.t. w . (t + d) = b, 0 <= t + d <= 1, by exhaustion over active sets: each coordinate at its
    lower bound, upper bound or free; with the fixed ones fixed, the free ones' minimum-norm solution of the
    equality is ``r w_F / ||w_F||^2``. The optimum has some active set, and every feasible candidate is a feasible
    point, so the smallest feasible candidate is the optimum."""
    n = len(t)
    best = np.inf
    need = b - w @ t
    for state in itertools.product((0, 1, 2), repeat=n):  # 0 lower, 1 upper, 2 free
        s = np.asarray(state)
        d = np.where(s == 0, -t, np.where(s == 1, 1 - t, 0.0))
        free = s == 2
        r = need - w[~free] @ d[~free]
        wf2 = np.sum(w[free] ** 2)
        if wf2 == 0:
            if abs(r) > 1e-12:
                continue
        else:
            d[free] = r * w[free] / wf2
        if np.all(t + d >= -1e-12) and np.all(t + d <= 1 + 1e-12):
            best = min(best, float(np.linalg.norm(d)))
    return best


@pytest.mark.slow  # 60 linear programs: about 15 s
@PROPERTY
@given(d=st.integers(3, 8), seed=st.integers(0, 2**32 - 1), ties=st.booleans(), zeros=st.booleans())
def test_l1_projection_is_the_lp_optimum(d, seed, ties, zeros):
    t, w, b = _problem(d, seed, ties, zeros)
    move = _project("l1", t, w, b)
    _check_feasible(t, w, b, move)
    assert abs(np.abs(move).sum() - _lp_optimum(t, w, b, "l1")) <= 1e-5


@pytest.mark.slow  # 13 s; the fast tier keeps the projections against torchattacks
@PROPERTY
@given(d=st.integers(3, 8), seed=st.integers(0, 2**32 - 1), ties=st.booleans(), zeros=st.booleans())
def test_linf_projection_is_the_lp_optimum(d, seed, ties, zeros):
    t, w, b = _problem(d, seed, ties, zeros)
    move = _project("linf", t, w, b)
    _check_feasible(t, w, b, move)
    assert abs(np.abs(move).max() - _lp_optimum(t, w, b, "linf")) <= 1e-5


@pytest.mark.slow  # 10 s (as above)
@PROPERTY
@given(d=st.integers(3, 7), seed=st.integers(0, 2**32 - 1), ties=st.booleans(), zeros=st.booleans())
def test_l2_projection_is_the_qp_optimum(d, seed, ties, zeros):
    t, w, b = _problem(d, seed, ties, zeros)
    move = _project("l2", t, w, b)
    _check_feasible(t, w, b, move)
    assert abs(np.linalg.norm(move) - _qp_optimum(t, w, b)) <= 1e-5


@pytest.mark.parametrize("name", ["linf", "l2", "l1"])
def test_projection_when_the_hyperplane_misses_the_box(name):
    """No feasible point: the box corner nearest the hyperplane (every moving coordinate at 0 or 1)."""
    t, w = np.array([0.2, 0.7, 0.5, 0.9]), np.array([1.0, -2.0, 0.5, 3.0])
    for b in (w @ np.array([0.0, 1, 0, 0]) - 1.0, w @ np.array([1.0, 0, 1, 1]) + 1.0):
        z = t + _project(name, t, w, b)
        corner = (w < 0) if w @ t - b >= 0 else (w > 0)
        np.testing.assert_allclose(z, corner.astype(float), atol=1e-12)


def test_projections_equal_torchattacks():
    """float64, rows of dimension 3 to 3,072 (CIFAR's), points on the 1/255 grid or not, zero weights, and
    hyperplanes that miss the box: our projections give torchattacks 3.5.1's moves to 1e-9."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("torchattacks.attacks.fab")
    r = np.random.default_rng(0)
    for d in (3, 5, 8, 3072):
        t = r.random((16, d))
        t[::2] = np.round(t[::2] * 255) / 255
        w = r.normal(size=(16, d))
        w[::3, : d // 4] = 0.0
        b = (w * r.random((16, d))).sum(1) + np.where(np.arange(16) % 5 == 0, r.normal(size=16) * d, 0.0)
        for name in fab.NORMS:
            theirs = getattr(tf, f"projection_{name}")(torch.tensor(t), torch.tensor(w), torch.tensor(b)).numpy()
            with jax.enable_x64(True):
                ours = np.asarray(jax.jit(jax.vmap(fab.PROJECTIONS[name]))(jnp.asarray(t), jnp.asarray(w),
                                                                           jnp.asarray(b)))
            assert np.abs(ours - theirs).max() <= 1e-9, (name, d)


# ---------------------------------------------------------------- the attack against torchattacks, float64


@contextlib.contextmanager
def torch_float64(torch):
    """torchattacks' FAB casts its inputs with ``.float()`` and allocates its gradient buffers in the default
    dtype; inside this context both are float64, so the algorithm runs in float64 end to end."""
    old_dtype, old_float = torch.get_default_dtype(), torch.Tensor.float
    torch.set_default_dtype(torch.float64)
    torch.Tensor.float = lambda self, *a, **k: self.to(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old_dtype)
        torch.Tensor.float = old_float


SIDE, CH, K, HID = 6, 3, 10, 32


@functools.cache
def _mlp():
    """A one-hidden-layer ReLU MLP on 6x6x3 images, the same weights as a JAX function and a torch module."""
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(0)
    w1, b1 = r.normal(size=(SIDE * SIDE * CH, HID)) / 8, r.normal(size=HID) * 0.1
    w2, b2 = r.normal(size=(HID, K)), r.normal(size=K) * 0.1

    def f(x):
        return jax.nn.relu(x.reshape(x.shape[0], -1) @ w1 + b1) @ w2 + b2

    class Net(torch.nn.Module):
        def forward(self, x):  # NCHW in, flattened in NHWC order as the JAX side
            h = torch.relu(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1) @ torch.tensor(w1) + torch.tensor(b1))
            return h @ torch.tensor(w2) + torch.tensor(b2)

    r = np.random.default_rng(1)
    x = r.random((12, SIDE, SIDE, CH))
    with jax.enable_x64(True):
        y = np.array(jnp.argmax(f(jnp.asarray(x)), 1))
    y[-2:] = (y[-2:] + 1) % K  # two images misclassified clean
    return f, Net(), x, y


def _nchw(torch, x):
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous()


def _ours64(f, x, y, **kw):
    with jax.enable_x64(True):
        res = jax.jit(lambda v, t: A.FAB(restarts=1, unroll=False, **kw).run(f, v, t))(jnp.asarray(x), jnp.asarray(y))
        return jax.tree.map(np.asarray, res)


@pytest.mark.parametrize("norm,targeted,eps", [("linf", False, 0.02), ("l2", False, 0.15), ("linf", True, 0.02),
                                               ("l2", True, None)])
def test_fab_matches_torchattacks_float64_on_mlp(norm, targeted, eps):
    """10 steps, one run from the clean image: the same adversarial points as torchattacks 3.5.1's FAB to 1e-9,
    the same images broken within eps (some are not, so their clean image comes back on both sides)."""
    torch = pytest.importorskip("torch")
    torchattacks = pytest.importorskip("torchattacks")
    f, net, x, y = _mlp()
    with torch_float64(torch):
        ta = torchattacks.FAB(net, norm={"linf": "Linf", "l2": "L2"}[norm], eps=1e10 if eps is None else eps, steps=10,
                              n_restarts=1, multi_targeted=targeted, n_classes=K)
        theirs = ta(_nchw(torch, x), torch.from_numpy(y)).permute(0, 2, 3, 1).numpy()
    res = _ours64(f, x, y, norm=norm, eps=eps, steps=10, targeted=targeted)
    assert np.abs(res.x_adv - theirs).max() <= 1e-9
    unchanged = np.all(theirs == x, axis=(1, 2, 3))
    assert unchanged[:-2].any() if eps is not None else not unchanged[:-2].any()  # the budget matters here
    assert (res.fooled[:-2] == ~unchanged[:-2]).all() and res.fooled[-2:].all()


def test_fab_l1_matches_torchattacks_single_run_float64():
    """torchattacks 3.5.1's FAB ``perturb`` fails on L1 (it computes no L1 norm: UnboundLocalError), but its single
    run is complete: ours with one run and no budget gives its points to 1e-9."""
    torch = pytest.importorskip("torch")
    torchattacks = pytest.importorskip("torchattacks")
    f, net, x, y = _mlp()
    with torch_float64(torch):
        ta = torchattacks.FAB(net, norm="L1", eps=1e10, steps=10, n_restarts=1, n_classes=K)
        with pytest.raises(UnboundLocalError):
            ta(_nchw(torch, x), torch.from_numpy(y))
        theirs = ta.attack_single_run(_nchw(torch, x), torch.from_numpy(y)).permute(0, 2, 3, 1).numpy()
    res = _ours64(f, x, y, norm="l1", steps=10)
    assert np.abs(res.x_adv - theirs).max() <= 1e-9
    assert res.fooled.all()
    np.testing.assert_allclose(res.norm, np.abs(res.x_adv - x).reshape(len(x), -1).sum(1), rtol=1e-12)


def test_vmap_over_images_equals_the_batch():
    """The runner vmaps one image's attack over the batch: per-image results equal the batched run's (float64)."""
    f, _, x, y = _mlp()
    atk = A.FAB(norm="l2", steps=6, restarts=2, unroll=False)
    with jax.enable_x64(True):
        xs, ys = jnp.asarray(x), jnp.asarray(y)
        batch = atk.run(f, xs, ys, key=jax.random.key(3))
        one = jax.jit(jax.vmap(lambda v, t: jax.tree.map(lambda a: a[0] if a.ndim else a, atk.run(f, v[None], t[None],
                                                                                 key=jax.random.key(3)))))(xs, ys)
        np.testing.assert_allclose(np.asarray(one.x_adv), np.asarray(batch.x_adv), atol=1e-12)
        for field in ("fooled", "iteration"):
            assert (np.asarray(getattr(one, field)) == np.asarray(getattr(batch, field))).all()


# ---------------------------------------------------------------- contract on a small conv classifier


@functools.cache
def _compiled(**kw):
    f = small_classifier(seed=1)
    return f, jax.jit(lambda x, y, key: A.FAB(unroll=False, **kw).run(f, x, y, key=key))


def _batch():
    x, y = random_batch(n=8, seed=2)
    y = np.array(y)
    y[:6] = np.asarray(jnp.argmax(small_classifier(seed=1)(x), 1))[:6]  # 6 attacked, 2 misclassified clean (mostly)
    return x, jnp.asarray(y)


@pytest.mark.parametrize("kw", [dict(norm="linf", steps=8), dict(norm="l2", steps=8, eps=0.2, restarts=2),
                                dict(norm="l1", steps=8), dict(norm="linf", steps=6, targeted=True, targets=2)])
def test_result_contract(kw):
    """x_adv in [0, 1]; ``fooled`` is what the model says of x_adv; ``norm`` is x_adv's distance for a fooled image
    (0 if misclassified clean), and within eps when eps is given; an image not fooled comes back clean;
    ``iteration`` is 0 for clean-misclassified, within the runs' steps for the attacked ones, -1 otherwise."""
    f, run = _compiled(**kw)
    x, y = _batch()
    res = jax.tree.map(np.asarray, run(x, y, jax.random.key(0)))
    atk = A.FAB(**kw)
    xn, yn = np.asarray(x), np.asarray(y)
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert (res.fooled == (np.asarray(jnp.argmax(f(jnp.asarray(res.x_adv)), 1)) != yn)).all()
    dist = np.asarray(fab.norms(jnp.asarray(res.x_adv - xn), atk.norm))
    np.testing.assert_allclose(res.norm[res.fooled], dist[res.fooled], rtol=1e-5, atol=1e-7)
    clean_wrong = np.asarray(jnp.argmax(f(x), 1)) != yn
    assert clean_wrong.any() and res.fooled[~clean_wrong].any()
    assert (res.iteration[clean_wrong] == 0).all() and (res.norm[clean_wrong] == 0).all()
    runs = atk.n_restarts * (atk.targets if atk.targeted else 1)
    hit = res.fooled & ~clean_wrong
    assert ((res.iteration[hit] >= 1) & (res.iteration[hit] <= runs * atk.steps)).all()
    assert (res.iteration[~res.fooled] == -1).all()
    assert (res.x_adv[~res.fooled] == xn[~res.fooled]).all()
    if atk.eps is not None:
        assert (res.norm[res.fooled] <= atk.eps).all() and (res.norm[~res.fooled] > atk.eps).all()


def test_budget_only_thresholds_one_run():
    """With one run from the clean image eps changes nothing but the verdict: broken at eps exactly the images
    whose unbudgeted minimum norm is <= eps, with the same points."""
    f, free = _compiled(norm="linf", steps=8, restarts=1)
    x, y = _batch()
    res = free(x, y, jax.random.key(0))
    eps = float(np.median(np.asarray(res.norm)[np.asarray(res.norm) > 0]))
    _, at = _compiled(norm="linf", steps=8, restarts=1, eps=eps)
    bud = at(x, y, jax.random.key(0))
    assert (np.asarray(bud.fooled) == (np.asarray(res.norm) <= eps)).all()
    kept = np.asarray(bud.fooled)
    np.testing.assert_array_equal(np.asarray(bud.x_adv)[kept], np.asarray(res.x_adv)[kept])
    assert 0 < kept.sum() < len(kept)


def test_eps_grid_in_one_program_reads_off_the_norms():
    """``robust_accuracy`` vmaps a traced eps over one compiled program (as the runner's budgeted path does): with one
    run, the accuracy at each budget is the fraction of images whose unbudgeted minimum norm exceeds it."""
    f, free = _compiled(norm="l2", steps=6, restarts=1)
    x, y = _batch()
    found = np.asarray(free(x, y, jax.random.key(0)).norm)
    grid = [0.0, *np.quantile(found[found > 0], [0.25, 0.75])]
    acc = A.robust_accuracy(f, x, y, "fab", grid, norm="l2", steps=6, restarts=1, unroll=False)
    expected = [np.mean(found > e) for e in grid]
    np.testing.assert_allclose(acc, expected, atol=1e-6)
    assert expected[0] > expected[1] > expected[2]


def test_more_restarts_break_at_least_as_many():
    """Run 0 is the same with any restart count, and later runs only attack what it left: restarts never lose an
    image, at a budget where one run leaves some standing."""
    _, one = _compiled(norm="l2", steps=5, restarts=1, eps=0.05)
    _, three = _compiled(norm="l2", steps=5, restarts=3, eps=0.05)
    x, y = _batch()
    a, b = np.asarray(one(x, y, jax.random.key(0)).fooled), np.asarray(three(x, y, jax.random.key(0)).fooled)
    assert (b >= a).all()


def test_untargeted_step_linearises_only_the_candidates():
    """On a 1,000-class model a step differentiates the label and the 9 other classes ranked highest at the
    current point (10 backward passes), and gives exactly the full Jacobian's differences for those classes."""
    r = np.random.default_rng(0)
    w = jnp.asarray(r.normal(size=(12, 1000)), jnp.float32)

    def f(v):
        return jnp.tanh(v.reshape(v.shape[0], -1)) @ w

    x = jnp.asarray(r.random((3, 2, 2, 3)), jnp.float32)
    y = jnp.asarray([5, 17, 999])
    df, dg = fab.untargeted_differences(f, x, y, 9)
    assert df.shape == (3, 9) and dg.shape == (3, 9, 12)
    logits = np.asarray(f(x))
    jac = np.asarray(jax.jacrev(lambda v: f(v[None])[0])(x[0])).reshape(1000, -1)  # image 0's full Jacobian
    masked = logits[0].copy()
    masked[5] = -np.inf
    top = np.sort(np.argsort(-masked)[:9])
    np.testing.assert_allclose(np.asarray(df[0]), logits[0, top] - logits[0, 5], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(dg[0]), jac[top] - jac[5], rtol=1e-5, atol=1e-5)
    assert fab.untargeted_differences(f, x, y, None)[0].shape == (3, 999)


# ---------------------------------------------------------------- bad input, before any compute


def test_bad_hyperparameters_raise_at_construction_and_get():
    with pytest.raises(ValueError, match=r"unknown FAB norm 'l0'; valid: linf, l2, l1"):
        A.FAB(norm="l0")
    for name in ("fab", "fab-t"):
        with pytest.raises(ValueError, match=r"'Linf'.*valid: linf, l2, l1"):
            A.get(name, norm="Linf")
    for make, match in [(lambda: A.FAB(steps=0), "steps"), (lambda: A.FAB(restarts=0), "restarts"),
                        (lambda: A.FAB(targets=0), "targets"), (lambda: A.FAB(candidates=0), "candidates"),
                        (lambda: A.FAB(eps=-0.1), "eps"), (lambda: A.FAB(eta=-1.0), "eta"),
                        (lambda: A.FAB(alpha_max=1.5), "alpha_max"), (lambda: A.FAB(beta=-0.1), "beta"),
                        (lambda: A.FAB(targeted="yes"), "targeted"), (lambda: A.get("fab", queries=3), "bad hyper")]:
        with pytest.raises(ValueError, match=match):
            make()
    assert A.FAB().n_restarts == 5 and A.get("fab-t").n_restarts == 1 and A.get("fab-t").targeted


@pytest.mark.parametrize("name", ["fab", "fab-t"])
def test_bad_input_raises_before_compute(name):
    f = ExplodingClassifier()  # every evaluation is an error
    x, y = random_batch()
    atk = A.get(name, steps=2)
    with pytest.raises(ValueError, match="labels"):
        atk(f, x, y.at[0].set(10))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        atk(f, x * 1.5, y)
    if name == "fab-t":
        with pytest.raises(ValueError, match="targets must be below"):
            A.get(name, targets=10)(f, x, y)


def test_registry_traits():
    """Budgeted in the runner's sense (FAB applies eps itself, in its own norm), flagged as a minimum-norm search."""
    for name in ("fab", "fab-t"):
        assert not A.is_minimum_norm(name)
        assert A.REGISTRY.trait(name, "searches_minimum_norm") is True
        assert A.REGISTRY.trait(name, "budget_norm") == "norm"
