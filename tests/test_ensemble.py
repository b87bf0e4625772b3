"""Das et al. 2017's voting ensemble as one program: equals the separate calls, traced once, attacker views."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from robustjax.attacks.threat import attacker_view
from robustjax.defenses import jpeg
from robustjax.models import Classifier, cifar_resnet, ensemble, small_cnn


def member(seed, arch="small"):
    mod = small_cnn.create(rngs=nnx.Rngs(seed)) if arch == "small" else cifar_resnet.create(20, rngs=nnx.Rngs(seed))
    return Classifier(mod, f"{arch}{seed}", 32, 10)


@pytest.fixture(scope="module")
def ens():
    return ensemble.Ensemble([member(s) for s in (1, 2, 3)], [90, 40], base=member(0))


def images(n=4, seed=0):
    return jax.random.uniform(jax.random.PRNGKey(seed), (n, 32, 32, 3))


@pytest.mark.slow  # ~40 s on the shared cores (eager reference calls of six members)
def test_votes_equal_the_majority_of_separate_calls_and_trace_once(ens):
    x = images()
    before = ensemble.TRACES["members"]
    f = jax.jit(ens.votes)
    got = np.asarray(f(x))
    got2 = np.asarray(f(images(seed=1)))
    assert ensemble.TRACES["members"] - before == 1  # six members, two batches: one trace
    counts = np.zeros((4, 10))
    for m in (member(s) for s in (1, 2, 3)):
        for q in (90, 40):
            counts[np.arange(4), np.asarray(jnp.argmax(m(jpeg(x, q, rounding="exact")), -1))] += 1
    np.testing.assert_array_equal(got, counts)
    assert got.sum(axis=1).tolist() == [6] * 4 and got2.sum() == 24
    np.testing.assert_array_equal(np.argmax(got, -1), np.argmax(counts, -1))


@pytest.mark.slow  # ~40 s: gradients through six members and two JPEGs
def test_attacker_views_and_gradients(ens):
    x, y = images(2), jnp.array([1, 2])
    from robustjax.defenses import get

    ident = get("none")
    base = member(0)
    np.testing.assert_allclose(np.asarray(attacker_view("oblivious", ens, ident)(x)), np.asarray(base(x)),
                               rtol=1e-5, atol=1e-5)
    for threat in ("through", "bpda"):
        v = attacker_view(threat, ens, ident)
        g = jax.grad(lambda z: -jax.nn.log_softmax(v(z))[jnp.arange(2), y].sum())(x)
        assert np.all(np.isfinite(np.asarray(g))) and float(jnp.abs(g).sum()) > 0
    # the mean-logits view equals the mean of the members' logits on the JPEGs (forward of bpda = exact JPEG)
    mean = np.mean([np.asarray(member(s)(jpeg(x, q, rounding="exact"))) for s in (1, 2, 3) for q in (90, 40)], axis=0)
    np.testing.assert_allclose(np.asarray(ens.mean_logits(x, "bpda")), mean, rtol=1e-4, atol=1e-5)
    assert float(jnp.abs(jax.grad(lambda z: ens(z).sum())(x)).sum()) == 0  # votes carry no gradient


def test_bad_ensembles_are_clear_errors():
    with pytest.raises(ValueError, match="one architecture"):
        ensemble.Ensemble([member(1), member(2, arch="resnet")], [90])
    with pytest.raises(ValueError, match="1..100"):
        ensemble.Ensemble([member(1)], [0, 90])
    with pytest.raises(ValueError, match="no base model"):
        ensemble.Ensemble([member(1)], [90]).attacker_model("oblivious")
    with pytest.raises(FileNotFoundError, match="not a vaccination folder"):
        ensemble.load_spec("ensemble:/nonexistent")


def fake_chain(root, qualities=(90, 40)):
    """A vaccination folder of random small CNNs (chain.json + q<QQQ>/final), base = the first."""
    import json

    from robustjax import checkpoints

    meta = {"family": "small_cnn", "config": {"variant": "cifar10"}, "preprocessing": dict(small_cnn.PREPROCESSING),
            "model": "small_cnn_cifar10"}
    base = checkpoints.save(small_cnn.create(rngs=nnx.Rngs(0)), {**meta, "quality": None}, root / "M")
    for k, q in enumerate(qualities, 1):
        checkpoints.save(small_cnn.create(rngs=nnx.Rngs(k)), {**meta, "quality": q},
                         root / "chain" / f"q{q:03d}" / "final")
    (root / "chain" / "chain.json").write_text(
        json.dumps({"base": str(base), "model": "small_cnn_cifar10", "qualities": list(qualities)}))
    return root / "chain"


@pytest.mark.slow  # ~2 min: three compiled runner programs through a six-member ensemble
def test_ensemble_spec_in_the_eval_runner(tmp_path):
    from robustjax.eval import config as C
    from robustjax.eval.components import default
    from robustjax.eval.runner import Runner

    chain = fake_chain(tmp_path)
    c = C.quickstart()
    c.update(dict(dataset="foolbox_cifar10", n=4, models=[f"ensemble:{chain}"], defenses=["none"], attacks=["fgsm"],
                  eps=[0.0, 8 / 255], threats=["oblivious", "through", "bpda"], batch_size=4,
                  out=str(tmp_path / "out")))
    recs = Runner(c, default(), progress=False).run()
    assert [r["settings"]["threat"] for r in recs] == ["oblivious", "through", "bpda"]
    ens = ensemble.from_chain(chain)
    assert ens.votes_per_image == 4 and ens.base is not None
    assert len({r["correct"][0] for r in recs}) == 1  # the same clean votes under every threat model
    assert all(0 <= r["flipped"][1] <= r["clean_correct"] for r in recs)
