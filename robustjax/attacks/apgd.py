"""APGD and targeted APGD-T (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks"), step for step as torchattacks 3.5.1's ``APGD`` and
``APGDT`` run them (its copy of AutoAttack's ``apgd``): a start on the eps-sphere, a first step of
``2 eps``, momentum 0.75 after the first step, and the step-size schedule: a check after the first
``max(int(0.22 steps), 1)`` steps, the window shrinking by ``max(int(0.03 steps), 1)`` down to
``max(int(0.06 steps), 1)``; at a check an image's step size halves (and it restarts from its
highest-loss point) when at most ``rho * window`` of the window's steps raised the loss, or when it
was not halved at the last check and its best loss has not risen since.

Each run (restart, or target class for APGD-T) attacks only the images every earlier run left
correctly classified; an image's result is the last iterate of its run that was misclassified, and
the clean image when no run fooled it (as torchattacks and AutoAttack return it).

Differences from torchattacks, all deliberate: every image of the batch is computed in every run,
its results discarded if an earlier run had fooled it (a fixed-shape compiled program; the run loop
ends once all images are fooled); random starts come from ``key``; under the ``eot`` threat model
the loss and predictions are the mean over the defense's draws (torchattacks: the last draw's),
the gradient the mean of the per-draw gradients, as torchattacks' ``eot_iter``; APGD-T L2 uses
each image's own step size (torchattacks 3.5.1 uses the first image's for the whole batch).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.attacks.base import (
    check_inputs,
    check_nonnegative,
    check_norm,
    check_steps,
    l2_norms,
    loop,
    num_classes,
    per_image,
)

NORMS = ("linf", "l2")
LOSSES = ("ce", "dlr")
MOMENTUM = 0.75  # AutoAttack's alpha: weight of the new step after the first one


class APGDResult(NamedTuple):
    """What an APGD / APGD-T run returns.

    ``x_adv`` (N, H, W, C) in [0, 1] within the eps-ball: per image the misclassified point, or
    the clean image when not fooled. ``fooled`` (N,) bool: misclassified by the attacked view (at
    ``x`` already, or at ``x_adv``). ``iteration`` (N,) int32: the attack's model evaluation that
    first misclassified the image: 0 for an image misclassified clean; run r's start point is
    ``r * (steps + 1) + 1`` and its step i (1-based) ``r * (steps + 1) + 1 + i``; -1 if never fooled.
    ``evaluations`` () int32: the model evaluations the attack made per image (start points and
    steps of the runs it ran; fewer than ``runs * (steps + 1)`` when runs or steps ended early).
    """

    x_adv: jax.Array
    fooled: jax.Array
    iteration: jax.Array
    evaluations: jax.Array



def check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def check_rho(rho) -> None:
    if isinstance(rho, bool) or not isinstance(rho, (int, float, np.floating)) or not 0.0 <= float(rho) <= 1.0:
        raise ValueError(f"rho must be a number in [0, 1], got {rho!r}")


# ---------------------------------------------------------------- losses (per image)


@jax.custom_vjp
def cross_entropy_per_image(logits: jax.Array, y: jax.Array) -> jax.Array:
    """``(N,)`` cross-entropy of logits ``(N, K)`` and labels ``(N,)`` (``reduction="none"``),
    its gradient formed as PyTorch forms it, ``softmax - onehot`` (see base.cross_entropy)."""
    return _cepi_fwd(logits, y)[0]


def _cepi_fwd(logits, y):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, y[:, None].astype(jnp.int32), axis=1)[:, 0], (logp, y)


def _cepi_bwd(res, g):
    logp, y = res
    onehot = jax.nn.one_hot(y, logp.shape[-1], dtype=logp.dtype)
    return (jnp.exp(logp) - onehot) * g[:, None], np.zeros(y.shape, jax.dtypes.float0)


cross_entropy_per_image.defvjp(_cepi_fwd, _cepi_bwd)


def _sorted(logits):
    return jnp.take_along_axis(logits, jnp.argsort(logits, axis=1), axis=1)


def dlr_loss(logits: jax.Array, y: jax.Array) -> jax.Array:
    """``(N,)`` Difference of Logits Ratio, ``-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3)`` with
    ``z_pi`` the logits sorted in decreasing order (needs K >= 3): invariant to shifting and
    scaling the logits, unlike the cross-entropy."""
    order = jnp.argsort(logits, axis=1)
    zs = jnp.take_along_axis(logits, order, axis=1)
    top_is_y = (order[:, -1] == y).astype(logits.dtype)
    z_y = jnp.take_along_axis(logits, y[:, None].astype(jnp.int32), axis=1)[:, 0]
    return -(z_y - zs[:, -2] * top_is_y - zs[:, -1] * (1.0 - top_is_y)) / (zs[:, -1] - zs[:, -3] + 1e-12)


def targeted_dlr_loss(logits: jax.Array, y: jax.Array, target: jax.Array) -> jax.Array:
    """``(N,)`` targeted DLR, ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` (needs K >= 4)."""
    zs = _sorted(logits)
    z_y = jnp.take_along_axis(logits, y[:, None].astype(jnp.int32), axis=1)[:, 0]
    z_t = jnp.take_along_axis(logits, target[:, None].astype(jnp.int32), axis=1)[:, 0]
    return -(z_y - z_t) / (zs[:, -1] - 0.5 * zs[:, -3] - 0.5 * zs[:, -4] + 1e-12)


def loss_logits_grad(f, loss, x):
    """``(loss (N,), logits (N, K), d sum(loss) / dx)`` of ``loss(logits)`` at ``x``.

    A view with ``draws()`` (the ``eot`` view: one ``x -> logits`` per draw of the defense) gives
    the mean loss, mean logits and mean gradient over its draws, each draw's backward pass taken on
    its own."""
    draws = getattr(f, "draws", None)
    fns = draws() if callable(draws) else [f]
    total = None
    for fn in fns:
        def summed(v, fn=fn):
            logits = fn(v)
            per = loss(logits)
            return jnp.sum(per), (per, logits)

        (_, (per, logits)), g = jax.value_and_grad(summed, has_aux=True)(x)
        total = (per, logits, g) if total is None else jax.tree.map(jnp.add, total, (per, logits, g))
    return jax.tree.map(lambda t: t / len(fns), total) if len(fns) > 1 else total


# ---------------------------------------------------------------- the step-size schedule


def checkpoints(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``(is_check (steps,) bool, window (steps,) int32)``: after which 0-based steps the step size is
    reviewed and over how many past steps (torchattacks' ``counter3 == k`` schedule)."""
    window, every_min, shrink = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    is_check, windows = np.zeros(steps, bool), np.zeros(steps, np.int32)
    since = 0
    for i in range(steps):
        since += 1
        if since == window:
            is_check[i], windows[i] = True, window
            since, window = 0, max(window - shrink, every_min)
    return is_check, windows


# ---------------------------------------------------------------- one run


def _start(x, eps, norm, key):
    """A random point on the eps-sphere (per image: L-inf max-norm or L2 norm eps), clipped to [0, 1]."""
    if norm == "linf":
        t = jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0)
        scale = jnp.max(jnp.abs(t.reshape(t.shape[0], -1)), axis=1)
    else:
        t = jax.random.normal(key, x.shape, x.dtype)
        scale = l2_norms(t) + 1e-12
    return jnp.clip(x + eps * t / per_image(scale, t), 0.0, 1.0)


def _into_ball(v, x, eps, norm):
    if norm == "linf":
        return jnp.clip(jnp.minimum(jnp.maximum(v, x - eps), x + eps), 0.0, 1.0)
    d = v - x
    n = l2_norms(d)
    return jnp.clip(x + d * per_image(jnp.minimum(1.0, eps / jnp.where(n > 0, n, 1.0)), d), 0.0, 1.0)


def _step(x_adv, x_old, grad, x, eps, eps32, step_size, a, norm):
    """torchattacks' update: a step of ``step_size`` (signed gradient / normalised gradient), projected,
    then mixed with the previous move by momentum ``a`` and projected again."""
    grad2 = x_adv - x_old
    ss = per_image(step_size, x).astype(x.dtype)
    if norm == "linf":
        x1 = x_adv + ss * jnp.sign(grad)
        x1 = jnp.clip(jnp.minimum(jnp.maximum(x1, x - eps), x + eps), 0.0, 1.0)
        x1 = x_adv + (x1 - x_adv) * a + grad2 * (1 - a)
        return jnp.clip(jnp.minimum(jnp.maximum(x1, x - eps), x + eps), 0.0, 1.0)
    e = per_image(jnp.broadcast_to(eps32, x.shape[:1]), x).astype(x.dtype)
    x1 = x_adv + ss * grad / per_image(l2_norms(grad) + 1e-12, grad)
    d = x1 - x
    n = per_image(l2_norms(d), d)
    x1 = jnp.clip(x + d / (n + 1e-12) * jnp.minimum(e, n), 0.0, 1.0)
    x1 = x_adv + (x1 - x_adv) * a + grad2 * (1 - a)
    d = x1 - x
    n = per_image(l2_norms(d), d)
    return jnp.clip(x + d / (n + 1e-12) * jnp.minimum(e, n + 1e-12), 0.0, 1.0)


def _single_run(f, loss, x, y, x_start, eps, norm, steps, rho, unroll, first_index, stop_when_fooled=False):
    """One APGD run from ``x_start`` on every image: ``(fooled (N,), x_fooling (N, ...), first (N,),
    evaluations ())``, ``first`` the evaluation index (``first_index`` for the start point) of the
    first misclassification. ``stop_when_fooled``: the steps end once every image is misclassified
    (a ``while_loop``; ``fooled`` and ``first`` unchanged, ``x_fooling`` the last fooling point so far)."""
    is_check, windows = checkpoints(steps)
    limits = np.floor(windows * float(rho))  # t <= k * rho over integer counts t
    is_check, windows, limits = jnp.asarray(is_check), jnp.asarray(windows), jnp.asarray(limits, jnp.float32)
    n = x.shape[0]
    # torchattacks forms the step size (and the L2 radius of its projection) in float32 whatever the images' dtype.
    eps32 = jnp.asarray(eps, jnp.float32)
    loss0, logits0, grad0 = loss_logits_grad(f, loss, x_start)
    acc0 = jnp.argmax(logits0, axis=1) == y
    no = jnp.full((n,), -1, jnp.int32)
    state = dict(
        x_adv=x_start, x_old=x_start, grad=grad0, x_best=x_start, grad_best=grad0, loss_best=loss0,
        x_fooling=x_start, acc=acc0, first=jnp.where(acc0, no, first_index),
        step_size=jnp.broadcast_to(2.0 * eps32, (n,)),
        loss_steps=jnp.zeros((steps, n), jnp.float32),  # float32 as torchattacks' loss_steps
        best_at_check=loss0, reduced_at_check=jnp.ones((n,), bool),
    )

    def body(i, s):
        a = jnp.where(i > 0, MOMENTUM, 1.0).astype(x.dtype)
        x_adv = _step(s["x_adv"], s["x_old"], s["grad"], x, eps, eps32, s["step_size"], a, norm)
        per, logits, grad = loss_logits_grad(f, loss, x_adv)
        pred_ok = jnp.argmax(logits, axis=1) == y
        first = jnp.where(s["acc"] & ~pred_ok, first_index + 1 + i, s["first"])
        acc = s["acc"] & pred_ok
        wrong = per_image(~pred_ok, x)
        x_fooling = jnp.where(wrong, x_adv, s["x_fooling"])
        loss_steps = s["loss_steps"].at[i].set(per.astype(jnp.float32))
        up = per > s["loss_best"]
        x_best = jnp.where(per_image(up, x), x_adv, s["x_best"])
        grad_best = jnp.where(per_image(up, x), grad, s["grad_best"])
        loss_best = jnp.where(up, per, s["loss_best"])

        # Step-size review (only where is_check[i]); L[j - 1] of j = 0 reads the last row, as torch's L[-1].
        k = windows[i]
        rows = jnp.arange(steps)[:, None]
        rose = loss_steps > jnp.roll(loss_steps, 1, axis=0)
        count = jnp.sum(rose & (rows <= i) & (rows > i - k), axis=0).astype(jnp.float32)
        halve = (count <= limits[i]) | (~s["reduced_at_check"] & (s["best_at_check"] >= loss_best))
        halve = halve & is_check[i]
        step_size = jnp.where(halve, s["step_size"] / 2.0, s["step_size"])
        x_adv = jnp.where(per_image(halve, x), x_best, x_adv)
        grad = jnp.where(per_image(halve, x), grad_best, grad)
        reduced = jnp.where(is_check[i], halve, s["reduced_at_check"])
        best_at_check = jnp.where(is_check[i], loss_best, s["best_at_check"])
        return dict(x_adv=x_adv, x_old=s["x_adv"], grad=grad, x_best=x_best, grad_best=grad_best,
                    loss_best=loss_best, x_fooling=x_fooling, acc=acc, first=first, step_size=step_size,
                    loss_steps=loss_steps, best_at_check=best_at_check, reduced_at_check=reduced)

    if stop_when_fooled:
        done, out = jax.lax.while_loop(lambda c: (c[0] < steps) & jnp.any(c[1]["acc"]),
                                       lambda c: (c[0] + 1, body(c[0], c[1])), (jnp.asarray(0), state))
    else:
        done, out = jnp.asarray(steps), loop(steps, body, state, unroll)
    return ~out["acc"], out["x_fooling"], out["first"], (done + 1).astype(jnp.int32)


def run_apgd(f, x, y, key, eps, *, norm, steps, rho, runs, loss_of_run, x_init=None, unroll=None,
             stop_when_fooled=False) -> APGDResult:
    """``runs`` APGD runs, run j optimising ``loss_of_run(j)`` (a traced int -> ``logits -> (N,)``) on
    the images no earlier run fooled. ``x_init``: run 0's start point (projected into the ball),
    else random. One compiled program: a while loop over runs that ends once every image is fooled.
    ``stop_when_fooled``: each run's steps end then too (:func:`_single_run`)."""
    clean_ok = jnp.argmax(f(x), axis=1) == y

    def one(j, acc, adv, iteration, evaluations):
        start = _start(x, eps, norm, jax.random.fold_in(key, j))
        if x_init is not None:
            start = jnp.where(j == 0, _into_ball(x_init.astype(x.dtype), x, eps, norm), start)
        fooled, x_fooling, first, evals = _single_run(f, loss_of_run(j), x, y, start, eps, norm, steps, rho, unroll,
                                                      1 + j * (steps + 1), stop_when_fooled)
        new = acc & fooled
        return (acc & ~new, jnp.where(per_image(new, x), x_fooling, adv), jnp.where(new, first, iteration),
                evaluations + evals)

    init = (clean_ok, x, jnp.where(clean_ok, -1, 0).astype(jnp.int32), jnp.asarray(0, jnp.int32))
    if runs == 1:
        acc, adv, iteration, evaluations = one(jnp.asarray(0), *init)
    else:
        def more(state):
            return (state[0] < runs) & jnp.any(state[1])

        def body(state):
            return (state[0] + 1, *one(state[0], *state[1:]))

        _, acc, adv, iteration, evaluations = jax.lax.while_loop(more, body, (jnp.asarray(0), *init))
    return APGDResult(adv, ~acc, iteration, evaluations)


def _check_x_init(x_init, x):
    if x_init is not None and getattr(x_init, "shape", None) != x.shape:
        raise ValueError(f"x_init must have the images' shape {x.shape}, got {getattr(x_init, 'shape', None)}")


# ---------------------------------------------------------------- the attacks


def _check_shared_fields(attack) -> None:
    """The checks APGD and APGD-T share: norm, steps, restarts, rho and eps (ValueError naming the field)."""
    check_norm(attack.norm, NORMS)
    check_steps(attack.steps)
    check_count("restarts", attack.restarts)
    check_rho(attack.rho)
    check_nonnegative(eps=attack.eps)


@dataclasses.dataclass(frozen=True)
class APGD:
    """APGD (untargeted). ``eps``: budget in pixel units (L-inf: per pixel; L2: per image over all
    H*W*C values), traceable. ``steps`` per run, ``restarts`` runs (torchattacks' ``n_restarts``),
    ``loss`` "ce" (cross-entropy) or "dlr" (needs >= 3 classes), ``norm`` "linf" or "l2", ``rho`` the
    step-size review's threshold. ``unroll``: the step loop's form (None: base.default_unroll).
    ``stop_when_fooled``: each run ends once every image is misclassified (the adaptive suite's
    setting, where only whether an image falls counts): ``fooled`` and ``iteration`` are unchanged,
    ``x_adv`` is the last fooling point before the stop rather than the run's last (torchattacks'),
    and the steps run in a rolled ``while_loop`` whatever ``unroll`` says.

    ``attack(f, x, y, key=key) -> x_adv``; :meth:`run` also returns which images were fooled and
    when (:class:`APGDResult`). Raises ValueError on a bad hyper-parameter (at construction) or
    bad images / labels (at the call), before any compute."""

    eps: float = 8 / 255
    steps: int = 100
    loss: str = "ce"
    norm: str = "linf"
    restarts: int = 1
    rho: float = 0.75
    unroll: bool | None = None
    stop_when_fooled: bool = False

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown APGD loss {self.loss!r}; valid: {', '.join(LOSSES)}")
        _check_shared_fields(self)

    def __call__(self, f, x, y, key=None, x_init=None):
        return self.run(f, x, y, key=key, x_init=x_init).x_adv

    def run(self, f, x, y, key=None, x_init=None) -> APGDResult:
        """The attack with its per-image outcome; ``x_init`` (N, H, W, C): the first run's start
        point instead of a random one (e.g. to reproduce another implementation's start)."""
        check_inputs(f, x, y)
        _check_x_init(x_init, x)
        if self.loss == "dlr":
            _need_classes(f, x, 3, "the DLR loss")
        key = jax.random.key(0) if key is None else key
        loss = (lambda lg: cross_entropy_per_image(lg, y)) if self.loss == "ce" else (lambda lg: dlr_loss(lg, y))
        return run_apgd(f, x, y, key, self.eps, norm=self.norm, steps=self.steps, rho=self.rho, runs=self.restarts,
                        loss_of_run=lambda j: loss, x_init=x_init, unroll=self.unroll,
                        stop_when_fooled=self.stop_when_fooled)


@dataclasses.dataclass(frozen=True)
class APGDT:
    """APGD-T: targeted DLR runs towards each of the ``targets`` classes ranked highest on the clean
    image after the label (AutoAttack: 9), ``restarts`` runs per target, each on the images still
    correctly classified. ``targets`` must be below the number of classes (checked at the call);
    needs >= 4 classes. Other fields and the contract as :class:`APGD`."""

    eps: float = 8 / 255
    steps: int = 100
    targets: int = 9
    norm: str = "linf"
    restarts: int = 1
    rho: float = 0.75
    unroll: bool | None = None
    stop_when_fooled: bool = False

    def __post_init__(self):
        check_count("targets", self.targets)
        _check_shared_fields(self)

    def __call__(self, f, x, y, key=None, x_init=None):
        return self.run(f, x, y, key=key, x_init=x_init).x_adv

    def run(self, f, x, y, key=None, x_init=None) -> APGDResult:
        check_inputs(f, x, y)
        _check_x_init(x_init, x)
        k = _need_classes(f, x, 4, "the targeted DLR loss")
        if k is not None and self.targets >= k:
            raise ValueError(f"targets must be below the number of classes ({k}), got {self.targets}")
        key = jax.random.key(0) if key is None else key
        ranked = jnp.argsort(f(x), axis=1)  # ascending: column -2 is the top class other than the label

        def loss_of_run(j):
            column = ranked.shape[1] - 2 - j // self.restarts
            target = jnp.take_along_axis(ranked, jnp.broadcast_to(column, (x.shape[0], 1)), axis=1)[:, 0]
            return lambda lg: targeted_dlr_loss(lg, y, target)

        return run_apgd(f, x, y, key, self.eps, norm=self.norm, steps=self.steps, rho=self.rho,
                        runs=self.targets * self.restarts, loss_of_run=loss_of_run, x_init=x_init, unroll=self.unroll,
                        stop_when_fooled=self.stop_when_fooled)


def _need_classes(f, x, least: int, what: str) -> int | None:
    k = num_classes(f, x)
    if k is not None and k < least:
        raise ValueError(f"{what} needs at least {least} classes, the classifier has {k}")
    return k
