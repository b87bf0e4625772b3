"""The one place a cell's record and its per-image outcome arrays are built.

A record is one line of ``results.jsonl`` (:mod:`robustjax.eval.store`); its arrays go to
``outcomes/<key>.npz`` (:mod:`robustjax.eval.outcomes`). Both executors (grid and suite) call
:func:`record` and :func:`cell_arrays`, so the two kinds of cell cannot drift apart in format.
"""

from __future__ import annotations

import datetime
import hashlib
import platform
import subprocess
from pathlib import Path

import jax
import numpy as np

import robustjax
from robustjax.eval.store import FORMAT


def provenance() -> dict:
    """Versions and the git revision of the robustjax checkout (``-dirty`` with local changes)."""
    import flax
    import jaxlib

    versions = {"robustjax": robustjax.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                "flax": flax.__version__, "numpy": np.__version__, "python": platform.python_version()}
    root = Path(robustjax.__file__).resolve().parents[1]
    rev = None
    try:
        git = ["git", "-C", str(root)]
        rev = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip() or None
        if rev:
            dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                   text=True, timeout=10).stdout.strip()
            rev += "-dirty" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        pass
    return {"versions": versions, "git": rev}


def fingerprint(ids) -> str:
    """16 hex digits identifying the evaluated images (their ids, in order)."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def cell_arrays(batches: list[dict], eps_all, labels, ids, minimum_norm: bool = False, grad: bool = False) -> dict:
    """A cell's outcome arrays (:mod:`robustjax.eval.outcomes`) from its batches in order.

    Each batch holds ``clean_pred`` (n,), ``adv_pred`` and ``step`` (E', n) at the non-zero budgets,
    and optionally ``norm`` / ``grad_norm`` (n,) and, for a defense scored over K draws,
    ``clean_draws`` (K, n) and ``adv_draws`` (E', K, n) (stored as ``pred_draws`` (E, K, N))."""
    clean = np.concatenate([b["clean_pred"] for b in batches]).astype(np.int32)
    adv = np.concatenate([b["adv_pred"] for b in batches], axis=1).astype(np.int32)
    step = np.concatenate([b["step"] for b in batches], axis=1).astype(np.int32)
    N = len(clean)
    pred, steps, it = (np.empty((len(eps_all), N), np.int32), np.full((len(eps_all), N), -1, np.int32),
                       iter(range(adv.shape[0])))
    for j, e in enumerate(eps_all):
        if e == 0:
            pred[j] = clean
        else:
            i = next(it)
            pred[j], steps[j] = adv[i], step[i]
    arr = {"row": np.arange(N, dtype=np.int32), "id": np.asarray(list(ids), dtype=str),
           "label": labels.astype(np.int32), "clean_pred": clean, "eps": np.asarray(eps_all, np.float64),
           "pred": pred, "step": steps}
    if grad and all("grad_norm" in b for b in batches) and adv.shape[0]:
        arr["grad_norm"] = np.concatenate([b["grad_norm"] for b in batches]).astype(np.float32)
    if minimum_norm:
        arr["norm"] = np.concatenate([b["norm"] for b in batches]).astype(np.float32)
    if all("clean_draws" in b for b in batches):  # (E, K, N): every scoring draw, eps 0 the clean images
        clean_d = np.concatenate([b["clean_draws"] for b in batches], axis=1).astype(np.int32)
        adv_d = np.concatenate([b["adv_draws"] for b in batches], axis=2).astype(np.int32)
        draws, it = np.empty((len(eps_all), *clean_d.shape), np.int32), iter(range(adv_d.shape[0]))
        for j, e in enumerate(eps_all):
            draws[j] = clean_d if e == 0 else adv_d[next(it)]
        arr["pred_draws"] = draws
    return arr


def timing(compile_s: float, run_s: float, first: tuple | None, n_run: int, budgets: int, defenses: int,
           resumed: int, recomputed: int | None = None, batch: int | None = None) -> dict:
    """A record's ``timing``. The first execution of a compiled program carries a one-off start-up
    cost, so ``per_image_s`` is taken from the second batch on (``first``: (seconds, images) of the
    first batch), as a benchmark that warms up first measures it; with one batch it is the wall time.

    ``per_image_s`` counts a padded last batch's cost against its real images only, so a short run
    overstates the cost of a longer one; ``per_slot_s`` (given ``batch``, the images one compiled
    batch holds, and more than one batch run) divides the same seconds by the batch slots computed,
    padding included: the figure to scale a run to another image count by."""
    if first is not None and n_run > first[1]:
        first_s, per_image_s = first[0], (run_s - first[0]) / (n_run - first[1])
    else:
        first_s, per_image_s = run_s, run_s / max(1, n_run)
    out = {"compile_s": round(compile_s, 3), "run_s": round(run_s, 3), "first_batch_s": round(first_s, 3),
           "per_image_s": per_image_s, "per_image_per_eps_s": per_image_s / max(1, budgets),
           "defenses_in_program": defenses, "resumed_batches": resumed}
    later = -(-n_run // batch) - 1 if batch else 0  # batches after the first
    if first is not None and later > 0:
        out["per_slot_s"] = (run_s - first[0]) / (later * batch)
    if recomputed is not None:
        out["recomputed_batches"] = recomputed
    return out


def record(arr: dict, *, timing: dict, budget: str, batch: int, precision: str, mesh: dict, **extra) -> dict:
    """A cell's record (without ``key``/``settings``, which the runner adds) from its outcome arrays.

    ``budget``: the norm the eps grid is measured in (``linf``, ``l2``) or ``l2_bound`` for a
    minimum-norm attack scored at L2 bounds. ``extra``: executor-specific fields (``suite``,
    ``semantics``, ``batch_auto``)."""
    labels, pred = arr["label"], arr["pred"]
    n = len(labels)
    right = pred == labels[None, :]
    clean_right = arr["clean_pred"] == labels
    correct = [int(c) for c in right.sum(axis=1)]
    eps = [float(e) for e in arr["eps"]]
    return {
        "format": FORMAT,
        "n_images": n,
        "eps": eps,
        "eps_255": [round(e * 255, 3) for e in eps],
        "correct": correct,
        "accuracy": [c / n for c in correct],
        "clean_correct": int(clean_right.sum()),
        "flipped": [int(c) for c in (clean_right[None, :] & ~right).sum(axis=1)],  # clean-correct images broken
        "timing": timing,
        "budget": budget,
        "batch_size": batch,
        "precision": precision,
        **mesh,
        "host": platform.node(),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
