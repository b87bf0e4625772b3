"""The adaptive suite (``--attack adaptive``): an ordered list of (attack, threat model) members
run per image with best-adversarial semantics, spending compute only on images still standing.

Why: the honest figure is the per-image worst case, and most images break early, so an image that
is misclassified clean, or already broken at some step of some member, needs no more compute.

Semantics (differs from the grid's paper-reproduction cells, which keep torchattacks' final
iterate): at each budget, images misclassified clean are never attacked; member 1 attacks every
other image; each later member attacks only the images every earlier member left standing,
re-batched (one compiled program per member and batch shape, the budget a
traced argument). An image counts as broken by a member if the *defended* model ``f(d(x))``
misclassified it at any step. iFGSM/BIM and PGD run as a tracked loop: ``lax.while_loop`` (no
host round trip) for :data:`SEGMENT` steps, each image stopping at its first fooling step, after
which the host gathers the images still standing into full batches (an image broken at step 1
costs one step, whatever its batch mates do; the last batch is padded, one compiled shape).
APGD/APGD-T/Square use their own best-point tracking (``run``); other attacks run once and their
final point is scored. Randomness is per image (the key folded with the image's row and
the member's index), so outcomes do not depend on batching, gathering or resume point.

Members are strings ``ATTACK[:key=value...]@THREAT`` (``pgd:steps=20@bpda``) or dicts
``{"attack": ..., "threat": ..., **hparams}``; config entry ``{"name": "adaptive", "members": [...]}``.
Minimum-norm attacks (CW, DeepFool) have no budget and cannot join: ValueError before compute.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.attacks.base import loss_grad
from robustjax.attacks.threat import THREATS, attacker_view

NAME = "adaptive"
DEFAULT = ("pgd@through", "pgd@bpda", "pgd@eot", "apgd-ce@through", "apgd-ce@bpda", "apgd-t@through", "square@through")
TRACKED = ("ifgsm", "bim", "pgd")


@dataclasses.dataclass(frozen=True)
class Member:
    attack: str
    hparams: tuple
    threat: str

    @property
    def label(self) -> str:
        return self.attack + "".join(f":{k}={v}" for k, v in self.hparams) + f"@{self.threat}"


def parse_member(m) -> Member:
    """``"pgd:steps=20@bpda"`` or ``{"attack": "pgd", "threat": "bpda", "steps": 20}`` -> Member."""
    from robustjax.eval.config import _attack

    if isinstance(m, str):
        if "@" not in m:
            raise ValueError(f"adaptive suite member {m!r} needs a threat model: ATTACK[:key=value]@THREAT (e.g. pgd@bpda)")
        spec, threat = m.rsplit("@", 1)
        a = _attack(spec)
        name, hp = (a, {}) if isinstance(a, str) else (a.pop("name"), a)
    else:
        d = dict(m)
        if "attack" not in d or "threat" not in d:
            raise ValueError(f"adaptive suite member {d} needs 'attack' and 'threat'")
        name, threat = d.pop("attack"), d.pop("threat")
        hp = d
    return Member(name, tuple(sorted(hp.items())), threat)


def members(hparams: dict, comp, defense=None) -> list[Member]:
    """The suite's members for ``defense``, validated (ValueError before any compute).

    Without a ``members`` entry: :data:`DEFAULT` restricted to the attacks ``comp`` knows, ``eot``
    only for randomised defenses; with no defense every threat model attacks the same function,
    so one member per attack is kept."""
    hp = dict(hparams)
    given = hp.pop("members", None)
    if hp:
        raise ValueError(f"the adaptive suite takes only 'members', got {sorted(hp)}")
    names = comp.attack_names()
    if given is None:
        out = [parse_member(m) for m in DEFAULT]
        out = [m for m in out if names is None or m.attack in names]
        if defense is not None and not getattr(defense, "randomised", False):
            out = [m for m in out if m.threat != "eot"]
    else:
        if isinstance(given, str):
            given = [g for g in given.split(",") if g.strip()]
        out = [parse_member(m) for m in given]
        if not out:
            raise ValueError("the adaptive suite needs at least one member")
    for m in out:
        if names is not None and m.attack not in names:
            raise ValueError(f"unknown adaptive suite member attack {m.attack!r} in {m.label!r}; valid: {', '.join(names)}")
        if m.threat not in THREATS:
            raise ValueError(f"unknown threat model {m.threat!r} in adaptive suite member {m.label!r}; valid: {', '.join(THREATS)}")
        if comp.minimum_norm(m.attack):
            raise ValueError(f"minimum-norm attack {m.attack!r} cannot join the adaptive suite: it has no eps budget, so its "
                             "outcomes cannot be combined with budgeted members; run it as its own cell")
        comp.get_attack(m.attack, eps=1 / 255, **dict(m.hparams))  # bad hyper-parameters fail here
    if defense is None or getattr(defense, "spec", None) == "none":
        seen, keep = set(), []
        for m in out:
            if (m.attack, m.hparams) not in seen:
                seen.add((m.attack, m.hparams))
                keep.append(dataclasses.replace(m, threat="oblivious"))
        out = keep
    return out


SEGMENT = 2  # steps a tracked member runs between two gatherings of its standing images


def _step_size(attack, eps):
    steps = int(getattr(attack, "steps", 10))
    alpha = getattr(attack, "alpha", None)
    return steps, ((eps if steps == 1 else eps / 4) if alpha is None else alpha)


def _image_context(g, defense, member: Member, get_attack, eot_samples: int, index: int, key, row, eps):
    """One image's ``(score, view, attack, attack key)``: randomness folded from ``key`` with the
    image's row, then the member's ``index``, so it does not depend on the batch it runs in."""
    dkey, akey = jax.random.split(jax.random.fold_in(jax.random.fold_in(key, row), index))

    def score(xs):
        return jnp.argmax(g(defense(xs, dkey)), axis=-1).astype(jnp.int32)

    view = attacker_view(member.threat, g, defense, dkey, eot_samples)
    return score, view, get_attack(member.attack, eps=eps, **dict(member.hparams)), akey


def tracked_program(f, defense, member: Member, get_attack, eot_samples: int, index: int):
    """``(advance, steps)`` for an iFGSM/BIM/PGD member of ``steps`` steps, per image (vmapped):

    ``advance(params, x, y, rows, key, eps, xa, step, pred, i0, stop) -> (xa, step, pred, iters)``
    runs steps ``i0 + 1 .. stop`` from ``xa`` (a ``lax.while_loop``, no host round trip), each image
    stopping at its first fooling step, which it keeps as its adversarial point (``step`` its index,
    -1 while standing; ``pred`` the defended model's prediction there); ``iters`` the steps it ran.
    At ``i0 == 0`` the state passed in is ignored and each image starts from its own starting point
    (PGD's random start), ``step`` 0 where that already fools ``f(d(.))``: one program per member and
    batch shape, the start a branch taken once. The host gathers the images still standing between
    two calls."""
    from robustjax.eval.runner import _with_state

    steps, _ = _step_size(get_attack(member.attack, eps=1 / 255, **dict(member.hparams)), 1 / 255)

    def advance(params, x, y, rows, key, eps, xa, step, pred, i0, stop):
        g = f if params is None else _with_state(f, params)

        def start_one(xi, yi, row):
            xi, yi = xi[None], yi[None]
            score, _, attack, akey = _image_context(g, defense, member, get_attack, eot_samples, index, key, row, eps)
            x0 = xi
            if getattr(attack, "random_start", False):
                x0 = jnp.clip(xi + jax.random.uniform(akey, xi.shape, xi.dtype, -1.0, 1.0) * eps, 0.0, 1.0)
            p = score(x0)
            return x0[0], jnp.where(p != yi, 0, -1)[0].astype(jnp.int32), p[0]

        def start(_):
            x0, s0, p0 = jax.vmap(start_one)(x, y, rows)
            return x0.astype(xa.dtype), s0.astype(step.dtype), p0.astype(pred.dtype)

        xa, step, pred = jax.lax.cond(i0 == 0, start, lambda _: (xa, step, pred), None)

        def one(xi, yi, row, ai, si, pi):
            xi, yi, ai = xi[None], yi[None], ai[None]
            score, view, attack, _ = _image_context(g, defense, member, get_attack, eot_samples, index, key, row, eps)
            _, alpha = _step_size(attack, eps)

            def cond(s):
                return (s[0] < stop) & (s[2] < 0)

            def body(s):
                i, xc, _, _ = s
                grad = loss_grad(view, xc, yi)
                xn = jnp.clip(jnp.clip(xc + alpha * jnp.sign(grad), xi - eps, xi + eps), 0.0, 1.0)
                p = score(xn)[0]
                return i + 1, xn, jnp.where(p != yi[0], i + 1, -1).astype(jnp.int32), p

            i, xc, s, p = jax.lax.while_loop(cond, body, (i0, ai, si, pi))
            return xc[0], s, p, i - i0

        return jax.vmap(one)(x, y, rows, xa, step, pred)

    return advance, steps


def member_program(f, defense, member: Member, get_attack, eot_samples: int, index: int):
    """``program(params, x, y, rows, key, eps) -> (broken[B], pred[B], step[B], iters[B])`` for a
    member that is not tracked (APGD/APGD-T/Square with their own best-point tracking, or any
    other attack's final point): ``eps`` a traced scalar, randomness per image."""
    from robustjax.eval.runner import _attack_with_step, _with_state

    def program(params, x, y, rows, key, eps):
        g = f if params is None else _with_state(f, params)

        def one(xi, yi, row):
            xi, yi = xi[None], yi[None]
            score, view, attack, akey = _image_context(g, defense, member, get_attack, eot_samples, index, key,
                                                       row, eps)
            xa, step = _attack_with_step(attack, view, xi, yi, akey)
            broken = score(xa) != yi
            step = jnp.where(broken, step, -1)
            iters = jnp.full((1,), int(getattr(attack, "steps", getattr(attack, "queries", 1))), jnp.int32)
            return broken[0], score(xa)[0], step[0], iters[0]

        return jax.vmap(one)(x, y, rows)

    return program


def chunks(rows: np.ndarray, batch: int):
    """``(count, padded rows)`` pieces of ``rows``: batches of ``batch``, the last one padded with
    its first row, so every call has the one compiled shape (compiling a shape costs more than
    the padding saves: a fixed cost either way, and on CPU a compilation is hundreds of passes)."""
    for lo in range(0, len(rows), batch):
        r = rows[lo:lo + batch]
        yield len(r), np.concatenate([r, np.full(batch - len(r), r[0], r.dtype)])


def run_tracked(advance, steps: int, params, X, Y, rows, key, eps, batch: int):
    """A tracked member on the images ``rows``: ``(broken, pred, step, passes)`` over ``rows``.

    Every :data:`SEGMENT` steps the images not yet broken are gathered into full batches
    (:func:`chunks`), so a broken image costs nothing more and a batch is never held back by its
    last standing image; ``passes`` counts forward + backward passes of the batches as run
    (padding included)."""
    n = len(rows)
    xa = X[rows]  # a copy (X is float32); ignored by the first call, which starts each image itself
    step = np.full(n, -1, np.int32)
    pred = np.zeros(n, np.int32)
    e = np.float32(eps)
    passes, done = 0, 0
    while done < steps:
        active = np.flatnonzero(step < 0)
        if not len(active):
            break
        stop = min(done + SEGMENT, steps)
        for count, p in chunks(active, batch):
            r = rows[p]
            out = advance(params, X[r], Y[r], r, key, e, xa[p], step[p], pred[p], np.int32(done), np.int32(stop))
            a, s, q, it = (np.asarray(o) for o in out)
            xa[p[:count]], step[p[:count]], pred[p[:count]] = a[:count], s[:count], q[:count]
            passes += len(p) * int(it.max(initial=0))
        done = stop
    return step >= 0, pred, step, passes


def run_suite(runner, job, f, ds, resize, batch: int) -> list[tuple[dict, dict]]:
    """One suite cell over ``ds`` (the runner's Job with attack ``adaptive``); (record, outcome arrays).

    The record adds ``suite``: per member its label, and per budget the images it attacked, broke,
    and the model passes it spent (images in each compiled call, padding included, x iterations
    run: forward + backward for gradient members)."""
    from robustjax.eval import precision as _precision
    from robustjax.eval.runner import _cell_arrays, _decode_cache, _params

    cfg, comp, mesh = runner.cfg, runner.comp, runner.mesh
    prec = cfg.get("precision", _precision.DEFAULT)
    f = _precision.classifier(f, prec)
    defense = comp.get_defense(job.defenses[0])
    ms = members(dict(job.hparams), comp, defense)
    n = len(ds)
    images = _decode_cache(ds, resize)  # the grid's decoded images: the suite decodes nothing again
    read = images.get if images is not None else (lambda i: resize(ds.read(i)))
    X = np.stack([read(i) for i in range(n)]).astype(np.float32) / 255.0
    Y = np.asarray(ds.labels, np.int32)
    params = _params(f)
    key = jax.random.PRNGKey(int(cfg.seed))
    t0 = time.perf_counter()

    def clean_program(p, x, rows):
        g = f if p is None else _with(f, p)

        def one(xi, row):
            dkey = jax.random.split(jax.random.fold_in(key, row))[0]
            return jnp.argmax(g(defense(xi[None], dkey)), -1)[0].astype(jnp.int32)

        return jax.vmap(one)(x, rows)

    clean_fn = jax.jit(_precision.program(clean_program, prec))
    clean = np.empty(n, np.int32)
    for count, r in chunks(np.arange(n, dtype=np.int32), batch):
        clean[r[:count]] = np.asarray(clean_fn(params, X[r], r))[:count]
    eps_all = [float(e) for e in cfg.eps]
    preds = {e: clean.copy() for e in eps_all}
    steps = {e: np.full(n, -1, np.int32) for e in eps_all}
    suite = [{"member": m.label, "attacked": [], "broken": [], "passes": []} for m in ms]

    def compile_member(i, m):
        """``attack_images(rows, eps) -> (broken, pred, step, passes)`` over ``rows`` for member ``m``."""
        def jit(fn):
            return jax.jit(_precision.program(fn, prec))

        if m.attack in TRACKED:
            advance, steps_m = tracked_program(f, defense, m, comp.get_attack, int(cfg.eot_samples), i)
            advance = jit(advance)
            return lambda rows, e: run_tracked(advance, steps_m, params, X, Y, rows, key, e, batch)
        program = jit(member_program(f, defense, m, comp.get_attack, int(cfg.eot_samples), i))

        def attack_images(rows, e):
            broken, pred, step = np.zeros(len(rows), bool), np.empty(len(rows), np.int32), np.empty(len(rows), np.int32)
            passes = 0
            for count, p in chunks(np.arange(len(rows)), batch):
                r = rows[p]
                b_, p_, s_, it = (np.asarray(a)[:count] for a in program(params, X[r], Y[r], r, key, np.float32(e)))
                broken[p[:count]], pred[p[:count]], step[p[:count]] = b_, p_, s_
                passes += batch * int(it.max(initial=0))
            return broken, pred, step, passes

        return attack_images

    attack_fns = [compile_member(i, m) for i, m in enumerate(ms)]
    for e in eps_all:
        if e == 0:
            continue
        standing = np.flatnonzero(clean == Y).astype(np.int32)
        for i, attack_images in enumerate(attack_fns):
            broken, pred, step, passes = attack_images(standing, e)
            preds[e][standing[broken]] = pred[broken]
            steps[e][standing[broken]] = step[broken]
            for k, v in (("attacked", len(standing)), ("broken", int(broken.sum())), ("passes", passes)):
                suite[i][k].append(v)
            standing = standing[~broken]
    run_s = time.perf_counter() - t0
    attacked = [e for e in eps_all if e > 0]
    stack = (lambda d: np.stack([d[e] for e in attacked])) if attacked else (lambda d: np.zeros((0, n), np.int32))
    one_batch = {"clean_pred": clean, "adv_pred": stack(preds), "step": stack(steps), "norm": np.zeros(n, np.float32)}
    arr = _cell_arrays([one_batch], np.asarray(eps_all, np.float64), Y, ds.ids, False)
    correct = [int(c) for c in (arr["pred"] == Y[None, :]).sum(axis=1)]
    import datetime
    import platform

    rec = {"format": 2, "n_images": n, "eps": eps_all, "eps_255": [round(e * 255, 3) for e in eps_all], "correct": correct,
           "accuracy": [c / n for c in correct], "suite": suite, "semantics": "adaptive: best adversarial per image, any step",
           "timing": {"compile_s": 0.0, "run_s": round(run_s, 3), "first_batch_s": round(run_s, 3), "per_image_s": run_s / n,
                      "per_image_per_eps_s": run_s / n / max(1, sum(e > 0 for e in eps_all)), "defenses_in_program": 1,
                      "resumed_batches": 0},
           "budget": "linf", "batch_size": batch, **mesh.describe(), "host": platform.node(),
           "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    return [(rec, arr)]


def _with(f, p):
    from robustjax.eval.runner import _with_state

    return _with_state(f, p)
