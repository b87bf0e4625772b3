"""AutoAttack's attacks on small models: input errors before compute, the step-size and p schedules'
known values, budget/range property, one compilation per eps grid, determinism, the per-image
outcome, EOT gradients, and Square breaking a zero-gradient defense that gradient attacks cannot.
Parity with torchattacks on the real ResNet-20: test_autoattack.py (slow)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from small_models import ExplodingClassifier, noisy_defense, random_batch, small_classifier

from robustjax import attacks as A
from robustjax.attacks import apgd as apgd_lib
from robustjax.attacks import square as square_lib

SHAPE = (6, 8, 8, 3)
# Small budgets, rolled loops (the tests' model has plain nnx convolutions, which default to unrolled on CPU).
MAKERS = {
    "apgd-ce": lambda e: A.APGD(eps=e, steps=6, unroll=False),
    "apgd-dlr-l2": lambda e: A.APGD(eps=e, steps=6, loss="dlr", norm="l2", restarts=2, unroll=False),
    "apgd-t": lambda e: A.APGDT(eps=e, steps=4, targets=2, unroll=False),
    "square": lambda e: A.Square(eps=e, queries=40),
    "square-l2": lambda e: A.Square(eps=e, queries=40, norm="l2", restarts=2),
}


@functools.cache
def _compiled(name):
    f = small_classifier(seed=1)
    return f, jax.jit(lambda x, y, e, key: MAKERS[name](e).run(f, x, y, key=key))


def _batch(seed):
    """Images and labels: the model's own prediction for the first 4 (so they get attacked), random
    labels for the rest (mostly misclassified clean)."""
    r = np.random.default_rng(seed)
    x = jnp.asarray(r.random(SHAPE, np.float32))
    y = np.asarray(r.integers(0, 10, SHAPE[0]), np.int32)
    y[:4] = np.asarray(jnp.argmax(small_classifier(seed=1)(x), 1))[:4]
    return x, jnp.asarray(y)


# ---------------------------------------------------------------- bad input, before any compute


def test_bad_hyperparameters_raise_at_construction():
    for make, match in [(lambda: A.APGD(loss="hinge"), "loss"), (lambda: A.APGD(norm="l1"), "norm"),
                        (lambda: A.APGD(steps=0), "steps"), (lambda: A.APGD(restarts=0), "restarts"),
                        (lambda: A.APGD(eps=-1 / 255), "eps"), (lambda: A.APGD(rho=1.5), "rho"),
                        (lambda: A.APGDT(targets=0), "targets"), (lambda: A.APGDT(norm="l0"), "norm"),
                        (lambda: A.APGDT(steps=0), "steps"), (lambda: A.APGDT(restarts=0), "restarts"),
                        (lambda: A.APGDT(eps=-0.1), "eps"),
                        (lambda: A.Square(queries=0), "queries"), (lambda: A.Square(norm="l1"), "norm"),
                        (lambda: A.Square(restarts=0), "restarts"), (lambda: A.Square(eps=-0.1), "eps"),
                        (lambda: A.Square(loss="dlr"), "loss"), (lambda: A.Square(p_init=0.0), "p_init"),
                        (lambda: A.get("apgd-ce", steps=2.5), "steps"),
                        (lambda: A.get("square", queries=-3), "queries")]:
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(ValueError, match="bad hyper-parameters"):
        A.get("apgd-dlr", queries=3)


@pytest.mark.parametrize("name", ["apgd-ce", "apgd-dlr", "apgd-t", "square"])
def test_bad_input_raises_before_compute(name):
    f = ExplodingClassifier()  # every evaluation is an error
    x, y = random_batch()
    atk = A.get(name)
    with pytest.raises(ValueError, match="labels"):
        atk(f, x, y.at[0].set(10))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        atk(f, x * 1.5, y)
    if name != "square":
        with pytest.raises(ValueError, match="x_init"):
            atk(f, x, y, x_init=x[:2])


def test_targets_checked_against_the_classes_at_call_time():
    x, y = random_batch()
    A.APGDT(targets=10)  # the class count is not known yet
    with pytest.raises(ValueError, match="targets must be below the number of classes"):
        A.APGDT(targets=10)(ExplodingClassifier(), x, y)
    f3 = small_classifier(k=3)
    with pytest.raises(ValueError, match="at least 4 classes"):
        A.APGDT(targets=2)(f3, x, y % 3)
    with pytest.raises(ValueError, match="at least 3 classes"):
        A.APGD(loss="dlr")(small_classifier(k=2), x, y % 2)


def test_registry_names_and_defaults():
    assert {"apgd-ce", "apgd-dlr", "apgd-t", "square"} <= set(A.names())
    assert A.get("apgd-ce", steps=20) == A.APGD(steps=20, loss="ce")
    assert A.get("apgd-dlr").loss == "dlr" and A.get("apgd-dlr").steps == 100
    assert A.get("apgd-t").targets == 9 and A.get("square").queries == 5000


# ---------------------------------------------------------------- schedules (known values)


def test_apgd_checkpoints_are_autoattacks():
    """steps=100: windows 22, 19, 16, 13, 10, 7, 6, 6 (p_j = 0, .22, .41, .57, .70, .80, .87, .93, .99)."""
    is_check, windows = apgd_lib.checkpoints(100)
    assert np.flatnonzero(is_check).tolist() == [21, 40, 56, 69, 79, 86, 92, 98]
    assert windows[is_check].tolist() == [22, 19, 16, 13, 10, 7, 6, 6]
    assert np.flatnonzero(apgd_lib.checkpoints(1)[0]).tolist() == [0]


def test_square_p_schedule_is_autoattacks():
    # 10,000 queries: p_init until iteration 10, halved after 10, 50, 200, ... 8000.
    p = [square_lib.p_of_iteration(i, 10000, 0.8) for i in (10, 11, 50, 51, 8000, 8001)]
    assert p == [0.8, 0.4, 0.4, 0.2, 0.8 / 256, 0.8 / 512]
    assert square_lib.p_of_iteration(6, 5000, 0.8) == 0.4  # rescaled: 6 / 5000 * 10000 = 12 > 10
    sides = square_lib.window_sides(5000, 0.8, 32, 32, "linf")
    assert sides[0] == 29 and sides[-1] == 1 and np.all(np.diff(sides) <= 0)
    l2 = square_lib.window_sides(5000, 0.8, 32, 32, "l2")
    assert np.all(l2 % 2 == 1) and l2.min() == 3
    e = square_lib.eta(5)
    assert np.isclose(np.sum(e**2), 1.0) and np.all(e[:2] > 0) and np.all(e[2:] < 0)


# ---------------------------------------------------------------- properties


@pytest.mark.parametrize("name", list(MAKERS))
@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(eps=st.floats(0.0, 0.5), seed=st.integers(0, 10**6))
def test_budget_range_and_outcome_property(name, eps, seed):
    """In [0, 1] exactly, within eps (L-inf: up to one float32 rounding; L2: relative 1e-5), the
    clean image wherever not fooled, and ``fooled`` / ``iteration`` / ``queries`` consistent with
    the model's predictions on x_adv."""
    f, run = _compiled(name)
    x, y = _batch(seed)
    res = run(x, y, jnp.float32(eps), jax.random.key(seed))
    adv, x64 = np.asarray(res.x_adv, np.float64), np.asarray(x, np.float64)
    assert np.isfinite(adv).all() and adv.min() >= 0.0 and adv.max() <= 1.0
    d = (adv - x64).reshape(len(adv), -1)
    if "l2" in name:
        assert (np.sqrt((d**2).sum(1)) <= eps * (1 + 1e-5) + 1e-7).all()
    else:
        assert np.abs(d).max() <= np.float32(eps) + 2.0**-23
    fooled = np.asarray(res.fooled)
    np.testing.assert_array_equal(fooled, np.asarray(jnp.argmax(f(res.x_adv), 1) != y))
    assert np.all(d[~fooled] == 0)
    clean_wrong = np.asarray(jnp.argmax(f(x), 1) != y)
    count = np.asarray(res[2])
    if name.startswith("apgd"):
        assert np.all((count >= 0) == fooled) and np.all(count[clean_wrong] == 0) and np.all(count[~clean_wrong] != 0)
    else:
        restarts = MAKERS[name](0.1).restarts
        attacked = count[~clean_wrong]
        assert np.all(count[clean_wrong] == 0) and np.all((attacked >= 1) & (attacked <= 41 * restarts))


@pytest.mark.parametrize("name", ["apgd-ce", "square"])
def test_deterministic_given_key(name):
    _, run = _compiled(name)
    x, y = _batch(3)
    eps = jnp.float32(0.3)  # large enough that the attacked images are fooled (else x_adv is x whatever the key)
    a = run(x, y, eps, jax.random.key(1))
    b = run(x, y, eps, jax.random.key(1))
    c = run(x, y, eps, jax.random.key(2))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert np.asarray(a.fooled)[:4].any()
    assert not np.array_equal(np.asarray(a.x_adv), np.asarray(c.x_adv))


@pytest.mark.parametrize("name", ["apgd-ce", "square"])
def test_one_compilation_serves_four_eps(name):
    f = small_classifier(seed=1)
    x, y = _batch(4)
    traces = {"n": 0}

    def counted(v):
        traces["n"] += 1
        return f(v)

    view = A.View(counted, 10)
    run = jax.jit(jax.vmap(lambda e: MAKERS[name](e)(view, x, y, key=jax.random.key(0))))
    eps = jnp.asarray([1, 4, 16, 64], jnp.float32) / 255
    out = run(eps)
    first = traces["n"]
    out2 = run(eps / 2)
    assert traces["n"] == first  # new eps values: no retrace
    # clean pass, start, loop body, (Square) final check: once each, not once per eps; Square's loop
    # body once per batch size it compacts the unfooled images into
    body = len(square_lib.compact_sizes(len(x))) if name == "square" else 1
    assert first <= 3 + body
    assert out.shape == (4,) + x.shape
    d = np.abs(np.asarray(out2) - np.asarray(x)).reshape(4, -1).max(1)
    assert np.all(d <= np.asarray(eps / 2) + 1e-6) and d[-1] > 0


def test_eot_view_gives_the_mean_gradient_of_any_loss():
    """Under ``eot`` APGD's loss, logits and gradient are the means over the defense's draws."""
    f = small_classifier()
    x, y = random_batch()
    d = noisy_defense()
    key = jax.random.key(5)
    view = A.attacker_view("eot", f, d, key, eot_samples=3)
    loss = lambda lg: apgd_lib.dlr_loss(lg, y)  # noqa: E731
    per, logits, g = apgd_lib.loss_logits_grad(view, loss, x)
    keys = jax.random.split(key, 3)
    want_g = sum(jax.grad(lambda v, k=k: jnp.sum(loss(f(d(v, k)))))(x) for k in keys) / 3
    want_per = sum(loss(f(d(x, k))) for k in keys) / 3
    np.testing.assert_allclose(g, want_g, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(per, want_per, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, view(x), rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # 17 s on 2 cores
def test_square_breaks_zero_gradient_jpeg_where_gradient_attacks_fail():
    """``jpeg:25:rounding=exact`` has a zero gradient: attacked through it, APGD does not move
    from its random start, while Square, which needs only logits, lowers the defended accuracy at
    8/255 (small case: 24 images of 16x16, 200 queries)."""
    from robustjax.defenses import get

    d = get("jpeg:25:rounding=exact")
    r = np.random.default_rng(0)
    smooth = jax.image.resize(jnp.asarray(r.random((24, 4, 4, 3), np.float32)), (24, 16, 16, 3), "linear")
    x = jnp.clip(smooth + 0.05 * jnp.asarray(r.standard_normal((24, 16, 16, 3)), jnp.float32), 0, 1)
    f = small_classifier(seed=4)
    view = A.attacker_view("through", f, d)
    y = jnp.argmax(view(x), axis=1)  # 100% clean accuracy on the defended model
    key = jax.random.key(0)
    g = jax.grad(lambda v: jnp.sum(view(v)[:, 0]))(x)
    assert float(jnp.abs(g).max()) == 0.0

    apgd = jax.jit(lambda v, t: A.APGD(eps=8 / 255, steps=4, unroll=False).run(view, v, t, key=key))(x, y)
    square = jax.jit(lambda v, t: A.Square(eps=8 / 255, queries=200).run(view, v, t, key=key))(x, y)
    acc_apgd, acc_square = 1 - float(apgd.fooled.mean()), 1 - float(square.fooled.mean())
    print(f"jpeg:25:rounding=exact accuracy: APGD {acc_apgd:.3f}, Square {acc_square:.3f}")
    # APGD's iterates never leave its start (zero gradient: sign 0), so it fools only where the start does.
    assert np.all(np.asarray(apgd.iteration)[np.asarray(apgd.fooled)] == 1)
    assert acc_square <= acc_apgd - 0.15


@pytest.mark.parametrize("active_rows", [[], [3], [1, 2, 3, 4], list(range(9)), list(range(13))])
def test_square_forward_on_unfooled_images_only_equals_the_full_forward(active_rows):
    """Square's compacted forward (the unfooled images gathered into a smaller batch) gives each
    active image the logits of the whole-batch forward; with 13 images the sizes are 13, 7, 4, 2, 1."""
    from robustjax.attacks.square import compact_sizes, forward_unfooled

    assert compact_sizes(13) == [13, 7, 4, 2, 1] and compact_sizes(256) == [256, 128, 64, 32, 16, 8, 4, 2, 1]
    x = jax.random.uniform(jax.random.key(3), (13, 6, 6, 3))
    w = jax.random.normal(jax.random.key(4), (6 * 6 * 3, 5))
    f = lambda v: jnp.tanh(v.reshape(v.shape[0], -1) @ w)  # noqa: E731
    active = jnp.zeros(13, bool).at[jnp.asarray(active_rows, jnp.int32)].set(True)
    got = jax.jit(lambda v, a: forward_unfooled(f, v, a))(x, active)
    want = f(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got[active], want[active], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("attack", [A.APGD(steps=12, unroll=False),
                                    pytest.param(A.APGD(steps=12, norm="l2", restarts=2, unroll=False),
                                                 marks=pytest.mark.slow),
                                    pytest.param(A.APGDT(steps=12, targets=3, unroll=False), marks=pytest.mark.slow)],
                         ids=["apgd-ce", "apgd-l2-restarts", "apgd-t"])
def test_stopping_once_every_image_is_fooled_keeps_each_outcome_and_counts_fewer_evaluations(attack):
    """The suite's ``stop_when_fooled``: every image falls (or not) at the same evaluation as in the
    whole run, its point is still misclassified, and the run reports fewer evaluations only when
    every image fell; a batch with an image left standing runs every step of every run."""
    import dataclasses

    f, (x, y), key = small_classifier(seed=1), _batch(7), jax.random.key(3)
    full = getattr(attack, "targets", 1) * attack.restarts * (attack.steps + 1)
    seen = set()
    for eps in (1.0, 0.002):
        whole = dataclasses.replace(attack, eps=eps).run(f, x, y, key=key)
        short = dataclasses.replace(attack, eps=eps, stop_when_fooled=True).run(f, x, y, key=key)
        np.testing.assert_array_equal(whole.fooled, short.fooled)
        np.testing.assert_array_equal(whole.iteration, short.iteration)
        fooled = np.asarray(short.fooled)
        assert (np.argmax(np.asarray(f(short.x_adv)), 1) != np.asarray(y))[fooled].all()
        assert int(whole.evaluations) <= full
        seen.add(bool(fooled.all()))
        if fooled.all():
            assert int(short.evaluations) < int(whole.evaluations)
        else:
            assert int(short.evaluations) == int(whole.evaluations) == full
    assert seen == {True, False}, "not vacuous: one budget breaks every image, one leaves some standing"
