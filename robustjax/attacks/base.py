"""What every attack shares: input checks, the loss and its gradient, the step loop, projections.

An attack is a frozen dataclass of hyper-parameters called as ``x_adv = attack(f, x, y, key=key)``:
``f`` maps float ``(N, H, W, C)`` images in [0, 1] to logits ``(N, K)`` (the attacker's view of the
model, see :mod:`robustjax.attacks.threat`), ``y`` holds integer labels ``(N,)``. Budgets are in
pixel units (``eps=8/255``). Hyper-parameters may be traced (``jax.vmap`` over an eps grid compiles
once); ``steps`` must be a Python int.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from robustjax.checks import check_images, is_concrete


def default_unroll() -> bool:
    """Unroll the step loop on CPU, where XLA runs a rolled ``fori_loop`` about 2x slower than the
    same steps unrolled (DESIGN.md, measured again in experiments/benchmarks/attacks.py); keep a
    rolled loop on GPU/TPU (smaller program, same speed). Either way it is one program, with no
    host round trip between steps."""
    return jax.default_backend() == "cpu"


def loop(steps: int, body, init, unroll: bool | None = None):
    """``lax.fori_loop`` over ``steps`` with the backend's loop form (see :func:`default_unroll`)."""
    unroll = default_unroll() if unroll is None else unroll
    return jax.lax.fori_loop(0, steps, body, init, unroll=bool(unroll) and steps > 0)


def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Summed cross-entropy (torchattacks averages; the sign and direction of the gradient agree)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).sum()


def loss_grad(f, x: jax.Array, y: jax.Array) -> jax.Array:
    """Gradient of the cross-entropy of ``f`` at ``x`` w.r.t. ``x``."""
    return jax.grad(lambda v: cross_entropy(f(v), y))(x)


def check_inputs(f, x, y) -> None:
    """Images in [0, 1] (N, H, W, C), integer labels (N,) within the classifier's classes."""
    check_images(x, "x")
    shape, dtype = getattr(y, "shape", None), getattr(y, "dtype", None)
    if shape is None or tuple(shape) != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},) to match the images, got {shape}")
    if not np.issubdtype(np.dtype(dtype), np.integer):
        raise ValueError(f"labels must be integers, got dtype {np.dtype(dtype).name}")
    classes = getattr(f, "num_classes", None)
    if is_concrete(y) and np.size(y):
        lo, hi = int(np.min(y)), int(np.max(y))
        if lo < 0 or (classes is not None and hi >= classes):
            raise ValueError(f"labels must lie in 0..{'K-1' if classes is None else classes - 1}, got {lo}..{hi}")


def check_nonnegative(**values) -> None:
    for name, v in values.items():
        if v is not None and is_concrete(v) and float(np.min(v)) < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")


def check_steps(steps) -> None:
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")


def project_linf_pgd(adv, x, eps):
    """torchattacks PGD/MI-FGSM order: clip the perturbation to the eps-ball, then the image to [0, 1]."""
    return jnp.clip(x + jnp.clip(adv - x, -eps, eps), 0.0, 1.0)


def project_linf_bim(adv, x, eps):
    """torchattacks BIM order: max with max(x - eps, 0), min with x + eps, then min with 1."""
    lower = jnp.maximum(x - eps, 0.0)
    return jnp.minimum(jnp.minimum(jnp.maximum(adv, lower), x + eps), 1.0)


def l2_norms(v: jax.Array) -> jax.Array:
    """Per-image L2 norm of ``(N, ...)`` -> ``(N,)``."""
    return jnp.sqrt(jnp.sum(jnp.square(v.reshape(v.shape[0], -1)), axis=1))


def per_image(a: jax.Array, v: jax.Array) -> jax.Array:
    """Broadcast per-image scalars ``(N,)`` over images ``(N, ...)``."""
    return a.reshape((-1,) + (1,) * (v.ndim - 1))
