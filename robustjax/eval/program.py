"""The per-image program body both executors compile: keys, defended prediction, attack with its step count.

Every program is a function of one image ``vmap``-ped over the batch: the image's keys come from
its row (:func:`robustjax.keys.image_keys`), so its attack, its defense draws and its outcome do not
depend on the batch size, the device count, the gathering of standing images or the resume point
(the batched model and defense still run as one batch). The classifier's parameter state is an
argument (``params``), placed on the devices once per model rather than baked into every program.
"""

from __future__ import annotations

import copy
import dataclasses
import functools

import jax
import jax.numpy as jnp

from robustjax.attacks.base import l2_norms, loss_grad
from robustjax.attacks.iterative import advance, is_iterative, point
from robustjax.attacks.threat import attacker_view
from robustjax.eval.components import accepts_key
from robustjax.eval.scoring import Scoring, draw_preds, representative
from robustjax.keys import image_keys


def params_of(f):
    """The parameter state of a :class:`robustjax.models.Classifier` (``graphdef``/``state``), else None."""
    return f.state if hasattr(f, "graphdef") and hasattr(f, "state") else None


def with_state(f, state):
    """A copy of classifier ``f`` whose parameters are ``state`` (e.g. traced inside jit); ``f`` for None."""
    if state is None:
        return f
    g = copy.copy(f)
    g.state = state
    return g


def attack_with_step(attack, view, x, y, key):
    """``(x_adv, step[B] int32, evaluations)``: an attack with a ``run`` method reporting ``iteration``
    (APGD) or ``queries`` (Square) gives its first fooling evaluation, any other attack -1;
    ``evaluations``: the model evaluations the run reports having made (APGD), else None."""
    run = getattr(attack, "run", None)
    if callable(run):
        res = run(view, x, y, key=key) if accepts_key(run) else run(view, x, y)
        step = getattr(res, "iteration", getattr(res, "queries", None))
        if hasattr(res, "x_adv") and step is not None:
            return res.x_adv, jnp.where(res.fooled, step, -1).astype(jnp.int32), getattr(res, "evaluations", None)
    x_adv = attack(view, x, y, key=key) if accepts_key(attack) else attack(view, x, y)
    return x_adv, jnp.full((x.shape[0],), -1, jnp.int32), None


# attack options that couple the images of a batch, and their per-image setting; the plan refuses them
BATCH_COUPLED = {"abort_early": False}


def per_image_attack(attack):
    """``attack`` as the per-image programs run it: an option that couples the images of a batch
    (:data:`BATCH_COUPLED`) is turned off (C&W's ``abort_early``, checked on the batch's total cost:
    per image it would stop an image the first time its own cost rises, a weaker attack; off, C&W
    runs every step and keeps its best point, and an image's result does not depend on its batch)."""
    fields = getattr(attack, "__dataclass_fields__", {})
    coupled = {k: v for k, v in BATCH_COUPLED.items() if k in fields}
    return dataclasses.replace(attack, **coupled) if coupled else attack


def suite_attack(attack, defense):
    """``attack`` as a suite member runs it: with no defense the attacker's view is the scored model
    itself, so an attack that can end once every image is fooled (``stop_when_fooled``: APGD,
    APGD-T) does; only whether an image falls counts there. Behind a defense the view (a surrogate,
    BPDA's straight-through sum, one draw) can disagree with the scored model, so the attack runs whole."""
    if getattr(defense, "spec", None) == "none" and "stop_when_fooled" in getattr(attack, "__dataclass_fields__", {}):
        return dataclasses.replace(attack, stop_when_fooled=True)
    return attack


def to_uint8(x):
    """Images in [0, 1] as uint8 ``round(x * 255)`` (clipped to [0, 1] first)."""
    return jnp.round(jnp.clip(x, 0.0, 1.0) * 255).astype(jnp.uint8)


def grid_program(f, defenses, make_attack, threat: str, n_attacked: int, eot_samples: int, minimum_norm: bool = False,
                 scorings=None, images: bool = False):
    """``program(params, x, y, key, rows, eps) -> (clean_pred[D, B], adv_pred[E, D, B], step[E, D, B],
    norm[B], grad_norm[B], clean_draws[D, K, B], adv_draws[E, D, K, B])`` for one grid job: its
    attack's final iterate at each budget.

    ``x`` (B,S,S,3) in [0,1], ``y`` (B,) int, ``rows`` (B,) int32 the images' positions in the
    evaluated set, ``eps`` (E,) the non-zero budgets, traced and vmapped (one compilation serves
    the grid). ``make_attack(eps)`` builds the attack (``make_attack()`` for a minimum-norm one).
    ``defenses``: the D defenses the adversarial examples are scored under, always as the defended
    model ``f(d(x_adv))``; the attacker's view (``threat``) differentiates the first.

    ``scorings``: per defense its :class:`robustjax.eval.scoring.Scoring` (None: one draw each, the
    scoring draws independent of the attacker's); ``K`` the largest draw count (a defense of fewer
    draws repeats its last). Outputs: ``clean_pred`` the defended model's class on the clean images
    and ``adv_pred`` at each budget, under the all-draws criterion
    (:func:`robustjax.eval.scoring.representative`: the label only if every draw is correct), and
    ``clean_draws`` / ``adv_draws`` every draw's class; with ``images`` an eighth output, the uint8
    images of ``--save-adversarials`` (``clean`` [B, ...], ``clean_defended`` [B, D, ...],
    ``adversarial`` [B, E, ...], ``defended`` [B, E, D, ...]; the defense's output on the first
    scoring draw); ``step`` the attack's first fooling evaluation
    where it reports one (-1 otherwise and where not broken); ``norm`` the L2 norm of the perturbation
    (minimum-norm attacks, else 0); ``grad_norm`` the L2 norm of the attacker view's cross-entropy
    gradient at the clean image (through and eot only, else 0), for the gradient-masking check.

    ``minimum_norm`` (CW, DeepFool): the attack runs once, without a budget; ``eps`` are L2 bounds in
    pixel units: an image counts as broken at bound b only if the attack fooled the defended model
    with a perturbation of L2 norm <= b; otherwise its clean prediction counts (Räber et al. 2025's
    protocol, as ``robustjax.attacks.l2_bounded_accuracy``).
    """
    D = len(defenses)
    scorings = list(scorings) if scorings is not None else [Scoring()] * D
    K = max(s.draws for s in scorings)

    def program(params, x, y, key, rows, eps):
        g = with_state(f, params)

        def per_image(xi, yi, row):
            dkey, akey = image_keys(key, row)
            skeys = [s.keys(key, row, dkey) for s in scorings]
            out, shown = body(g, xi[None], yi[None], dkey, akey, skeys, eps)
            return jax.tree.map(lambda a: a[..., 0], out), shown

        out, shown = jax.vmap(per_image)(x, y, rows)
        clean_pred, adv_pred, step, norm, grad_norm, clean_draws, adv_draws = out
        move = functools.partial(jnp.moveaxis, source=0, destination=-1)  # image axis last
        out = (clean_pred.T, move(adv_pred), move(step), norm, grad_norm, move(clean_draws), move(adv_draws))
        return (*out, shown) if images else out

    def body(g, x, y, dkey, akey, skeys, eps):
        B = x.shape[0]

        def preds(xs):  # (D, B) int32 under the all-draws criterion, and every draw (D, K, B)
            draws = []
            for d, keys in zip(defenses, skeys):
                dr = draw_preds(g, d, keys, xs)
                draws.append(jnp.concatenate([dr, jnp.repeat(dr[-1:], K - dr.shape[0], axis=0)]))
            draws = jnp.stack(draws)
            return jax.vmap(lambda dr: representative(dr, y))(draws), draws

        def defended(xs):  # (D, B, ...): the defenses' outputs on their first scoring draw
            return jnp.stack([d(xs, keys[0]) for d, keys in zip(defenses, skeys)])

        def shown(adversarial):  # this image's uint8 images (B = 1 dropped), when asked for
            if not images:
                return {}
            return {"clean": to_uint8(x[0]), "clean_defended": to_uint8(defended(x)[:, 0]),
                    "adversarial": to_uint8(adversarial[:, 0]),
                    "defended": to_uint8(jax.vmap(defended)(adversarial)[:, :, 0])}

        clean_pred, clean_draws = preds(x)
        zeros = jnp.zeros((B,), jnp.float32)
        if n_attacked == 0:
            none = jnp.zeros((0, D, B), jnp.int32)
            out = clean_pred, none, none, zeros, zeros, clean_draws, jnp.zeros((0, D, K, B), jnp.int32)
            return out, shown(jnp.zeros((0, *x.shape), x.dtype))
        view = attacker_view(threat, g, defenses[0], dkey, eot_samples)
        grad_norm = l2_norms(loss_grad(view, x, y)).astype(jnp.float32) if threat in ("through", "eot") else zeros

        def broken_step(pred, step):  # step only where clean-correct and now wrong
            return jnp.where((clean_pred == y) & (pred != y), step[None], -1)

        if minimum_norm:
            x_adv, step, _ = attack_with_step(per_image_attack(make_attack()), view, x, y, akey)
            norm = l2_norms(x_adv - x)
            within = norm[None, :] <= eps[:, None]  # (E, B)
            adv, adv_draws = preds(x_adv)
            pred = jnp.where(within[:, None, :], adv[None], clean_pred[None])  # (E, D, B)
            draws = jnp.where(within[:, None, None, :], adv_draws[None], clean_draws[None])  # (E, D, K, B)
            step = jax.vmap(lambda p: broken_step(p, step))(pred)
            out = clean_pred, pred, step, norm.astype(jnp.float32), grad_norm, clean_draws, draws
            return out, shown(jnp.broadcast_to(x_adv, (eps.shape[0], *x_adv.shape)))  # one point at every bound

        def one(e):
            x_adv, step, _ = attack_with_step(per_image_attack(make_attack(e)), view, x, y, akey)
            pred, draws = preds(x_adv)
            return pred, broken_step(pred, step), draws, x_adv

        adv_pred, step, adv_draws, x_adv = jax.vmap(one)(eps)
        return (clean_pred, adv_pred, step, zeros, grad_norm, clean_draws, adv_draws), shown(x_adv)

    return program


def clean_program(f, defense, scoring=None):
    """``program(params, x, y, key, rows) -> clean_pred[B]``: the defended model's classes on the clean
    images under the all-draws criterion, with the grid's scoring draws (the suite's clean figures
    equal the grid's)."""
    scoring = scoring or Scoring()

    def program(params, x, y, key, rows):
        g = with_state(f, params)

        def one(xi, yi, row):
            keys = scoring.keys(key, row, image_keys(key, row)[0])
            return representative(draw_preds(g, defense, keys, xi[None]), yi[None])[0]

        return jax.vmap(one)(x, y, rows)

    return program


def images_program(defense, scoring=None):
    """``program(x, key, rows) -> (x_u8[B, S, S, 3], defended_u8[B, S, S, 3])``: images and the defense's
    output on them, as uint8 (:func:`to_uint8`), on each image's first scoring draw (the suite's
    ``--save-adversarials``)."""
    scoring = scoring or Scoring()

    def program(x, key, rows):
        def one(xi, row):
            return defense(xi[None], scoring.keys(key, row, image_keys(key, row)[0])[0])[0]

        return to_uint8(x), to_uint8(jax.vmap(one)(x, rows))

    return program


def _member_context(g, defense, member, make_attack, eot_samples, key, row, y, eps, scoring=None):
    """One image's ``(score, view, attack, attack key)`` for a suite member (the keys of the grid cell
    of the same attack and threat). ``score(images) -> (1,)`` is the defended class under the
    all-draws criterion of ``scoring`` for the image's label ``y`` (1,)."""
    dkey, akey = image_keys(key, row)
    draws = eot_samples if getattr(member, "eot_samples", None) is None else member.eot_samples
    view = attacker_view(member.threat, g, defense, dkey, draws)
    keys = (scoring or Scoring()).keys(key, row, dkey)

    def score(xs):
        return representative(draw_preds(g, defense, keys, xs), y)

    return score, view, per_image_attack(make_attack(eps)), akey


def _chunk(idx, j, c: int, rows: int):
    """Chunk ``j`` of ``c`` gathered positions ``idx``: ``(sel, at)``, the positions (>= ``rows``:
    padding) and the rows they read (padding reads the last row)."""
    sel = jax.lax.dynamic_slice_in_dim(idx, j * c, c)
    return sel, jnp.minimum(sel, rows - 1)


def _chunk_passes(sel, rows: int, per_row, c: int):
    """A chunk's model passes: its ``c`` rows, padding included, x the most any real row ran."""
    return c * jnp.max(jnp.where(sel < rows, per_row, 0))


def _trips(count, c: int):
    """The chunks ``count`` gathered rows fill."""
    return (count + c - 1) // c


def view_is_scored_model(threat: str, f, defense, scoring=None) -> bool:
    """Whether the attacker's view under ``threat`` is the scored model ``f(d(x))`` on the scoring
    draw, the same function computed the same way: then a tracked member reads each point's check
    from its gradient pass (:func:`robustjax.attacks.iterative.advance`, ``shared``). True for
    ``through`` on a deterministic defense or on the attacker's own draw (``fixed_randomness``),
    ``eot`` on a deterministic one, and any view of no defense. False for ``bpda`` (its forward
    ``x + sg(d(x) - x)`` can differ from ``d(x)`` in the last bit), ``oblivious`` behind a defense,
    several scoring draws, ``eot`` over draws and a threat-dependent model (the Das et al. 2017
    ensemble)."""
    scoring = scoring or Scoring()
    if hasattr(f, "attacker_model") or scoring.draws != 1:
        return False
    if getattr(defense, "spec", None) == "none":
        return True
    randomised = bool(getattr(defense, "randomised", False))
    if threat == "through":
        return not randomised or scoring.fixed
    return threat == "eot" and not randomised


def tracked_program(f, defense, member, make_attack, eot_samples: int, early_stop: bool = True, scoring=None,
                    shared: bool | None = None, chunk: int | None = None):
    """A tracked member (an iterative attack, :mod:`robustjax.attacks.iterative`) on a gathered
    subset of one window, its state kept on the devices between calls:

    ``advance(params, x, y, rows, key, eps, state, found, pred, idx, count, i0, stop)
    -> (state, found, pred, passes)``

    ``x, y, rows`` the whole window (B rows); ``state`` the member's state for every row (leaves
    ``(B, 1, ...)``), ``found`` (B,) int32 each row's first fooling step (-1 while standing), ``pred``
    (B,) int32 the defended prediction there. ``idx`` (L,) int32 the rows to advance, of which the
    first ``count`` (a traced int32) are real (a value >= B is padding: computed on row B-1, written
    nowhere). They run ``chunk`` rows at a time (None: all L; L a multiple of ``chunk``) in a loop of
    ``ceil(count / chunk)`` trips, so one compiled program serves every count. Steps ``i0 + 1 ..
    stop`` run in a ``lax.while_loop`` per image, each stopping at its first fooling step
    (``early_stop``); at ``i0 == 0`` each gathered row starts from the attack's own start (``found``
    0 where the start already fools). ``passes``: per chunk, its rows x the most gradient passes any
    of them ran, summed. ``shared`` (None: by :func:`view_is_scored_model`): each point's check read
    from its gradient pass, the last one scored."""
    if shared is None:
        shared = view_is_scored_model(member.threat, f, defense, scoring)

    def advance_program(params, x, y, rows, key, eps, state, found, pred, idx, count, i0, stop):
        g = with_state(f, params)
        B, c = x.shape[0], chunk or idx.shape[0]

        def start_one(xi, yi, row):
            score, view, attack, akey = _member_context(g, defense, member, make_attack, eot_samples, key, row,
                                                        yi[None], eps, scoring)
            s = attack.start(view, xi[None], yi[None], akey)
            if shared:  # the first gradient pass checks the start
                return s, jnp.full((), -1, jnp.int32), jnp.zeros((), jnp.int32)
            p = score(point(s))[0]
            return s, jnp.where(p != yi, 0, -1).astype(jnp.int32), p

        def one(xi, yi, row, si, fi, pi):
            score, view, attack, _ = _member_context(g, defense, member, make_attack, eot_samples, key, row, yi[None],
                                                     eps, scoring)
            return advance(attack, view, score, xi[None], yi[None], si, fi, pi, i0, stop, early_stop, shared)

        def run_chunk(j, carry):
            state, found, pred, passes = carry
            sel, at = _chunk(idx, j, c, B)
            xs, ys, rs = x[at], y[at], rows[at]

            def gathered(_):
                return jax.tree.map(lambda a: a[at], state), found[at], pred[at]

            s0, f0, p0 = jax.lax.cond(i0 == 0, lambda _: jax.vmap(start_one)(xs, ys, rs), gathered, None)
            s1, f1, p1, it = jax.vmap(one)(xs, ys, rs, s0, f0, p0)
            put = lambda buf, v: buf.at[sel].set(v.astype(buf.dtype), mode="drop")  # noqa: E731
            passes = passes + _chunk_passes(sel, B, it, c)
            return jax.tree.map(put, state, s1), put(found, f1), put(pred, p1), passes

        return jax.lax.fori_loop(0, _trips(count, c), run_chunk, (state, found, pred, jnp.zeros((), jnp.int32)))

    return advance_program


def state_shapes(f, defense, member, make_attack, eot_samples: int, image_shape, eps: float, dtype=jnp.float32):
    """The per-image state leaves of a tracked member (``(1, ...)`` shapes and dtypes), abstractly,
    for images of ``dtype``."""

    def start(x, y):
        key = jax.random.PRNGKey(0)
        _, view, attack, akey = _member_context(f, defense, member, make_attack, eot_samples, key, 0, y, eps)
        return attack.start(view, x, y, akey)

    x = jax.ShapeDtypeStruct((1, *image_shape), dtype)
    return jax.eval_shape(start, x, jax.ShapeDtypeStruct((1,), jnp.int32))


def member_program(f, defense, member, make_attack, eot_samples: int, scoring=None, points: bool = False,
                   chunk: int | None = None):
    """``program(params, x, y, rows, key, eps, idx, count) -> (broken[L], pred[L], step[L], passes)`` for a
    member that is not tracked (APGD/APGD-T/Square keep their own best point; any other attack's
    final point is scored) on the gathered rows ``idx`` (L,) of the window, the first ``count``
    real, ``chunk`` at a time (padding, chunks and ``passes`` as :func:`tracked_program`; a row's
    evaluations are the ones its attack reports, else its steps or queries). ``points``: a fifth
    output, the scored adversarial points ``(L, ...)`` (``--save-adversarials``)."""

    def program(params, x, y, rows, key, eps, idx, count):
        g = with_state(f, params)
        B, L = x.shape[0], idx.shape[0]
        c = chunk or L

        def one(xi, yi, row):
            score, view, attack, akey = _member_context(g, defense, member, make_attack, eot_samples, key, row,
                                                        yi[None], eps, scoring)
            xa, step, evaluations = attack_with_step(suite_attack(attack, defense), view, xi[None], yi[None], akey)
            p = score(xa)
            broken = p != yi[None]
            iters = int(getattr(attack, "steps", getattr(attack, "queries", 1))) if evaluations is None else evaluations
            return broken[0], p[0], jnp.where(broken, step, -1)[0], jnp.asarray(iters, jnp.int32), xa[0]

        def run_chunk(j, carry):
            out, passes = carry
            sel, at = _chunk(idx, j, c, B)
            broken, pred, step, iters, xa = jax.vmap(one)(x[at], y[at], rows[at])
            got = (broken, pred, step, xa) if points else (broken, pred, step)
            out = tuple(jax.lax.dynamic_update_slice_in_dim(buf, v.astype(buf.dtype), j * c, 0)
                        for buf, v in zip(out, got))
            return out, passes + _chunk_passes(sel, B, iters, c)

        init = (jnp.zeros(L, bool), jnp.zeros(L, jnp.int32), jnp.full(L, -1, jnp.int32))
        if points:
            init = (*init, jnp.zeros((L, *x.shape[1:]), x.dtype))
        out, passes = jax.lax.fori_loop(0, _trips(count, c), run_chunk, (init, jnp.zeros((), jnp.int32)))
        return (*out[:3], passes, *out[3:])

    return program


def is_tracked(attack) -> bool:
    """Whether a suite member runs as a tracked loop (its attack exposes start and step)."""
    return is_iterative(attack)
