"""The suite's tracked members run the grid's own attacks: the same start and step parts, per image.

With early stopping off, a tracked member's final points equal the attack's own loop (the grid's
final iterate) image by image; with it on, every image a grid cell broke is broken by the suite.
Real attacks from the registry (iFGSM, PGD L-inf, PGD L2, MI-FGSM, FGSM) on the tiny stand-in CNN.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import robustjax.attacks as A
from robustjax.attacks.iterative import point
from robustjax.attacks.threat import attacker_view
from robustjax.eval import load_outcomes
from robustjax.eval import program as P
from robustjax.eval.plan import Member
from robustjax.eval.runner import Runner
from robustjax.eval.scoring import Scoring
from robustjax.keys import image_keys, seed_key
from tests.eval_standins import components, get_defense, tiny_classifier
from tests.test_eval_runner import cfg as base_cfg

# (spec, budget): L2 budgets are per-image norms over 32*32*3 values
# iFGSM and PGD L2 in the fast tier; PGD L-inf, MI-FGSM and FGSM in the slow one (CI runs both)
CASES = [("ifgsm", 8 / 255), ("pgd:norm=l2", 0.5), *(pytest.param(spec, eps, marks=pytest.mark.slow)
                                                    for spec, eps in (("pgd", 8 / 255), ("mifgsm", 8 / 255),
                                                                      ("fgsm", 8 / 255)))]


def real_components():
    return dataclasses.replace(components(), get_attack=A.get, attack_names=A.names, minimum_norm=A.is_minimum_norm)


@pytest.mark.parametrize("spec, eps", CASES)
@pytest.mark.parametrize("threat", ["through"])
def test_tracked_member_without_early_stop_ends_at_the_attacks_own_final_points(spec, eps, threat):
    """In float64, so that XLA's different fusion of the two programs (a last-bit difference in
    float32 flips a signed step now and then) cannot hide a real difference: points agree to 1e-9."""
    with jax.enable_x64(True):
        _tracked_vs_own(spec, eps, threat)


def _tracked_vs_own(spec, eps, threat):
    f = tiny_classifier()
    defense = get_defense("noise:8")  # randomised: the member's defense draw must be the one the attack used
    member = Member.parse(f"{spec}:steps=5@{threat}" if spec != "fgsm" else f"{spec}@{threat}")

    def make(e):
        return A.get(member.attack.name, eps=e, **member.attack.kwargs)

    rng = np.random.default_rng(0)
    B = 6
    x = jnp.asarray(rng.uniform(0, 1, (B, 32, 32, 3)), jnp.float64)
    y = jnp.asarray(rng.integers(0, 10, B), jnp.int32)
    rows = jnp.arange(10, 10 + B, dtype=jnp.int32)
    key = seed_key(0)
    advance = jax.jit(P.tracked_program(f, defense, member, make, 8, early_stop=False,
                                        scoring=Scoring(fixed=True)))  # scored on the attacker's draw
    leaves = P.state_shapes(f, defense, member, make, 8, (32, 32, 3), eps, jnp.float64)
    state = jax.tree.map(lambda a: jnp.zeros((B, *a.shape), a.dtype), leaves)
    found, pred = jnp.full(B, -1, jnp.int32), jnp.zeros(B, jnp.int32)
    steps = make(eps).steps
    done = 0
    while done < steps:  # in segments, as the suite runs it; rows 1 and 4 gathered out and back in
        stop = min(done + 2, steps)
        idx = jnp.arange(B, dtype=jnp.int32) if done == 0 else jnp.asarray([4, 1, 0, 2, 3, 5], jnp.int32)
        state, found, pred, _ = advance(None, x, y, rows, key, jnp.float64(eps), state, found, pred, idx, B, done,
                                        stop)
        done = stop

    @jax.jit
    def own(x, y, rows, e):  # the attack's own loop per image, compiled as the grid compiles it
        def one(xi, yi, row):
            dkey, akey = image_keys(key, row)
            return make(e)(attacker_view(threat, f, defense, dkey), xi[None], yi[None], key=akey)

        return jax.vmap(one)(x, y, rows)

    got, want = np.asarray(point(state)), np.asarray(own(x, y, rows, jnp.float64(eps)))
    assert got.dtype == np.float64 and np.abs(got - x[:, None]).max() > 0  # the attack moved the images
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


# iFGSM with early stopping in the fast tier; every other attack and the no-early-stop runs in the slow one
SPECS = (("ifgsm", 8 / 255), ("pgd:norm=l2", 0.5), ("pgd", 8 / 255), ("mifgsm", 8 / 255), ("fgsm", 8 / 255))
SHARED_CASES = [("ifgsm", 8 / 255, True)] + [pytest.param(spec, eps, early, marks=pytest.mark.slow)
                                             for spec, eps in SPECS for early in (True, False)
                                             if (spec, early) != ("ifgsm", True)]


@pytest.mark.parametrize("spec, eps, early_stop", SHARED_CASES)
@pytest.mark.parametrize("threat", ["through"])
def test_check_read_from_the_gradient_pass_equals_a_separate_scoring_pass(spec, eps, threat, early_stop):
    """The shared check (each point's fooling check read from the logits of the gradient pass taken
    there, the last point scored) gives the found steps, predictions and points of the unshared one
    (a scoring pass after every step), with and without early stopping. In float64, at a budget
    where images fall at different steps (L2: 4x the parity budget, where some do)."""
    eps = 4 * eps if "l2" in spec else eps
    with jax.enable_x64(True):
        f = tiny_classifier()
        defense = get_defense("noise:8")
        scoring = Scoring(fixed=True)  # the attacker's own draw: the view is the scored model
        member = Member.parse(f"{spec}:steps=5@{threat}" if spec != "fgsm" else f"{spec}@{threat}")
        assert P.view_is_scored_model(threat, f, defense, scoring)

        def make(e):
            return A.get(member.attack.name, eps=e, **member.attack.kwargs)

        rng = np.random.default_rng(1)
        B = 16
        x = jnp.asarray(rng.uniform(0, 1, (B, 32, 32, 3)), jnp.float64)
        rows = jnp.arange(B, dtype=jnp.int32)
        key = seed_key(0)
        y = jnp.argmax(f(x), -1).astype(jnp.int32)  # clean-correct by construction
        leaves = P.state_shapes(f, defense, member, make, 8, (32, 32, 3), eps, jnp.float64)
        steps = make(eps).steps
        out = {}
        for shared in (True, False):
            advance = jax.jit(P.tracked_program(f, defense, member, make, 8, early_stop=early_stop, scoring=scoring,
                                                shared=shared, chunk=4))
            state = jax.tree.map(lambda a: jnp.zeros((B, *a.shape), a.dtype), leaves)
            found, pred = jnp.full(B, -1, jnp.int32), jnp.zeros(B, jnp.int32)
            done = 0
            while done < steps:
                stop = min(done + 2, steps)
                standing = np.flatnonzero(np.asarray(found) < 0) if early_stop else np.arange(B)
                # standing rows only, padded, as the suite gathers them, 4 at a time
                idx = jnp.asarray(np.concatenate([standing, np.full(B - len(standing), B)]), jnp.int32)
                state, found, pred, _ = advance(None, x, y, rows, key, jnp.float64(eps), state, found, pred, idx,
                                                len(standing), done, stop)
                done = stop
            out[shared] = np.asarray(found), np.asarray(pred), np.asarray(point(state))
        (f1, p1, x1), (f0, p0, x0) = out[True], out[False]
        np.testing.assert_array_equal(f1, f0)
        np.testing.assert_array_equal(p1[f1 >= 0], p0[f0 >= 0])
        np.testing.assert_allclose(x1, x0, rtol=0, atol=1e-12)
        assert (f1 > 0).any() and (f1 < 0).any() or steps == 1  # not vacuous: some fall, some stand


def test_the_view_is_the_scored_model_only_where_its_logits_are_the_scored_ones():
    f = tiny_classifier()
    det, rnd, none = get_defense("quant:8"), get_defense("noise:8"), get_defense("none")
    fixed, drawn = Scoring(fixed=True), Scoring(draws=4)
    assert P.view_is_scored_model("through", f, det) and P.view_is_scored_model("eot", f, det)
    assert P.view_is_scored_model("oblivious", f, none) and P.view_is_scored_model("through", f, rnd, fixed)
    assert not P.view_is_scored_model("bpda", f, det)  # x + sg(d(x) - x): d(x) up to the last bit
    assert not P.view_is_scored_model("oblivious", f, det)  # the view is f, the scored model f(d(x))
    assert not P.view_is_scored_model("through", f, rnd, drawn)  # scored on other draws
    assert not P.view_is_scored_model("eot", f, rnd, fixed)  # the mean over draws
    ensemble = type("E", (), {"attacker_model": lambda self, t: f, "__call__": lambda self, v: f(v)})()
    assert not P.view_is_scored_model("through", ensemble, det)  # the attacker sees another model


@pytest.mark.parametrize("spec, eps", CASES)
def test_suite_breaks_every_image_the_grid_cell_breaks(tmp_path, spec, eps):
    budgets = [0.0, eps / 2, eps]
    c = base_cfg(tmp_path, defenses=["quant:64"], threats=["bpda"], eps=budgets, batch_size=8,
                 attacks=[spec, {"name": "adaptive", "members": [f"{spec}@bpda"]}])
    recs = Runner(c, real_components(), progress=False).run()
    cell = next(r for r in recs if r["settings"]["attack"] != "adaptive" and r["settings"]["defense"] == "quant:64")
    suite = next(r for r in recs if r["settings"]["attack"] == "adaptive")
    norm = "l2" if "l2" in spec else "linf"
    assert cell["budget"] == norm and suite["budget"] == norm and suite["suite"][0]["norm"] == norm
    df = load_outcomes(c.out)
    broke_any = False
    for e in budgets[1:]:
        g = df[(df.key == cell["key"]) & (df.eps == e)].sort_values("row").broken.to_numpy()
        s = df[(df.key == suite["key"]) & (df.eps == e)].sort_values("row").broken.to_numpy()
        assert not (g & ~s).any()
        broke_any = broke_any or g.any()
    assert broke_any  # not vacuous
    assert all(s <= g for s, g in zip(suite["correct"], cell["correct"]))


def test_l2_member_is_an_l2_attack(tmp_path):
    """An L2 suite member once ran an L-inf step of radius eps (0.25 = 64/255 per pixel) and broke every
    image. Run as its grid cell, it leaves the same images standing at the budgets where early
    stopping cannot change the outcome of an image the final iterate keeps (the suite is at most as
    accurate, and far above zero)."""
    c = base_cfg(tmp_path, defenses=["none"], threats=["oblivious"], eps=[0.0, 0.1, 0.25], batch_size=20,
                 attacks=["pgd:norm=l2", {"name": "adaptive", "members": ["pgd:norm=l2@through"]}])
    recs = Runner(c, real_components(), progress=False).run()
    cell = next(r for r in recs if r["settings"]["attack"] == "pgd")
    suite = next(r for r in recs if r["settings"]["attack"] == "adaptive")
    assert suite["suite"][0]["member"] == "pgd:norm=l2@oblivious"
    assert all(s <= g for s, g in zip(suite["correct"], cell["correct"]))
    assert suite["correct"][1] >= cell["correct"][1] - 2 and suite["correct"][1] > 0


def test_members_of_two_norms_are_refused_before_compute(tmp_path):
    c = base_cfg(tmp_path, defenses=["none"],
                 attacks=[{"name": "adaptive", "members": ["pgd@through", "pgd:norm=l2@bpda"]}])
    with pytest.raises(ValueError, match="must share one budget norm"):
        Runner(c, real_components(), progress=False).run()


def test_pgd_with_an_unknown_norm_is_refused_when_built():
    with pytest.raises(ValueError, match="unknown norm 'l3'; valid: linf, l2"):
        A.get("pgd", norm="l3")
