"""A short ComDefend training run from scratch on CIFAR-10 images (issue 6 acceptance).

Trains ``--steps`` steps (default 200) with ``robustjax.train.comdefend`` on a seeded subset of an
image folder (default ``$ROBUSTJAX_DATA/cifar10-test-jpeg``; only the test set is available
offline, so we train on 1,000 of its images and measure on 200 others), then reports: the
training loss and reconstruction PSNR over the first and last 20 steps, the held-out PSNR of the
trained weights used as the defense ``comdefend:sigma=0:weights=OUT/final`` against the untrained
initialisation, and that resuming from the last epoch's checkpoint reproduces the next step's loss.

    PYTHONPATH=. python experiments/jia2019/comdefend_train.py [--steps 200] [--batch 10] [--out /tmp/cd_train]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from robustjax.defenses import comdefend as cd
from robustjax.defenses import get
from robustjax.train import comdefend as tc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data",
                   default=os.path.join(os.environ.get("ROBUSTJAX_DATA", "../shared/data"), "cifar10-test-jpeg"))
    p.add_argument("--steps", type=int, default=200, help="a multiple of the steps per epoch (train-images // batch)")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--train-images", type=int, default=1000)
    p.add_argument("--out", default="/tmp/robustjax_comdefend_train")
    a = p.parse_args()
    images = tc.load_folder(a.data)
    order = np.random.default_rng(0).permutation(len(images))
    train = [images[i] for i in order[: a.train_images]]
    held = np.stack([images[i] for i in order[a.train_images : a.train_images + 200]]).astype(np.float32) / 255
    spe = len(train) // a.batch
    if a.steps % spe:
        raise SystemExit(f"--steps must be a multiple of the {spe} steps per epoch (checkpoints are per epoch)")
    epochs = a.steps // spe + 1  # one more epoch than trained: the resume check runs into it
    shutil.rmtree(a.out, ignore_errors=True)
    cfg = tc.Config(out=a.out, epochs=epochs, batch_size=a.batch, max_steps=a.steps, progress=False)
    t0 = time.time()
    s = tc.train(cfg, images=train)
    t1 = time.time()
    L, M = np.array(s["losses"]), np.array(s["mses"])
    print(f"{len(L)} steps of batch {a.batch} ({t1 - t0:.0f} s): loss {L[:20].mean():.5f} -> {L[-20:].mean():.5f}, "
          f"train PSNR {tc.psnr(M[:20].mean()):.2f} -> {tc.psnr(M[-20:].mean()):.2f} dB (means over 20 steps)")

    def psnr(y):
        return float(np.mean(-10 * np.log10(np.mean((np.asarray(y) - held) ** 2, axis=(1, 2, 3)))))

    init = cd.comdefend(cd.create(nnx.Rngs(cfg.seed)), sigma=0.0)
    trained = get(f"comdefend:sigma=0:weights={s['final']}")
    print(f"held-out PSNR (200 images, sigma=0): untrained {psnr(init(jnp.asarray(held))):.2f} dB, "
          f"trained {psnr(trained(jnp.asarray(held))):.2f} dB")

    # resume: a second run continues from the checkpoint of the last finished epoch; its first loss
    # must equal the loss an uninterrupted run computes at that step.
    last = tc.latest_checkpoint(a.out)
    model = cd.create(nnx.Rngs(cfg.seed))
    graphdef, params = nnx.split(model)
    tx = optax.adam(tc.schedule(cfg, spe), b1=0.9, b2=0.999, eps=1e-8)
    params, opt_state, step, epoch = tc.restore_checkpoint(last, params, tx.init(params))
    x = next(tc.epoch_batches(train, a.batch, cfg.crop, cfg.seed, epoch + 1))
    expected = float(tc.loss_fn(nnx.merge(graphdef, params), x, jax.random.fold_in(jax.random.PRNGKey(cfg.seed), step),
                                cfg.noise, cfg.lam)[0])
    resumed = tc.train(tc.Config(out=a.out, epochs=epochs, batch_size=a.batch, max_steps=1, progress=False),
                       images=train)
    print(f"resume from {last.name} (step {step}): next-step loss {resumed['losses'][0]:.7f}, "
          f"recomputed {expected:.7f}")


if __name__ == "__main__":
    main()
