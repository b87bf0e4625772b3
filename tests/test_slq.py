"""SLQ (Das et al. 2018, SHIELD): randomness from the key only, blocks from the set's JPEGs, EOT gets stronger
with draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.defenses import get, jpeg
from robustjax.defenses.jpeg import slq


def images(n=2, s=32, seed=0):
    r = np.random.default_rng(seed)
    base = jax.image.resize(jnp.asarray(r.random((n, 4, 4, 3), np.float32)), (n, s, s, 3), "linear")
    return jnp.clip(base + 0.1 * jnp.asarray(r.standard_normal((n, s, s, 3)), jnp.float32), 0, 1)


@pytest.mark.slow  # ~45 s of eager JPEG calls on the shared cores
def test_same_key_same_output_different_keys_differ_and_blocks_come_from_the_set():
    d = get("jpeg:slq:qualities=20/80:block=16")
    assert d.randomised
    x = images()
    a, b = d(x, jax.random.key(1)), d(x, jax.random.key(1))
    c = d(x, jax.random.key(2))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(jnp.abs(a - c).max()) > 0
    j20, j80 = np.asarray(jpeg(x, 20)), np.asarray(jpeg(x, 80))
    out = np.asarray(a)
    seen = set()
    for i in range(2):
        for by in range(2):
            for bx in range(2):
                sl = (i, slice(16 * by, 16 * by + 16), slice(16 * bx, 16 * bx + 16))
                hit = [q for q, j in ((20, j20), (80, j80)) if np.array_equal(out[sl], j[sl])]
                assert len(hit) == 1
                seen.add(hit[0])
    assert seen == {20, 80}  # eight regions, both qualities drawn


def test_bad_slq_specs_and_missing_key():
    for spec, msg in (("jpeg:slq:qualities=0/50", "1..100"), ("jpeg:slq:block=7", "8 or 16"),
                      ("jpeg:slq:qualities=a", "integers"), ("jpeg:25:block=8", "unknown JPEG options")):
        with pytest.raises(ValueError, match=msg):
            get(spec)
    with pytest.raises(ValueError, match="PRNG key"):
        slq.slq(images(1), None)


@pytest.mark.slow  # minutes on the shared cores: PGD under EOT with 1 and 8 SLQ draws
def test_eot_accuracy_falls_as_draws_grow():
    from small_models import small_classifier

    from robustjax import attacks as A

    f = small_classifier(seed=2)
    x = images(32, 16, seed=3)
    d = get("jpeg:slq:qualities=10/30/50/90:block=8")
    y = jnp.argmax(f(d(x, jax.random.key(0))), axis=1)
    accs = []
    for k in (1, 8):
        a = [A.robust_accuracy(f, x, y, "pgd", [16 / 255], defense=d, threat="eot", eot_samples=k,
                               key=jax.random.key(s), steps=5)[0]
             for s in range(2)]
        accs.append(float(np.mean(a)))
    assert accs[0] > accs[1], accs
