"""The suite executor (``--attack adaptive``): members run per image with best-adversarial semantics,
spending compute only on images still standing; ``execute(ctx, job)`` as the grid's executor.

Why: the honest figure is the per-image worst case, and most images break early, so an image that
is misclassified clean, or already broken by some member at some step, needs no more compute.

Semantics (the grid's paper-reproduction cells keep torchattacks' final iterate instead):

- Budgets run in increasing order and are *nested*: the L-inf (or L2) ball of a smaller budget lies
  inside a larger one's, so an image broken at a smaller budget counts as broken at every larger
  one, with the same adversarial point, prediction and step, and is not attacked again.
- At each budget, images misclassified clean are never attacked; member 1 attacks the others; each
  later member attacks only the images every earlier member left standing.
- An image counts as broken by a member if the *defended* model ``f(d(x))`` misclassified it at any
  step. Iterative attacks (FGSM, iFGSM/BIM, PGD L-inf and L2, MI-FGSM) run as tracked loops of their
  own start and update (:func:`robustjax.eval.program.tracked_program`): every :data:`SEGMENT` steps
  the images still standing are gathered on the devices into one call. Where the attacker's view is
  the scored model (``through`` a deterministic defense, any view of none), a point's check is read
  from the forward pass of the gradient taken there. APGD/APGD-T/Square keep their own best-point
  tracking; any other attack's final point is scored.

Execution: the images stream in windows of ``suite_window`` batches (config key, default 4) from the
decode cache, sharded over every device of every process, as the grid's. A member's call gathers
the whole window's standing images and runs them :func:`chunk_rows` at a time, in a loop of as
many chunks as they fill, inside one compiled program per member: padding stays below one chunk
per gathering, and no standing count needs a compilation of its own. Each window is finished (every budget,
every member) and saved under ``out/partial`` before the next, so a kill loses at most the window
in flight, and randomness per image (:mod:`robustjax.keys`) makes the rerun's outcomes identical to
an uninterrupted run's, whatever the batch and window.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from robustjax import data as rdata
from robustjax.eval import adversarials, autoattack, records
from robustjax.eval import precision as _precision
from robustjax.eval import program as P
from robustjax.eval.context import Context
from robustjax.eval.partial import PartialCell, resume_point
from robustjax.eval.plan import SUITE, SUITE_SEMANTICS, Job
from robustjax.eval.progress import bar, decode_cache

SEGMENT = 2  # steps a tracked member runs between two gatherings of its standing images
SEMANTICS = f"{SUITE}: {SUITE_SEMANTICS}"


def chunk_rows(batch: int, devices: int, platform: str) -> int:
    """The rows a member program runs at a time. On CPU an eighth of a batch (rounded up to a multiple
    of ``devices``): a call's cost grows with its rows there, so small chunks waste little on
    padding while the standing images shrink, and an image falls out at the next gathering. On an
    accelerator a whole batch: rows cost little until the device is full."""
    if platform != "cpu":
        return batch
    return max(devices, -(-(batch // 8) // devices) * devices)


class Members:
    """The compiled member programs of one suite cell, one per member (compiled at its first call):
    each reads the ``window`` rows on the devices and runs any number of them, ``chunk`` rows at a
    time, in one call."""

    def __init__(self, ctx: Context, job: Job, f, params, key, batch: int, window: int):
        self.ctx, self.job, self.f, self.params, self.key = ctx, job, f, params, key
        self.batch, self.window = batch, window
        self.defense = ctx.defenses[job.defenses[0]]
        self.scoring = ctx.scoring(job.defenses[0])
        self.points = ctx.save_adversarials  # non-tracked programs also return their points
        self.chunk = chunk_rows(batch, ctx.mesh.size, ctx.mesh.describe()["platform"])
        self.gathered = -(-window // self.chunk) * self.chunk  # length of the gathered index vector: whole chunks
        self.programs: dict = {}
        self.compile_s = 0.0
        self.tracked = [P.is_tracked(self.make_attack(m)(1 / 255)) for m in job.members]

    def make_attack(self, member):
        return lambda e: self.ctx.comp.get_attack(member.attack.name, eps=e, **member.attack.kwargs)

    def _state_shapes(self, i: int):
        m = self.job.members[i]
        S = self.ctx.resize.size
        eot = int(self.ctx.cfg.eot_samples)
        return P.state_shapes(self.f, self.defense, m, self.make_attack(m), eot, (S, S, 3), 1 / 255)

    def program(self, i: int):
        """Member ``i``'s compiled program."""
        if i in self.programs:
            return self.programs[i]
        ctx, mesh, m = self.ctx, self.ctx.mesh, self.job.members[i]
        rep, dat, B, S = mesh.replicated, mesh.data, self.window, ctx.resize.size
        eot = int(ctx.cfg.eot_samples)
        sds = jax.ShapeDtypeStruct
        common = (self.params, sds((B, S, S, 3), jnp.float32, sharding=dat), sds((B,), jnp.int32, sharding=dat),
                  sds((B,), jnp.int32, sharding=dat), sds((2,), jnp.uint32, sharding=rep),
                  sds((), jnp.float32, sharding=rep))
        idx = sds((self.gathered,), jnp.int32, sharding=rep)
        scalar = sds((), jnp.int32, sharding=rep)
        t0 = time.perf_counter()
        if self.tracked[i]:
            fn = P.tracked_program(self.f, self.defense, m, self.make_attack(m), eot, scoring=self.scoring,
                                   chunk=self.chunk)
            leaves = jax.tree.map(lambda a: sds((B, *a.shape), a.dtype, sharding=dat), self._state_shapes(i))
            state_sh = jax.tree.map(lambda _: dat, leaves)
            jitted = jax.jit(_precision.program(fn, ctx.precision), donate_argnums=(6,),
                             in_shardings=(rep, dat, dat, dat, rep, rep, state_sh, rep, rep, rep, rep, rep, rep),
                             out_shardings=(state_sh, rep, rep, rep))
            vec = sds((B,), jnp.int32, sharding=rep)
            compiled = jitted.lower(*common, leaves, vec, vec, idx, scalar, scalar, scalar).compile()
        else:
            fn = P.member_program(self.f, self.defense, m, self.make_attack(m), eot, scoring=self.scoring,
                                  points=self.points, chunk=self.chunk)
            jitted = jax.jit(_precision.program(fn, ctx.precision),
                             in_shardings=(rep, dat, dat, dat, rep, rep, rep, rep),
                             out_shardings=(rep,) * (5 if self.points else 4))
            compiled = jitted.lower(*common, idx, scalar).compile()
        self.compile_s += time.perf_counter() - t0
        self.programs[i] = compiled
        return compiled

    def attack(self, i: int, batch_args, eps, rows: np.ndarray, points: Points | None = None):
        """Member ``i`` on the window's positions ``rows`` at budget ``eps``: ``(broken, pred, step, passes)``
        over ``rows`` (passes: per chunk its rows, padding included, x the iterations run). ``points``:
        takes the adversarial points of the rows it broke."""
        mesh, W = self.ctx.mesh, self.window
        e = jax.device_put(np.float32(eps), mesh.replicated)
        if not self.tracked[i]:
            idx = _padded(rows, self.gathered, W)
            out = self.program(i)(*batch_args, e, idx, np.int32(len(rows)))
            broken, pred, step = (np.asarray(a)[:len(rows)] for a in out[:3])
            if points is not None:
                points.take(out[4], np.where(np.asarray(out[0]), idx, W).astype(np.int32))
            return broken, pred, step, int(out[3])
        steps = int(self.make_attack(self.job.members[i])(eps).steps)
        state = jax.tree.map(lambda a: jnp.zeros((W, *a.shape), a.dtype, device=mesh.data), self._state_shapes(i))
        found = jax.device_put(np.full(W, -1, np.int32), mesh.replicated)
        pred = jax.device_put(np.zeros(W, np.int32), mesh.replicated)
        active, done, passes = rows, 0, 0
        while done < steps and len(active):
            stop = min(done + SEGMENT, steps)
            state, found, pred, spent = self.program(i)(*batch_args, e, state, found, pred,
                                                        _padded(active, self.gathered, W), np.int32(len(active)),
                                                        np.int32(done), np.int32(stop))
            passes += int(spent)
            active = active[np.asarray(found)[active] < 0]
            done = stop
        if points is not None:
            points.take_tracked(state, found)
        found, pred = np.asarray(found), np.asarray(pred)
        return found[rows] >= 0, pred[rows], found[rows], passes


def _padded(rows: np.ndarray, size: int, fill: int) -> np.ndarray:
    """``rows`` padded to ``size`` with ``fill`` (an index past the window: computed, written nowhere)."""
    return np.concatenate([rows, np.full(size - len(rows), fill, np.int32)]).astype(np.int32)


def _attack_batch(members: Members, batch_args, clean: np.ndarray, labels: np.ndarray, count: int, attacked,
                  points: Points | None = None) -> dict:
    """Every budget (ascending, nested) and every member on one window; its arrays and counters, and
    with ``points`` (reset to the window) the broken images (:func:`robustjax.eval.adversarials.batch_fields`)."""
    M, E = len(members.job.members), len(attacked)
    adv_pred, step = np.tile(clean, (E, 1)), np.full((E, len(clean)), -1, np.int32)
    counters = {k: np.zeros((M, E), np.int64) for k in ("attacked", "broken", "passes")}
    standing = np.flatnonzero(clean[:count] == labels[:count]).astype(np.int32)
    shown = [None] * E
    fallen, fallen_pred, fallen_step = np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int32)
    for j in np.argsort(attacked, kind="stable"):
        adv_pred[j, fallen], step[j, fallen] = fallen_pred, fallen_step  # broken at a smaller budget: kept
        for i in range(M):
            if not len(standing):
                break
            broken, pred, st, passes = members.attack(i, batch_args, attacked[j], standing, points)
            hit = standing[broken]
            adv_pred[j, hit], step[j, hit] = pred[broken], st[broken]
            for k, v in (("attacked", len(standing)), ("broken", len(hit)), ("passes", passes)):
                counters[k][i, j] = v
            fallen = np.concatenate([fallen, hit])
            fallen_pred = np.concatenate([fallen_pred, pred[broken]])
            fallen_step = np.concatenate([fallen_step, st[broken]])
            standing = standing[~broken]
        if points is not None and len(fallen):  # every fallen image's point (earlier budgets' ones kept)
            shown[j] = points.images()
    arr = {"clean_pred": clean[:count], "adv_pred": adv_pred[:, :count], "step": step[:, :count], **counters}
    if points is not None:
        arr.update(points.fields(shown, clean, labels, adv_pred, count))
    return arr


class Points:
    """The adversarial point of each row of one window on the devices (``--save-adversarials``): the
    clean image until a member breaks the row, then the point that broke it, kept at larger budgets."""

    def __init__(self, ctx: Context, defense, scoring, key):
        rep, dat = ctx.mesh.replicated, ctx.mesh.data
        self.key, self.lo, self.rows, self.buffer, self.clean = key, 0, None, None, None
        self._images = jax.jit(_precision.program(P.images_program(defense, scoring), ctx.precision),
                               out_shardings=rep)
        self._tracked = jax.jit(lambda buf, state, found: jnp.where((found >= 0)[:, None, None, None],
                                                                     P.point(state)[:, 0], buf), out_shardings=dat)
        self._gathered = jax.jit(lambda buf, xa, idx: buf.at[idx].set(xa, mode="drop"), out_shardings=dat)

    def reset(self, x, rows, lo: int) -> None:
        """A new window: ``x`` and ``rows`` its images and positions (global arrays), ``lo`` its first row."""
        self.rows, self.lo, self.buffer = rows, lo, x
        self.clean = self.images()

    def take_tracked(self, state, found) -> None:
        """A tracked member's points (its state) at the rows where ``found`` >= 0."""
        self.buffer = self._tracked(self.buffer, state, found)

    def take(self, xa, idx) -> None:
        """A member's gathered points ``xa`` at the window's positions ``idx`` (>= window: dropped)."""
        self.buffer = self._gathered(self.buffer, xa, idx)

    def images(self) -> tuple[np.ndarray, np.ndarray]:
        """The buffer's points and the defense's outputs on them, uint8, on the host."""
        return tuple(np.asarray(a) for a in self._images(self.buffer, self.key, self.rows))

    def fields(self, shown, clean_pred, labels, adv_pred, count: int) -> dict:
        """The window's broken images (``shown[j]``: :meth:`images` after budget ``j``)."""
        x, dx = self.clean
        blank = np.zeros((len(shown), count, *x.shape[1:]), np.uint8)
        adv, dadv = blank.copy(), blank.copy()
        for j, got in enumerate(shown):
            if got is not None:
                adv[j], dadv[j] = got[0][:count], got[1][:count]
        return adversarials.batch_fields(np.arange(self.lo, self.lo + count), labels[:count], clean_pred[:count],
                                         adv_pred[:, :count], adv, dadv, x[:count], dx[:count])


class _Compiled:
    """A compiled program and the seconds its compilation took."""

    def __init__(self, compiled, seconds: float):
        self.compiled, self.compile_s = compiled, seconds

    def __call__(self, *args):
        return self.compiled(*args)


def _compile_clean(ctx: Context, f, defense, scoring, params, batch: int, window: int) -> _Compiled:
    """The clean-prediction program (the grid's scoring draws) of ``batch`` rows ``idx`` of a window,
    compiled: ``(params, x, y, key, rows, idx) -> clean_pred[batch]``."""
    mesh, S = ctx.mesh, ctx.resize.size
    rep, dat = mesh.replicated, mesh.data
    sds = jax.ShapeDtypeStruct
    clean = P.clean_program(f, defense, scoring)

    def gathered(params, x, y, key, rows, idx):
        return clean(params, x[idx], y[idx], key, rows[idx])

    jitted = jax.jit(_precision.program(gathered, ctx.precision),
                     in_shardings=(rep, dat, dat, rep, dat, rep), out_shardings=rep)
    t0 = time.perf_counter()
    compiled = jitted.lower(params, sds((window, S, S, 3), jnp.float32, sharding=dat),
                            sds((window,), jnp.int32, sharding=dat), sds((2,), jnp.uint32, sharding=rep),
                            sds((window,), jnp.int32, sharding=dat), sds((batch,), jnp.int32, sharding=rep)).compile()
    return _Compiled(compiled, time.perf_counter() - t0)


def _clean_window(clean_fn: _Compiled, args, batch: int, window: int, count: int) -> np.ndarray:
    """The clean predictions of a window's first ``count`` rows, ``batch`` per call (0 past ``count``);
    ``args``: the program's ``(params, x, y, key, rows)``."""
    out = np.zeros(window, np.int32)
    for lo in range(0, count, batch):
        idx = np.minimum(np.arange(lo, lo + batch, dtype=np.int32), window - 1)
        out[lo:lo + batch] = np.asarray(clean_fn(*args, idx))[:window - lo]
    return out


def execute(ctx: Context, job: Job) -> list[tuple[dict, dict]]:
    """Run one suite cell over ``ctx.ds``; ``[(record without key/settings, outcome arrays)]``.

    The record adds ``suite``: per member its label, norm, and per budget the images it attacked,
    broke, and the model passes it spent (per chunk its rows, padding included, x the gradient
    passes, or iterations, run), ``suite_chunk`` (rows per chunk), and ``timing.recomputed_batches``: batches
    that killed runs of the cell had started but not saved, each computed again (at most one per
    kill)."""
    cfg, mesh, ds = ctx.cfg, ctx.mesh, ctx.ds
    batch = mesh.global_batch(int(ctx.batch))
    window = batch * ctx.suite_window
    f = _precision.classifier(ctx.f, ctx.precision)
    params = P.params_of(f)
    params = None if params is None else jax.device_put(params, mesh.replicated)
    key = jax.device_put(ctx.seed_key(), mesh.replicated)
    n, total = len(ds), rdata.num_batches(len(ds), window)
    labels = np.asarray(ds.labels, np.int32)
    part = PartialCell(cfg.out, ctx.key(job.cells()[0]), window, n)
    start, (loaded,) = resume_point([part], total, adversarials.BATCH_FIELDS if ctx.save_adversarials else ())
    lost = part.count_lost() if mesh.process_index == 0 else 0
    if start:
        ctx.log(f"    resuming at batch {start + 1} of {total}: {start} batch(es) read from {part.dir.parent}")
    members = Members(ctx, job, f, params, key, batch, window)
    points = Points(ctx, ctx.defenses[job.defenses[0]], members.scoring, key) if ctx.save_adversarials else None
    defense = ctx.defenses[job.defenses[0]]
    t0, first = time.perf_counter(), None  # before the clean program's compilation, which compile_s counts
    clean_fn = _compile_clean(ctx, f, defense, members.scoring, params, batch, window) if start < total else None
    members.compile_s += clean_fn.compile_s if clean_fn is not None else 0.0
    attacked = ctx.attacked
    progress = bar(n - start * window) if ctx.progress and start < total else None
    try:
        for bt in rdata.batches(ds, window, ctx.resize, start=start, process_index=mesh.process_index,
                                process_count=mesh.process_count, cache=decode_cache(ds, ctx.resize)):
            if mesh.process_index == 0:
                part.mark_started(bt.index)
            lo = bt.index * window
            local = len(bt.y)
            mine = lo + mesh.process_index * local
            rows = mesh.put(np.arange(mine, mine + local, dtype=np.int32), window)
            args = (params, mesh.put(bt.x, window), mesh.put(bt.y, window), rows, key)
            clean = _clean_window(clean_fn, (params, args[1], args[2], key, rows), batch, window, bt.count)
            batch_labels = np.full(window, -1, np.int32)
            batch_labels[:bt.count] = labels[lo:lo + bt.count]
            if points is not None:
                points.reset(args[1], rows, lo)
            arr = _attack_batch(members, args, clean, batch_labels, bt.count, attacked, points)
            if mesh.process_index == 0:
                part.save(bt.index, arr)
            loaded.append(arr)
            if progress is not None:
                progress.update(bt.count)
            if first is None:
                first = (time.perf_counter() - t0 - members.compile_s, bt.count)
    finally:
        if progress is not None:
            progress.close()
    run_s = time.perf_counter() - t0 - members.compile_s
    arr = records.cell_arrays(loaded, np.asarray(cfg.eps, np.float64), labels, ds.ids)
    if ctx.save_adversarials:
        arr[adversarials.ARRAYS] = adversarials.cell_arrays(loaded, cfg.eps)
    suite = [{"member": m.label, "norm": m.attack.norm,
              **{k: [int(v) for v in sum((b[k][i] for b in loaded), np.zeros(len(attacked), np.int64))]
                 for k in ("attacked", "broken", "passes")}}
             for i, m in enumerate(job.members)]
    timing = records.timing(members.compile_s, run_s, first, n - min(n, start * window), len(attacked), 1, start, lost,
                            batch=window)
    norms = {m.attack.norm for m in job.members}
    extra = {"autoattack": autoattack.describe(job.attack.kwargs)} if job.attack.name == autoattack.NAME else {}
    if getattr(defense, "randomised", False):  # scored under the all-draws criterion over these draws
        extra.update(members.scoring.settings())
    rec = records.record(arr, timing=timing, budget=norms.pop() if len(norms) == 1 else "linf", batch=batch,
                         precision=ctx.precision, mesh=mesh.describe(), suite=suite, suite_window=ctx.suite_window,
                         suite_chunk=members.chunk, semantics=SEMANTICS, **extra)
    return [(rec, arr)]
