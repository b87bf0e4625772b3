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
from robustjax.attacks.base import l2_norms
from robustjax.attacks.threat import attacker_view
from robustjax.eval import config as C
from robustjax.eval.components import Components, accepts_key, model_info
from robustjax.eval.mesh import BatchMesh
from robustjax.models import ensemble
from robustjax.eval.store import Store, cell_key


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
            hp = tuple(sorted(hp.items()))
            defs = list(dict.fromkeys(d.strip() for d in cfg.defenses))
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
    """``program(params, x, y, mask, key, index, eps) -> (clean_correct[D], adv_correct[E, D], flipped[E, D])``
    for one job; ``flipped`` counts the images right on the clean input and wrong on the adversarial
    one (the numerator of Das et al. 2017's misclassification success rate, ``robustjax.eval.metrics``).

    ``params``: the classifier's parameter state (a ``robustjax.models.Classifier`` exposes
    ``graphdef``/``state``), passed as an argument so it is placed on the devices once per model
    rather than baked into every program; None for a plain closure.

    ``x`` (B,S,S,3) in [0,1], ``y`` (B,) int, ``mask`` (B,) bool (False on padding rows), ``eps``
    (E,) the non-zero budgets, traced and vmapped: one compilation serves the whole eps grid;
    ``index`` the batch number (folded into ``key``). ``defenses``: the D defenses the adversarial
    examples are scored under, always as the defended model ``f(d(x_adv))``. The clean pass is
    skipped (counts 0) when ``clean`` is False (no eps = 0 in the grid).

    ``minimum_norm`` (CW, DeepFool): the attack runs once, without a budget, and ``eps`` are L2
    bounds in pixel units: an image counts as broken at bound b only if the attack fooled the
    defended model with a perturbation of L2 norm <= b; otherwise its clean prediction counts
    (Räber et al. 2025's protocol, as ``robustjax.attacks.l2_bounded_accuracy``).
    """
    hp = dict(job.hparams)
    D = len(defenses)
    closure = f

    def program(params, x, y, mask, key, index, eps):
        f = closure if params is None else _with_state(closure, params)
        dkey, akey = jax.random.split(jax.random.fold_in(key, index))

        def ok(xs):  # (D, B) bool: defended model right on xs
            return jnp.stack([jnp.argmax(f(d(xs, dkey)), axis=-1) == y for d in defenses])

        def correct(xs):
            return jnp.sum(ok(xs) & mask, axis=1, dtype=jnp.int32)

        clean_count = correct(x) if clean or n_attacked else jnp.zeros((D,), jnp.int32)
        if n_attacked == 0:
            return clean_count, jnp.zeros((0, D), jnp.int32), jnp.zeros((0, D), jnp.int32)
        clean_ok = ok(x)  # (D, B); XLA shares it with the clean count above
        view = attacker_view(job.threat, f, defenses[0], dkey, eot_samples)
        if minimum_norm:
            attack = get_attack(job.attack, **hp)
            x_adv = attack(view, x, y, key=akey) if accepts_key(attack) else attack(view, x, y)
            within = l2_norms(x_adv - x)[None, :] <= eps[:, None]  # (E, B)
            broken_ok = ok(x_adv)  # (D, B)
            counted = jnp.where(within[:, None, :], broken_ok[None], clean_ok[None])  # (E, D, B)
            flipped = jnp.sum(clean_ok[None] & ~counted & mask, axis=2, dtype=jnp.int32)
            return clean_count, jnp.sum(counted & mask, axis=2, dtype=jnp.int32), flipped

        def one(e):
            attack = get_attack(job.attack, eps=e, **hp)
            x_adv = attack(view, x, y, key=akey) if accepts_key(attack) else attack(view, x, y)
            adv_ok = ok(x_adv)
            return jnp.sum(adv_ok & mask, axis=1, dtype=jnp.int32), jnp.sum(clean_ok & ~adv_ok & mask, axis=1, dtype=jnp.int32)

        adv, flipped = jax.vmap(one)(eps)
        return clean_count, adv, flipped

    return program


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
        """Run every unfinished cell; returns this experiment's records (old and new)."""
        cfg = self.cfg
        validate(cfg, self.comp)
        jobs = plan(cfg)
        prov = provenance()
        batch = self.mesh.global_batch(int(cfg.batch_size))
        if batch != cfg.batch_size:
            self.log(f"batch size {cfg.batch_size} -> {batch} (a multiple of the {self.mesh.size} devices)")
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
            for (cell, key, settings), rec in zip(todo, self._run_job(part, f, ds, resize, batch)):
                rec.update(key=key, settings=settings, experiment=cfg.name, **prov)
                if self.mesh.process_index == 0:
                    self.store.append(rec)
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
            "hparams": dict(cell.hparams),
            "threat": cell.threat,
            "eps": [float(e) for e in cfg.eps],
        }
        if cell.threat == "eot":
            s["eot_samples"] = int(cfg.eot_samples)
        return s

    def _run_job(self, job: Job, f, ds, resize, batch: int) -> list[dict]:
        """Run one job over the dataset; one record (without key/settings) per defense."""
        cfg, mesh = self.cfg, self.mesh
        eps_all = np.asarray(cfg.eps, np.float32)
        attacked = eps_all[eps_all > 0]
        defenses = [self.comp.get_defense(d) for d in job.defenses]
        program = build_program(f, defenses, self.comp.get_attack, job, len(attacked), int(cfg.eot_samples), clean=bool((eps_all == 0).any()),
                                minimum_norm=bool(self.comp.minimum_norm(job.attack)))
        rep, dat = mesh.replicated, mesh.data
        params = _params(f)
        if params is not None:
            params = jax.device_put(params, rep)
        jitted = jax.jit(program, in_shardings=(rep, dat, dat, dat, rep, rep, rep), out_shardings=(rep, rep, rep))
        S = resize.size
        spec = (
            params,
            jax.ShapeDtypeStruct((batch, S, S, 3), jnp.float32, sharding=dat),
            jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=dat),
            jax.ShapeDtypeStruct((batch,), jnp.bool_, sharding=dat),
            jax.ShapeDtypeStruct((2,), jnp.uint32, sharding=rep),
            jax.ShapeDtypeStruct((), jnp.int32, sharding=rep),
            jax.ShapeDtypeStruct(attacked.shape, jnp.float32, sharding=rep),
        )
        t0 = time.perf_counter()
        compiled = jitted.lower(*spec).compile()
        compile_s = time.perf_counter() - t0
        eps_dev = jax.device_put(attacked, rep)
        base = jax.device_put(jax.random.PRNGKey(int(cfg.seed)), rep)
        D = len(defenses)
        clean_total, adv_total = np.zeros(D, np.int64), np.zeros((2, len(attacked), D), np.int64)  # adv: (correct, flipped)
        bar = _bar(len(ds), job.label) if self.progress else None
        pending = None
        first = None  # (seconds, images) when the first batch's result was read
        t0 = time.perf_counter()
        try:
            for b in rdata.batches(ds, batch, resize, process_index=mesh.process_index, process_count=mesh.process_count):
                index = jax.device_put(np.int32(b.index), rep)
                out = compiled(params, mesh.put(b.x, batch), mesh.put(b.y, batch), mesh.put(b.mask, batch), base, index, eps_dev)
                if pending is not None:  # read the previous batch while this one runs
                    clean_total, adv_total = _collect(pending, clean_total, adv_total, bar)
                pending = (out, b.count)
                if first is None:  # wait for the first batch alone, to time it
                    clean_total, adv_total = _collect(pending, clean_total, adv_total, bar)
                    first, pending = (time.perf_counter() - t0, b.count), None
            if pending is not None:
                clean_total, adv_total = _collect(pending, clean_total, adv_total, bar)
        finally:
            if bar is not None:
                bar.close()
        run_s = time.perf_counter() - t0
        n = len(ds)
        # The first execution of a compiled program carries a one-off start-up cost (about 1 s for
        # efficientnet_lite0 on XLA:CPU), so the per-image figure is taken from the second batch on,
        # as a benchmark that warms up first measures it; with one batch it is the wall time.
        if first is not None and n > first[1]:
            first_s, per_image_s = first[0], (run_s - first[0]) / (n - first[1])
        else:
            first_s, per_image_s = run_s, run_s / n
        records = []
        for k in range(D):
            it, fl = iter(adv_total[0, :, k].tolist()), iter(adv_total[1, :, k].tolist())
            correct = [int(clean_total[k]) if e == 0 else int(next(it)) for e in eps_all]
            flipped = [0 if e == 0 else int(next(fl)) for e in eps_all]
            records.append({
                "n_images": n,
                "eps": [float(e) for e in cfg.eps],
                "eps_255": [round(float(e) * 255, 3) for e in cfg.eps],
                "correct": correct,
                "accuracy": [c / n for c in correct],
                "clean_correct": int(clean_total[k]),
                "flipped": flipped,  # clean-correct images the attack broke (misclassification success numerator)
                "timing": {
                    "compile_s": round(compile_s, 3),
                    "run_s": round(run_s, 3),
                    "first_batch_s": round(first_s, 3),
                    "per_image_s": per_image_s,
                    "per_image_per_eps_s": per_image_s / max(1, len(attacked)),
                    "defenses_in_program": D,
                },
                "budget": "l2_bound" if self.comp.minimum_norm(job.attack) else "linf",
                "batch_size": batch,
                **mesh.describe(),
                "host": platform.node(),
                "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            })
        return records


def _with_state(f, state):
    """A copy of classifier ``f`` whose parameters are ``state`` (e.g. traced inside jit)."""
    g = copy.copy(f)
    g.state = state
    return g


def _params(f):
    return f.state if hasattr(f, "graphdef") and hasattr(f, "state") else None


def _collect(pending, clean_total, adv_total, bar):
    (clean, adv, flipped), count = pending
    clean_total = clean_total + np.asarray(clean, np.int64)
    adv_total = adv_total + np.stack([np.asarray(adv, np.int64), np.asarray(flipped, np.int64)])
    if bar is not None:
        bar.update(count)
    return clean_total, adv_total


def _bar(total: int, label: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="    images", leave=False, dynamic_ncols=True, file=sys.stderr, smoothing=0.1)
