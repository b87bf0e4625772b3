"""The grid executor: one compiled program per job, its eps grid ``vmap``-ped, final-iterate semantics.

``execute(ctx, job) -> [(record, outcome arrays) per defense]``. Batches stream from the decode
cache, sharded over every device of every process (:class:`robustjax.eval.mesh.BatchMesh`); each
finished batch is saved under ``out/partial`` (:class:`robustjax.eval.partial.PartialCell`), so a
killed cell resumes at its first unfinished batch. An out-of-memory error reruns the job at half the
batch (:func:`robustjax.eval.batching.run_with_retry`).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from robustjax import data as rdata
from robustjax.eval import adversarials, records, scoring
from robustjax.eval import batching as _batching
from robustjax.eval import precision as _precision
from robustjax.eval import program as P
from robustjax.eval.context import Context
from robustjax.eval.partial import PartialCell, resume_point
from robustjax.eval.plan import Job
from robustjax.eval.progress import bar, decode_cache


def budget(ctx: Context, job: Job) -> str:
    """The norm a job's eps grid is measured in: ``l2_bound`` for minimum-norm attacks, else the attack's."""
    return "l2_bound" if ctx.comp.minimum_norm(job.attack.name) else job.attack.norm


def execute(ctx: Context, job: Job) -> list[tuple[dict, dict]]:
    """Run a grid job over ``ctx.ds``; per defense one (record without key/settings, outcome arrays)."""
    state = {"batch": ctx.batch}
    results, retries = _batching.run_with_retry(lambda b: _run(ctx, job, b, state), ctx.batch, ctx.mesh.size,
                                                lambda: state["batch"], ctx.log)
    if retries:
        for rec, _ in results:
            rec["batch_retries"] = retries
    return results


def _compile(ctx: Context, job: Job, f, batch: int):
    """The job's program compiled at global ``batch``, and the seconds it took."""
    mesh, comp = ctx.mesh, ctx.comp
    rep, dat = mesh.replicated, mesh.data
    minimum_norm = bool(comp.minimum_norm(job.attack.name))
    kwargs = job.attack.kwargs

    def make_attack(e=None):
        if minimum_norm:
            return comp.get_attack(job.attack.name, **kwargs)
        return comp.get_attack(job.attack.name, eps=e, **kwargs)

    images = ctx.save_adversarials
    program = P.grid_program(f, [ctx.defenses[d] for d in job.defenses], make_attack, job.threat, len(ctx.attacked),
                             int(ctx.cfg.eot_samples), minimum_norm, [ctx.scoring(d) for d in job.defenses], images)
    program = _precision.program(program, ctx.precision)
    jitted = jax.jit(program, in_shardings=(rep, dat, dat, rep, dat, rep), out_shardings=(rep,) * (8 if images else 7))
    S = ctx.resize.size
    t0 = time.perf_counter()
    compiled = jitted.lower(
        _placed(f, mesh),
        jax.ShapeDtypeStruct((batch, S, S, 3), jnp.float32, sharding=dat),
        jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=dat),
        jax.ShapeDtypeStruct((2,), jnp.uint32, sharding=rep),
        jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=dat),
        jax.ShapeDtypeStruct(ctx.attacked.shape, jnp.float32, sharding=rep),
    ).compile()
    return compiled, time.perf_counter() - t0


def _placed(f, mesh):
    params = P.params_of(f)
    return None if params is None else jax.device_put(params, mesh.replicated)


def _run(ctx: Context, job: Job, batch: int | None, state: dict) -> list[tuple[dict, dict]]:
    cfg, mesh, ds = ctx.cfg, ctx.mesh, ctx.ds
    f = _precision.classifier(ctx.f, ctx.precision)
    D = len(job.defenses)
    compiled, choice, compile_s = None, None, 0.0
    if batch is None:
        t0 = time.perf_counter()
        batch, compiled, choice = _batching.auto_batch(lambda b: _compile(ctx, job, f, b)[0], mesh.size, len(ds))
        compile_s = time.perf_counter() - t0
    state["batch"] = batch
    n, total = len(ds), rdata.num_batches(len(ds), batch)
    parts = [PartialCell(cfg.out, ctx.key(c), batch, n) for c in job.cells()]
    start, loaded = resume_point(parts, total, adversarials.BATCH_FIELDS if ctx.save_adversarials else ())
    if start:
        ctx.log(f"    resuming at batch {start + 1} of {total}: {start} batch(es) read from {parts[0].dir.parent}")
    run_s, first = 0.0, None
    if start < total:
        if compiled is None:
            compiled, compile_s = _compile(ctx, job, f, batch)
        params = _placed(f, mesh)
        key = jax.device_put(ctx.seed_key(), mesh.replicated)
        eps = jax.device_put(ctx.attacked, mesh.replicated)
        progress = bar(n - start * batch) if ctx.progress else None
        draws = [ctx.scoring(d).draws for d in job.defenses]
        writer = mesh.process_index == 0
        pending = None
        t0 = time.perf_counter()

        def collect(pending):
            out, b, count = pending
            got = jax.tree.map(np.asarray, out)
            for k in range(D):
                arr = _batch_arrays(got[:7], k, count, draws[k])
                if ctx.save_adversarials:
                    arr.update(_adversarial_fields(got, k, b * batch, count, ds.labels))
                if writer:
                    parts[k].save(b, arr)
                loaded[k].append(arr)
            if progress is not None:
                progress.update(count)

        try:
            for bt in rdata.batches(ds, batch, ctx.resize, start=start, process_index=mesh.process_index,
                                    process_count=mesh.process_count, cache=decode_cache(ds, ctx.resize)):
                local = len(bt.y)
                lo = bt.index * batch + mesh.process_index * local
                rows = mesh.put(np.arange(lo, lo + local, dtype=np.int32), batch)
                out = compiled(params, mesh.put(bt.x, batch), mesh.put(bt.y, batch), key, rows, eps)
                if pending is not None:  # read the previous batch while this one runs
                    collect(pending)
                pending = (out, bt.index, bt.count)
                if first is None:  # wait for the first batch alone, to time it
                    collect(pending)
                    first, pending = (time.perf_counter() - t0, bt.count), None
            if pending is not None:
                collect(pending)
        finally:
            if progress is not None:
                progress.close()
        run_s = time.perf_counter() - t0
    labels = np.asarray(ds.labels, np.int32)
    minimum_norm = bool(ctx.comp.minimum_norm(job.attack.name))
    timing = records.timing(compile_s, run_s, first, n - min(n, start * batch), len(ctx.attacked), D, start,
                            batch=batch)
    extra = {"batch_auto": choice.describe()} if choice is not None else {}
    results = []
    for k in range(D):
        arr = records.cell_arrays(loaded[k], np.asarray(cfg.eps, np.float64), labels, ds.ids, minimum_norm,
                                  grad=job.threat in ("through", "eot"))
        if ctx.save_adversarials:
            arr[adversarials.ARRAYS] = adversarials.cell_arrays(loaded[k], cfg.eps)
        scored = {}
        if getattr(ctx.defenses[job.defenses[k]], "randomised", False):  # how it was scored, named in the record
            scored = ctx.scoring(job.defenses[k]).settings()
        if "pred_draws" in arr:  # over several draws: majority, single-draw and per-draw figures beside
            scored.update(scoring.summary(arr["pred_draws"], labels))
        results.append((records.record(arr, timing=timing, budget=budget(ctx, job), batch=batch,
                                       precision=ctx.precision, mesh=mesh.describe(), **extra, **scored), arr))
    return results


def _batch_arrays(got, k: int, count: int, draws: int = 1) -> dict:
    """Defense ``k``'s per-image outputs of one batch's program result, real rows only (the first
    ``count`` rows: padding is at the end of a global batch); its ``draws`` scoring draws when more than one."""
    clean_pred, adv_pred, step, norm, grad_norm, clean_draws, adv_draws = got
    out = {"clean_pred": clean_pred[k, :count], "adv_pred": adv_pred[:, k, :count], "step": step[:, k, :count],
           "norm": norm[:count], "grad_norm": grad_norm[:count]}
    if draws > 1:
        out.update(clean_draws=clean_draws[k, :draws, :count], adv_draws=adv_draws[:, k, :draws, :count])
    return out


def _adversarial_fields(got, k: int, lo: int, count: int, labels) -> dict:
    """Defense ``k``'s broken images of one batch (``--save-adversarials``), the batch starting at row ``lo``."""
    clean_pred, adv_pred = got[0], got[1]
    shown = got[7]
    return adversarials.batch_fields(np.arange(lo, lo + count), np.asarray(labels)[lo:lo + count],
                                     clean_pred[k, :count], adv_pred[:, k, :count],
                                     np.moveaxis(shown["adversarial"][:count], 0, 1),
                                     np.moveaxis(shown["defended"][:count, :, k], 0, 1), shown["clean"][:count],
                                     shown["clean_defended"][:count, k])
