"""Robust accuracy of a defended classifier under an attack: over a grid of eps budgets (one
compiled program, eps vmapped), and Räber et al. 2025's L2 protocol for minimum-norm attacks (CW, DeepFool)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.attacks.base import check_labels, l2_norms, num_classes
from robustjax.attacks.registry import get
from robustjax.attacks.threat import THREATS, attacker_view
from robustjax.checks import check_images
from robustjax.keys import image_keys


def _identity(x, key=None):
    return x


def _check_common(f, x, y, threat):
    check_images(x, "x")
    check_labels(y, x.shape[0], num_classes(f, x))
    if threat not in THREATS:
        raise ValueError(f"unknown threat model {threat!r}; valid: {', '.join(THREATS)}")


def _check_grid(values, name):
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty list of numbers, got {values!r}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name} must be finite and >= 0, got {values!r}")
    return a


def _maker(attack, hparams):
    if isinstance(attack, str):
        get(attack, eps=1 / 255, **hparams)  # unknown names / hyper-parameters fail before any compute
        return lambda e: get(attack, eps=e, **hparams)
    if hparams:
        raise ValueError("hparams are only used with an attack name; pass them to your own make_attack")
    return attack


def robust_accuracy(f, x, y, attack: str | Callable, eps: Sequence[float], defense=None, threat: str = "oblivious",
                    key=None, eot_samples: int = 8, **hparams) -> np.ndarray:
    """Accuracy of the defended model ``f(d(x_adv))`` for each budget in ``eps``.

    ``attack``: a name for :func:`robustjax.attacks.get` (with ``hparams``) or ``make_attack(eps) ->
    attack``. ``eps``: budgets in pixel units; 0 gives the clean accuracy of ``f(d(x))`` (the attack
    is still run, with a zero budget). ``defense``: ``d(x, key=None)`` or None. ``threat``: one of
    :data:`THREATS`. One jitted program serves the whole grid (eps is traced and vmapped). Randomness
    is per image, from ``key`` and the image's position (:func:`robustjax.keys.image_keys`), as in
    the experiment runner, so a figure does not depend on how the images are batched.
    Returns ``(len(eps),)`` float accuracies in [0, 1].
    """
    _check_common(f, x, y, threat)
    grid = _check_grid(eps, "eps")
    make = _maker(attack, hparams)
    key = jax.random.key(0) if key is None else key
    d = defense if defense is not None else _identity

    @jax.jit
    def run(x, y, eps):
        def per_image(xi, yi, row):  # each image's keys from its row, as the runner's programs
            dkey, akey = image_keys(key, row)
            view = attacker_view(threat, f, defense, dkey, eot_samples)
            xi, yi = xi[None], yi[None]
            return jax.vmap(lambda e: jnp.argmax(f(d(make(e)(view, xi, yi, key=akey), dkey)), axis=1)[0] == yi[0])(eps)

        return jnp.mean(jax.vmap(per_image)(x, y, jnp.arange(x.shape[0])), axis=0)

    return np.asarray(run(x, jnp.asarray(y), jnp.asarray(grid, x.dtype)))


def l2_bounded_accuracy(f, x, x_adv, y, bounds: Sequence[float]) -> np.ndarray:
    """Räber et al. 2025's protocol for minimum-norm attacks (CW, DeepFool): for each L2 bound, an image
    counts as attacked only if its perturbation ``||x_adv - x||_2`` (pixel units, [0, 1] scale,
    over all H*W*C values) is at most the bound; otherwise its clean prediction counts. ``f`` is
    the evaluated model (defense included). Returns ``(len(bounds),)`` accuracies.

    (Räber et al. 2025 measured the norm in the classifier's normalised-input space; here it is measured in
    pixel space so a bound means the same for every model.)
    """
    check_images(x, "x")
    check_images(x_adv, "x_adv")
    if x_adv.shape != x.shape:
        raise ValueError(f"x_adv must have the shape of x {x.shape}, got {x_adv.shape}")
    check_labels(y, x.shape[0], num_classes(f, x))
    grid = _check_grid(bounds, "bounds")
    clean_ok = jnp.argmax(f(x), axis=1) == y
    adv_ok = jnp.argmax(f(x_adv), axis=1) == y
    norms = l2_norms(x_adv - x)
    within = norms[None, :] <= jnp.asarray(grid, x.dtype)[:, None]
    return np.asarray(jnp.mean(jnp.where(within, adv_ok[None], clean_ok[None]), axis=1))


def min_norm_accuracy(f, x, y, attack, bounds: Sequence[float], defense=None, threat: str = "oblivious",
                      key=None, eot_samples: int = 8) -> dict:
    """Run a minimum-norm ``attack`` (e.g. ``CW()``, ``DeepFool()``) under ``threat`` and score it
    by :func:`l2_bounded_accuracy` on the defended model ``f(d(.))``.

    Returns ``{"accuracy": (len(bounds),), "success": fraction of images misclassified by the
    defended model after the attack, "l2": per-image perturbation norms (N,)}``.
    """
    _check_common(f, x, y, threat)
    _check_grid(bounds, "bounds")
    key = jax.random.key(0) if key is None else key
    d = defense if defense is not None else _identity
    dkey, akey = image_keys(key, 0)  # one draw for the batch: the L2 scoring below needs one defended model
    view = attacker_view(threat, f, defense, dkey, eot_samples)
    x_adv = jax.jit(lambda x, y: attack(view, x, y, key=akey))(x, jnp.asarray(y))
    defended = jax.jit(lambda v: f(d(v, dkey)))
    wrong = np.asarray(jnp.argmax(defended(x_adv), axis=1) != y)
    return {"accuracy": l2_bounded_accuracy(defended, x, x_adv, y, bounds), "success": float(wrong.mean()),
            "l2": np.asarray(l2_norms(x_adv - x))}
