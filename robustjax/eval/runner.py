"""The experiment grid: validate everything, then run each unfinished cell as one compiled program.

A cell is (model, defense, attack, threat); its eps grid is ``vmap``-ed inside one jitted program,
so a cell compiles once. Batches are sharded over all devices (:class:`BatchMesh`); each finished
cell is one record in the results store, so a rerun skips it.
"""

from __future__ import annotations

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
from robustjax.eval import config as C
from robustjax.eval.components import Components, accepts_key, model_info
from robustjax.eval.mesh import BatchMesh
from robustjax.eval.store import Store, cell_key
from robustjax.eval.threats import attacker_view


@dataclasses.dataclass(frozen=True)
class Cell:
    model: str
    defense: str
    attack: str
    hparams: tuple  # sorted (key, value) pairs
    threat: str

    @property
    def label(self) -> str:
        hp = "".join(f":{k}={v}" for k, v in self.hparams)
        return f"{self.model} | {self.defense} | {self.attack}{hp} | {self.threat}"


def plan(cfg) -> list[Cell]:
    """Every cell of the grid, models outermost. Defense ``none`` runs once, as ``oblivious``
    (with no defense all threat models attack the same function)."""
    cells = []
    for m in cfg.models:
        for d in cfg.defenses:
            for a in cfg.attacks:
                name, hp = C.attack_entry(a)
                threats = ["oblivious"] if d.strip() == "none" else list(cfg.threats)
                for t in threats:
                    cells.append(Cell(m, d, name, tuple(sorted(hp.items())), t))
    return list(dict.fromkeys(cells))


def validate(cfg, comp: Components) -> None:
    """Fail before any compute (and before loading weights or data) on a bad config or name."""
    C.check_shape(cfg)
    rdata.check_name(cfg.dataset)
    names = comp.model_names()
    if names is not None:
        unknown = [m for m in cfg.models if m not in names]
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


def build_program(f, defense, get_attack, cell: Cell, n_attacked: int, eot_samples: int, clean: bool = True):
    """``program(x, y, mask, key, index, eps) -> (clean_correct, adv_correct[E])`` for one cell.

    ``x`` (B,S,S,3) in [0,1], ``y`` (B,) int, ``mask`` (B,) bool (False on padding rows), ``eps``
    (E,) the non-zero budgets, traced and vmapped; ``index`` the batch number (folded into ``key``): one compilation serves the whole eps grid.
    Accuracy is always that of the defended model ``f(d(x_adv))``; the clean forward pass is
    skipped (count 0) when ``clean`` is False (no eps = 0 in the grid).
    """
    hp = dict(cell.hparams)

    def program(x, y, mask, key, index, eps):
        dkey, akey = jax.random.split(jax.random.fold_in(key, index))

        def correct(xs):
            pred = jnp.argmax(f(defense(xs, dkey)), axis=-1)
            return jnp.sum((pred == y) & mask, dtype=jnp.int32)

        clean_count = correct(x) if clean else jnp.zeros((), jnp.int32)
        if n_attacked == 0:
            return clean_count, jnp.zeros((0,), jnp.int32)
        view = attacker_view(cell.threat, f, defense, dkey, eot_samples)

        def one(e):
            attack = get_attack(cell.attack, eps=e, **hp)
            x_adv = attack(view, x, y, key=akey) if accepts_key(attack) else attack(view, x, y)
            return correct(x_adv)

        return clean_count, jax.vmap(one)(eps)

    return program


class Runner:
    def __init__(self, cfg, comp: Components, mesh: BatchMesh | None = None, progress: bool = True, log=None):
        self.cfg = cfg
        self.comp = comp
        self.mesh = mesh or BatchMesh()
        self.progress = progress and self.mesh.process_index == 0
        self.log = log or (lambda *a: print(*a, file=sys.stderr, flush=True))
        self.store = Store(cfg.out)

    def run(self) -> list[dict]:
        """Run every unfinished cell; returns this experiment's records (old and new)."""
        cfg = self.cfg
        validate(cfg, self.comp)
        cells = plan(cfg)
        prov = provenance()
        batch = self.mesh.global_batch(int(cfg.batch_size))
        if batch != cfg.batch_size:
            self.log(f"batch size {cfg.batch_size} -> {batch} (a multiple of the {self.mesh.size} devices)")
        done = self.store.done()
        keys, records = [], []
        models = {}
        for i, cell in enumerate(cells, 1):
            if cell.model not in models:
                models[cell.model] = self._prepare_model(cell.model)
            f, info, ds, resize = models[cell.model]
            settings = self._settings(cell, ds)
            key = cell_key(settings)
            keys.append(key)
            if key in done:
                self.log(f"[{i}/{len(cells)}] {cell.label}: done, skipped")
                continue
            self.log(f"[{i}/{len(cells)}] {cell.label}: {len(ds)} images x {len(cfg.eps)} eps")
            rec = self._run_cell(cell, f, ds, resize, batch)
            rec.update(key=key, settings=settings, experiment=cfg.name, **prov)
            if self.mesh.process_index == 0:
                self.store.append(rec)
            acc = ", ".join(f"{e * 255:g}/255: {a:.3f}" for e, a in zip(rec["eps"], rec["accuracy"]))
            self.log(f"    accuracy {acc}  ({rec['timing']['per_image_s']:.3f} s/image, compile {rec['timing']['compile_s']:.1f} s)")
        stored = {r["key"]: r for r in self.store.records()}
        records = [stored[k] for k in keys if k in stored]
        return records

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

    def _run_cell(self, cell: Cell, f, ds, resize, batch: int) -> dict:
        cfg, mesh = self.cfg, self.mesh
        eps_all = np.asarray(cfg.eps, np.float32)
        attacked = eps_all[eps_all > 0]
        defense = self.comp.get_defense(cell.defense)
        program = build_program(f, defense, self.comp.get_attack, cell, len(attacked), int(cfg.eot_samples), clean=bool((eps_all == 0).any()))
        rep, dat = mesh.replicated, mesh.data
        jitted = jax.jit(program, in_shardings=(dat, dat, dat, rep, rep, rep), out_shardings=(rep, rep))
        S = resize.size
        spec = (
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
        clean_total, adv_total = 0, np.zeros(len(attacked), np.int64)
        bar = _bar(len(ds), cell.label) if self.progress else None
        pending = None
        t0 = time.perf_counter()
        try:
            for b in rdata.batches(ds, batch, resize, process_index=mesh.process_index, process_count=mesh.process_count):
                index = jax.device_put(np.int32(b.index), rep)
                out = compiled(mesh.put(b.x, batch), mesh.put(b.y, batch), mesh.put(b.mask, batch), base, index, eps_dev)
                if pending is not None:  # read the previous batch while this one runs
                    clean_total, adv_total = _collect(pending, clean_total, adv_total, bar)
                pending = (out, b.count)
            if pending is not None:
                clean_total, adv_total = _collect(pending, clean_total, adv_total, bar)
        finally:
            if bar is not None:
                bar.close()
        run_s = time.perf_counter() - t0
        n = len(ds)
        correct = [int(clean_total) if e == 0 else 0 for e in eps_all]
        it = iter(adv_total.tolist())
        correct = [c if e == 0 else int(next(it)) for c, e in zip(correct, eps_all)]
        return {
            "n_images": n,
            "eps": [float(e) for e in cfg.eps],
            "eps_255": [round(float(e) * 255, 3) for e in cfg.eps],
            "correct": correct,
            "accuracy": [c / n for c in correct],
            "timing": {
                "compile_s": round(compile_s, 3),
                "run_s": round(run_s, 3),
                "per_image_s": run_s / n,
                "per_image_per_eps_s": run_s / n / max(1, len(attacked)),
            },
            "batch_size": batch,
            **mesh.describe(),
            "host": platform.node(),
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }


def _collect(pending, clean_total, adv_total, bar):
    (clean, adv), count = pending
    clean_total += int(clean)
    adv_total = adv_total + np.asarray(adv, np.int64)
    if bar is not None:
        bar.update(count)
    return clean_total, adv_total


def _bar(total: int, label: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="    ", leave=False, dynamic_ncols=True, file=sys.stderr, smoothing=0.1)
