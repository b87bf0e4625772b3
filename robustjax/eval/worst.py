"""The per-image worst case over attacks and threat models (AutoAttack's rule, across threat models).

For each (dataset, model, defense, budget kind) and the images a cell ran on (the ``images``
fingerprint of its settings), an image counts as robust at budget e only if every stored cell that
has e in its grid classified it correctly at e; the worst-case accuracy is the share of such
images. It is never above any cell's accuracy. Each broken image is credited to the first cell
(in store order) that broke it, or to ``clean`` when it was misclassified without attack.

Why: a defense is only as robust as the strongest attacker of any kind says; reading the minimum
of a table's rows by eye overstates robustness whenever different attacks break different images.
Cells without an outcome file (store format 1) are left out.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict

import numpy as np

from robustjax.eval import outcomes

WORST = "worst case"


def cell_label(rec: dict) -> str:
    s = rec["settings"]
    hp = s.get("hparams") or {}
    return s["attack"] + "".join(f":{k}={v}" for k, v in sorted(hp.items())) + f" ({s['threat']})"


@dataclasses.dataclass
class Group:
    """One worst-case group: ``eps`` (E,), ``correct`` cell label -> {eps: (N,) bool}, ``worst``
    (E, N) bool, ``records`` the cells in store order, ``ids`` (N,) the images."""

    key: tuple
    ids: np.ndarray
    eps: list
    records: list
    correct: dict
    clean_ok: np.ndarray
    worst: np.ndarray
    broke_first: list

    def cell_correct(self, rec: dict, e: float):
        return self.correct[rec["key"]].get(e)


def _group_key(rec: dict) -> tuple:
    s = rec["settings"]
    return (s["dataset"], s["model"], s.get("head"), s["defense"], rec.get("budget", "linf"), s.get("images"),
            rec["n_images"])


def groups(records: list[dict], out) -> list[Group]:
    """Worst-case groups of ``records`` (one per key, already deduplicated) with outcome files in ``out``."""
    by = defaultdict(list)
    for r in records:
        if r.get("worst_case"):
            continue
        arr = outcomes.read(out, r["key"])
        if arr is not None:
            by[_group_key(r)].append((r, arr))
    result = []
    for key, cells in by.items():
        ids = cells[0][1]["id"]
        cells = [(r, a) for r, a in cells if np.array_equal(a["id"], ids)]
        label = cells[0][1]["label"]
        eps = sorted({float(e) for _, a in cells for e in a["eps"]})
        correct, clean_ok = {}, np.ones(len(ids), bool)
        for r, a in cells:
            correct[r["key"]] = {float(e): a["pred"][j] == label for j, e in enumerate(a["eps"])}
            clean_ok &= a["clean_pred"] == label
        worst = np.ones((len(eps), len(ids)), bool)
        first = []
        for i, e in enumerate(eps):
            credit = np.full(len(ids), "", dtype=object)
            if e > 0:
                credit[~clean_ok] = "clean"
            for r, _ in cells:
                c = correct[r["key"]].get(e)
                if c is None:
                    continue
                worst[i] &= c
                credit[(credit == "") & ~c] = cell_label(r)
            counts = defaultdict(int)
            for name in credit[~worst[i]]:
                counts[name] += 1
            first.append(dict(counts))
        result.append(Group(key, ids, eps, [r for r, _ in cells], correct, clean_ok, worst, first))
    return result


def records(gs: list[Group]) -> list[dict]:
    """One pseudo-record per group and experiment, shaped as a store record (``worst_case`` True,
    attack ``worst case``, threat ``all``), for the report's tables and plots."""
    out = []
    for g in gs:
        dataset, model, head, defense, budget, images, n = g.key
        correct = [int(w.sum()) for w in g.worst]
        for exp in dict.fromkeys(r.get("experiment") for r in g.records):
            first = g.records[0]
            out.append({
                "key": "worst-" + hashlib.sha256(repr((g.key, exp)).encode()).hexdigest()[:12], "worst_case": True,
                "experiment": exp, "n_images": n, "budget": budget, "eps": g.eps, "correct": correct,
                "accuracy": [c / n for c in correct], "broke_first": g.broke_first,
                "cells": [cell_label(r) for r in g.records],
                "settings": {"dataset": dataset, "model": model, "head": head, "defense": defense, "attack": WORST,
                             "hparams": {}, "threat": "all", "images": images},
                "timing": {"per_image_s": 0.0}, "devices": first.get("devices"), "platform": first.get("platform"),
                "git": first.get("git"),
            })
    return out
