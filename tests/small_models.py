"""Small synthetic classifiers, data and defenses shared by the attack unit tests (test_attacks_unit,
test_autoattack_unit, test_fab_unit, test_slq): random-weight networks on random images, fast on CPU."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from robustjax import attacks as A
from robustjax.defenses import Defense


class SmallNet(nnx.Module):
    """One 3x3 convolution (8 channels), ReLU, global mean pool and a linear head over ``k`` classes,
    on NHWC images in [0, 1] with ``c`` channels; weights drawn from ``seed``."""

    def __init__(self, c=3, k=10, seed=0):
        rngs = nnx.Rngs(seed)
        self.conv = nnx.Conv(c, 8, (3, 3), rngs=rngs)
        self.lin = nnx.Linear(8, k, rngs=rngs)

    def __call__(self, x):
        h = jax.nn.relu(self.conv(x * 2 - 1))
        return self.lin(h.mean(axis=(1, 2))) * 4


def small_classifier(c=3, k=10, seed=0):
    """:class:`SmallNet` as an attack view (``robustjax.attacks.View``, ``k`` classes, named "net")."""
    g, s = nnx.split(SmallNet(c, k, seed))
    f = A.View(lambda x: nnx.merge(g, s)(x), k, "net")
    return f


def random_batch(n=8, h=8, w=8, c=3, seed=0, k=10):
    """``(x, y)``: ``n`` uniform random float32 images ``(n, h, w, c)`` in [0, 1] and int32 labels in
    ``0..k-1``, from ``seed``."""
    r = np.random.default_rng(seed)
    return jnp.asarray(r.random((n, h, w, c), np.float32)), jnp.asarray(r.integers(0, k, n), jnp.int32)


class ExplodingClassifier:
    """A classifier whose every evaluation is an error: bad input must be caught before it is used."""

    num_classes = 10

    def __call__(self, x):
        raise AssertionError("the classifier was called before the input was checked")


def noisy_defense(sigma=0.08):
    """A randomised defense: additive Gaussian noise, clipped (gradient: identity inside [0, 1])."""

    def fn(x, key=None):
        if key is None:
            return x
        return jnp.clip(x + sigma * jax.random.normal(key, x.shape, x.dtype), 0.0, 1.0)

    return Defense("noise", fn, randomised=True)
