"""Training a robustjax classifier, optionally on JPEG images of one quality (Das et al. 2017, section 4.2).

``python -m robustjax.train classifier --model small_cnn_cifar10 --out RUN [--quality 60] [--init ...]``

- Model: any name of ``robustjax.models`` (``small_cnn_*`` train with the paper's dropout, see
  ``robustjax.models.small_cnn.DROPOUT``). ``--init scratch`` (seeded random weights), ``published``
  (the model's published weights, e.g. the CIFAR ResNet-20) or a converted checkpoint folder (a
  previous run's ``final``). BatchNorm statistics stay frozen (eval mode): only ``nnx.Param`` train,
  the usual choice when fine-tuning published weights on a few thousand images.
- Loss: softmax cross-entropy; optax Adam (b1 0.9, b2 0.999, eps 1e-8) at a constant ``--lr``
  (default 1e-3, Adam's default: the paper names Adam, no rate).
- JPEG: with ``--quality Q`` every batch is JPEG-compressed on the device by robustjax's libjpeg-exact
  codec (``rounding="exact"``) before the model sees it; held-out accuracy is measured at Q too. One
  compiled step serves every quality (Q is a traced argument).
- Data: ``--data NAME`` (a ``robustjax.data`` name, default ``cifar10_jpeg``) split by
  ``robustjax.data.split.split_indices(n, --train-n, --heldout-n, --split-seed)`` (default 8,000 /
  2,000, seed 0), or with ``--heldout-data NAME`` (e.g. ``tfds:cifar10:train`` and
  ``tfds:cifar10:test`` for users with the prepared tfds data) the whole of ``--data`` for training
  and a seeded ``--heldout-n`` subset of the other. The split (with every id) is stored in the
  checkpoints; a held-out image that is also a training image is a ValueError before training.
- Checkpoints: ``RUN/ckpt/epoch_NNNN`` (orbax: parameters, optimiser state, step, epoch) after every
  epoch, ``RUN/history.json`` (per-epoch train loss, held-out loss and accuracy) and ``RUN/final``
  (a converted checkpoint: ``zoo.load(model, weights=RUN/final)``) whose metadata records model,
  init, quality, epochs, split and held-out accuracy. A run pointed at an existing ``RUN`` resumes
  after its last finished epoch: the image order of epoch ``e`` is a function of ``(seed, e)`` and the
  dropout key of step ``s`` of ``(seed, s)``, so the resumed run continues exactly as an uninterrupted
  one (the same next-step loss). Changing anything but ``--epochs`` on resume is a ValueError.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import shutil
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from robustjax import checkpoints

INITS = ("scratch", "published")
RESUME_KEYS = ("model", "init", "quality", "data", "data_dir", "heldout_data", "train_n", "heldout_n", "split_seed",
               "batch_size", "lr", "seed")


@dataclasses.dataclass
class Config:
    out: str
    model: str = "small_cnn_cifar10"
    init: str = "scratch"
    quality: int | None = None
    data: str = "cifar10_jpeg"
    data_dir: str | None = None
    heldout_data: str | None = None
    train_n: int = 8000
    heldout_n: int = 2000
    split_seed: int = 0
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    progress: bool = True


# ----------------------------------------------------------------------------- checks and data


def check_quality(q, what: str = "quality") -> int:
    """An int JPEG quality in 1..100 (ValueError naming the value otherwise)."""
    if isinstance(q, bool) or not isinstance(q, int | np.integer) or not 1 <= int(q) <= 100:
        raise ValueError(f"JPEG {what} must be an integer in 1..100, got {q!r}")
    return int(q)


def check_config(cfg: Config) -> None:
    """ValueError for a bad config before any data is read or anything is compiled."""
    from robustjax.data import check_name
    from robustjax.models import zoo

    zoo.MODELS.get(cfg.model)
    if cfg.quality is not None:
        check_quality(cfg.quality)
    if cfg.init not in INITS and not checkpoints.is_converted(cfg.init):
        raise ValueError(f"init must be one of {INITS} or a converted checkpoint folder; {cfg.init!r} is neither")
    check_name(cfg.data)
    if cfg.heldout_data is not None:
        check_name(cfg.heldout_data)
    for name in ("epochs", "batch_size", "train_n", "heldout_n"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not cfg.lr > 0:
        raise ValueError(f"lr must be positive, got {cfg.lr!r}")


def check_labels(module: nnx.Module, input_size: int, y_train, y_held, cfg: Config) -> None:
    """ValueError when a label is outside the model's classes (cross-entropy would silently read a
    wrong one-hot), found by shape evaluation only: nothing is compiled or run."""
    x = jax.ShapeDtypeStruct((1, input_size, input_size, 3), jnp.float32)
    classes = jax.eval_shape(lambda v: module(v), x).shape[-1]
    top = int(max(np.max(y_train, initial=-1), np.max(y_held, initial=-1)))
    if top >= classes or min(np.min(y_train, initial=0), np.min(y_held, initial=0)) < 0:
        raise ValueError(f"{cfg.data} has labels up to {top}, but {cfg.model} has {classes} classes "
                         f"(0..{classes - 1}): choose the model variant of this data set "
                         "(e.g. small_cnn_gtsrb for GTSRB's 43)")


def load_split(cfg: Config, input_size: int):
    """``(x_train, y_train, x_held, y_held, split_metadata)``: uint8 NHWC arrays at the model's size."""
    from robustjax import data as rdata
    from robustjax.data import split as S

    ds = rdata.load(cfg.data, cfg.data_dir)
    if cfg.heldout_data is None:
        tr, he = S.split_indices(len(ds), cfg.train_n, cfg.heldout_n, cfg.split_seed)
        train, held = ds.take(tr), ds.take(he)
        held_name = cfg.data
    else:
        train = ds.subset(cfg.train_n, cfg.split_seed)
        held = rdata.load(cfg.heldout_data, None).subset(cfg.heldout_n, cfg.split_seed)
        held_name = cfg.heldout_data
    S.check_disjoint(cfg.data, train.ids, held_name, held.ids)
    meta = {**S.describe(cfg.data, train, held, cfg.split_seed), "heldout_dataset": held_name}
    resize = rdata.Resize(input_size)

    def read(d):
        return np.stack([resize(d.read(i)) for i in range(len(d))]), np.asarray(d.labels, np.int32)

    return (*read(train), *read(held), meta)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The image order of one epoch: a function of ``(seed, epoch)`` only (exact resume)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


# ----------------------------------------------------------------------------- model, step, evaluation


def build_model(cfg: Config) -> nnx.Module:
    """The module to train, in eval mode (BatchNorm frozen), from ``cfg.init``."""
    from robustjax.models import zoo

    entry = zoo.MODELS.get(cfg.model)
    if cfg.init == "scratch":
        module = zoo.model_module(cfg.model).create(**entry.config, rngs=nnx.Rngs(cfg.seed))
        module.eval()
        return module
    clf = zoo.load(cfg.model, weights=None if cfg.init == "published" else cfg.init)
    return nnx.merge(clf.graphdef, clf.state)


def _takes_dropout(module) -> bool:
    return "dropout_key" in inspect.signature(type(module).__call__).parameters


def _prepare(x_u8, quality, use_jpeg: bool):
    from robustjax.defenses.jpeg import jpeg

    x = x_u8.astype(jnp.float32) / 255.0
    return jpeg(x, quality, rounding="exact") if use_jpeg else x


@functools.lru_cache(maxsize=16)
def make_step(graphdef, lr: float, use_jpeg: bool, dropout: bool):
    """Jitted ``(params, rest, opt_state, x_u8, y, quality, key) -> (params, opt_state, loss, accuracy)``;
    cached per (architecture, lr, jpeg, dropout) so a resumed run or a vaccination chain compiles once."""
    tx = adam(lr)

    @jax.jit
    def step(params, rest, opt_state, x_u8, y, quality, key):
        x = _prepare(x_u8, quality, use_jpeg)

        def f(p):
            model = nnx.merge(graphdef, p, rest)
            logits = model(x, dropout_key=key) if dropout else model(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits

        (loss, logits), grads = jax.value_and_grad(f, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, jnp.mean(jnp.argmax(logits, -1) == y)

    return step


@functools.lru_cache(maxsize=16)
def make_eval(graphdef, use_jpeg: bool):
    """Jitted ``(params, rest, x_u8, y, mask, quality) -> (loss sum, correct count)`` over the masked rows."""

    @jax.jit
    def ev(params, rest, x_u8, y, mask, quality):
        logits = nnx.merge(graphdef, params, rest)(_prepare(x_u8, quality, use_jpeg))
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        return jnp.sum(jnp.where(mask, loss, 0.0)), jnp.sum((jnp.argmax(logits, -1) == y) & mask)

    return ev


def adam(lr: float) -> optax.GradientTransformation:
    return optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)


def evaluate(ev, params, rest, x, y, quality, batch_size: int) -> tuple[float, float]:
    """(mean loss, accuracy) of ``ev`` over all of ``x`` (last batch padded and masked)."""
    loss, correct = 0.0, 0
    for s in range(0, len(x), batch_size):
        xb, yb = x[s : s + batch_size], y[s : s + batch_size]
        pad = batch_size - len(xb)
        mask = np.arange(batch_size) < len(xb)
        if pad:
            xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
            yb = np.concatenate([yb, np.zeros(pad, yb.dtype)])
        ls, c = ev(params, rest, xb, yb, mask, quality)
        loss, correct = loss + float(ls), correct + int(c)
    return loss / len(x), correct / len(x)


# ----------------------------------------------------------------------------- checkpoints


def latest_checkpoint(out) -> Path | None:
    d = Path(out).resolve() / "ckpt"
    done = sorted(p for p in d.glob("epoch_[0-9][0-9][0-9][0-9]") if p.is_dir()) if d.is_dir() else []
    return done[-1] if done else None


def _tree(params, opt_state, step: int, epoch: int) -> dict:
    leaves = jax.tree.leaves((params, opt_state))
    return {"leaves": {f"{i:05d}": np.asarray(v) for i, v in enumerate(leaves)}, "step": np.asarray(step, np.int64),
            "epoch": np.asarray(epoch, np.int64)}


def save_checkpoint(out, epoch: int, step: int, params, opt_state) -> Path:
    import orbax.checkpoint as ocp

    path = Path(out).resolve() / "ckpt" / f"epoch_{epoch:04d}"
    if path.exists():
        shutil.rmtree(path)
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(path, _tree(params, opt_state, step, epoch))
        ckpt.wait_until_finished()
    return path


def restore_checkpoint(path: Path, params, opt_state):
    """Restore into the structure of ``(params, opt_state)``; returns (params, opt_state, step, epoch)."""
    import orbax.checkpoint as ocp

    leaves, treedef = jax.tree.flatten((params, opt_state))
    with ocp.StandardCheckpointer() as ckpt:
        got = ckpt.restore(path, _tree(params, opt_state, 0, 0))
    restored = [jnp.asarray(got["leaves"][f"{i:05d}"], dtype=leaves[i].dtype) for i in range(len(leaves))]
    params, opt_state = jax.tree.unflatten(treedef, restored)
    return params, opt_state, int(got["step"]), int(got["epoch"])


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _check_resume(out: Path, cfg: Config) -> None:
    run = {k: getattr(cfg, k) for k in RESUME_KEYS}
    path = out / "run.json"
    if path.is_file():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in run.items() if old.get(k) != v}
        if diff:
            raise ValueError(f"{out} holds a run with other settings {diff} (stored, given); "
                             "choose a new --out or the same settings")
    else:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(path, run)


# ----------------------------------------------------------------------------- driver


def train(cfg: Config, arrays=None, metadata_extra: dict | None = None, stop_after_steps: int = 0) -> dict:
    """Train (or resume) per ``cfg``; returns ``{"losses", "accuracies", "history", "final", "start_epoch", "step"}``
    (losses/accuracies of the steps run by this call).

    ``arrays`` = ``(x_train, y_train, x_held, y_held, split_metadata)`` skips reading ``cfg.data`` (the
    vaccination chain reads once for every quality). ``stop_after_steps`` (tests: a kill) returns after
    that many steps of this call without checkpointing the unfinished epoch.
    """
    from tqdm.auto import tqdm

    from robustjax.models import zoo

    check_config(cfg)
    out = Path(cfg.out).resolve()
    _check_resume(out, cfg)
    entry, mod = zoo.MODELS.get(cfg.model), zoo.model_module(cfg.model)
    input_size = getattr(mod, "INPUT_SIZE", None) or mod.VARIANTS[entry.config["variant"]]["input_size"]
    x_tr, y_tr, x_he, y_he, split = arrays if arrays is not None else load_split(cfg, input_size)
    if len(x_tr) < cfg.batch_size:
        raise ValueError(f"{len(x_tr)} training images are fewer than one batch of {cfg.batch_size}")
    steps_per_epoch = len(x_tr) // cfg.batch_size

    module = build_model(cfg)
    check_labels(module, input_size, y_tr, y_he, cfg)
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    opt_state = adam(cfg.lr).init(params)
    use_jpeg = cfg.quality is not None
    step_fn = make_step(graphdef, float(cfg.lr), use_jpeg, _takes_dropout(module))
    ev = make_eval(graphdef, use_jpeg)
    quality = jnp.float32(cfg.quality or 100)

    start_epoch, step = 0, 0
    hist_path = out / "history.json"
    history = json.loads(hist_path.read_text()) if hist_path.is_file() else []
    last = latest_checkpoint(out)
    if last is not None:
        params, opt_state, step, done = restore_checkpoint(last, params, opt_state)
        start_epoch = done + 1
        history = [h for h in history if h["epoch"] <= done]
    elif not history:
        loss0, acc0 = evaluate(ev, params, rest, x_he, y_he, quality, cfg.batch_size)
        history = [{"epoch": -1, "heldout_loss": loss0, "heldout_accuracy": acc0}]
    base_key = jax.random.PRNGKey(cfg.seed)
    losses, accs = [], []
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        order = epoch_order(len(x_tr), cfg.seed, epoch)
        bar = tqdm(range(steps_per_epoch), desc=f"{cfg.model} q{cfg.quality or '-'} epoch {epoch + 1}/{cfg.epochs}",
                   disable=not cfg.progress, leave=False)
        for i in bar:
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            params, opt_state, loss, acc = step_fn(params, rest, opt_state, x_tr[idx], y_tr[idx], quality,
                                                   jax.random.fold_in(base_key, step))
            step += 1
            losses.append(float(loss))
            accs.append(float(acc))
            bar.set_postfix(loss=f"{losses[-1]:.4f}", acc=f"{accs[-1]:.3f}")
            if stop_after_steps and len(losses) >= stop_after_steps:
                bar.close()
                return {"losses": losses, "accuracies": accs, "history": history, "final": None,
                        "start_epoch": start_epoch, "step": step}
        bar.close()
        hl, ha = evaluate(ev, params, rest, x_he, y_he, quality, cfg.batch_size)
        n = steps_per_epoch
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses[-n:])),
                        "train_accuracy": float(np.mean(accs[-n:])), "heldout_loss": hl, "heldout_accuracy": ha,
                        "seconds": round(time.perf_counter() - t0, 2)})
        save_checkpoint(out, epoch, step, params, opt_state)
        _write_json(hist_path, history)
        if cfg.progress:
            print(f"epoch {epoch + 1}/{cfg.epochs}: train loss {history[-1]['train_loss']:.4f}, "
                  f"held-out loss {hl:.4f}, held-out accuracy {ha:.4f} ({history[-1]['seconds']:.0f} s)", flush=True)
    final = out / "final"
    metadata = {
        "family": entry.family, "config": dict(entry.config), "preprocessing": dict(mod.PREPROCESSING),
        "source": "robustjax.train.classifier", "model": cfg.model, "init": cfg.init, "quality": cfg.quality,
        "epochs": cfg.epochs, "step": step, "training": dataclasses.asdict(cfg), "split": split, "history": history,
        "heldout_accuracy": history[-1]["heldout_accuracy"], **(metadata_extra or {}),
    }
    if final.exists():
        shutil.rmtree(final)
    checkpoints.save(nnx.merge(graphdef, params, rest), metadata, final)
    return {"losses": losses, "accuracies": accs, "history": history, "final": str(final), "start_epoch": start_epoch,
            "step": step}


def add_common(p: argparse.ArgumentParser) -> None:
    """Options shared with ``vaccinate``."""
    p.add_argument("--out", required=True, help="run folder (checkpoints; resumed if present)")
    p.add_argument("--data", default="cifar10_jpeg",
                   help="robustjax.data name (default cifar10_jpeg, split train/held-out)")
    p.add_argument("--data-dir", help="where --data is read (default $ROBUSTJAX_DATA/<folder>)")
    p.add_argument("--heldout-data", help="a separate held-out dataset (e.g. tfds:cifar10:test); default: split --data")
    for name, default in [("train-n", 8000), ("heldout-n", 2000), ("split-seed", 0), ("epochs", 10), ("batch-size", 64),
                          ("seed", 0)]:
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--no-progress", action="store_true")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustjax.train classifier", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="small_cnn_cifar10", help="robustjax model name")
    p.add_argument("--init", default="scratch", help="scratch | published | a converted checkpoint folder")
    p.add_argument("--quality", type=int, help="JPEG quality 1..100 applied to every batch (default: none)")
    add_common(p)
    a = p.parse_args(argv)
    cfg = Config(out=a.out, model=a.model, init=a.init, quality=a.quality, data=a.data, data_dir=a.data_dir,
                 heldout_data=a.heldout_data, train_n=a.train_n, heldout_n=a.heldout_n, split_seed=a.split_seed,
                 epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed, progress=not a.no_progress)
    s = train(cfg)
    h = s["history"][-1]
    print(f"{cfg.model}: {s['step']} steps, held-out accuracy {h['heldout_accuracy']:.4f}; weights: {s['final']}")
    return 0
