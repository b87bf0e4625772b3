"""Training ComDefend on clean images (Jia et al. 2019, section 3.4-3.6).

Loss per batch, with ``n ~ N(0, noise^2)`` drawn afresh per step (noise 20 in the paper)::

    b = sigmoid(ComCNN(x) - n);  loss = mean((RecCNN(b) - x)^2) + lam * mean(p^2)

where the penalty ``p`` is ``b`` (``--penalty binary``, the authors' released training code) or
the linear code ``ComCNN(x)`` (``--penalty code``, the paper's Eq. 3); ``lam`` = 1e-4. Adam
(optax; beta1 0.9, beta2 0.999, eps 1e-8) with the learning rate decayed exponentially per step
from ``--lr`` to ``--final-lr`` over all epochs, 30 epochs of batch 50 as the paper. The paper
states both alpha = 0.001 and a decay "from 0.01 to 0.0001"; starting at 0.01 diverged here (60
steps on CIFAR: loss 0.13 -> 0.35, the sigmoid output saturates), so the default is 0.001 (the
authors' TF code used Adam's default 0.001) decayed by the same factor 100, to 0.00001.

Data: an image folder (``--data DIR``: every .png/.jpg/.jpeg below it, converted to RGB; images
larger than ``--crop`` get a random ``crop x crop`` window per epoch) or a tfds dataset (``--tfds
cifar10``, needs ``tensorflow_datasets`` and its prepared data; nothing is downloaded).

Checkpoints: ``OUT/ckpt/epoch_NNNN`` (orbax) after every epoch holds the parameters, the optimiser
state, the step and the epoch; a run pointed at the same ``OUT`` resumes from the latest one. The
order of the images in epoch ``e`` and the noise of step ``s`` are functions of ``(seed, e)`` and
``(seed, s)`` only, so a resumed run continues exactly as the uninterrupted one would. ``OUT/final``
is a converted ``comdefend`` checkpoint (``--max-steps`` stops early; the epoch it stops in is then
checkpointed as finished, so resume exactly only from runs stopped at an epoch boundary): use it as
``comdefend:weights=OUT/final``.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import math
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from robustjax import checkpoints
from robustjax.defenses import comdefend as cd

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


@dataclasses.dataclass
class Config:
    out: str
    data: str | None = None
    tfds: str | None = None
    split: str = "train"
    variant: str = "cifar"
    epochs: int = 30
    batch_size: int = 50
    lr: float = 0.001
    final_lr: float = 0.00001
    noise: float = 20.0
    lam: float = 1e-4
    penalty: str = "binary"
    crop: int = 32
    limit: int = 0
    max_steps: int = 0
    seed: int = 0
    progress: bool = True


# ----------------------------------------------------------------------------- data


def load_folder(root: str | Path, channels: int = 3, limit: int = 0) -> list[np.ndarray]:
    """uint8 ``(H, W, C)`` images of every image file below ``root`` (sorted; first ``limit`` if > 0)."""
    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"training images: no folder {root}")
    files = sorted(p for p in glob.glob(str(root / "**" / "*"), recursive=True) if p.lower().endswith(IMAGE_EXTENSIONS))
    if limit:
        files = files[:limit]
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) below {root}")
    mode = "RGB" if channels == 3 else "L"
    out = []
    for f in files:
        a = np.asarray(Image.open(f).convert(mode), np.uint8)
        out.append(a if a.ndim == 3 else a[..., None])
    return out


def load_tfds(name: str, split: str, channels: int = 3, limit: int = 0) -> list[np.ndarray]:
    """uint8 images of a prepared tfds dataset (``data_dir`` from ``$TFDS_DATA_DIR``; no download)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError("--tfds needs tensorflow_datasets (pip install tensorflow-datasets); "
                          "or use --data DIR") from e
    ds = tfds.load(name, split=split, download=False, as_supervised=False)
    out = []
    for ex in tfds.as_numpy(ds):
        img = ex["image"]
        if img.shape[-1] != channels:
            raise ValueError(f"tfds {name} images have {img.shape[-1]} channels, variant needs {channels}")
        out.append(np.asarray(img, np.uint8))
        if limit and len(out) >= limit:
            break
    return out


def epoch_batches(images: list[np.ndarray], batch_size: int, crop: int, seed: int, epoch: int):
    """Float32 ``(B, crop, crop, C)`` batches in [0, 1] of one epoch; order and crops depend on (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(images))
    for start in range(0, len(order) - batch_size + 1, batch_size):
        batch = []
        for i in order[start : start + batch_size]:
            img = images[i]
            h, w = img.shape[:2]
            if h < crop or w < crop:
                raise ValueError(f"image {i} is {h}x{w}, smaller than the crop {crop}")
            top, left = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
            batch.append(img[top : top + crop, left : left + crop])
        yield np.stack(batch).astype(np.float32) / 255.0


# ----------------------------------------------------------------------------- loss and step


def loss_fn(model: cd.ComDefendNet, x: jax.Array, key: jax.Array, noise: float, lam: float, penalty: str = "binary"):
    """Training loss (see the module docstring); returns (loss, reconstruction MSE)."""
    code = model.com(x)
    b = jax.nn.sigmoid(code - noise * jax.random.normal(key, code.shape, code.dtype))
    mse = jnp.mean((model.rec(b) - x) ** 2)
    pen = b if penalty == "binary" else code
    return mse + lam * jnp.mean(pen**2), mse


def make_step(graphdef, tx: optax.GradientTransformation, noise: float, lam: float, penalty: str):
    """Jitted ``(params, opt_state, x, key) -> (params, opt_state, loss, mse)`` on pure states."""

    @jax.jit
    def step(params, opt_state, x, key):
        def f(p):
            return loss_fn(nnx.merge(graphdef, p), x, key, noise, lam, penalty)

        (loss, mse), grads = jax.value_and_grad(f, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, mse

    return step


def schedule(cfg: Config, steps_per_epoch: int) -> optax.Schedule:
    total = max(1, cfg.epochs * steps_per_epoch)
    return optax.exponential_decay(cfg.lr, transition_steps=total, decay_rate=cfg.final_lr / cfg.lr)


def psnr(mse) -> float:
    return float(-10 * math.log10(max(float(mse), 1e-12)))


# ----------------------------------------------------------------------------- checkpoints


def _ckpt_dir(out: str | Path) -> Path:
    return Path(out).resolve() / "ckpt"


def latest_checkpoint(out: str | Path) -> Path | None:
    d = _ckpt_dir(out)
    done = sorted(p for p in d.glob("epoch_[0-9][0-9][0-9][0-9]") if p.is_dir()) if d.is_dir() else []
    return done[-1] if done else None


def save_checkpoint(out: str | Path, epoch: int, step: int, params, opt_state) -> Path:
    import orbax.checkpoint as ocp

    path = _ckpt_dir(out) / f"epoch_{epoch:04d}"
    leaves = jax.tree.leaves((params, opt_state))
    tree = {"leaves": {f"{i:05d}": np.asarray(v) for i, v in enumerate(leaves)}, "step": np.int64(step),
            "epoch": np.int64(epoch)}
    if path.exists():
        shutil.rmtree(path)
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(path, tree)
        ckpt.wait_until_finished()
    return path


def restore_checkpoint(path: Path, params, opt_state):
    """Restore into the structure of freshly initialised ``(params, opt_state)``; returns
    (params, opt_state, step, epoch)."""
    import orbax.checkpoint as ocp

    leaves, treedef = jax.tree.flatten((params, opt_state))
    target = {"leaves": {f"{i:05d}": np.asarray(v) for i, v in enumerate(leaves)}, "step": np.int64(0),
              "epoch": np.int64(0)}
    with ocp.StandardCheckpointer() as ckpt:
        got = ckpt.restore(path, target)
    restored = [jnp.asarray(got["leaves"][f"{i:05d}"], dtype=leaves[i].dtype) for i in range(len(leaves))]
    params, opt_state = jax.tree.unflatten(treedef, restored)
    return params, opt_state, int(got["step"]), int(got["epoch"])


# ----------------------------------------------------------------------------- driver


def train(cfg: Config, images: list[np.ndarray] | None = None) -> dict:
    """Train (or resume) per ``cfg``; returns a summary with the per-step losses of this call.

    ``images`` (uint8 HWC arrays) overrides ``cfg.data``/``cfg.tfds``.
    """
    from tqdm.auto import tqdm

    v = cd.variant_config(cfg.variant)
    if cfg.penalty not in ("binary", "code"):
        raise ValueError(f"penalty must be 'binary' or 'code', got {cfg.penalty!r}")
    if not (cfg.lr > 0 and cfg.final_lr > 0 and cfg.batch_size > 0 and cfg.epochs > 0 and cfg.crop > 0):
        raise ValueError("lr, final_lr, batch_size, epochs and crop must be positive")
    if images is None:
        if cfg.data:
            images = load_folder(cfg.data, v["image_channels"], cfg.limit)
        elif cfg.tfds:
            images = load_tfds(cfg.tfds, cfg.split, v["image_channels"], cfg.limit)
        else:
            raise ValueError("give training images: --data DIR or --tfds NAME")
    if len(images) < cfg.batch_size:
        raise ValueError(f"{len(images)} images are fewer than one batch of {cfg.batch_size}")
    steps_per_epoch = len(images) // cfg.batch_size

    model = cd.create(nnx.Rngs(cfg.seed), variant=cfg.variant)
    graphdef, params = nnx.split(model)
    tx = optax.adam(schedule(cfg, steps_per_epoch), b1=0.9, b2=0.999, eps=1e-8)
    opt_state = tx.init(params)
    step_fn = make_step(graphdef, tx, cfg.noise, cfg.lam, cfg.penalty)

    start_epoch, step = 0, 0
    last = latest_checkpoint(cfg.out)
    if last is not None:
        params, opt_state, step, done_epoch = restore_checkpoint(last, params, opt_state)
        start_epoch = done_epoch + 1
    base_key = jax.random.PRNGKey(cfg.seed)
    losses, mses = [], []
    for epoch in range(start_epoch, cfg.epochs):
        bar = tqdm(
            epoch_batches(images, cfg.batch_size, cfg.crop, cfg.seed, epoch),
            total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress,
        )
        for x in bar:
            params, opt_state, loss, mse = step_fn(params, opt_state, x, jax.random.fold_in(base_key, step))
            step += 1
            losses.append(float(loss))
            mses.append(float(mse))
            bar.set_postfix(loss=f"{losses[-1]:.5f}", psnr=f"{psnr(mses[-1]):.2f}dB")
            if cfg.max_steps and len(losses) >= cfg.max_steps:
                break
        bar.close()
        save_checkpoint(cfg.out, epoch, step, params, opt_state)
        if cfg.max_steps and len(losses) >= cfg.max_steps:
            break
    final = Path(cfg.out).resolve() / "final"
    model = nnx.merge(graphdef, params)
    if final.exists():
        shutil.rmtree(final)
    checkpoints.save(model, {"family": "comdefend", "config": {"variant": cfg.variant},
                             "preprocessing": dict(cd.FAMILY.preprocessing), "source": "robustjax.train.comdefend",
                             "training": dataclasses.asdict(cfg), "step": step}, final)
    return {"losses": losses, "mses": mses, "step": step, "final": str(final), "start_epoch": start_epoch}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustjax.train comdefend", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="run folder (checkpoints; resumed if present)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="image folder (e.g. CIFAR-10 training images)")
    src.add_argument("--tfds", help="prepared tfds dataset name, e.g. cifar10")
    p.add_argument("--split", default="train")
    p.add_argument("--variant", default="cifar", choices=sorted(cd.VARIANTS))
    for name, default in [("epochs", 30), ("batch-size", 50), ("crop", 32), ("limit", 0), ("max-steps", 0),
                          ("seed", 0)]:
        p.add_argument(f"--{name}", type=int, default=default)
    for name, default in [("lr", 0.001), ("final-lr", 0.00001), ("noise", 20.0), ("lam", 1e-4)]:
        p.add_argument(f"--{name}", type=float, default=default)
    p.add_argument("--penalty", default="binary", choices=["binary", "code"])
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    cfg = Config(out=a.out, data=a.data, tfds=a.tfds, split=a.split, variant=a.variant, epochs=a.epochs,
                 batch_size=a.batch_size, lr=a.lr, final_lr=a.final_lr, noise=a.noise, lam=a.lam, penalty=a.penalty,
                 crop=a.crop, limit=a.limit, max_steps=a.max_steps, seed=a.seed, progress=not a.no_progress)
    summary = train(cfg)
    if summary["losses"]:
        print(f"steps {summary['step']}: loss {summary['losses'][0]:.5f} -> {summary['losses'][-1]:.5f}, "
              f"train PSNR {psnr(summary['mses'][0]):.2f} -> {psnr(summary['mses'][-1]):.2f} dB; "
              f"weights: {summary['final']}")
    else:
        print(f"nothing to do: {cfg.out} already holds all {cfg.epochs} epochs; weights: {summary['final']}")
    return 0
