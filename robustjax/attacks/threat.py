"""Threat models: which function of the images the attacker differentiates.

Given a classifier ``f`` and a defense ``d`` (``d(x, key)``), the *evaluated* model is always
``f(d(x))``. What the attack sees (:func:`attacker_view`):

- ``oblivious``: ``f`` alone (Räber et al. 2025's through=False: adversarial examples made on the bare
  classifier, then passed through the defense);
- ``through``: ``f(d(x))`` with the defense's own differentiable surrogate (Räber et al. 2025's through=True);
- ``bpda``: ``d`` forward, identity backward (Athalye et al. 2018): ``f(x + sg(d(x) - x))``;
- ``eot``: expectation over ``eot_samples`` draws of a randomised defense's randomness (Athalye et
  al. 2018): gradient attacks step along the mean of the per-draw loss gradients (as torchattacks'
  EOTPGD), and attacks that read logits (CW, DeepFool) see the mean logits. For a deterministic
  defense this is ``through``.

A model with an ``attacker_model(threat)`` method (``robustjax.models.ensemble.Ensemble``) is
replaced, in the attacker's view only, by the function that method returns (the evaluated model
stays ``f(d(x))``).
"""

from __future__ import annotations

import jax

from robustjax.attacks.base import cross_entropy

THREATS = ("oblivious", "through", "bpda", "eot")


class View:
    """The attacker's model ``x -> logits`` (float ``(N, H, W, C)`` in [0, 1] -> ``(N, K)``), carrying
    the classifier's ``num_classes`` so attacks can check labels."""

    def __init__(self, fn, num_classes: int | None = None, name: str = "view"):
        self.fn, self.num_classes, self.name = fn, num_classes, name

    def __call__(self, x):
        return self.fn(x)

    def __repr__(self) -> str:
        return f"View({self.name})"


class EOTView(View):
    """Mean over ``keys`` draws of ``f(d(x, key_i))``; ``loss_grad`` averages the per-draw gradients
    of the cross-entropy (each draw's backward pass is taken on its own, then summed)."""

    def __init__(self, f, defense, keys, num_classes=None):
        self.f, self.defense, self.keys = f, defense, keys
        super().__init__(self._mean_logits, num_classes, f"eot[{len(keys)}]")

    def _mean_logits(self, x):
        return sum(self.f(self.defense(x, k)) for k in self.keys) / len(self.keys)

    def draws(self):
        """One ``x -> logits`` per draw (attacks with their own loss average over these)."""
        return [lambda x, k=k: self.f(self.defense(x, k)) for k in self.keys]

    def loss_grad(self, x, y):
        total = None
        for k in self.keys:
            g = jax.grad(lambda v, k=k: cross_entropy(self.f(self.defense(v, k)), y))(x)
            total = g if total is None else total + g
        return total / len(self.keys)


def bpda(defense, key=None):
    """``x -> d(x, key)`` in the forward pass with an identity backward pass."""
    return lambda x: x + jax.lax.stop_gradient(defense(x, key) - x)


def attacker_view(threat: str, f, defense=None, key=None, eot_samples: int = 8) -> View:
    """The function ``x -> logits`` the attacker differentiates under ``threat``.

    ``defense``: ``d(x, key=None)`` (None: no defense). ``key``: the defense's randomness (for
    ``eot``, split into ``eot_samples`` draws). Randomised defenses need a key under every
    threat model except ``oblivious``.
    """
    if threat not in THREATS:
        raise ValueError(f"unknown threat model {threat!r}; valid: {', '.join(THREATS)}")
    classes = getattr(f, "num_classes", None)
    # a model whose attack surface depends on the threat (the Das et al. 2017 ensemble)
    if hasattr(f, "attacker_model"):
        f = f.attacker_model(threat)
    if threat == "oblivious" or defense is None:
        return View(f, classes, "oblivious" if defense is None else f"{threat}(none)")
    randomised = bool(getattr(defense, "randomised", False))
    if randomised and key is None:
        raise ValueError(f"the {threat} threat model on the randomised defense {defense!r} needs a key")
    if threat == "through":
        return View(lambda x: f(defense(x, key)), classes, "through")
    if threat == "bpda":
        forward = bpda(defense, key)
        return View(lambda x: f(forward(x)), classes, "bpda")
    if isinstance(eot_samples, bool) or not isinstance(eot_samples, int) or eot_samples < 1:
        raise ValueError(f"eot_samples must be an int >= 1, got {eot_samples!r}")
    if not randomised:
        return View(lambda x: f(defense(x, key)), classes, "eot(deterministic: through)")
    return EOTView(f, defense, list(jax.random.split(key, eot_samples)), classes)
