"""The adaptive suite against the same attacks run exhaustively: gradient passes, wall time, and
whether the suite breaks every image the exhaustive cells break.

    python experiments/benchmarks/adaptive_cost.py [--grid quickstart|table11] [--eps ...] [--n N] [--out DIR]
        [--members M1,M2,...] [--reuse]

Grids:

- ``quickstart`` (default): :func:`robustjax.eval.config.quickstart` (efficientnet_lite0 on foolbox's
  20 ImageNet photos, iFGSM-10, defenses none and jpeg:25, threat models oblivious / through / bpda),
  eps 0, 2, 4, 8 /255. Exhaustive: every image runs every step of every cell (4 cells). Adaptive:
  ``--attack adaptive`` with members ``ifgsm@through, ifgsm@bpda, ifgsm@oblivious`` (the same
  attacks, in the default order; for the undefended model they collapse to one member).
- ``table11``: Räber et al. 2025 Table 11 as ``experiments/raber2025/table11_worst.py`` runs it
  (efficientnet_lite0 with the Imagenette head, Imagenette images, sequential JPEG q25 at N = 1, 4, 8
  rounds, iFGSM-10 at 4/255 and 8/255, through and BPDA: 6 cells), ``--n`` images (default 100);
  adaptive members ``ifgsm@bpda, ifgsm@through`` (as the config orders them: BPDA first).

``--members`` reorders the suite or leaves members out (member order decides which images the later
members see); members must be among the grid's, the attacks the exhaustive side runs, so the two
sides stay comparable. A non-default list is stored in its own folder under ``--out``.

Gradient passes (forward + input backward through the attacker's view): exhaustive = programs x
images x budgets x steps (the oblivious program attacks once for both defenses); adaptive = the
suite record's ``passes`` (per chunk of gathered images its rows, padding included, x the gradient
passes actually run; clean-misclassified images never attacked; budgets nested, so an image broken
at a smaller budget is not attacked at a larger one). Wall time includes compilation on both sides; the cell
time is compile_s + run_s of the records on both sides.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from robustjax.eval import config as C  # noqa: E402
from robustjax.eval import load_outcomes  # noqa: E402
from robustjax.eval.components import default  # noqa: E402
from robustjax.eval.runner import Runner  # noqa: E402


def _table11():
    # load_file fills the keys the paper config leaves to the defaults, as python -m robustjax.eval does
    return C.load_file(Path(__file__).resolve().parents[1] / "raber2025" / "table11_worst.py")


# grid name: (config factory, default eps, default images, suite members in the default order)
GRIDS = {
    "quickstart": (C.quickstart, "0,2/255,4/255,8/255", None, ["ifgsm@through", "ifgsm@bpda", "ifgsm@oblivious"]),
    "table11": (_table11, "0,4/255,8/255", 100, ["ifgsm@bpda", "ifgsm@through"]),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", choices=sorted(GRIDS), default="quickstart")
    p.add_argument("--eps", default=None, help="budgets (default: the grid's)")
    p.add_argument("--n", type=int, default=None, help="images (default: all 20 for quickstart, 100 for table11)")
    p.add_argument("--out", default=None, help="results directory (default: a temporary one)")
    p.add_argument("--members", default=None,
                   help="comma-separated suite members in order, from the grid's (default: all of them); a "
                        "non-default list runs in its own folder under --out, so --reuse keeps the exhaustive side")
    p.add_argument("--reuse", action="store_true",
                   help="read the figures of an earlier run in --out instead of rerunning")
    a = p.parse_args(argv)
    out = Path(a.out or tempfile.mkdtemp(prefix="adaptive_cost_"))
    make, eps, n_default, members = GRIDS[a.grid]
    suite_dir = "adaptive"
    if a.members:
        chosen = [m.strip() for m in a.members.split(",") if m.strip()]
        unknown = [m for m in chosen if m not in members]
        if unknown or len(set(chosen)) != len(chosen):
            p.error(f"--members {a.members!r}: each member once, from the attacks the exhaustive side runs "
                    f"({', '.join(members)}); got {', '.join(unknown) or 'a repeated member'}")
        if chosen != members:
            suite_dir = "adaptive_" + "_".join(m.replace("@", "-") for m in chosen)  # members are ATTACK@THREAT
        members = chosen
    a.eps = a.eps or eps
    base = make()
    base.eps = C.parse_eps(a.eps)
    base.n = a.n if a.n is not None else n_default
    comp = default()
    steps = 10  # robustjax's ifgsm default
    results = {}
    for name, attacks in (("exhaustive", ["ifgsm"]), ("adaptive", [{"name": "adaptive", "members": members}])):
        cfg = make()
        cfg.update(base.to_dict())
        cfg.attacks, cfg.out = attacks, str(out / (suite_dir if name == "adaptive" else name))
        wall_file = Path(cfg.out) / "wall_s.txt"
        if not (a.reuse and wall_file.exists()):
            shutil.rmtree(cfg.out, ignore_errors=True)
            t0 = time.perf_counter()
            Runner(cfg, comp, progress=False, log=lambda *m: None).run()
            wall_file.write_text(f"{time.perf_counter() - t0:.3f}\n")
        recs = Runner(cfg, comp, progress=False, log=lambda *m: None).run()  # every cell stored: reads them back
        results[name] = (recs, float(wall_file.read_text()), load_outcomes(cfg.out))
    ex, ex_wall, ex_df = results["exhaustive"]
    ad, ad_wall, ad_df = results["adaptive"]
    n = ex[0]["n_images"]
    budgets = sum(1 for e in base.eps if e > 0)
    # an oblivious job attacks once and scores every defense: count each program once
    share = [1 / r["timing"]["defenses_in_program"] for r in ex]
    ex_passes = round(sum(share) * n * budgets * steps)
    ad_passes = sum(sum(m["passes"]) for r in ad for m in r["suite"])
    ex_time = sum(s * (r["timing"]["compile_s"] + r["timing"]["run_s"]) for s, r in zip(share, ex))
    ad_time = sum(r["timing"]["compile_s"] + r["timing"]["run_s"] for r in ad)
    missed = 0
    for d in ex_df.defense.unique():
        broken_ex = ex_df[(ex_df.defense == d) & ex_df.broken].groupby(["eps", "row"]).size().index
        suite = ad_df[ad_df.defense == d].set_index(["eps", "row"]).broken
        missed += int((~suite.reindex(broken_ex).fillna(False).astype(bool)).sum())
    print(f"grid: {a.grid}, {n} images, eps {a.eps}, {len(ex)} exhaustive cells ({round(sum(share))} programs), "
          f"{len(ad)} suite cells (members {', '.join(members)})")
    print(f"gradient passes: exhaustive {ex_passes}, adaptive {ad_passes} ({ex_passes / max(1, ad_passes):.2f}x fewer)")
    print(f"cell time (compile + run): exhaustive {ex_time:.1f} s, adaptive {ad_time:.1f} s "
          f"({ex_time / max(1e-9, ad_time):.2f}x)")
    print(f"wall time of the two runs: exhaustive {ex_wall:.1f} s, adaptive {ad_wall:.1f} s "
          f"({ex_wall / max(1e-9, ad_wall):.2f}x)")
    print(f"images broken by the exhaustive cells but not by the suite: {missed}")
    for r in ad:
        print(f"  {r['settings']['defense']}: "
              + "; ".join(f"{m['member']} attacked {m['attacked']} broke {m['broken']} passes {m['passes']}"
                          for m in r["suite"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
