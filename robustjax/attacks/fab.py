"""FAB, the Fast Adaptive Boundary attack (Croce & Hein 2020, "Minimally distorted adversarial examples with a
fast adaptive boundary attack"), untargeted and targeted, L-inf, L2 and L1, step for step as torchattacks 3.5.1's
``FAB`` runs it (its copy of AutoAttack's ``fab_pt.py`` and ``fab_projections.py``).

FAB searches the smallest perturbation that changes the prediction. Each step linearises the classifier at the
current point ``x1``: among the candidate classes j it picks the one whose linearised boundary
``f_j - f_y = 0`` is nearest in the attack's norm (distance ``|f_j - f_y| / ||grad(f_j - f_y)||_*``, the dual
norm), projects both ``x1`` and the clean image ``x0`` onto that hyperplane inside the box [0, 1] (the minimum-norm
projections below), and moves to a convex combination of the two projections, each overshot by ``eta``, weighted
towards ``x0`` by ``alpha = min(||d1|| / (||d1|| + ||d2||), alpha_max)``. When the new point is misclassified it is
kept if its norm is the smallest so far, and the iterate steps back towards ``x0`` by the factor ``beta``.
Every run has exactly ``steps`` steps (no early stop, no final search), as in the reference.

Runs: restart 0 starts at the clean image, restart r > 0 at a random point of norm ``eps / 2`` (L-inf: uniform
in the cube; L2, L1: a normal draw scaled), clipped to [0, 1]. Each run attacks only the images that every earlier
run left unbroken; an image is broken when the run found a misclassified point of norm <= ``eps``. The targeted
variant (``fab-t``) makes ``restarts`` runs towards each of the ``targets`` classes ranked highest on the clean
image after the label (AutoAttack: 9), each linearising only ``f_t - f_y``.

Differences from torchattacks, all deliberate: every image is computed in every run and its result discarded if an
earlier run broke it (a fixed-shape compiled program; the run loop ends once all images are broken); random starts
come from ``key``; untargeted runs linearise ``candidates`` classes (default 9: the classes ranked highest by the
current logits at each step, besides the true class), not every class, so that a step costs ``candidates + 1``
backward passes on a 1,000-class model instead of 1,000; with ``candidates >= K - 1`` every class is used, as in
torchattacks (on CIFAR-10 the default is exactly torchattacks' computation).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.attacks.base import (
    check_inputs,
    check_nonnegative,
    check_norm,
    check_steps,
    loop,
    num_classes,
    per_image,
)

NORMS = ("linf", "l2", "l1")
# AutoAttack's FAB eps when none is given; FAB uses eps only as the radius of its random restarts (eps / 2).
DEFAULT_EPS = {"linf": 0.3, "l2": 1.0, "l1": 5.0}
NOT_FOUND = 1e10  # the reference's "no adversarial point yet" norm


class FABResult(NamedTuple):
    """What a FAB run returns.

    ``x_adv`` (N, H, W, C) in [0, 1]: per image the smallest-norm misclassified point the run that broke it found,
    or the clean image when no run broke it (with ``eps`` given: found none of norm <= eps). ``fooled`` (N,) bool:
    misclassified by the attacked view at ``x_adv`` (clean-misclassified images included). ``iteration`` (N,)
    int32: the step that first held a misclassified point within ``eps`` (any norm when ``eps`` is None), 0 for an
    image misclassified clean, run r's (0-based) step i (1-based) is ``r * steps + i``; -1 if never fooled.
    ``norm`` (N,) float: the attack's norm (pixel units, over all H*W*C values) of the smallest misclassifying
    perturbation found for the image: ``||x_adv - x||`` for a fooled image (0 for one misclassified clean), the
    smallest found above ``eps`` for an image not fooled, ``inf`` where none was found. Robust accuracy at a budget
    b (<= eps when eps is given) is the fraction of images with ``norm > b``. ``evaluations`` () int32: the steps
    of the runs made (``steps`` per run; the run loop ends once every image is broken).
    """

    x_adv: jax.Array
    fooled: jax.Array
    iteration: jax.Array
    norm: jax.Array
    evaluations: jax.Array



# ---------------------------------------------------------------- minimum-norm projections


def _search(cond, lb, ub, iters: int):
    """The reference's fixed-length bisection: ``iters`` halvings of [lb, ub] keeping ``cond(lb)`` true and
    ``cond(ub)`` false (cond monotone decreasing); returns lb."""

    def body(_, s):
        lo, hi = s
        mid = (lo + hi) // 2
        c = cond(mid)
        return jnp.where(c, mid, lo), jnp.where(c, hi, mid)

    return jax.lax.fori_loop(0, iters, body, (jnp.asarray(lb), jnp.asarray(ub)))[0]


def _iters(d: int) -> int:
    return math.ceil(math.log2(d)) if d > 1 else 0


def project_linf(t: jax.Array, w: jax.Array, b) -> jax.Array:
    """The smallest-L-inf move ``d`` (D,) with ``w . (t + d) = b`` and ``0 <= t + d <= 1``, for a point ``t`` (D,)
    in [0, 1] and a hyperplane ``w`` (D,), ``b`` scalar. Where the hyperplane misses the box, the box corner move
    that goes furthest towards it. Coordinates with ``w == 0`` do not move.

    Moving every coordinate by ``lambda`` towards the hyperplane, capped by its room to the box ``p_i``, changes
    ``w . z`` by ``-sum_i |w_i| min(lambda, p_i)``, piecewise linear in lambda: sort the rooms, bisect for the
    piece that holds the required change, solve for lambda on it."""
    d_all = t.shape[0]
    side = jnp.where(jnp.dot(w, t) - b >= 0, 1.0, -1.0).astype(t.dtype)
    w, b = w * side, b * side  # now w . t >= b: w . z has to decrease
    moves = w != 0
    up = (w < 0).astype(t.dtype)  # coordinates that decrease w . z by rising to 1
    corner = (up - t) * moves  # the whole room, per coordinate
    room = up - t * (2 * up - 1)  # |corner| (also for w == 0)
    order = jnp.argsort(room)
    need = b - jnp.dot(w, t)  # the required change of w . z (<= 0)
    floor = jnp.dot(w, corner)  # the largest decrease the box allows
    desc = order[::-1]
    w_desc = w[desc]
    slope = jnp.cumsum(jnp.abs(w_desc))  # sum of |w_i| over the coordinates with room >= the k-th largest
    base = jnp.cumsum(-w_desc * corner[desc]) + floor  # the change contributed by the saturated rest
    within_smallest = need - (base[-1] - slope[-1] * room[order[0]]) > 0  # lambda below every room
    between = (need - floor > 0) & ~within_smallest

    def overshoots(k):  # lambda = k-th largest room already decreases w . z too far
        return need - (base[k] - slope[k] * room[order[d_all - 1 - k]]) > 0

    k = _search(overshoots, 0, d_all - 1, _iters(d_all))
    lam_small = jnp.maximum((need - base[-1]) / -slope[-1], 0.0)
    lam = jnp.maximum((need - base[k]) / -slope[k], 0.0)
    d_small = (2 * up - 1) * lam_small
    d_between = jnp.minimum(lam, corner) * up + jnp.maximum(-lam, corner) * (1 - up)
    d = jnp.where(within_smallest, d_small, jnp.where(between, d_between, corner))
    return d * moves


def project_l2(t: jax.Array, w: jax.Array, b) -> jax.Array:
    """The smallest-L2 move ``d`` (D,) with ``w . (t + d) = b`` and ``0 <= t + d <= 1`` (contract as
    :func:`project_linf`; coordinates with ``|w| < 1e-8`` do not move).

    The minimiser is ``d_i = -w_i * min(lambda, r_i)`` (each coordinate follows ``-w`` until it meets the box at
    ``lambda = r_i``): sort the ``r_i``, bisect for the piece of the piecewise-linear ``w . d(lambda)`` that holds
    the required change, solve for lambda on it."""
    d_all = t.shape[0]
    c = jnp.dot(w, t) - b
    side = jnp.where(c >= 0, 1.0, -1.0).astype(t.dtype)
    w, c = w * side, c * side  # now c >= 0: w . d has to be -c
    tiny = jnp.abs(w) < 1e-8
    w_safe = jnp.where(tiny, 1.0, w)
    r = jnp.clip(jnp.maximum(t / w_safe, (t - 1) / w_safe), -1e12, 1e12)
    r = jnp.where(tiny | (r == -1e12), 1e12, r)
    order = jnp.argsort(r)
    rs = r[order]
    rs_next = jnp.concatenate([rs[1:], jnp.zeros((1,), t.dtype)])
    rs = jnp.where(rs == 1e12, 0.0, rs)
    rs_next = jnp.where(rs_next == 1e12, 0.0, rs_next)
    w2 = jnp.square(w)[order]
    w2_all = jnp.sum(w2)
    w2_free = w2_all - jnp.cumsum(w2)  # sum of w_i^2 over the coordinates still moving after the k-th meets the box
    d_box = -(r * w) * ~tiny  # each coordinate at its box limit
    reach = jnp.concatenate([-w2_all * rs[:1], jnp.cumsum((rs - rs_next) * w2_free) - w2_all * rs[0]])
    before_box = reach[0] + c < 0  # no coordinate meets the box
    beyond_box = jnp.dot(d_box, w) + c > 0  # the hyperplane misses the box
    between = ~(before_box | beyond_box)
    k = _search(lambda k: reach[k] + c > 0, 0, d_all - 1, _iters(d_all))
    d_free = -(c / w2_all) * w
    lam = jnp.where(w2_free[k] == 0, 0.0, (reach[k] + c) / w2_free[k] + rs[k])
    d_between = jnp.where(lam > r, d_box, -lam * w)
    d = jnp.where(before_box, d_free, jnp.where(between, d_between, d_box))
    return d * ~tiny


def project_l1(t: jax.Array, w: jax.Array, b) -> jax.Array:
    """The smallest-L1 move ``d`` (D,) with ``w . (t + d) = b`` and ``0 <= t + d <= 1`` (contract as
    :func:`project_linf`; coordinates with ``|w| < 1e-8`` do not move).

    A fractional knapsack: changing coordinate i by one unit of ``w . z`` costs ``1 / |w_i|`` of L1, so the
    coordinates are used whole in decreasing ``|w_i|`` until the next one would overshoot; that one moves
    partly (bisection over the cumulative change)."""
    d_all = t.shape[0]
    c = jnp.dot(w, t) - b
    side = jnp.where(c >= 0, 1.0, -1.0).astype(t.dtype)
    w, c = w * side, c * side
    cost = jnp.minimum(jnp.abs(1 / w), 1e12)
    order = jnp.argsort(cost)
    rank = jnp.argsort(order)
    corner = ((w < 0).astype(t.dtype) - t) * (w != 0)
    gain = jnp.minimum(-w * t, w * (1 - t))[order]  # the change of w . z when a coordinate moves to its corner
    left = jnp.cumsum(jnp.concatenate([c[None], gain]))  # the change still needed after the k cheapest coordinates
    reachable = left[-1] < 0
    k = _search(lambda k: left[k] > 0, 0, d_all + 1, _iters(d_all))
    pivot = order[jnp.minimum(k, d_all - 1)]
    d_reach = jnp.where(rank < k, corner, 0.0).at[pivot].set(-left[k] / w[pivot])
    d = jnp.where(reachable, d_reach, corner)
    return d * (jnp.abs(w) > 1e-8)


PROJECTIONS = {"linf": project_linf, "l2": project_l2, "l1": project_l1}


def norms(v: jax.Array, norm: str) -> jax.Array:
    """Per-row ``norm`` of ``(N, ...)`` -> ``(N,)``."""
    v = v.reshape(v.shape[0], -1)
    if norm == "linf":
        return jnp.max(jnp.abs(v), axis=1)
    if norm == "l2":
        return jnp.sqrt(jnp.sum(jnp.square(v), axis=1))
    return jnp.sum(jnp.abs(v), axis=1)


def _dual_norms(g: jax.Array, norm: str) -> jax.Array:
    """``(N, m, D) -> (N, m)``: the dual norm, which turns a logit difference into a distance in ``norm``."""
    if norm == "linf":
        return jnp.sum(jnp.abs(g), axis=-1)
    if norm == "l2":
        return jnp.sqrt(jnp.sum(jnp.square(g), axis=-1))
    return jnp.max(jnp.abs(g), axis=-1)


# ---------------------------------------------------------------- the linearisation


def _rows_vjp(vjp, classes, k_all, dtype):
    """Input gradients of the logits ``classes`` (N, m): ``(N, m, D)``, one backward pass per column."""
    cot = jax.nn.one_hot(classes, k_all, dtype=dtype)
    g = jax.vmap(lambda c: vjp(c)[0], in_axes=1, out_axes=1)(cot)
    return g.reshape(g.shape[0], g.shape[1], -1)


def untargeted_differences(f, x1, y, candidates: int | None):
    """``(df (N, m), dg (N, m, D))``: ``f_j - f_y`` and its input gradient at ``x1`` for the candidate classes j:
    the ``candidates`` classes other than y ranked highest by the logits at ``x1`` (every other class when None or
    >= K - 1), in increasing class order (the reference's tie-breaking)."""
    logits, vjp = jax.vjp(f, x1)
    k_all = logits.shape[1]
    m = k_all - 1 if candidates is None else min(candidates, k_all - 1)
    others = jnp.where(jax.nn.one_hot(y, k_all, dtype=bool), -jnp.inf, logits)
    cls = jnp.sort(jax.lax.top_k(others, m)[1], axis=1)
    g = _rows_vjp(vjp, jnp.concatenate([y[:, None], cls], axis=1), k_all, logits.dtype)
    z_y = jnp.take_along_axis(logits, y[:, None], axis=1)
    return jnp.take_along_axis(logits, cls, axis=1) - z_y, g[:, 1:] - g[:, :1]


def targeted_differences(f, x1, y, target):
    """``(df (N, 1), dg (N, 1, D))``: ``f_t - f_y`` and its input gradient at ``x1``, one backward pass."""
    logits, vjp = jax.vjp(f, x1)
    k_all = logits.shape[1]
    cot = jax.nn.one_hot(target, k_all, dtype=logits.dtype) - jax.nn.one_hot(y, k_all, dtype=logits.dtype)
    g = vjp(cot)[0].reshape(x1.shape[0], 1, -1)
    df = -(jnp.take_along_axis(logits, y[:, None], axis=1) - jnp.take_along_axis(logits, target[:, None], axis=1))
    return df, g


# ---------------------------------------------------------------- one run


def _random_start(x, radius, norm, key):
    """A random point at ``radius`` (per image, in ``norm``) from ``x``, clipped to [0, 1] (the reference's draw:
    uniform in the cube for L-inf, normal for L2 and L1)."""
    if norm == "linf":
        t = jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0)
    else:
        t = jax.random.normal(key, x.shape, x.dtype)
    return jnp.clip(x + per_image(radius, x) * t / per_image(norms(t, norm), t) * 0.5, 0.0, 1.0)


def _single_run(f, x, y, x_start, differences, norm, steps, alpha_max, eta, beta, limit, first_index, unroll):
    """One FAB run of ``steps`` steps from ``x_start`` on every image. Returns ``(x_best, res, first)``: the
    smallest-norm misclassified iterate (the clean image where none), its norm (``NOT_FOUND`` where none), and the
    first step index (counted from ``first_index``) that held a misclassified point of norm <= ``limit``."""
    n = x.shape[0]
    x0 = x.reshape(n, -1)
    project = jax.vmap(PROJECTIONS[norm])
    state = (x_start, x, jnp.full((n,), NOT_FOUND, x.dtype), jnp.full((n,), -1, jnp.int32))

    def body(i, s):
        x1, x_best, res, first = s
        df, dg = differences(x1)
        dist = jnp.abs(df) / (1e-12 + _dual_norms(dg, norm))
        pick = jnp.argmin(dist, axis=1)
        w = jnp.take_along_axis(dg, pick[:, None, None], axis=1)[:, 0]
        b = -jnp.take_along_axis(df, pick[:, None], axis=1)[:, 0] + jnp.sum(w * x1.reshape(n, -1), axis=1)
        d3 = project(jnp.concatenate([x1.reshape(n, -1), x0]), jnp.concatenate([w, w]), jnp.concatenate([b, b]))
        a0 = jnp.maximum(norms(d3, norm), 1e-8)
        a1, a2 = a0[:n], a0[n:]
        alpha = per_image(jnp.minimum(jnp.maximum(a1 / (a1 + a2), 0.0), alpha_max), x).astype(x.dtype)
        d1, d2 = d3[:n].reshape(x.shape), d3[n:].reshape(x.shape)
        x1 = jnp.clip((x1 + eta * d1) * (1 - alpha) + (x + d2 * eta) * alpha, 0.0, 1.0)
        adv = jnp.argmax(f(x1), axis=1) != y
        t = norms(x1 - x, norm)
        better = adv & (t < res)
        x_best = jnp.where(per_image(better, x), x1, x_best)
        res = jnp.where(better, t, res)
        first = jnp.where((first < 0) & adv & (t <= limit), first_index + i, first)
        x1 = jnp.where(per_image(adv, x), x + (x1 - x) * beta, x1)
        return x1, x_best, res, first

    _, x_best, res, first = loop(steps, body, state, unroll)
    return x_best, res, first


def run_fab(f, x, y, key, eps, *, norm, steps, runs, restarts, differences_of_run, alpha_max, eta, beta,
            unroll=None) -> FABResult:
    """``runs`` FAB runs, run j linearising ``differences_of_run(j)`` (a traced int -> ``x1 -> (df, dg)``) and
    starting at the clean image when ``j % restarts == 0``, else at a random point; each run attacks the images
    no earlier run broke. One compiled program: a while loop over runs that ends once every image is broken."""
    clean_ok = jnp.argmax(f(x), axis=1) == y
    limit = jnp.inf if eps is None else eps
    radius = jnp.minimum(NOT_FOUND, DEFAULT_EPS[norm] if eps is None else eps)
    radius = jnp.broadcast_to(jnp.asarray(radius, x.dtype), x.shape[:1])

    def one(j, acc, adv, iteration, best):
        rand = _random_start(x, radius, norm, jax.random.fold_in(key, j))
        start = jnp.where(j % restarts == 0, x, rand)
        x_best, res, first = _single_run(f, x, y, start, differences_of_run(j), norm, steps, alpha_max, eta, beta,
                                         limit, 1 + j * steps, unroll)
        found = res < NOT_FOUND
        broken = acc & found & (jnp.argmax(f(x_best), axis=1) != y) & (res <= limit)
        best = jnp.where(acc & found, jnp.minimum(best, res), best)
        return (acc & ~broken, jnp.where(per_image(broken, x), x_best, adv), jnp.where(broken, first, iteration),
                best)

    init = (clean_ok, x, jnp.where(clean_ok, -1, 0).astype(jnp.int32),
            jnp.where(clean_ok, jnp.inf, 0.0).astype(x.dtype))
    if runs == 1:
        made = jnp.asarray(1)
        acc, adv, iteration, best = one(jnp.asarray(0), *init)
    else:
        def more(state):
            return (state[0] < runs) & jnp.any(state[1])

        def body(state):
            return (state[0] + 1, *one(state[0], *state[1:]))

        made, acc, adv, iteration, best = jax.lax.while_loop(more, body, (jnp.asarray(0), *init))
    return FABResult(adv, ~acc, iteration, best, (made * steps).astype(jnp.int32))


# ---------------------------------------------------------------- the attack


def _check_count(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1{' or None' if allow_none else ''}, got {value!r}")


def _check_fraction(name: str, value) -> None:
    check_nonnegative(**{name: value})
    if isinstance(value, (int, float, np.floating)) and float(value) > 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


@dataclasses.dataclass(frozen=True)
class FAB:
    """FAB (module docstring), untargeted or (``targeted=True``, registry name ``fab-t``) over the top ``targets``
    classes. Defaults are AutoAttack's (Croce & Hein 2020): ``steps=100``, ``alpha_max=0.1``, ``eta=1.05``,
    ``beta=0.9``, ``targets=9``, and ``restarts`` None meaning AutoAttack's: 5 for untargeted FAB (its "plus"
    version), 1 per target for FAB-T (its "standard" version forces 1). torchattacks 3.5.1 defaults to 10 steps.

    ``norm``: "linf", "l2" or "l1", the norm minimised (pixel units; L2 and L1 over all H*W*C values). ``eps``:
    None, or a budget in that norm (traceable): an image counts as broken only when a point of norm <= eps was
    found, else its clean image is returned (as AutoAttack's and torchattacks' FAB with eps); eps also sets the
    random restarts' radius eps / 2 (None: AutoAttack's 0.3, 1 or 5 for L-inf, L2, L1). ``candidates``: the
    classes an untargeted step linearises besides the label (the top ones by the current logits; None: all;
    default 9, so a step costs 2 forward and 10 backward passes whatever the number of classes). ``unroll``: the
    step loop's form (None: base.default_unroll).

    ``attack(f, x, y, key=key) -> x_adv``; :meth:`run` also returns which images were fooled, when, and the norm
    of the smallest perturbation found (:class:`FABResult`). Raises ValueError on a bad hyper-parameter (at
    construction: unknown norm, steps / restarts / targets / candidates not ints >= 1, negative eps, eta, or
    alpha_max / beta outside [0, 1]) or bad images / labels / too few classes for ``targets`` (at the call),
    before any compute."""

    norm: str = "linf"
    eps: float | None = None
    steps: int = 100
    restarts: int | None = None
    alpha_max: float = 0.1
    eta: float = 1.05
    beta: float = 0.9
    targeted: bool = False
    targets: int = 9
    candidates: int | None = 9
    unroll: bool | None = None

    def __post_init__(self):
        check_norm(self.norm, NORMS, "FAB")
        check_steps(self.steps)
        _check_count("restarts", self.restarts, allow_none=True)
        _check_count("targets", self.targets)
        _check_count("candidates", self.candidates, allow_none=True)
        check_nonnegative(eps=self.eps, eta=self.eta)
        _check_fraction("alpha_max", self.alpha_max)
        _check_fraction("beta", self.beta)
        if not isinstance(self.targeted, (bool, np.bool_)):
            raise ValueError(f"targeted must be a bool, got {self.targeted!r}")

    @property
    def n_restarts(self) -> int:
        """The restarts in force: ``restarts``, or AutoAttack's (5 untargeted, 1 per target)."""
        return self.restarts if self.restarts is not None else (1 if self.targeted else 5)

    def __call__(self, f, x, y, key=None):
        return self.run(f, x, y, key=key).x_adv

    def run(self, f, x, y, key=None) -> FABResult:
        check_inputs(f, x, y)
        key = jax.random.key(0) if key is None else key
        restarts = self.n_restarts
        shared = dict(norm=self.norm, steps=self.steps, restarts=restarts, alpha_max=self.alpha_max, eta=self.eta,
                      beta=self.beta, unroll=self.unroll)
        if not self.targeted:
            def untargeted(j):
                return lambda v: untargeted_differences(f, v, y, self.candidates)

            return run_fab(f, x, y, key, self.eps, runs=restarts, differences_of_run=untargeted, **shared)
        k = num_classes(f, x)
        if k is not None and self.targets >= k:
            raise ValueError(f"targets must be below the number of classes ({k}), got {self.targets}")
        ranked = jnp.argsort(f(x), axis=1)  # ascending: column -2 is the top class other than the label

        def targeted(j):
            column = ranked.shape[1] - 2 - j // restarts
            target = jnp.take_along_axis(ranked, jnp.broadcast_to(column, (x.shape[0], 1)), axis=1)[:, 0]
            return lambda v: targeted_differences(f, v, y, target)

        return run_fab(f, x, y, key, self.eps, runs=self.targets * restarts, differences_of_run=targeted, **shared)
