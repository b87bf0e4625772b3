"""Worst case over cells, Wilson intervals, McNemar, and their place in the report."""

import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustjax.eval import load_outcomes, outcomes, report, stats
from robustjax.eval import worst as W
from robustjax.eval.store import Store

EPS = [0.0, 2 / 255, 8 / 255]


def write_cell(out, key, attack, threat, pred, label, eps=EPS, defense="jpeg:25", images="abc"):
    n = len(label)
    correct = [int(c) for c in (pred == label[None]).sum(axis=1)]
    rec = {"key": key, "format": 2, "experiment": "x", "n_images": n, "eps": list(eps), "correct": correct,
           "accuracy": [c / n for c in correct], "budget": "linf", "timing": {"per_image_s": 0.1}, "devices": 1,
           "platform": "cpu",
           "settings": {"dataset": "d", "model": "m", "head": None, "defense": defense, "attack": attack, "hparams": {},
                        "threat": threat, "images": images, "eps": list(eps)}}
    outcomes.write(out, key, {"row": np.arange(n, dtype=np.int32), "id": np.asarray([f"i{j}" for j in range(n)]),
                              "label": label.astype(np.int32), "clean_pred": pred[0].astype(np.int32),
                              "eps": np.asarray(eps), "pred": pred.astype(np.int32),
                              "step": np.full(pred.shape, -1, np.int32)})
    Store(out).append(rec)
    return rec


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 25), st.integers(0, 2**31 - 1), st.booleans())
def test_worst_case_is_the_per_image_and_and_below_every_cell(k, n, seed, ragged):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, n)
    with tempfile.TemporaryDirectory() as out:
        recs = []
        clean = rng.integers(0, 3, n)
        for c in range(k):
            eps = EPS if not (ragged and c % 2) else [0.0, 8 / 255]  # some cells lack 2/255
            pred = rng.integers(0, 3, (len(eps), n))
            pred[0] = clean  # a deterministic defense: one clean prediction
            recs.append(write_cell(out, f"k{c}", "ifgsm" if c % 2 else "pgd", ["through", "bpda"][c % 2], pred, label,
                                   eps=eps))
        (g,) = W.groups(Store(out).records(), out)
        (wr,) = W.records([g])
        df = load_outcomes(out)
        for i, e in enumerate(g.eps):
            sub = df[np.isclose(df.eps, e)]
            per_image = sub.groupby("row").correct.all().reindex(range(n)).to_numpy()
            assert np.array_equal(g.worst[i], per_image)
            assert wr["correct"][i] == int(per_image.sum())
            for r in recs:
                if e in r["eps"]:
                    assert wr["correct"][i] <= r["correct"][r["eps"].index(e)]
            assert sum(g.broke_first[i].values()) == n - wr["correct"][i]


def test_worst_case_credits_the_first_breaker_and_joins_the_report(tmp_path):
    label = np.zeros(10, np.int64)
    ok = np.zeros((3, 10), np.int64)
    a = ok.copy()
    a[1:, :3] = 1  # through breaks images 0-2
    b = ok.copy()
    b[1:, 2:6] = 1  # bpda breaks images 2-5
    b[:, 9] = a[:, 9] = 1  # image 9 is misclassified clean (and stays so)
    write_cell(tmp_path, "a", "ifgsm", "through", a, label)
    write_cell(tmp_path, "b", "ifgsm", "bpda", b, label)
    (g,) = W.groups(Store(tmp_path).records(), tmp_path)
    assert [int(w.sum()) for w in g.worst] == [9, 3, 3]
    assert g.broke_first[2] == {"clean": 1, "ifgsm (through)": 3, "ifgsm (bpda)": 3}
    md = report.render(tmp_path)
    lo, hi = stats.wilson(3, 10)
    assert f"| worst case | m | jpeg:25 | all | 0.900 | 0.300 | 0.300 | [0.60, 0.98] | [{lo:.2f}, {hi:.2f}] |" in md
    assert "3/10 images robust; broken first by ifgsm (through): 3, ifgsm (bpda): 3, clean: 1." in md
    # each cell alone leaves 3 images standing that the other broke: 3 discordant pairs, p = 0.25
    assert "| 8/255 | ifgsm (through) | 0.600 | 0.300 | 3 | 0.25 | within noise |" in md
    long = (tmp_path / "results_long.csv").read_text()
    assert "worst case" in long and "ci_lo" in long.splitlines()[0]
    assert (tmp_path / "plots" / "acc_vs_eps_d_x_m_ifgsm.png").exists() or list((tmp_path / "plots").glob("*.png"))


def test_wilson_and_mcnemar_known_values():
    lo, hi = stats.wilson(8, 10)  # textbook: 0.490, 0.943
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert stats.wilson(0, 20)[0] == 0.0 and stats.wilson(20, 20)[1] == 1.0
    for n in range(1, 400):  # the interval always holds the point estimate (plots draw it as error bars)
        for k in (0, 1, n // 2, n - 1, n):
            lo, hi = stats.wilson(k, n)
            assert lo <= k / n <= hi, (k, n)
    assert stats.mcnemar(0, 0) == 1.0
    assert stats.mcnemar(0, 6) == pytest.approx(2 / 64)  # two-sided exact: 2 * 0.5**6
    assert stats.mcnemar(3, 3) == 1.0
    assert stats.mcnemar(1, 9) == pytest.approx(2 * 11 / 1024)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        stats.wilson(5, 3)
    t = stats.paired([True, True, False, True], [True, False, False, False])
    assert (t["only_a"], t["only_b"]) == (2, 0) and t["within_noise"]
