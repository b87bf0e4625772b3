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

from robustjax.checks import check_images, is_concrete
from robustjax.xla_cpu import default_unroll


def loop(steps: int, body, init, unroll: bool | None = None):
    """``lax.fori_loop`` over ``steps``; ``unroll`` None chooses the loop form: rolled on GPU/TPU,
    and on CPU rolled unless ``body`` holds a convolution XLA:CPU runs slowly inside a loop
    (:func:`robustjax.xla_cpu.has_slow_loop_convolution`), unless ``ROBUSTJAX_ATTACK_LOOP`` says otherwise.

    Either way the attack is one compiled program with no host round trip between steps; why the
    form matters on CPU is in :mod:`robustjax.xla_cpu`. Each attack's ``unroll`` field overrides too."""
    unroll = default_unroll(body, init) if unroll is None else unroll
    return jax.lax.fori_loop(0, steps, body, init, unroll=bool(unroll) and steps > 0)


@jax.custom_vjp
def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Batch-mean cross-entropy of logits ``(N, K)`` and integer labels ``(N,)``, as torchattacks'
    ``nn.CrossEntropyLoss()``.

    Its gradient is formed as PyTorch forms it, ``(exp(log_softmax(z)) - onehot(y)) / N``. For an
    image classified with confidence near 1 the label's entry ``p_y - 1`` is a difference of
    numbers near 1 whose rounding decides the direction of the whole input gradient (measured on
    CIFAR ResNet-20: up to 17% relative error, and sign flips in 1e-5 of the pixels, when the
    softmax was formed as ``exp(shifted) / sum``); forming it the same way keeps the attacks on
    torchattacks' trajectory.
    """
    return _ce_fwd(logits, y)[0]


def _ce_fwd(logits, y):
    logp = jax.nn.log_softmax(logits, axis=-1)
    loss = -jnp.mean(jnp.take_along_axis(logp, y[:, None].astype(jnp.int32), axis=1))
    return loss, (logp, y)


def _ce_bwd(res, g):
    logp, y = res
    onehot = jax.nn.one_hot(y, logp.shape[-1], dtype=logp.dtype)
    dz = (jnp.exp(logp) - onehot) * (g / logp.shape[0])
    return dz, np.zeros(y.shape, jax.dtypes.float0)


cross_entropy.defvjp(_ce_fwd, _ce_bwd)


def loss_grad(f, x: jax.Array, y: jax.Array) -> jax.Array:
    """Gradient w.r.t. ``x`` of the cross-entropy of ``f`` at ``x``.

    A view that defines its own ``loss_grad(x, y)`` (EOT: the mean of the gradients over the
    defense's draws) is asked for it instead.
    """
    own = getattr(f, "loss_grad", None)
    if own is not None:
        return own(x, y)
    return loss_grad_and_logits(f, x, y)[0]


def loss_grad_and_logits(f, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(gradient, logits)``: :func:`loss_grad` of a plain view ``f`` (no ``loss_grad`` of its own),
    and the logits ``f(x)`` ``(N, K)`` its forward pass computed: a tracked suite member whose view is
    the scored model reads whether ``x`` fools it from them instead of a second forward pass."""
    logits, pull = jax.vjp(f, x)
    (g,) = pull(jax.grad(cross_entropy)(logits, y))
    return g, logits


def num_classes(f, x) -> int | None:
    """``f.num_classes`` when the classifier says, else the logits' width from an abstract
    evaluation (shapes only, no compute); None if even that fails."""
    k = getattr(f, "num_classes", None)
    if k is not None:
        return int(k)
    try:
        return int(jax.eval_shape(f, jax.ShapeDtypeStruct(x.shape, x.dtype)).shape[-1])
    except Exception:  # noqa: BLE001 - a classifier that cannot be traced abstractly fails later, with its own error
        return None


def check_labels(y, n: int, classes: int | None) -> None:
    """Integer labels ``(n,)`` within ``0..classes-1`` (values checked when concrete)."""
    shape, dtype = getattr(y, "shape", None), getattr(y, "dtype", None)
    if shape is None or tuple(shape) != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the images, got {shape}")
    if not np.issubdtype(np.dtype(dtype), np.integer):
        raise ValueError(f"labels must be integers, got dtype {np.dtype(dtype).name}")
    if is_concrete(y) and np.size(y):
        values = np.asarray(y)  # on the host: a jax op here would be staged into an enclosing jit
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or (classes is not None and hi >= classes):
            raise ValueError(f"labels must lie in 0..{'K-1' if classes is None else classes - 1}, "
                             f"got values in {lo}..{hi}")


def check_inputs(f, x, y) -> None:
    """Images in [0, 1] ``(N, H, W, C)``, integer labels ``(N,)`` within the classifier's classes."""
    check_images(x, "x")
    classes = getattr(f, "num_classes", None)
    if classes is None and is_concrete(y):
        classes = num_classes(f, x)
    check_labels(y, x.shape[0], classes)


def check_nonnegative(**values) -> None:
    """``ValueError`` for any concrete value below 0 (or NaN); traced values are skipped."""
    for name, v in values.items():
        if v is None or not is_concrete(v):
            continue
        a = np.asarray(v, dtype=np.float64)
        if np.isnan(a).any() or (a < 0).any():
            raise ValueError(f"{name} must be >= 0, got {v}")


def check_norm(norm: str, valid: tuple, attack: str | None = None) -> None:
    """``ValueError`` naming ``norm`` (and ``attack``, when given) unless it is one of ``valid``."""
    if norm not in valid:
        prefix = f"{attack} " if attack else ""
        raise ValueError(f"unknown {prefix}norm {norm!r}; valid: {', '.join(valid)}")


def check_steps(steps) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
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
