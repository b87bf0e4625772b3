"""Das et al. 2017's misclassification success rate: the function, the runner's counts, the report table."""

import numpy as np
import pytest

from robustjax.eval import report
from robustjax.eval.metrics import misclassification_success_rate, msr_from_counts
from robustjax.eval.runner import Runner
from tests.eval_standins import components
from tests.test_eval_runner import cfg


def test_msr_counts_only_the_clean_correct():
    clean = [True, True, True, False, False]
    adv = [False, True, False, True, False]  # 2 of 3 correct flipped; a wrong image turned right is ignored
    assert misclassification_success_rate(clean, adv) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="undefined"):
        msr_from_counts(0, 0)
    with pytest.raises(ValueError, match="one shape"):
        misclassification_success_rate([True], [True, False])


def test_runner_stores_flips_and_report_shows_msr(tmp_path):
    recs = Runner(cfg(tmp_path, defenses=["none"], attacks=["ifgsm"], threats=["oblivious"]), components(),
                  progress=False).run()
    r = recs[0]
    assert r["clean_correct"] == 20 == r["correct"][0]  # stand-in labels are the CNN's own: all clean-correct
    assert r["flipped"][0] == 0 and all(f == 20 - c for f, c in zip(r["flipped"][1:], r["correct"][1:]))
    md = report.render(tmp_path / "out", plots=False, msr=True)
    assert "Misclassification success rate" in md
    assert f"| {r['flipped'][2] / 20:.3f} |" in md
    assert "Misclassification" not in report.render(tmp_path / "out", plots=False)
    assert np.isclose(misclassification_success_rate([True] * 20, [True] * r["correct"][1] + [False] * r["flipped"][1]),
                      r["flipped"][1] / 20)
