"""Gradient-masking checks per defense (Carlini et al. 2019, "On Evaluating Adversarial Robustness";
the flags of Croce & Hein 2020's AutoAttack), each with the figures behind it; silent where none fires.

From the per-image outcomes of one worst-case group (:mod:`robustjax.eval.worst`):

- ``gradient-free``: a gradient-free attack (Square) broke images that every gradient cell missed;
- ``bpda-vs-through``: BPDA and the through attacker (same attack) disagree beyond noise (McNemar
  p < 0.05): one of the two gradients carries little information;
- ``large-budget``: at an L-inf budget >= 32/255 the worst case keeps more than 10% of the images
  (95% Wilson lower bound above 0.10): an unbounded attacker should reach ~0;
- ``more-steps``: the same attack and threat with more steps lowers accuracy beyond noise (McNemar
  p < 0.05): the shorter attack had not converged;
- ``zero-gradient``: more than 10% of the attacked images have an input gradient through the
  defense of L2 norm below 1e-10 (the through/eot view at the clean image).
"""

from __future__ import annotations

import numpy as np

from robustjax.eval import outcomes, stats
from robustjax.eval.worst import cell_label

GRADIENT_FREE = ("square",)
LARGE = 32 / 255
ZERO = 1e-10


def _eps_text(e):
    k = e * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-4 else f"{e:.4g}"


def run(group, out) -> list[str]:
    """Messages for one worst-case group (empty when nothing fires)."""
    msgs = []
    recs = [r for r in group.records if r["settings"]["attack"] != "adaptive"]
    budget = group.key[4]
    for e in group.eps:
        if e == 0 or budget != "linf":
            continue
        grad = [r for r in recs if r["settings"]["attack"] not in GRADIENT_FREE]
        free = [r for r in recs if r["settings"]["attack"] in GRADIENT_FREE]
        if grad and free:
            missed = np.ones(len(group.ids), bool)
            for r in grad:
                c = group.cell_correct(r, e)
                if c is not None:
                    missed &= c
            clean_ok = group.clean_ok
            for r in free:
                c = group.cell_correct(r, e)
                if c is None:
                    continue
                only = int((missed & ~c & clean_ok).sum())
                if only:
                    msgs.append(f"gradient-free: {cell_label(r)} broke {only} image(s) at {_eps_text(e)} "
                                f"that every gradient attack missed ({len(grad)} cell(s)): the gradients are masked")
        by = {}
        for r in recs:
            s = r["settings"]
            by.setdefault((s["attack"], tuple(sorted((s.get("hparams") or {}).items()))), {})[s["threat"]] = r
        for (attack, hp), threats in by.items():
            if "through" in threats and "bpda" in threats:
                a, b = group.cell_correct(threats["through"], e), group.cell_correct(threats["bpda"], e)
                if a is None or b is None:
                    continue
                t = stats.paired(a, b)
                if not t["within_noise"]:
                    msgs.append(f"bpda-vs-through: {attack} at {_eps_text(e)}: "
                                f"through accuracy {a.mean():.3f}, bpda {b.mean():.3f}; "
                                f"{t['only_b']} image(s) broken only by through, {t['only_a']} only by bpda "
                                f"(McNemar p = {t['p']:.3g})")
        steps = {}
        for r in recs:
            s = r["settings"]
            hp = dict(s.get("hparams") or {})
            n_steps = hp.pop("steps", None)
            if n_steps is not None:
                steps.setdefault((s["attack"], s["threat"], tuple(sorted(hp.items()))), []).append((n_steps, r))
        for (attack, threat, _), rs in steps.items():
            if len(rs) < 2:
                continue
            rs.sort(key=lambda t: t[0])
            (lo_steps, lo), (hi_steps, hi) = rs[0], rs[-1]
            a, b = group.cell_correct(lo, e), group.cell_correct(hi, e)
            if a is None or b is None:
                continue
            t = stats.paired(a, b)
            if not t["within_noise"] and b.mean() < a.mean():
                msgs.append(f"more-steps: {attack} ({threat}) at {_eps_text(e)}: "
                            f"{lo_steps} steps {a.mean():.3f}, {hi_steps} steps "
                            f"{b.mean():.3f} (McNemar p = {t['p']:.3g}): the shorter attack had not converged")
    i_large = [i for i, e in enumerate(group.eps) if e >= LARGE - 1e-9]
    if budget == "linf" and i_large:
        i = i_large[-1]
        k, n = int(group.worst[i].sum()), len(group.ids)
        lo, hi = stats.wilson(k, n)
        if lo > 0.10:
            msgs.append(f"large-budget: the worst case keeps {k}/{n} images "
                        f"({k / n:.3f}, 95% CI [{lo:.2f}, {hi:.2f}]) at "
                        f"{_eps_text(group.eps[i])}: an attacker with that budget should reach about 0")
    for r in recs:
        if r["settings"]["threat"] not in ("through", "eot"):
            continue
        arr = outcomes.read(out, r["key"])
        if arr is None or "grad_norm" not in arr:
            continue
        ok = arr["clean_pred"] == arr["label"]
        g = arr["grad_norm"][ok]
        if len(g):
            share = float((g < ZERO).mean())
            if share > 0.10:
                msgs.append(f"zero-gradient: {cell_label(r)}: {share:.0%} of {len(g)} clean-correct images "
                            f"have an input gradient of L2 norm < {ZERO:g} through the defense")
    return msgs


def section(groups, out) -> list[str]:
    """Markdown lines: per defense with a firing check, its messages."""
    md = []
    for g in groups:
        msgs = run(g, out)
        if msgs:
            dataset, model, _, defense, *_ = g.key
            md += [f"### Gradient-masking checks: {model}, {defense}", ""] + [f"- {m}" for m in msgs] + [""]
    return md
