"""Seeded train / held-out splits of one image set, recorded so a model's held-out images stay held out.

Why: CIFAR-10's training set is not available offline, so Das et al. 2017's training is reproduced on
a split of the 10,000 test images; every checkpoint stores its split (:func:`describe`) and
:func:`check_disjoint` refuses any evaluation or fine-tuning whose images overlap the training part.
"""

from __future__ import annotations

import hashlib

import numpy as np

from robustjax.data.dataset import ImageSet


def split_indices(n: int, n_train: int, n_heldout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted index arrays ``(train, heldout)`` of sizes ``n_train``, ``n_heldout`` drawn from
    ``range(n)`` by numpy PCG64 ``default_rng(seed).permutation(n)``: train = its first ``n_train``
    entries, held-out = its last ``n_heldout`` (so the held-out images do not depend on ``n_train``:
    a model fine-tuned on fewer training images is scored on the same held-out set). Raises
    ValueError when the sizes do not fit."""
    for name, v in (("n_train", n_train), ("n_heldout", n_heldout)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if n_train + n_heldout > n:
        raise ValueError(f"split of {n_train} train + {n_heldout} held-out images does not fit in {n} images")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n_train]), np.sort(perm[n - n_heldout :])


def fingerprint(ids) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def describe(dataset: str, train: ImageSet, heldout: ImageSet, seed: int | None) -> dict:
    """The metadata stored in a checkpoint: dataset name, seed, sizes, fingerprints and every id."""
    return {"dataset": dataset, "seed": seed, "n_train": len(train), "n_heldout": len(heldout),
            "train_sha": fingerprint(train.ids), "heldout_sha": fingerprint(heldout.ids),
            "train_ids": list(train.ids), "heldout_ids": list(heldout.ids)}


def check_disjoint(train_dataset: str, train_ids, eval_dataset: str, eval_ids, what: str = "held-out") -> None:
    """ValueError naming the count and a few ids when ``eval_ids`` of ``eval_dataset`` meet the
    training ids of ``train_dataset`` (different dataset names never overlap: tfds train vs test)."""
    if train_dataset != eval_dataset:
        return
    both = sorted(set(train_ids) & set(eval_ids))
    if both:
        raise ValueError(f"train/{what} overlap: {len(both)} of the {len(set(eval_ids))} {what} images of "
                         f"{eval_dataset!r} were training images (e.g. {both[:3]}); "
                         "use the split stored with the model")
