"""Small stand-ins for the runner's tests: a random Flax CNN, jax FGSM/iFGSM/PGD, a quantising
defense, and foolbox's 20 CIFAR-10 PNGs relabelled by the CNN itself (so clean accuracy is 1.0 and
attacks have something to break).

Run as a script it is ``python -m robustjax.eval`` wired to these stand-ins (subprocess tests).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from robustjax.attacks.iterative import iterate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import robustjax.data
import robustjax.defenses
from robustjax.defenses import Defense
from robustjax.eval.components import Components


class TinyCNN(nnx.Module):
    def __init__(self, rngs):
        self.c1 = nnx.Conv(3, 16, (3, 3), rngs=rngs)
        self.c2 = nnx.Conv(16, 32, (3, 3), strides=2, rngs=rngs)
        self.fc = nnx.Linear(32, 10, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.c1(x - 0.5))
        x = jax.nn.relu(self.c2(x))
        return self.fc(x.mean(axis=(1, 2)))


def tiny_classifier(seed: int = 0):
    graphdef, state = nnx.split(TinyCNN(nnx.Rngs(seed)))

    def f(x):
        return nnx.merge(graphdef, state)(x)

    f.input_size, f.num_classes, f.preprocessing = 32, 10, None
    return f


def _loss(f, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(f(x), y).sum()


@dataclasses.dataclass
class Iterative:
    """iFGSM (random start optional) as start + update parts (robustjax.attacks.iterative), so the
    suite runs it as a tracked member."""

    eps: float
    steps: int = 1
    alpha: float | None = None
    random_start: bool = False
    unroll = None

    def check(self, f, x, y, key=None):
        pass

    def start(self, f, x, y, key=None):
        if self.random_start:
            return (jnp.clip(x + jax.random.uniform(key, x.shape, minval=-self.eps, maxval=self.eps), 0, 1),)
        return (x,)

    def update(self, state, x, grad):
        alpha = self.eps if self.steps == 1 else (self.alpha if self.alpha is not None else self.eps / 4)
        return (jnp.clip(jnp.clip(state[0] + alpha * jnp.sign(grad), x - self.eps, x + self.eps), 0, 1),)

    def __call__(self, f, x, y, key=None):
        return iterate(self, f, x, y, key)


@dataclasses.dataclass
class Looped:
    """iFGSM as one rolled ``fori_loop`` (cheap to compile at many steps: slow cells for kill tests)."""

    eps: float
    steps: int = 100

    def __call__(self, f, x, y, key=None):
        def step(_, xa):
            g = jax.grad(_loss, argnums=1)(f, xa, y)
            return jnp.clip(jnp.clip(xa + self.eps / 8 * jnp.sign(g), x - self.eps, x + self.eps), 0, 1)

        return jax.lax.fori_loop(0, self.steps, step, x)


ATTACKS = {
    "fgsm": lambda eps, **hp: Iterative(eps, steps=1, **hp),
    "ifgsm": lambda eps, steps=3, **hp: Iterative(eps, steps=steps, **hp),
    "pgd": lambda eps, steps=3, **hp: Iterative(eps, steps=steps, random_start=True, **hp),
    "slowloop": lambda eps, steps=100: Looped(eps, steps=steps),
}


def get_attack(name, **hp):
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; valid: {sorted(ATTACKS)}")
    return ATTACKS[name](**hp)


def get_defense(spec):
    """``quant:K``: round to K grey levels (zero gradient: obfuscates a through-attack), else the registry."""
    if spec.startswith("noise:"):  # randomised: uniform noise of amplitude S/255, then clip
        a = float(spec.split(":")[1]) / 255
        return Defense(spec,
                       lambda x, key=None: jnp.clip(x + jax.random.uniform(key, x.shape, minval=-a, maxval=a), 0, 1),
                       randomised=True)
    if spec.startswith("quant:"):
        k = int(spec.split(":")[1]) - 1
        return Defense(spec, lambda x, key=None: jnp.round(x * k) / k)
    return robustjax.defenses.get(spec)


def load_model(name, weights=None, head=None):
    if name != "tiny":
        raise ValueError(f"unknown model {name!r}")
    return tiny_classifier()


def load_data(name, data_dir=None, label_space=None):
    """The real dataset, relabelled with the tiny CNN's clean predictions."""
    ds = robustjax.data.load(name, data_dir, label_space)
    f = tiny_classifier()
    resize = robustjax.data.Resize(32)
    x = np.stack([resize(ds.read(i)) for i in range(len(ds))]).astype(np.float32) / 255
    labels = np.asarray(jnp.argmax(f(x), -1), np.int32)
    return dataclasses.replace(ds, labels=labels, num_classes=10)


def components() -> Components:
    return Components(load_model, lambda: ["tiny"], get_attack, lambda: sorted(ATTACKS), get_defense, load_data)


if __name__ == "__main__":
    from robustjax.eval.cli import main

    sys.exit(main(sys.argv[1:], components=components()))
