"""Adversarial examples of the broken images: ``out/adversarials/<key>.npz`` beside the outcomes.

Why: a robustness figure says how many images fell, not what the attack did to them; the stored
points let anyone look (``python -m robustjax.eval gallery``) or re-score them.

Written only with ``--save-adversarials`` (config key ``save_adversarials``). For every (image,
budget) the cell *broke* (classified correctly clean, misclassified at that budget: the outcomes'
``broken``) a cell's file holds, with K such pairs, R distinct images among them and S x S the
model's input size:

- ``row`` (K,) int32: the image's position in the evaluated set (the outcome file's ``row``);
  ``eps_index`` (K,) int32: the budget's index in ``eps`` (E,) float64, the cell's budgets (0
  included: the outcome file's budget axis); pairs sorted by row, then budget;
- ``image`` (K, S, S, 3) uint8: the adversarial image ``round(x_adv * 255)`` the defended model was
  scored on (the final iterate in a grid cell, the first fooling point in an adaptive suite cell; a
  minimum-norm attack's one point at every bound it fits in). An image broken at a smaller budget
  is stored again at each larger one (the suite keeps the same point there);
- ``defended`` (K, S, S, 3) uint8: the defense's output on the adversarial image, ``d(x_adv)``,
  with the defense draw the prediction used (computed on the float ``x_adv``, then rounded);
- ``clean_row`` (R,) int32 with ``clean`` (R, S, S, 3) uint8, the clean image as the model saw it
  (resized), and ``clean_defended`` (R, S, S, 3) uint8, ``d(x)``;
- ``class_names`` (C,) str, when the model or the dataset names its classes.

uint8 rounding can undo a perturbation that fooled the model only just: re-scoring ``image``
misclassifies most stored images, not necessarily all. The option does not enter a cell's key: a
rerun with it recomputes the finished cells that lack their file (and rewrites the same outcomes).
Each finished batch carries its part (:data:`BATCH_FIELDS`) in the cell's partial batch file, so a
killed run resumes with them; the file is written before the cell's record.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from robustjax.eval import outcomes

DIRNAME = "adversarials"
ARRAYS = "adversarials"  # the entry of an executor's outcome arrays holding the cell's file (the runner writes it)
BATCH_FIELDS = ("adv_row", "adv_eps", "adv_image", "adv_defended", "adv_clean_row", "adv_clean",
                "adv_clean_defended")
IMAGES = ("clean", "image", "defended", "clean_defended")
COLUMNS = ["key", "dataset", "model", "defense", "attack", "threat", "budget", "row", "id", "eps", "eps_index",
           "label", "clean_pred", "pred", *IMAGES]


class NoAdversarialsError(FileNotFoundError):
    """An out folder holds no stored adversarial examples."""


def batch_fields(rows, labels, clean_pred, adv_pred, adversarial, defended, clean, clean_defended) -> dict:
    """One batch's part of a cell's file, for its partial batch file: the pairs it broke.

    ``rows`` (n,) the images' positions in the evaluated set; ``labels``, ``clean_pred`` (n,);
    ``adv_pred`` (E', n) at the non-zero budgets; ``adversarial``, ``defended`` (E', n, S, S, 3) and
    ``clean``, ``clean_defended`` (n, S, S, 3) uint8. ``adv_eps`` indexes the non-zero budgets."""
    labels, adv_pred = np.asarray(labels), np.asarray(adv_pred)
    broken = (np.asarray(clean_pred) == labels)[None, :] & (adv_pred != labels[None, :])
    col, j = np.nonzero(broken.T)  # by image, then budget
    shown = np.flatnonzero(broken.any(axis=0))
    rows = np.asarray(rows, np.int32)
    return {"adv_row": rows[col], "adv_eps": j.astype(np.int32), "adv_image": np.asarray(adversarial)[j, col],
            "adv_defended": np.asarray(defended)[j, col], "adv_clean_row": rows[shown],
            "adv_clean": np.asarray(clean)[shown], "adv_clean_defended": np.asarray(clean_defended)[shown]}


def cell_arrays(batches: list[dict], eps_all) -> dict:
    """A cell's file (without ``class_names``) from its batches' :func:`batch_fields`, in order."""
    eps_all = np.asarray(eps_all, np.float64)
    attacked = np.flatnonzero(eps_all != 0)

    def cat(name):
        return np.concatenate([b[name] for b in batches])

    return {"row": cat("adv_row").astype(np.int32), "eps_index": attacked[cat("adv_eps")].astype(np.int32),
            "eps": eps_all, "image": cat("adv_image"), "defended": cat("adv_defended"),
            "clean_row": cat("adv_clean_row").astype(np.int32), "clean": cat("adv_clean"),
            "clean_defended": cat("adv_clean_defended")}


def class_names(f, ds) -> tuple[str, ...] | None:
    """The names of the classes the model predicts: the model's own, else the dataset's when it has
    as many as the model has outputs (or the model does not say), else None."""
    names = getattr(f, "label_names", None)
    if names:
        return tuple(names)
    names = getattr(ds, "class_names", None)
    nc = getattr(f, "num_classes", None)
    return tuple(names) if names and (nc is None or int(nc) == len(names)) else None


def path(out, key: str) -> Path:
    return Path(out) / DIRNAME / f"{key}.npz"


def exists(out, key: str) -> bool:
    return path(out, key).is_file()


def write(out, key: str, arrays: dict, names=None) -> Path:
    """Write a cell's file atomically (:func:`robustjax.eval.outcomes.save_npz`, deflate-compressed)."""
    arrays = dict(arrays)
    if names:
        arrays["class_names"] = np.asarray(list(names), dtype=str)
    p = path(out, key)
    outcomes.save_npz(p, arrays)
    return p


def read(out, key: str) -> dict | None:
    """A cell's stored arrays, or None when it has no file."""
    p = path(out, key)
    return outcomes.load_npz(p) if p.is_file() else None


def load_adversarials(out: str | os.PathLike, keys=None):
    """The stored adversarial examples as a ``pandas.DataFrame``, one row per (cell, image, budget),
    columns :data:`COLUMNS`: the cell's settings and the image's outcome (``label``, ``clean_pred``,
    ``pred`` at that budget, as :func:`robustjax.eval.load_outcomes`) with its images as uint8
    ``(S, S, 3)`` arrays in :data:`IMAGES` (``image`` the adversarial one). ``keys``: only these cells.
    The frame's ``attrs["class_names"]`` maps each cell key to its class names (or None).

    Raises :class:`NoAdversarialsError` when ``out`` holds no adversarial file of a stored cell
    (and FileNotFoundError when it holds no results store)."""
    import pandas as pd

    df = outcomes.load_outcomes(out)
    stored = [k for k in dict.fromkeys(df["key"]) if (keys is None or k in keys) and exists(out, k)]
    if not stored:
        raise NoAdversarialsError(f"{Path(out) / DIRNAME} holds no adversarial examples of the cells in {out}")
    frames, names = [], {}
    for key in stored:
        arr = read(out, key)
        names[key] = [str(n) for n in arr["class_names"]] if "class_names" in arr else None
        clean = {int(r): i for i, r in enumerate(arr["clean_row"])}
        at = [clean[int(r)] for r in arr["row"]]
        frames.append(pd.DataFrame({
            "key": key, "row": arr["row"].astype(np.int64), "eps": arr["eps"][arr["eps_index"]],
            "eps_index": arr["eps_index"], "image": list(arr["image"]), "defended": list(arr["defended"]),
            "clean": [arr["clean"][i] for i in at], "clean_defended": [arr["clean_defended"][i] for i in at]}))
    images = pd.concat(frames, ignore_index=True)
    meta = df[df["key"].isin(stored)].drop(columns=["clean_correct", "correct", "broken", "step", "norm",
                                                     "experiment"])
    meta = meta.astype({"row": np.int64})
    got = images.merge(meta, on=["key", "row", "eps"], how="left", validate="one_to_one")
    got = got[COLUMNS].sort_values(["key", "row", "eps_index"], kind="stable").reset_index(drop=True)
    got.attrs["class_names"] = names
    return got
