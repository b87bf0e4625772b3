"""The experiment grid: validate everything, then run each unfinished cell as one compiled program.

A cell is (model, defense, attack, threat); its eps grid is ``vmap``-ed inside one jitted program,
so a cell compiles once. Batches are sharded over all devices (:class:`BatchMesh`); each finished
cell is one record in the results store, so a rerun skips it.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import hashlib
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import robustjax
from robustjax import data as rdata
from robustjax.attacks.base import l2_norms, loss_grad
from robustjax.attacks.threat import attacker_view
from robustjax.eval import adaptive
from robustjax.eval import batching as _batching
from robustjax.eval import config as C
from robustjax.eval import outcomes
from robustjax.eval import precision as _precision
from robustjax.eval.components import Components, accepts_key, model_info
from robustjax.eval.mesh import BatchMesh
from robustjax.eval.partial import PartialCell, resume_point
from robustjax.eval.store import FORMAT, RunLock, Store, cell_key
from robustjax.models import ensemble


@dataclasses.dataclass(frozen=True)
class Cell:
    """One result record: (model, defense, attack, threat) over the eps grid."""

    model: str
    defense: str
    attack: str
    hparams: tuple  # sorted (key, value) pairs
    threat: str

    @property
    def label(self) -> str:
        hp = "".join(f":{k}={v}" for k, v in self.hparams)
        return f"{self.model} | {self.defense} | {self.attack}{hp} | {self.threat}"


@dataclasses.dataclass(frozen=True)
class Job:
    """One compiled program: an attack run once, scored under one or more defenses.

    An oblivious attack never sees the defense, so its adversarial examples are the same for every
    defense: one job makes them once and scores them under all defenses (one cell each). Through,
    bpda and eot attacks differentiate a defense: one job per defense.
    """

    model: str
    attack: str
    hparams: tuple
    threat: str
    defenses: tuple

    def cells(self) -> list[Cell]:
        return [Cell(self.model, d, self.attack, self.hparams, self.threat) for d in self.defenses]

    @property
    def label(self) -> str:
        hp = "".join(f":{k}={v}" for k, v in self.hparams)
        return f"{self.model} | {', '.join(self.defenses)} | {self.attack}{hp} | {self.threat}"


def plan(cfg) -> list[Job]:
    """The grid's jobs, models then attacks outermost. Defense ``none`` is only scored under
    ``oblivious`` (with no defense every threat model attacks the same function)."""
    jobs = []
    for m in cfg.models:
        for a in cfg.attacks:
            name, hp = C.attack_entry(a)
            hp = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in hp.items()))
            defs = list(dict.fromkeys(d.strip() for d in cfg.defenses))
            if name == adaptive.NAME:  # one suite cell per defense: it chooses its own threat models
                jobs += [Job(m, name, hp, adaptive.NAME, (d,)) for d in defs]
                continue
            oblivious = [d for d in defs if d == "none" or "oblivious" in cfg.threats]
            if oblivious:
                jobs.append(Job(m, name, hp, "oblivious", tuple(oblivious)))
            for d in defs:
                if d == "none" and not ensemble.is_spec(m):  # an ensemble's threat models differ even undefended
                    continue
                for t in cfg.threats:
                    if t != "oblivious":
                        jobs.append(Job(m, name, hp, t, (d,)))
    return jobs


def validate(cfg, comp: Components) -> None:
    """Fail before any compute (and before loading weights or data) on a bad config or name."""
    C.check_shape(cfg)
    rdata.check_name(cfg.dataset)
    names = comp.model_names()
    if names is not None:
        unknown = [m for m in cfg.models if m not in names and not ensemble.is_spec(m)]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; valid: {', '.join(names)}")
    for spec in cfg.defenses:
        comp.get_defense(spec)
    names = comp.attack_names()
    probe = max([float(e) for e in cfg.eps if e > 0] or [1 / 255])
    for a in cfg.attacks:
        name, hp = C.attack_entry(a)
        if name == adaptive.NAME:
            if cfg.batch_size == "auto":
                raise ValueError("--batch-size auto is not available for the adaptive suite (its members re-batch "
                                 "the images still standing at one fixed size): give a number")
            for d in cfg.defenses:
                adaptive.members(hp, comp, comp.get_defense(d))
            continue
        if names is not None and name not in names:
            raise ValueError(f"unknown attack {name!r}; valid: {', '.join(names)}")
        if not comp.minimum_norm(name) and probe > 1:
            raise ValueError(f"eps values must be in [0, 1] for L-inf attack {name!r} (pixel units, e.g. 8/255), got {max(cfg.eps)}; "
                             "only minimum-norm attacks (cw, deepfool) take L2 bounds above 1")
        comp.get_attack(name, eps=probe, **hp)  # bad hyper-parameters fail here


def provenance() -> dict:
    """Versions and the git revision of the robustjax checkout (``-dirty`` with local changes)."""
    import flax

    versions = {"robustjax": robustjax.__version__, "jax": jax.__version__, "flax": flax.__version__, "numpy": np.__version__, "python": platform.python_version()}
    try:
        import jaxlib

        versions["jaxlib"] = jaxlib.__version__
    except ImportError:
        pass
    root = Path(robustjax.__file__).resolve().parents[1]
    rev = None
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip() or None
        if rev:
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10).stdout.strip()
            rev += "-dirty" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        pass
    return {"versions": versions, "git": rev}


def _fingerprint(ids) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def build_program(f, defenses, get_attack, job: Job, n_attacked: int, eot_samples: int, clean: bool = True,
                  minimum_norm: bool = False):
    """``program(params, x, y, mask, key, rows, eps) -> (clean_pred[D, B], adv_pred[E, D, B], step[E, D, B], norm[B])``.

    Per-image outputs for one job (the host turns them into counts and outcome files), and
    ``grad_norm[B]``: the L2 norm of the attacker view's cross-entropy gradient at the clean image
    (one extra backward pass, through and eot cells only; zeros otherwise):
    ``clean_pred`` the defended model's class on the clean images, ``adv_pred`` its class at each
    budget, ``step`` the attack's first fooling evaluation where it reports one (APGD's iteration,
    Square's queries; -1 otherwise and where the image is not broken), ``norm`` the L2 norm of the
    perturbation (minimum-norm attacks; zeros otherwise).

    ``params``: the classifier's parameter state (a ``robustjax.models.Classifier`` exposes
    ``graphdef``/``state``), passed as an argument so it is placed on the devices once per model
    rather than baked into every program; None for a plain closure.

    ``x`` (B,S,S,3) in [0,1], ``y`` (B,) int, ``mask`` (B,) bool (False on padding rows), ``eps``
    (E,) the non-zero budgets, traced and vmapped: one compilation serves the whole eps grid;
    ``rows`` (B,) int32 the images' positions in the evaluated set. Randomness is per image: the
    program is the per-image body ``vmap``-ped over the batch, each image's key ``key`` folded with
    its row, so an image's attack, defense draws and outcome do not depend on the batch size,
    the device count or the resume point (the batched model and defense still run as one batch). ``defenses``: the D defenses the adversarial
    examples are scored under, always as the defended model ``f(d(x_adv))``. ``clean`` is kept for
    callers; the clean pass always runs (outcomes need the clean prediction).

    ``minimum_norm`` (CW, DeepFool): the attack runs once, without a budget, and ``eps`` are L2
    bounds in pixel units: an image counts as broken at bound b only if the attack fooled the
    defended model with a perturbation of L2 norm <= b; otherwise its clean prediction counts
    (Räber et al. 2025's protocol, as ``robustjax.attacks.l2_bounded_accuracy``).
    """
    hp = dict(job.hparams)
    D = len(defenses)
    closure = f

    def program(params, x, y, mask, key, rows, eps):
        f = closure if params is None else _with_state(closure, params)

        def per_image(xi, yi, row):  # the body on one image, its key folded with its row
            out = body(f, xi[None], yi[None], jax.random.fold_in(key, row), eps)
            return jax.tree.map(lambda a: a[..., 0], out)

        clean_pred, adv_pred, step, norm, grad_norm = jax.vmap(per_image)(x, y, rows)  # image axis first
        return clean_pred.T, jnp.moveaxis(adv_pred, 0, -1), jnp.moveaxis(step, 0, -1), norm, grad_norm

    def body(f, x, y, key, eps):
        dkey, akey = jax.random.split(key)
        B = x.shape[0]

        def preds(xs):  # (D, B) int32: the defended model's classes on xs
            return jnp.stack([jnp.argmax(f(d(xs, dkey)), axis=-1).astype(jnp.int32) for d in defenses])

        clean_pred = preds(x)
        none = jnp.zeros((0, D, B), jnp.int32)
        if n_attacked == 0:
            return clean_pred, none, none, jnp.zeros((B,), jnp.float32), jnp.zeros((B,), jnp.float32)
        view = attacker_view(job.threat, f, defenses[0], dkey, eot_samples)
        # for the gradient-masking check; only where the attacker differentiates the defense
        grad_norm = (l2_norms(loss_grad(view, x, y)).astype(jnp.float32) if job.threat in ("through", "eot")
                     else jnp.zeros((B,), jnp.float32))

        def broken_step(pred, step):  # step only where clean-correct and now wrong
            return jnp.where((clean_pred == y) & (pred != y), step[None], -1)

        if minimum_norm:
            attack = get_attack(job.attack, **hp)
            x_adv, step = _attack_with_step(attack, view, x, y, akey)
            norm = l2_norms(x_adv - x)
            within = norm[None, :] <= eps[:, None]  # (E, B)
            adv = preds(x_adv)
            pred = jnp.where(within[:, None, :], adv[None], clean_pred[None])  # (E, D, B)
            return clean_pred, pred, jax.vmap(lambda p: broken_step(p, step))(pred), norm.astype(jnp.float32), grad_norm

        def one(e):
            attack = get_attack(job.attack, eps=e, **hp)
            x_adv, step = _attack_with_step(attack, view, x, y, akey)
            pred = preds(x_adv)
            return pred, broken_step(pred, step)

        adv_pred, step = jax.vmap(one)(eps)
        return clean_pred, adv_pred, step, jnp.zeros((B,), jnp.float32), grad_norm

    return program


def _attack_with_step(attack, view, x, y, key):
    """``(x_adv, step[B] int32)``: an attack with a ``run`` method reporting ``iteration`` (APGD) or
    ``queries`` (Square) gives its first fooling evaluation; any other attack -1."""
    run = getattr(attack, "run", None)
    if callable(run):
        res = run(view, x, y, key=key) if accepts_key(run) else run(view, x, y)
        step = getattr(res, "iteration", getattr(res, "queries", None))
        if hasattr(res, "x_adv") and step is not None:
            return res.x_adv, jnp.where(res.fooled, step, -1).astype(jnp.int32)
    x_adv = attack(view, x, y, key=key) if accepts_key(attack) else attack(view, x, y)
    return x_adv, jnp.full((x.shape[0],), -1, jnp.int32)


class Runner:
    def __init__(self, cfg, comp: Components, mesh: BatchMesh | None = None, progress: bool = True, log=None):
        self.cfg = cfg
        self.comp = comp
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
        validate(self.cfg, self.comp)
        self.store.check_format()
        if self.mesh.process_index != 0:  # one run of several processes: process 0 holds the lock and writes
            return self._run()
        with RunLock(self.cfg.out):
            return self._run()

    def _run(self) -> list[dict]:
        cfg = self.cfg
        jobs = plan(cfg)
        prov = provenance()
        auto = cfg.batch_size == "auto"  # chosen per cell from the device memory (batching.py)
        batch = None if auto else self.mesh.global_batch(int(cfg.batch_size))
        if not auto and batch != cfg.batch_size:
            self.log(f"batch size {cfg.batch_size} -> {batch} (a multiple of the {self.mesh.size} devices)")
        tail = self.store.truncated_tail()
        if tail:
            self.log(f"{self.store.path} ends in a truncated line ({tail} bytes, from a killed write): it is ignored, "
                     "cut off at the next write, and its cell recomputed")
        done = self.store.done()
        keys = []
        models = {}
        started, ran = time.perf_counter(), 0
        for i, job in enumerate(jobs, 1):
            if job.model not in models:
                models[job.model] = self._prepare_model(job.model)
            f, info, ds, resize = models[job.model]
            todo = []
            for cell in job.cells():
                settings = self._settings(cell, ds)
                key = cell_key(settings)
                keys.append(key)
                if key in done:
                    self.log(f"[{i}/{len(jobs)}] {cell.label}: done, skipped")
                else:
                    todo.append((cell, key, settings))
            if not todo:
                continue
            part = dataclasses.replace(job, defenses=tuple(c.defense for c, _, _ in todo))
            self.log(f"[{i}/{len(jobs)}] {part.label}: {len(ds)} images x {len(cfg.eps)} eps")
            if job.attack == adaptive.NAME:
                results, retries = adaptive.run_suite(self, part, f, ds, resize, batch), []
            else:
                results, retries = _batching.run_with_retry(  # an out-of-memory error halves the batch
                    lambda b: self._run_job(part, f, ds, resize, b, [k for _, k, _ in todo]), batch, self.mesh.size,
                    lambda: self._batch, self.log)
            for (cell, key, settings), (rec, arr) in zip(todo, results):
                rec.update(key=key, settings=settings, experiment=cfg.name, **prov)
                if retries:
                    rec["batch_retries"] = retries
                if self.mesh.process_index == 0:
                    outcomes.write(cfg.out, key, arr)  # before the record: a stored record always has its outcomes
                    self.store.append(rec)
                    PartialCell(cfg.out, key, rec["batch_size"], len(ds)).clear()
                l2 = rec.get("budget") == "l2_bound"
                label = (lambda e: f"L2 {e:.4g}") if l2 else (lambda e: f"{e * 255:g}/255")
                acc = ", ".join(f"{label(e)}: {a:.3f}" for e, a in zip(rec["eps"], rec["accuracy"]))
                self.log(f"    {cell.defense}: accuracy {acc}  ({rec['timing']['per_image_s']:.3f} s/image, compile {rec['timing']['compile_s']:.1f} s)")
            if self.interrupted:
                raise KeyboardInterrupt
            ran += 1
            elapsed = time.perf_counter() - started
            left = sum(1 for j in jobs[i:])
            self.log(f"    grid: {i}/{len(jobs)} jobs, {elapsed:.0f} s elapsed, about {elapsed / ran * left:.0f} s left (if the rest costs the same)")
        stored = {r["key"]: r for r in self.store.records()}
        return [stored[k] for k in keys if k in stored]

    def _prepare_model(self, name):
        cfg = self.cfg
        f = self.comp.load_model(name, weights=cfg.weights, head=cfg.head)
        info = model_info(f, name)
        space = cfg.head if cfg.head else None
        ds = self.comp.load_data(cfg.dataset, cfg.data_dir, space).subset(cfg.n, int(cfg.seed))
        nc = info["num_classes"]
        if nc is not None and int(ds.labels.max()) >= int(nc):
            raise ValueError(
                f"model {name!r} has {nc} outputs but dataset {cfg.dataset!r} has labels up to {int(ds.labels.max())} "
                f"(label space {ds.label_space!r}); pick a matching head (e.g. --head imagenette) or dataset"
            )
        resize = rdata.Resize.from_preprocessing(info["preprocessing"], int(info["input_size"]))
        return f, info, ds, resize

    def _settings(self, cell: Cell, ds) -> dict:
        cfg = self.cfg
        s = {
            "dataset": cfg.dataset,
            "n": cfg.n,
            "seed": int(cfg.seed),
            "images": _fingerprint(ds.ids),
            "model": cell.model,
            "weights": cfg.weights,
            "head": cfg.head,
            "defense": cell.defense,
            "attack": cell.attack,
            "hparams": {k: list(v) if isinstance(v, tuple) else v for k, v in cell.hparams},
            "threat": cell.threat,
            "eps": [float(e) for e in cfg.eps],
        }
        if cell.threat == "eot":
            s["eot_samples"] = int(cfg.eot_samples)
        s.update(_precision.settings(cfg.get("precision", _precision.DEFAULT)))  # non-default precisions enter the cell key
        return s

    def _run_job(self, job: Job, f, ds, resize, batch: int | None, keys: list[str]) -> list[tuple[dict, dict]]:
        """Run one job over the dataset, resuming after the batches stored under ``out/partial``;
        per defense one (record without key/settings, outcome arrays) pair. ``batch`` None: the
        largest batch that fits the device memory (:func:`robustjax.eval.batching.auto_batch`)."""
        cfg, mesh = self.cfg, self.mesh
        self._batch = batch  # the batch in use, for run_with_retry (None until auto has chosen)
        eps_all = np.asarray(cfg.eps, np.float32)
        attacked = eps_all[eps_all > 0]
        prec = cfg.get("precision", _precision.DEFAULT)
        f = _precision.classifier(f, prec)
        defenses = [self.comp.get_defense(d) for d in job.defenses]
        D = len(defenses)
        compiled, choice, compile_s = None, None, 0.0
        if batch is None:
            t0 = time.perf_counter()
            batch, compiled, choice = _batching.auto_batch(
                lambda b: self._compile(job, f, defenses, attacked, eps_all, resize, b, prec)[0], mesh.size, len(ds))
            compile_s = time.perf_counter() - t0
            self._batch = batch
        n, total = len(ds), rdata.num_batches(len(ds), batch)
        parts = [PartialCell(cfg.out, k, batch, n) for k in keys]
        start, loaded = resume_point(parts, total)
        if start:
            self.log(f"    resuming at batch {start + 1} of {total}: {start} batch(es) read from {parts[0].dir.parent}")
        run_s, first = 0.0, None
        if start < total:
            found, params, args = self._compile(job, f, defenses, attacked, eps_all, resize, batch, prec,
                                                compiled=compiled)
            compiled = found
            compile_s += args.pop("compile_s")
            bar = _bar(n - start * batch, job.label) if self.progress else None
            writer = mesh.process_index == 0
            pending = None
            t0 = time.perf_counter()

            def collect(pending):
                out, b, count = pending
                got = [np.asarray(o) for o in out]
                for k in range(D):
                    arr = _batch_arrays(got, k, count)
                    if writer:
                        parts[k].save(b, arr)
                    loaded[k].append(arr)
                if bar is not None:
                    bar.update(count)

            try:
                images = _decode_cache(ds, resize)
                for bt in rdata.batches(ds, batch, resize, start=start, process_index=mesh.process_index,
                                        process_count=mesh.process_count, cache=images):
                    local = len(bt.y)
                    lo = bt.index * batch + mesh.process_index * local
                    rows = mesh.put(np.arange(lo, lo + local, dtype=np.int32), batch)
                    out = compiled(params, mesh.put(bt.x, batch), mesh.put(bt.y, batch), mesh.put(bt.mask, batch), args["key"], rows, args["eps"])
                    if pending is not None:  # read the previous batch while this one runs
                        collect(pending)
                    pending = (out, bt.index, bt.count)
                    if first is None:  # wait for the first batch alone, to time it
                        collect(pending)
                        first, pending = (time.perf_counter() - t0, bt.count), None
                if pending is not None:
                    collect(pending)
            finally:
                if bar is not None:
                    bar.close()
            run_s = time.perf_counter() - t0
        n_run = n - min(n, start * batch)
        # The first execution of a compiled program carries a one-off start-up cost (about 1 s for
        # efficientnet_lite0 on XLA:CPU), so the per-image figure is taken from the second batch on,
        # as a benchmark that warms up first measures it; with one batch it is the wall time.
        if first is not None and n_run > first[1]:
            first_s, per_image_s = first[0], (run_s - first[0]) / (n_run - first[1])
        else:
            first_s, per_image_s = run_s, run_s / max(1, n_run)
        labels = np.asarray(ds.labels, np.int32)
        results = []
        for k in range(D):
            arr = _cell_arrays(loaded[k], np.asarray(cfg.eps, np.float64), labels, ds.ids, bool(self.comp.minimum_norm(job.attack)),
                               grad=job.threat in ("through", "eot"))
            right = arr["pred"] == labels[None, :]  # (E, N)
            clean_right = arr["clean_pred"] == labels
            correct = [int(c) for c in right.sum(axis=1)]
            flipped = [int(c) for c in (clean_right[None, :] & ~right).sum(axis=1)]
            results.append(({
                "format": FORMAT,
                "n_images": n,
                "eps": [float(e) for e in cfg.eps],
                "eps_255": [round(float(e) * 255, 3) for e in cfg.eps],
                "correct": correct,
                "accuracy": [c / n for c in correct],
                "clean_correct": int(clean_right.sum()),
                "flipped": flipped,  # clean-correct images the attack broke (misclassification success numerator)
                "timing": {
                    "compile_s": round(compile_s, 3),
                    "run_s": round(run_s, 3),
                    "first_batch_s": round(first_s, 3),
                    "per_image_s": per_image_s,
                    "per_image_per_eps_s": per_image_s / max(1, len(attacked)),
                    "defenses_in_program": D,
                    "resumed_batches": start,
                },
                "budget": "l2_bound" if self.comp.minimum_norm(job.attack) else "linf",
                "batch_size": batch,
                **({"batch_auto": choice.describe()} if choice is not None else {}),
                "precision": prec,
                **mesh.describe(),
                "host": platform.node(),
                "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            }, arr))
        return results

    def _compile(self, job, f, defenses, attacked, eps_all, resize, batch, prec, compiled=None):
        """``(compiled, params, args)`` of the job's program at global ``batch`` in precision ``prec``
        (``compiled`` given: reused, only the arguments are placed)."""
        cfg, mesh = self.cfg, self.mesh
        rep, dat = mesh.replicated, mesh.data
        params = _params(f)
        if params is not None:
            params = jax.device_put(params, rep)
        t0 = time.perf_counter()
        if compiled is None:
            program = build_program(f, defenses, self.comp.get_attack, job, len(attacked), int(cfg.eot_samples),
                                    clean=bool((eps_all == 0).any()), minimum_norm=bool(self.comp.minimum_norm(job.attack)))
            program = _precision.program(program, prec)
            jitted = jax.jit(program, in_shardings=(rep, dat, dat, dat, rep, dat, rep), out_shardings=(rep, rep, rep, rep, rep))
            S = resize.size
            spec = (
                params,
                jax.ShapeDtypeStruct((batch, S, S, 3), jnp.float32, sharding=dat),
                jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=dat),
                jax.ShapeDtypeStruct((batch,), jnp.bool_, sharding=dat),
                jax.ShapeDtypeStruct((2,), jnp.uint32, sharding=rep),
                jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=dat),
                jax.ShapeDtypeStruct(attacked.shape, jnp.float32, sharding=rep),
            )
            compiled = jitted.lower(*spec).compile()
        compile_s = time.perf_counter() - t0
        args = {"eps": jax.device_put(attacked, rep), "key": jax.device_put(jax.random.PRNGKey(int(cfg.seed)), rep), "compile_s": compile_s}
        return compiled, params, args


def _batch_arrays(got, k: int, count: int) -> dict:
    """Defense ``k``'s per-image outputs of one batch's program result, real rows only (the first
    ``count`` rows: padding is at the end of a global batch)."""
    clean_pred, adv_pred, step, norm, grad_norm = got
    return {"clean_pred": clean_pred[k, :count], "adv_pred": adv_pred[:, k, :count], "step": step[:, k, :count], "norm": norm[:count],
            "grad_norm": grad_norm[:count]}


def _cell_arrays(batches: list[dict], eps_all, labels, ids, minimum_norm: bool, grad: bool = False) -> dict:
    """A cell's outcome arrays (:mod:`robustjax.eval.outcomes`) from its batches in order."""
    clean = np.concatenate([b["clean_pred"] for b in batches]).astype(np.int32)
    adv = np.concatenate([b["adv_pred"] for b in batches], axis=1).astype(np.int32)
    step = np.concatenate([b["step"] for b in batches], axis=1).astype(np.int32)
    N = len(clean)
    pred, steps, it = np.empty((len(eps_all), N), np.int32), np.full((len(eps_all), N), -1, np.int32), iter(range(adv.shape[0]))
    for j, e in enumerate(eps_all):
        if e == 0:
            pred[j] = clean
        else:
            i = next(it)
            pred[j], steps[j] = adv[i], step[i]
    arr = {"row": np.arange(N, dtype=np.int32), "id": np.asarray(list(ids), dtype=str), "label": labels.astype(np.int32),
           "clean_pred": clean, "eps": np.asarray(eps_all, np.float64), "pred": pred, "step": steps}
    if grad and all("grad_norm" in b for b in batches) and adv.shape[0]:
        arr["grad_norm"] = np.concatenate([b["grad_norm"] for b in batches]).astype(np.float32)
    if minimum_norm:
        norm = np.concatenate([b["norm"] for b in batches]).astype(np.float32)
        arr["norm"] = norm
    return arr


def _decode_cache(ds, resize):
    """The grid-wide decoded-image cache of (ds, resize), or None when turned off."""
    from robustjax.data import cache

    return cache.decoded(ds, resize) if cache.enabled() else None


def _with_state(f, state):
    """A copy of classifier ``f`` whose parameters are ``state`` (e.g. traced inside jit)."""
    g = copy.copy(f)
    g.state = state
    return g


def _params(f):
    return f.state if hasattr(f, "graphdef") and hasattr(f, "state") else None


def _bar(total: int, label: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="    images", leave=False, dynamic_ncols=True, file=sys.stderr, smoothing=0.1)
