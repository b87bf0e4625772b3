"""robustjax: does image compression still defend classifiers when the attacker differentiates through it?

Public contracts (see README): images are float32 ``(N, H, W, C)`` in ``[0, 1]``; a defense is
``d(x, key=None) -> x'`` built by ``robustjax.defenses.get(spec)``; a classifier is
``logits = f(x)`` built by ``robustjax.models.load(name)``; an attack is
``x_adv = attack(f, x, y, key=key)``.
"""

__version__ = "0.1.0"
