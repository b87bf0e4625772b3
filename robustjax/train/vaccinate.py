"""JPEG "vaccination" (Das et al. 2017, section 4.2): a chain of warm-started fine-tunings
M -> M100 -> M90 -> ... -> M20.

``python -m robustjax.train vaccinate --base M --qualities 100,90,80,70,60,50,40,30,20 --out CHAIN --epochs E``

``M`` is a model name with published weights (``cifar_resnet20``) or a converted checkpoint folder
(a ``python -m robustjax.train classifier`` run's ``final``). Model ``M<q_i>`` is
``robustjax.train.classifier`` at quality ``q_i`` for ``E`` epochs, initialised from ``M<q_{i-1}>``
(the first from ``M``), in ``CHAIN/q<QQQ>/`` (its ``final`` checkpoint's metadata holds base, quality,
epochs, data split and held-out accuracy). ``CHAIN/chain.json`` records the chain; ``CHAIN`` is what
the ensemble model ``ensemble:CHAIN`` loads (``robustjax.models.ensemble``).

A base trained by ``classifier`` fixes the data split (its stored split is reused, so the base's
training images never become held-out images). A rerun of a killed chain skips the finished models
and resumes the unfinished one after its last finished epoch. Bad input (a quality outside 1..100, a
repeated quality, a missing base, a chain folder holding another chain) fails before any training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from robustjax import checkpoints
from robustjax.train import classifier as T

PAPER_QUALITIES = (100, 90, 80, 70, 60, 50, 40, 30, 20)


def parse_qualities(text) -> list[int]:
    """``"100,90,80"`` (or a sequence) -> ints, each in 1..100 and distinct; ValueError otherwise."""
    items = [t.strip() for t in text.split(",") if t.strip()] if isinstance(text, str) else list(text)
    if not items:
        raise ValueError("give at least one JPEG quality")
    out = []
    for t in items:
        try:
            q = int(t)
        except (TypeError, ValueError):
            raise ValueError(f"JPEG quality must be an integer in 1..100, got {t!r}") from None
        out.append(T.check_quality(q))
    if len(set(out)) != len(out):
        raise ValueError(f"repeated JPEG quality in {out}")
    return out


def resolve_base(base: str) -> tuple[str, str, dict]:
    """``(model name, init for classifier.train, base metadata)``; FileNotFoundError for a missing base."""
    from robustjax.models import zoo

    if checkpoints.is_converted(base):
        meta = json.loads((Path(base) / "metadata.json").read_text())
        if "model" not in meta:
            raise ValueError(f"{base} has no 'model' in its metadata "
                             "(train it with python -m robustjax.train classifier)")
        return meta["model"], str(Path(base).resolve()), meta
    if base in zoo.MODELS:
        zoo.MODELS.get(base).default_weights()  # raises FileNotFoundError naming where it looked
        return base, "published", {}
    raise FileNotFoundError(f"base model {base!r} is neither a converted checkpoint folder nor a model name "
                            f"({', '.join(zoo.names())})")


def vaccinate(base: str, qualities, out: str, epochs: int, common: dict | None = None,
              stop_after_steps: int = 0) -> dict:
    """Run (or resume) the chain; returns ``{"models": [final folders], "ran": [qualities trained by this call],
    "stopped": quality or None, "losses": {q: step losses of this call}, "start_epochs": {q: first epoch run}}``.

    ``common``: :class:`robustjax.train.classifier.Config` fields shared by every link (data, split,
    batch_size, lr, seed, progress). ``stop_after_steps`` (tests: a kill) stops after that many
    training steps of this call, mid-chain.
    """
    qualities = parse_qualities(qualities)
    model, init, base_meta = resolve_base(base)
    common = dict(common or {})
    split = base_meta.get("split")
    if split is not None:  # the base's own split, so its training images stay out of the held-out part
        tr = base_meta.get("training", {})
        for k in ("data", "data_dir", "heldout_data", "train_n", "heldout_n", "split_seed"):
            if k in tr:
                common[k] = tr[k]
    probe = T.Config(out=str(Path(out) / "probe"), model=model, init=init, quality=qualities[0], epochs=epochs,
                     **common)
    T.check_config(probe)
    out = Path(out).resolve()
    record = {"base": str(Path(base).resolve()) if init != "published" else base, "model": model,
              "qualities": qualities, "epochs": epochs,
              **{k: v for k, v in dataclasses.asdict(probe).items()
                 if k in T.RESUME_KEYS and k not in ("init", "quality")}}
    chain_file = out / "chain.json"
    if chain_file.is_file():
        old = json.loads(chain_file.read_text())
        if old != record:
            diff = {k: (old.get(k), record.get(k)) for k in record if old.get(k) != record.get(k)}
            raise ValueError(f"{out} holds another chain {diff} (stored, given); choose a new --out")
    else:
        out.mkdir(parents=True, exist_ok=True)
        chain_file.write_text(json.dumps(record, indent=2) + "\n")

    from robustjax.models import zoo

    entry, mod = zoo.MODELS.get(model), zoo.model_module(model)
    size = getattr(mod, "INPUT_SIZE", None) or mod.VARIANTS[entry.config["variant"]]["input_size"]
    arrays = None
    finals, ran, budget, losses, starts = [], [], stop_after_steps, {}, {}
    prev = init
    for i, q in enumerate(qualities):
        run = out / f"q{q:03d}"
        final = run / "final"
        if (checkpoints.is_converted(final)
                and json.loads((final / "metadata.json").read_text()).get("epochs") == epochs):
            finals.append(str(final))
            prev = str(final)
            continue
        if arrays is None:
            arrays = T.load_split(probe, size)
            if split is not None and arrays[4]["train_sha"] != split["train_sha"]:
                raise ValueError("the data split differs from the base's "
                                 f"({arrays[4]['train_sha']} vs {split['train_sha']})")
        cfg = dataclasses.replace(probe, out=str(run), init=prev, quality=q)
        extra = {"base": record["base"], "chain": str(out), "chain_index": i, "warm_start": prev}
        s = T.train(cfg, arrays=arrays, metadata_extra=extra, stop_after_steps=budget)
        ran.append(q)
        losses[q], starts[q] = s["losses"], s["start_epoch"]
        if s["final"] is None:
            return {"models": finals, "ran": ran, "stopped": q, "losses": losses, "start_epochs": starts}
        finals.append(s["final"])
        prev = s["final"]
        if budget:
            budget -= len(s["losses"])
            if budget <= 0:
                return {"models": finals, "ran": ran, "stopped": q, "losses": losses, "start_epochs": starts}
    return {"models": finals, "ran": ran, "stopped": None, "losses": losses, "start_epochs": starts}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustjax.train vaccinate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="model name with published weights, or a converted checkpoint folder")
    p.add_argument("--qualities", default=",".join(map(str, PAPER_QUALITIES)),
                   help="comma-separated, default 100,90,...,20")
    T.add_common(p)
    a = p.parse_args(argv)
    common = dict(data=a.data, data_dir=a.data_dir, heldout_data=a.heldout_data, train_n=a.train_n,
                  heldout_n=a.heldout_n, split_seed=a.split_seed, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                  progress=not a.no_progress)
    s = vaccinate(a.base, a.qualities, a.out, a.epochs, common)
    for f in s["models"]:
        m = json.loads((Path(f) / "metadata.json").read_text())
        print(f"M{m['quality']}: held-out accuracy {m['heldout_accuracy']:.4f}  ({f})")
    return 0
