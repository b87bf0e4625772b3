"""experiments/claims.py: figures, intervals and verdicts of CLAIMS.md from a small store written
through the real store and outcome APIs; regeneration is byte-identical; a missing store or cell is
an error naming it; the committed page matches the committed stores."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from experiments import claims as C
from robustjax.eval import outcomes
from robustjax.eval.store import FILENAME, Store

EPS = [0.0, 8 / 255]
N = 50
STORE = "experiments/s"


def by_hand(k: int, n: int) -> tuple[float, float]:
    """The 95% Wilson interval from its formula, independently of robustjax.eval.stats."""
    z, p = 1.959963984540054, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def fig(k: int, n: int = N) -> str:
    lo, hi = by_hand(k, n)
    return f"{k / n:.3f} [{lo:.2f}, {hi:.2f}] (n={n})".replace("0.", ".")


def write_cell(root, attack, threat, correct_at_eps, defense="d", hparams=None, store=STORE):
    """A stored cell on N images (label 0, all correct clean) whose images ``correct_at_eps`` (a set
    of indices) stay correct at 8/255."""
    out = root / store
    label = np.zeros(N, np.int32)
    pred = np.zeros((2, N), np.int32)
    pred[1, [i for i in range(N) if i not in correct_at_eps]] = 1
    settings = {"dataset": "cifar10_jpeg", "model": "m", "head": None, "defense": defense, "attack": attack,
                "hparams": hparams or {}, "threat": threat, "images": "img", "eps": EPS}
    key = f"{defense}-{attack}-{threat}".replace(":", "_")
    correct = [int(c) for c in (pred == label).sum(axis=1)]
    outcomes.write(out, key, {"row": np.arange(N, dtype=np.int32), "id": np.asarray([f"i{j}" for j in range(N)]),
                              "label": label, "clean_pred": pred[0], "eps": np.asarray(EPS), "pred": pred,
                              "step": np.full(pred.shape, -1, np.int32)})
    Store(out).append({"key": key, "format": 2, "experiment": "x", "n_images": N, "eps": EPS, "correct": correct,
                       "accuracy": [c / N for c in correct], "budget": "linf", "settings": settings,
                       "timing": {"per_image_s": 0.1}})


def level_claim(level=0.8, **kw) -> C.Claim:
    return C.Claim("Jia et al. 2019", "d keeps 80% under FGSM 8/255", "Table 0, FGSM 8/255: 80%, gray box", (level,),
                   STORE, (C.Sel("d", "fgsm", "oblivious", 8 / 255),), "make-store", **kw)


def trend_claim(levels=(0.1, 0.6, 0.9)) -> C.Claim:
    return C.Claim("Räber et al. 2025", "more rounds, more robust", "Table 0: .1 / .6 / .9 at N = 1 / 4 / 8", levels,
                   STORE, tuple(C.Sel(f"seq:{k}:d", "ifgsm", "through", 8 / 255) for k in (1, 4, 8)), "make-store",
                   labels=("N=1", "N=4", "N=8"))


def row(page: str, n: int = 1) -> list[str]:
    line = next(ln for ln in page.splitlines() if ln.startswith(f"| {n} | "))
    return [c.strip() for c in line.strip("|").split(" | ")]


@pytest.fixture
def store(tmp_path):
    write_cell(tmp_path, "fgsm", "oblivious", set(range(40)))  # 40/50 survive the oblivious attack
    write_cell(tmp_path, "fgsm", "through", set(range(5)))  # 5/50 survive through: the worst case is 5
    return tmp_path


def test_figures_intervals_and_the_oblivious_only_verdict(store):
    page = C.render([level_claim()], [], store)
    _, claim, paper, repro, worst, aa, verdict, reason = row(page)
    assert repro == fig(40) == ".800 [.67, .89] (n=50)"
    assert worst == fig(5) == ".100 [.04, .21] (n=50)"
    assert aa == "not run"
    assert verdict == "**holds only against the oblivious attacker**"
    gap = 0.8 - by_hand(5, N)[1]
    assert reason == (f"oblivious {fig(40)[:-7]} reaches the paper's .80; but the worst case {fig(5)[:-7]} lies "
                      f"{gap:.2f} below the paper's .80".replace("0.", "."))
    assert "fgsm (oblivious) .800 [.67, .89], fgsm (through) .100 [.04, .21]" in page  # the worst case's cells


def test_the_verdict_flips_with_the_worst_case_and_the_margin(tmp_path):
    write_cell(tmp_path, "fgsm", "oblivious", set(range(40)))
    write_cell(tmp_path, "fgsm", "through", set(range(45)))  # breaks nothing the oblivious attack left
    assert row(C.render([level_claim()], [], tmp_path))[6] == "**holds**"
    hi = by_hand(40, N)[1]  # .8876: the paper may lie up to MARGIN above it
    assert row(C.render([level_claim(round(hi + 0.04, 3))], [], tmp_path))[6] == "**holds**"
    far = row(C.render([level_claim(round(hi + 0.06, 3))], [], tmp_path))
    assert far[6] == "**does not reproduce**" and far[7].startswith("oblivious .800 [.67, .89] lies .06 below")


def test_holds_needs_an_attacker_that_sees_the_defense(tmp_path):
    write_cell(tmp_path, "fgsm", "oblivious", set(range(40)))
    _, *_, verdict, reason = row(C.render([level_claim()], [], tmp_path))
    assert verdict == "**holds only against the oblivious attacker**"
    assert reason.endswith("the store has no cell whose attacker sees the defense")


def test_trend_rises_through_but_not_in_the_worst_case(tmp_path):
    for k, through, bpda in ((1, 5, 2), (4, 30, 15), (8, 45, 20)):
        write_cell(tmp_path, "ifgsm", "through", set(range(through)), defense=f"seq:{k}:d")
        write_cell(tmp_path, "ifgsm", "bpda", set(range(bpda)), defense=f"seq:{k}:d")
    r = row(C.render([trend_claim()], [], tmp_path))
    assert r[3] == f"N=1 {fig(5)[:-7]} -> N=4 {fig(30)[:-7]} -> N=8 {fig(45)[:-7]} (n=50)"
    assert r[4] == f"N=1 {fig(2)[:-7]} -> N=4 {fig(15)[:-7]} -> N=8 {fig(20)[:-7]} (n=50)"
    assert r[6] == "**holds only against the paper's through attacker**"
    gap = f"{0.9 - by_hand(20, N)[1]:.2f}".replace("0.", ".")
    assert r[7].endswith(f"; but the worst case rises N=1 {fig(2)[:-7]} -> N=8 {fig(20)[:-7]}, which lies {gap} below "
                         "the paper's .90 at N=8")
    # flat through figures: the trend itself does not reproduce
    flat = tmp_path / "flat"
    for k, through in ((1, 20), (4, 22), (8, 24)):
        write_cell(flat, "ifgsm", "through", set(range(through)), defense=f"seq:{k}:d")
    r = row(C.render([trend_claim((0.4, 0.44, 0.48))], [], flat))
    assert r[6] == "**does not reproduce**" and r[7].startswith("through does not rise beyond noise")


def test_autoattack_figure_per_image_over_its_threat_models(store):
    write_cell(store, "autoattack", "through", set(range(3)), hparams={"version": "standard"})
    write_cell(store, "autoattack", "bpda", set(range(2, 10)))
    write_cell(store, "autoattack", "oblivious", set(), hparams={"version": "plus"})  # not standard: ignored
    r = row(C.render([level_claim()], [], store))
    assert r[5] == fig(1)  # only image 2 survives both threat models


def test_regeneration_is_byte_identical_and_check_reports_a_diff(store, capsys):
    page = store / "CLAIMS.md"
    kw = dict(claims=[level_claim(), level_claim(0.5)], pending=[trend_claim()], root=store, path=page)
    assert C.main([], **kw) == 0
    first = page.read_bytes()
    assert C.main([], **kw) == 0 and page.read_bytes() == first
    assert C.main(["--check"], **kw) == 0
    page.write_text(first.decode().replace("| **holds only against the oblivious attacker** |", "| **holds** |", 1))
    capsys.readouterr()
    assert C.main(["--check"], **kw) == 1
    out = capsys.readouterr()
    assert "+| 1 | Jia et al. 2019" in out.out and "differs from its regeneration" in out.err
    assert page.read_text() != first.decode()  # --check writes nothing


def test_pending_claims_are_listed_with_their_command_and_no_figure(store):
    page = C.render([level_claim()], [trend_claim()], store)
    pending = page.split("## Claims awaiting a store")[1]
    assert "| Räber et al. 2025: more rounds, more robust | Table 0: .1 / .6 / .9 at N = 1 / 4 / 8 | experiments/s | " \
           "`make-store` |" in pending
    assert "[." not in pending  # no figure of ours


def test_missing_store_cell_or_autoattack_is_an_error_naming_it(store):
    gone = dataclasses.replace(level_claim(), store="experiments/nope")
    with pytest.raises(C.ClaimError, match=f"no results store at experiments/nope/{FILENAME} .*make-store"):
        C.render([gone], [], store)
    missing = dataclasses.replace(level_claim(), cells=(C.Sel("d", "pgd", "oblivious", 8 / 255),))
    with pytest.raises(C.ClaimError, match="in experiments/s, no cell matches the selector "
                                           "defense=d attack=pgd threat=oblivious eps=8/255"):
        C.render([missing], [], store)
    no_eps = dataclasses.replace(level_claim(), cells=(C.Sel("d", "fgsm", "oblivious", 4 / 255),))
    with pytest.raises(C.ClaimError, match="eps=4/255"):
        C.render([no_eps], [], store)
    many = dataclasses.replace(level_claim(), cells=(C.Sel("d", "fgsm", "*", 8 / 255),))
    with pytest.raises(C.ClaimError, match="2 cells match the selector defense=d attack=fgsm threat=\\*"):
        C.render([many], [], store)
    with pytest.raises(C.ClaimError, match="no AutoAttack standard cell on cifar10_jpeg / m / d at eps=8/255"):
        C.render([level_claim(autoattack_required=True)], [], store)


def test_declared_claims_are_well_formed():
    for c in C.CLAIMS + C.PENDING:
        assert c.cite in C.PAPERS and c.store.startswith("experiments/") and c.command
        assert len(c.levels) == len(c.cells) and all(0 < p <= 1 for p in c.levels)
        assert len(c.cells) == 1 or len(c.labels) == len(c.cells)


def test_committed_page_matches_the_committed_stores():
    if not C.OUT.is_file():
        pytest.skip("experiments/CLAIMS.md is not generated yet (python experiments/claims.py)")
    missing = [c.store for c in C.CLAIMS if not (C.ROOT / c.store / FILENAME).is_file()]
    if missing:
        pytest.skip(f"stores not committed yet: {', '.join(sorted(set(missing)))}")
    assert C.main(["--check"]) == 0


def test_a_selector_picks_a_cell_by_its_image_count_where_a_store_keeps_two_runs():
    recs = [{"key": f"k{n}", "n_images": n, "eps": EPS, "correct": [n, n // 2],
             "settings": {"dataset": "c", "model": "ensemble:x", "defense": "none", "attack": "fgsm",
                          "threat": "oblivious", "eps": EPS}} for n in (100, 500)]
    claim = level_claim()
    with pytest.raises(C.ClaimError, match="2 cells match"):
        C.find(claim, C.Sel("none", "fgsm", "oblivious", 8 / 255), recs)
    assert C.find(claim, C.Sel("none", "fgsm", "oblivious", 8 / 255, n=500), recs)["key"] == "k500"
    assert "n=500" in str(C.Sel("none", "fgsm", "oblivious", 8 / 255, n=500))
