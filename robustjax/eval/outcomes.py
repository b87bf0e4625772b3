"""Per-image outcomes of a cell: one compact ``out/outcomes/<key>.npz`` beside ``results.jsonl``.

Why: the honest robustness figure is per image (an image is robust only if no attack under any
threat model broke it, see :mod:`robustjax.eval.worst`), and a cell's counts cannot be combined.

A cell's file holds (N images, E budgets of the grid, eps 0 included):

- ``row`` (N,) int32: the image's position in the evaluated image set (the seeded subset), and
  ``id`` (N,) str: its dataset id; ``label`` (N,) int32;
- ``clean_pred`` (N,) int32: the defended model's prediction on the clean image;
- ``eps`` (E,) float64: the budgets (pixel units; L2 bounds for minimum-norm attacks);
- ``pred`` (E, N) int32: the defended model's final prediction at each budget (eps 0: clean);
- ``step`` (E, N) int32: the attack's first evaluation that fooled the image where the attack
  reports it (APGD/APGD-T: its iteration count, Square: queries spent) and the image is broken at
  that budget; -1 otherwise (not broken, or an attack that does not report it);
- ``grad_norm`` (N,) float32 (through and eot cells with a budget > 0): the L2 norm of the attacker view's input
  gradient of the cross-entropy at the clean image (a near-zero share flags masked gradients);
- minimum-norm attacks only: ``norm`` (N,) float32, the L2 norm of the perturbation found, and
  ``fooled`` (N,) bool, whether that perturbation fooled the defended model;
- randomised defenses scored over K > 1 draws only: ``pred_draws`` (E, K, N) int32, every draw's
  prediction (``pred`` is the all-draws criterion: the label only where every draw is correct).

Files are written deterministically (fixed zip timestamps, sorted members) and atomically (a
temporary file renamed into place), so two runs of the same cell give byte-identical files.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

DIRNAME = "outcomes"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def save_npz(path: str | os.PathLike, arrays: dict) -> None:
    """Write ``arrays`` (name -> array, no object dtypes) as an ``.npz`` readable by ``np.load``,
    byte-for-byte the same for the same arrays; atomic (tmp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as z:
            for name in sorted(arrays):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_npz(path: str | os.PathLike) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def path(out: str | os.PathLike, key: str) -> Path:
    return Path(out) / DIRNAME / f"{key}.npz"


def write(out, key: str, arrays: dict) -> Path:
    p = path(out, key)
    save_npz(p, arrays)
    return p


def read(out, key: str) -> dict | None:
    """The cell's outcome arrays, or None when the cell has no outcome file."""
    p = path(out, key)
    return load_npz(p) if p.is_file() else None


COLUMNS = ["key", "experiment", "dataset", "model", "defense", "attack", "threat", "budget", "row", "id", "label",
           "clean_pred", "clean_correct", "eps", "pred", "correct", "broken", "step", "norm", "correct_share"]


def load_outcomes(out: str | os.PathLike):
    """Every stored cell's per-image outcomes as one ``pandas.DataFrame``, one row per
    (cell, image, budget), columns :data:`COLUMNS`.

    ``correct``: the defended model's prediction at that budget equals the label; ``broken``: the
    image was classified correctly clean and is not at that budget (so eps 0 is never broken);
    ``step`` -1 where not reported; ``norm`` NaN except for minimum-norm attacks; ``correct_share``
    the share of a randomised defense's scoring draws that classified the image correctly (``correct``
    is the all-draws criterion: share 1; a deterministic defense's share is 1 or 0). ``attack`` is
    the attack with its hyper-parameters (``pgd:steps=20``). Records without an outcome file (none
    are written before store format 2) are left out. Raises FileNotFoundError when ``out`` holds no
    results store.
    """
    import pandas as pd

    from robustjax.eval.store import Store

    store = Store(out)
    if not store.path.exists():
        raise FileNotFoundError(f"no results store at {store.path}")
    frames = []
    for rec in _latest(store.records()):
        arr = read(out, rec["key"])
        if arr is None:
            continue
        frames.append(_frame(rec, arr))
    if not frames:
        return pd.DataFrame({c: [] for c in COLUMNS})
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def _latest(records):
    by = {}
    for r in records:
        by[r["key"]] = r
    return list(by.values())


def _frame(rec: dict, arr: dict):
    import pandas as pd

    s = rec["settings"]
    hp = s.get("hparams") or {}
    attack = s["attack"] + "".join(f":{k}={v}" for k, v in sorted(hp.items()))
    eps, pred = arr["eps"], arr["pred"]
    E, N = pred.shape
    label = arr["label"]
    clean_correct = arr["clean_pred"] == label
    correct = pred == label[None, :]
    norm = arr["norm"] if "norm" in arr else np.full(N, np.nan, np.float32)
    if "pred_draws" in arr:
        share = (arr["pred_draws"] == label[None, None, :]).mean(axis=1)  # (E, N)
    else:
        share = (pred == label[None, :]).astype(np.float64)
    return pd.DataFrame({
        "key": rec["key"], "experiment": rec.get("experiment"), "dataset": s["dataset"], "model": s["model"],
        "defense": s["defense"], "attack": attack, "threat": s["threat"], "budget": rec.get("budget", "linf"),
        "row": np.tile(arr["row"], E), "id": np.tile(arr["id"], E), "label": np.tile(label, E),
        "clean_pred": np.tile(arr["clean_pred"], E), "clean_correct": np.tile(clean_correct, E),
        "eps": np.repeat(eps, N), "pred": pred.reshape(-1), "correct": correct.reshape(-1),
        "broken": (clean_correct[None, :] & ~correct).reshape(-1), "step": arr["step"].reshape(-1),
        "norm": np.tile(norm.astype(np.float64), E), "correct_share": share.reshape(-1),
    })
