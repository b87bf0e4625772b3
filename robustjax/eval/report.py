"""Tables (markdown + CSV) and plots from a results store, in the layouts of Räber et al. 2025's tables.

- Grid table (Tables 2 and 5; Table 6 when the defenses are JPEG qualities): rows
  Attack | Model | Defense | Threat, one column per eps (``0`` = clean accuracy).
- Sequential table (Tables 9-11): for defenses ``seq:N:X`` (``X`` counts as N=1), rows N and, per
  eps, the threat models side by side (through | bpda): a white-box accuracy that rises with N
  while BPDA stays low is the signature of obfuscated gradients.
- Plots: accuracy vs eps per (dataset, model, attack), a colour per defense, solid = oblivious,
  dashed = through, dotted = bpda, dash-dot = eot; and accuracy vs N for sequential defenses.
- Every table, CSV and plot carries the per-image worst case (:mod:`robustjax.eval.worst`: attack
  ``worst case``, threat ``all``) where the cells have outcome files, and 95% Wilson intervals
  (:mod:`robustjax.eval.stats`): extra ``95% CI`` columns after the accuracies, ``ci_lo``/``ci_hi``
  in the long CSV, error bars in the plots. Rows on the same images are compared with McNemar's
  exact test against the worst case ("within noise" when p >= 0.05).
- Gradient-masking checks per defense (:mod:`robustjax.eval.checks`), printed only where one fires.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections import defaultdict
from pathlib import Path

from robustjax.eval import checks, outcomes, stats
from robustjax.eval import worst as W
from robustjax.eval.plan import SUITE, SUITE_SEMANTICS
from robustjax.eval.store import Store

THREAT_ORDER = {"oblivious": 0, "through": 1, "bpda": 2, "eot": 3, "adaptive": 7, "all": 8}
LINESTYLE = {"oblivious": "-", "through": "--", "bpda": ":", "eot": "-.", "adaptive": "-", "all": "-"}
_SEQ = re.compile(r"^seq:(\d+):(.+)$")


def budget_label(e: float, budget: str = "linf") -> str:
    """A column label for budget ``e`` of a record's ``budget`` kind: ``8/255`` (L-inf), ``L2 0.5``
    (an L2 ball; ``L1 5`` an L1 ball), ``L2<=0.5`` (an L2 bound on a minimum-norm attack's perturbation)."""
    if budget == "l2_bound":
        return f"L2<={e:g}"
    return f"{budget.upper()} {e:g}" if budget in ("l2", "l1") and e else eps_label(e)


def eps_label(e: float) -> str:
    """0.0313725 -> '8/255'; exact fractions of 255 shown as such, others as decimals."""
    if e == 0:
        return "0"
    k = e * 255
    if abs(k - round(k)) < 1e-4:
        return f"{round(k)}/255"
    return f"{e:.4g}"


def attack_label(rec: dict) -> str:
    s = rec["settings"]
    hp = s.get("hparams") or {}
    return s["attack"] + "".join(f":{k}={v}" for k, v in sorted(hp.items()))


def latest(records: list[dict]) -> list[dict]:
    """One record per key (the last written), in first-seen order."""
    by = {}
    for r in records:
        by[r["key"]] = r
    return list(by.values())


def long_rows(records: list[dict]) -> list[dict]:
    rows = []
    for r in records:
        s = r["settings"]
        for e, a, c in zip(r["eps"], r["accuracy"], r["correct"]):
            rows.append({
                "experiment": r.get("experiment"), "dataset": s["dataset"], "n_images": r["n_images"],
                "model": s["model"], "head": s.get("head"), "defense": s["defense"], "attack": attack_label(r),
                "threat": s["threat"],
                "eps": e, "eps_label": eps_label(e), "accuracy": a, "correct": c,
                "ci_lo": stats.wilson(c, r["n_images"])[0], "ci_hi": stats.wilson(c, r["n_images"])[1],
                "per_image_s": r["timing"]["per_image_s"], "devices": r.get("devices"), "platform": r.get("platform"),
                "git": r.get("git"),
            })
    return rows


def _order(values):
    return list(dict.fromkeys(values))


def _md(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _csv(header, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _blank_repeats(rows: list[list[str]], ncols: int) -> list[list[str]]:
    """Paper style: leave a leading cell empty when it repeats the row above (within its group)."""
    out, prev = [], [None] * ncols
    for r in rows:
        shown, same = list(r), True
        for j in range(ncols):
            same = same and r[j] == prev[j]
            if same:
                shown[j] = ""
        out.append(shown)
        prev = r
    return out


def grid_table(records: list[dict], fmt: str = "{:.3f}") -> tuple[list[str], list[list[str]]]:
    """Header and rows (Attack | Model | Defense | Threat | eps...), full (unblanked) cells, of records
    of one budget kind: columns are L-inf budgets, L2 budgets (``L2 0.5``), or L2 bounds for
    minimum-norm attacks (records with budget l2_bound)."""
    eps = sorted({e for r in records for e in r["eps"]})
    kinds = {r.get("budget", "linf") for r in records}
    label = functools.partial(budget_label, budget=kinds.pop() if len(kinds) == 1 else "linf")
    attacks = _order(attack_label(r) for r in records)
    models = _order(r["settings"]["model"] for r in records)
    defenses = _order(r["settings"]["defense"] for r in records)
    recs = sorted(records, key=lambda r: (attacks.index(attack_label(r)), models.index(r["settings"]["model"]),
                                          defenses.index(r["settings"]["defense"]),
                                          THREAT_ORDER.get(r["settings"]["threat"], 9)))
    header = ["Attack", "Model", "Defense", "Threat"] + [label(e) for e in eps] + [f"95% CI {label(e)}" for e in eps]
    rows = []
    for r in recs:
        acc = dict(zip(r["eps"], r["accuracy"]))
        ci = {e: stats.ci_text(c, r["n_images"]) for e, c in zip(r["eps"], r["correct"])}
        s = r["settings"]
        rows.append([attack_label(r), s["model"], s["defense"], s["threat"]]
                    + [fmt.format(acc[e]) if e in acc else "" for e in eps]
                    + [ci.get(e, "") for e in eps])
    return header, rows


def msr_records(records: list[dict]) -> list[dict]:
    """Copies of ``records`` whose ``accuracy`` is Das et al. 2017's misclassification success rate
    (``flipped / clean_correct`` per attacked budget; records without the counts are left out)."""
    out = []
    for r in records:
        if "flipped" not in r or not r.get("clean_correct"):
            continue
        pairs = [(e, f / r["clean_correct"]) for e, f in zip(r["eps"], r["flipped"])
                 if e > 0 or r.get("budget") == "l2_bound"]
        out.append({**r, "eps": [e for e, _ in pairs], "accuracy": [m for _, m in pairs]})
    return [r for r in out if r["eps"]]


def sequential_groups(records: list[dict]) -> dict:
    """(dataset, model, attack, base defense) -> {N: [records]} for seq:N:X defenses (X alone = N=1)."""
    bases = defaultdict(dict)
    for r in records:
        m = _SEQ.match(r["settings"]["defense"])
        if m and not r.get("worst_case"):
            bases[(r["settings"]["dataset"], r["settings"]["model"], attack_label(r), m[2])] = {}
    groups = {}
    for k in bases:
        g = defaultdict(list)
        for r in records:
            s = r["settings"]  # the worst case (over every attack) joins each attack's table
            if (s["dataset"], s["model"]) != k[:2] or (attack_label(r) != k[2] and not r.get("worst_case")):
                continue
            m = _SEQ.match(s["defense"])
            if m and m[2] == k[3]:
                g[int(m[1])].append(r)
            elif s["defense"] == k[3]:
                g[1].append(r)
        groups[k] = dict(sorted(g.items()))
    return groups


def sequential_table(group: dict, fmt: str = "{:.3f}") -> tuple[list[str], list[list[str]]]:
    """Rows N; columns clean, then per eps > 0 each threat model side by side."""
    recs = [r for rs in group.values() for r in rs]
    eps = sorted({e for r in recs for e in r["eps"] if e > 0})
    threats = sorted({r["settings"]["threat"] for r in recs}, key=lambda t: THREAT_ORDER.get(t, 9))
    header = ["N", "clean"] + [f"{t} {eps_label(e)}" for e in eps for t in threats]
    header += ["95% CI clean"] + [f"95% CI {t} {eps_label(e)}" for e in eps for t in threats]
    rows = []
    for n, rs in group.items():
        by_t = {r["settings"]["threat"]: dict(zip(r["eps"], r["accuracy"])) for r in rs}
        ci_t = {r["settings"]["threat"]: {e: stats.ci_text(c, r["n_images"]) for e, c in zip(r["eps"], r["correct"])}
                for r in rs}
        clean_t = next((t for t, a in by_t.items() if 0.0 in a), None)
        row = [str(n), "" if clean_t is None else fmt.format(by_t[clean_t][0.0])]
        cis = ["" if clean_t is None else ci_t[clean_t][0.0]]
        for e in eps:
            for t in threats:
                a = by_t.get(t, {})
                row.append(fmt.format(a[e]) if e in a else "")
                cis.append(ci_t.get(t, {}).get(e, ""))
        rows.append(row + cis)
    return header, rows


def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(str(p) for p in parts)).strip("_")


def plot_grid(records: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    defenses = _order(r["settings"]["defense"] for r in records)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r in sorted(records, key=lambda r: (defenses.index(r["settings"]["defense"]),
                                            THREAT_ORDER.get(r["settings"]["threat"], 9))):
        s = r["settings"]
        xs = [e * 255 for e in r["eps"]]
        order = sorted(range(len(xs)), key=xs.__getitem__)
        ys, yerr = _errorbars(r, order)
        worst = bool(r.get("worst_case"))
        ax.errorbar([xs[i] for i in order], ys, yerr=yerr, fmt=LINESTYLE.get(s["threat"], "-"), marker="o", ms=3,
                    capsize=2, lw=2.5 if worst else 1.2, color=colors[defenses.index(s["defense"]) % len(colors)],
                    label=f"{s['defense']} ({W.WORST if worst else s['threat']})")
    ax.set_xlabel("eps (x/255)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _errorbars(r: dict, order: list[int]):
    ys, lo, hi = [], [], []
    for i in order:
        a, (low, high) = r["accuracy"][i], stats.wilson(r["correct"][i], r["n_images"])
        ys.append(a), lo.append(max(0.0, a - low)), hi.append(max(0.0, high - a))
    return ys, [lo, hi]


def plot_sequential(group: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [r for rs in group.values() for r in rs]
    eps = sorted({e for r in recs for e in r["eps"] if e > 0})
    threats = sorted({r["settings"]["threat"] for r in recs}, key=lambda t: THREAT_ORDER.get(t, 9))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ns = list(group)
    for i, e in enumerate(eps):
        for t in threats:
            ys, lo, hi = [], [], []
            for n in ns:
                r = next((r for r in group[n] if r["settings"]["threat"] == t), None)
                if r is None or e not in r["eps"]:
                    ys.append(float("nan")), lo.append(0.0), hi.append(0.0)
                    continue
                j = r["eps"].index(e)
                a, (low, high) = r["accuracy"][j], stats.wilson(r["correct"][j], r["n_images"])
                ys.append(a), lo.append(max(0.0, a - low)), hi.append(max(0.0, high - a))
            ax.errorbar(ns, ys, yerr=[lo, hi], fmt=LINESTYLE.get(t, "-"), marker="o", ms=3, capsize=2,
                        lw=2.5 if t == "all" else 1.2, color=colors[i % len(colors)],
                        label=f"{W.WORST if t == 'all' else t} {eps_label(e)}")
    ax.set_xlabel("N (sequential rounds)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render(out: str | Path, plots: bool = True, msr: bool = False) -> str:
    """Write ``report.md``, ``*.csv`` and ``plots/*.png`` into ``out``; return the markdown. ``msr``: add
    a misclassification-success-rate table per dataset (Das et al. 2017; :func:`msr_records`)."""
    out = Path(out)
    records = latest(Store(out).records())
    if not records:
        raise FileNotFoundError(f"no results in {out / 'results.jsonl'}")
    groups = W.groups(records, out)
    records = records + W.records(groups)
    md = [f"# robustjax results ({out})", ""]
    rows = long_rows(records)
    (out / "results_long.csv").write_text(_csv(list(rows[0]), [list(r.values()) for r in rows]))
    plot_dir = out / "plots"
    if plots:
        plot_dir.mkdir(exist_ok=True)
    by_ds = defaultdict(list)
    for r in records:
        by_ds[(r.get("experiment") or "", r["settings"]["dataset"])].append(r)
    for (exp, ds), recs in by_ds.items():
        dataset = ds
        n = sorted({r["n_images"] for r in recs})
        pis = sorted(r["timing"]["per_image_s"] for r in recs if not r.get("worst_case")) or [0.0]
        title = f"{exp}: {ds}" if exp else ds
        ds = _slug(exp, ds) if exp else ds
        md += [f"## {title} ({', '.join(map(str, n))} images)", "",
               "Accuracy of the defended model f(d(x_adv)); columns are L-inf budgets (0 = clean). "
               "Threat models: oblivious = attack the bare classifier (Räber et al. 2025's Through=False), "
               "through = differentiate the defense (Through=True), bpda = defense forward, identity backward.", ""]
        for budget in _order(r.get("budget", "linf") for r in recs):
            part = [r for r in recs if r.get("budget", "linf") == budget]
            header, body = grid_table(part)
            if budget == "l2":
                md += ["L2 attacks: columns are L2 budgets (per-image norm over all pixels, pixel units).", ""]
            if budget == "l2_bound":
                md += ["Minimum-norm attacks: an image counts as broken at bound b only if the attack fooled the "
                       "defended model with a perturbation of L2 norm <= b (pixel units); "
                       "otherwise its clean prediction counts.", ""]
            md += [_md(header, _blank_repeats(body, 4)), ""]
            suffix = {"l2_bound": "_l2", "l2": "_l2ball"}.get(budget, "")
            (out / f"table_{_slug(ds)}{suffix}.csv").write_text(_csv(header, body))
        if any(r.get("suite") for r in recs):
            md += [f"Suite rows (the adaptive suite, threat {SUITE}; AutoAttack versions): {SUITE_SEMANTICS}.", ""]
            md += suite_logs(recs)
        md += randomised_sections(recs, out)
        skipped = skipped_unreadable(recs)
        md += [*skipped, ""] if skipped else []
        mine = [g for g in groups
                if any((r.get("experiment") or "") == exp and r["settings"]["dataset"] == dataset for r in g.records)]
        md += worst_sections(mine) + checks.section(mine, out)
        if msr and msr_records(recs):
            header, body = grid_table(msr_records(recs))
            md += ["Misclassification success rate (Das et al. 2017): share of the images the defended model got right "
                   "on the clean input whose label the attack flipped.", "", _md(header, _blank_repeats(body, 4)), ""]
            (out / f"msr_{_slug(ds)}.csv").write_text(_csv(header, body))
        md += [f"Per-image time over all eps of a cell: median {pis[len(pis) // 2]:.3f} s "
               f"(min {pis[0]:.3f}, max {pis[-1]:.3f}) "
               f"on {recs[0].get('devices')} {recs[0].get('platform')} device(s).", ""]
        for k, group in sequential_groups(recs).items():
            _, model, attack, base = k
            header, body = sequential_table(group)
            md += [f"### Sequential {base}: {model}, {attack}", "",
                   "Rows: rounds N. A through-attack accuracy that grows with N while BPDA stays low means the "
                   "gradient is obfuscated, not that the defense got stronger.", "", _md(header, body), ""]
            name = _slug("seq", ds, model, attack, base)
            (out / f"{name}.csv").write_text(_csv(header, body))
            if plots:
                plot_sequential(group, plot_dir / f"{name}.png", f"{title}: {model}, {attack}, {base} x N")
                md += [f"![{name}](plots/{name}.png)", ""]
        if plots:
            combos = _order((r["settings"]["model"], attack_label(r)) for r in recs if not r.get("worst_case"))
            for model, attack in combos:
                sub = [r for r in recs
                       if r["settings"]["model"] == model and (attack_label(r) == attack or r.get("worst_case"))
                       and not _SEQ.match(r["settings"]["defense"]) and r.get("budget", "linf") == "linf"]
                if not sub:
                    continue
                name = _slug("acc_vs_eps", ds, model, attack)
                plot_grid(sub, plot_dir / f"{name}.png", f"{title}: {model}, {attack}")
                md += [f"![{name}](plots/{name}.png)", "",
                       "(solid = oblivious, dashed = through, dotted = bpda, dash-dot = eot)", ""]
    text = "\n".join(md)
    (out / "report.md").write_text(text)
    return text


def randomised_sections(records: list[dict], out_dir) -> list[str]:
    """Markdown: per cell of a randomised defense scored over several draws, the all-draws, majority
    and single-draw accuracies side by side with each draw's range, and a flag where the single-draw
    figure exceeds the all-draws one beyond noise (McNemar on the same images)."""
    md = []
    for r in records:
        if r.get("draws", 1) <= 1 or "accuracy_single_draw" not in r:
            continue
        s = r["settings"]
        arr = outcomes.read(out_dir, r["key"]) if out_dir is not None else None
        rows, flagged = [], []
        for j, e in enumerate(r["eps"]):
            lo, hi = r["draw_accuracy_min"][j], r["draw_accuracy_max"][j]
            verdict = ""
            if arr is not None and "pred_draws" in arr:
                single = arr["pred_draws"][j, 0] == arr["label"]
                every = arr["pred"][j] == arr["label"]
                t = stats.paired(single, every)
                verdict = f"{t['only_a']} ({'within noise' if t['within_noise'] else 'beyond noise'}, p {t['p']:.2g})"
                if not t["within_noise"]:
                    flagged.append(budget_label(e, r.get("budget", "linf")))
            rows.append([budget_label(e, r.get("budget", "linf")), f"{r['accuracy'][j]:.3f}",
                         f"{r['accuracy_majority'][j]:.3f}", f"{r['accuracy_single_draw'][j]:.3f}",
                         f"{lo:.3f}-{hi:.3f}", verdict])
        setting = "the attacker's own draw" if r.get("fixed_randomness") else "draws independent of the attacker's"
        md += [f"#### Randomised defense {s['defense']}: {attack_label(r)} ({s['threat']}), {r['draws']} scoring "
               f"draws, {setting}", "",
               _md(["eps", "all draws", "majority", "single draw", "per-draw range",
                    "images only the single draw keeps"], rows), ""]
        if flagged:
            md += [f"**The single-draw figure overstates robustness beyond noise at {', '.join(flagged)}**: an image "
                   "counts as robust only if every draw classifies it correctly.", ""]
    return md


def suite_logs(records: list[dict]) -> list[str]:
    """Markdown: per suite cell, its version line (AutoAttack) and, per budget, the robust accuracy
    after each member, as AutoAttack's log gives it (members attack only the images still standing;
    with nested budgets the first member starts from the images no smaller budget broke)."""
    md = []
    for r in records:
        if not r.get("suite"):
            continue
        s, n = r["settings"], r["n_images"]
        md += [f"#### Suite log: {s['model']} / {s['defense']} / {attack_label(r)} ({s['threat']})", ""]
        if r.get("autoattack"):
            md += [r["autoattack"] + ".", ""]
        md += [f"- clean: {r['clean_correct'] / n:.3f} ({r['clean_correct']}/{n})"]
        attacked = [e for e in r["eps"] if e > 0]
        for j, e in enumerate(attacked):
            steps = []
            for m in r["suite"]:
                if m["attacked"][j]:
                    left = m["attacked"][j] - m["broken"][j]
                    steps.append(f"after {m['member']}: {left / n:.3f} ({m['broken'][j]} broken)")
            label = budget_label(e, r.get("budget", "linf"))
            md += [f"- {label}: " + ("; ".join(steps) if steps else "no image left to attack")]
        md += [""]
    return md


def worst_sections(groups: list) -> list[str]:
    """Markdown: per worst-case group, which cell broke each image first, and each cell against
    the worst case on the same images (McNemar; "within noise" when p >= 0.05)."""
    md = []
    for g in groups:
        dataset, model, _, defense, budget, _, n = g.key
        rows = []
        for i, e in enumerate(g.eps):
            if e == 0:
                continue
            w = g.worst[i]
            first = ", ".join(f"{k}: {v}" for k, v in sorted(g.broke_first[i].items(), key=lambda kv: -kv[1])) or "none"
            for r in g.records:
                c = g.cell_correct(r, e)
                if c is None:
                    continue
                t = stats.paired(c, w)
                rows.append([budget_label(e, budget), W.cell_label(r), f"{c.mean():.3f}", f"{w.mean():.3f}",
                             str(t["only_a"]), f"{t['p']:.3g}",
                             "within noise" if t["within_noise"] else "weaker than worst case"])
            md += [f"Worst case {model} / {defense} at {budget_label(e, budget)}: "
                   f"{int(w.sum())}/{n} images robust; broken first by {first}.", ""]
        if rows:
            md += [f"### Paired comparison with the worst case: {model}, {defense}", "",
                   _md(["eps", "cell", "accuracy", "worst case", "images only this cell missed", "McNemar p",
                        "verdict"], rows), ""]
    return md


def summary_table(records: list[dict], out=None) -> str:
    """The grid table(s) of ``records`` as markdown (printed at the end of a run), with the
    per-image worst-case rows when ``out`` (the store directory holding the outcome files) is given."""
    records = latest(records)
    if out is not None:
        records = records + W.records(W.groups(records, out))
    parts = []
    for budget in _order(r.get("budget", "linf") for r in records):
        header, body = grid_table([r for r in records if r.get("budget", "linf") == budget])
        parts.append(_md(header, _blank_repeats(body, 4)))
    parts += skipped_unreadable(records)
    return "\n\n".join(parts)


SKIPPED_SHOWN = 20  # unreadable images named in the report; the rest are counted


def skipped_unreadable(records: list[dict]) -> list[str]:
    """One markdown line per dataset naming the image files its runs left out as unreadable (the
    record key ``skipped_unreadable``, a list of ids, present when ``--skip-unreadable`` dropped
    any): the accuracies are over the remaining images, so the report must say which are missing."""
    found: dict[str, set] = {}
    for r in records:
        if r.get("skipped_unreadable"):
            found.setdefault(r["settings"]["dataset"], set()).update(r["skipped_unreadable"])
    lines = []
    for dataset, ids in found.items():
        ids = sorted(ids)
        more = f" and {len(ids) - SKIPPED_SHOWN} more" if len(ids) > SKIPPED_SHOWN else ""
        lines.append(f"Skipped {len(ids)} unreadable image(s) of {dataset} (--skip-unreadable): "
                     f"{', '.join(ids[:SKIPPED_SHOWN])}{more}.")
    return lines
