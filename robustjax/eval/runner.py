"""The experiment runner: plan -> for each job, its executor -> store -> log.

The plan (:func:`robustjax.eval.plan.resolve`) validates the config and builds each defense once,
before any model or data is loaded. Each job runs on one of two executors with one signature,
``execute(ctx, job) -> [(record, outcome arrays)]``: the grid's (:mod:`robustjax.eval.grid`, final
iterate, eps vmapped) or the adaptive suite's (:mod:`robustjax.eval.suite`, best adversarial, nested
budgets). Each finished cell is one record in the store plus its outcome file, so a rerun skips it.
"""

from __future__ import annotations

import dataclasses
import sys
import time

from robustjax import data as rdata
from robustjax.eval import adversarials, grid, outcomes, suite
from robustjax.eval.components import Components, model_info
from robustjax.eval.context import Context
from robustjax.eval.mesh import BatchMesh
from robustjax.eval.partial import PartialCell
from robustjax.eval.plan import Plan, jobs, resolve
from robustjax.eval.records import provenance
from robustjax.eval.store import RunLock, Store

plan = jobs  # the grid's jobs of a config (names unresolved): tests and tools read the job order from it


class Runner:
    """Runs a config's unfinished cells into ``cfg.out``. ``plan``: an already resolved plan (the
    command line resolves it before touching a device); None resolves it in :meth:`run`."""

    def __init__(self, cfg, comp: Components, mesh: BatchMesh | None = None, progress: bool = True, log=None,
                 plan: Plan | None = None):
        self.cfg = cfg
        self.comp = comp
        self.plan = plan
        self.mesh = mesh or BatchMesh()
        self.progress = progress and self.mesh.process_index == 0
        self.log = log or (lambda *a: print(*a, file=sys.stderr, flush=True))
        self.store = Store(cfg.out)
        # Set by the command line's SIGINT handler. A KeyboardInterrupt raised inside a callback
        # (e.g. JAX's gc hook) can be swallowed; this flag still stops the run at the next job.
        self.interrupted = False

    def run(self) -> list[dict]:
        """Run every unfinished cell; returns this experiment's records (old and new).

        Process 0 holds ``out/results.lock`` for the whole run (a second run on the same ``out`` raises
        :class:`robustjax.eval.store.StoreError`); refuses a store of another format."""
        if self.plan is None:
            self.plan = resolve(self.cfg, self.comp)
        self.store.check_format()
        if self.mesh.process_index != 0:  # one run of several processes: process 0 holds the lock and writes
            return self._run()
        with RunLock(self.cfg.out):
            return self._run()

    def _batch(self) -> int | None:
        cfg = self.cfg
        if cfg.batch_size == "auto":  # chosen per cell from the device memory (batching.py)
            return None
        batch = self.mesh.global_batch(int(cfg.batch_size))
        if batch != cfg.batch_size:
            self.log(f"batch size {cfg.batch_size} -> {batch} (a multiple of the {self.mesh.size} devices)")
        return batch

    def _run(self) -> list[dict]:
        cfg, all_jobs = self.cfg, self.plan.jobs
        prov = provenance()
        batch = self._batch()
        tail = self.store.truncated_tail()
        if tail:
            self.log(f"{self.store.path} ends in a truncated line ({tail} bytes, from a killed write): it is ignored, "
                     "cut off at the next write, and its cell recomputed")
        done = self.store.done()
        keys, contexts = [], {}
        started, ran = time.perf_counter(), 0
        for i, job in enumerate(all_jobs, 1):
            if job.model not in contexts:
                contexts[job.model] = self._context(job.model, batch)
            ctx = contexts[job.model]
            todo = []
            for cell in job.cells():
                key = ctx.key(cell)
                keys.append(key)
                if key in done and cfg.get("save_adversarials", False) and not adversarials.exists(cfg.out, key):
                    self.log(f"[{i}/{len(all_jobs)}] {cell.label}: done without its adversarial examples, recomputed")
                    todo.append((cell, key))
                elif key in done:
                    self.log(f"[{i}/{len(all_jobs)}] {cell.label}: done, skipped")
                else:
                    todo.append((cell, key))
            if not todo:
                continue
            part = dataclasses.replace(job, defenses=tuple(c.defense for c, _ in todo))
            self.log(f"[{i}/{len(all_jobs)}] {part.label}: {len(ctx.ds)} images x {len(cfg.eps)} eps")
            results = (suite if job.is_suite else grid).execute(ctx, part)
            for (cell, key), (rec, arr) in zip(todo, results):
                self._store(ctx, cell, key, rec, arr, prov)
            if self.interrupted:
                raise KeyboardInterrupt
            ran += 1
            elapsed = time.perf_counter() - started
            self.log(f"    grid: {i}/{len(all_jobs)} jobs, {elapsed:.0f} s elapsed, about "
                     f"{elapsed / ran * (len(all_jobs) - i):.0f} s left (if the rest costs the same)")
        stored = {r["key"]: r for r in self.store.records()}
        return [stored[k] for k in keys if k in stored]

    def _store(self, ctx: Context, cell, key: str, rec: dict, arr: dict, prov: dict) -> None:
        rec.update(key=key, settings=ctx.settings(cell), experiment=self.cfg.name, **prov)
        skipped = getattr(ctx.ds, "skipped", ())
        if skipped:  # files --skip-unreadable left out: named in the record and the report
            rec["skipped_unreadable"] = list(skipped)
        adv = arr.pop(adversarials.ARRAYS, None)
        if self.mesh.process_index == 0:
            if adv is not None:  # before the record, as the outcomes
                adversarials.write(self.cfg.out, key, adv, adversarials.class_names(ctx.f, ctx.ds))
            outcomes.write(self.cfg.out, key, arr)  # before the record: a stored record always has its outcomes
            self.store.append(rec)
            PartialCell(self.cfg.out, key, rec["batch_size"], len(ctx.ds)).clear()
        label = (lambda e: f"{e:.4g}") if rec["budget"] != "linf" else (lambda e: f"{e * 255:g}/255")
        acc = ", ".join(f"{label(e)}: {a:.3f}" for e, a in zip(rec["eps"], rec["accuracy"]))
        t = rec["timing"]
        self.log(f"    {cell.defense}: accuracy {acc}  "
                 f"({t['per_image_s']:.3f} s/image, compile {t['compile_s']:.1f} s)")

    def _context(self, name: str, batch: int | None) -> Context:
        """Load model ``name`` and the evaluated images once per model."""
        cfg = self.cfg
        f = self.comp.load_model(name, weights=cfg.weights, head=cfg.head)
        info = model_info(f, name)
        ds = self.comp.load_data(cfg.dataset, cfg.data_dir, cfg.head if cfg.head else None).subset(cfg.n, int(cfg.seed))
        nc = info["num_classes"]
        if nc is not None and int(ds.labels.max()) >= int(nc):
            raise ValueError(
                f"model {name!r} has {nc} outputs but dataset {cfg.dataset!r} has labels up to {int(ds.labels.max())} "
                f"(label space {ds.label_space!r}); pick a matching head (e.g. --head imagenette) or dataset"
            )
        resize = rdata.Resize.from_preprocessing(info["preprocessing"], int(info["input_size"]))
        return Context(cfg, self.comp, self.mesh, self.log, self.progress, self.plan.defenses, f, ds, resize, batch)
