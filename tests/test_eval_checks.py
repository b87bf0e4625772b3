"""Gradient-masking checks: fire on a masked defense (zero-gradient quantisation), silent on the undefended model."""

import numpy as np

from robustjax.eval import checks, report
from robustjax.eval import worst as W
from robustjax.eval.runner import Runner
from robustjax.eval.store import Store
from tests.eval_standins import components
from tests.test_eval_runner import cfg
from tests.test_eval_worst import write_cell


def test_checks_fire_on_quantisation_and_stay_silent_undefended(tmp_path):
    c = cfg(tmp_path, defenses=["none", "quant:8"], attacks=[{"name": "ifgsm", "steps": 10}],
            eps=[0.0, 8 / 255, 64 / 255])
    Runner(c, components(), progress=False).run()
    gs = {g.key[3]: g for g in W.groups(Store(c.out).records(), c.out)}
    assert checks.run(gs["none"], c.out) == []
    msgs = checks.run(gs["quant:8"], c.out)
    assert any(m.startswith("bpda-vs-through: ifgsm at 64/255: through accuracy 1.000, bpda 0.000") for m in msgs), msgs
    assert any(m.startswith("zero-gradient: ifgsm:steps=10 (through): 100% of 20") for m in msgs), msgs
    md = report.render(c.out, plots=False)
    assert "### Gradient-masking checks: tiny, quant:8" in md and "Gradient-masking checks: tiny, none" not in md


def test_gradient_free_large_budget_and_more_steps_checks(tmp_path):
    n = 30
    label = np.zeros(n, np.int64)
    eps = [0.0, 32 / 255]
    ok = np.zeros((2, n), np.int64)
    pgd10, pgd100, square = ok.copy(), ok.copy(), ok.copy()
    pgd100[1, :12] = 1  # 100 steps break 12 images 10 steps missed
    square[1, 12:15] = 1  # square breaks 3 images no gradient attack broke
    write_cell(tmp_path, "a", "pgd", "through", pgd10, label, eps=eps)
    rec = write_cell(tmp_path, "b", "pgd", "through", pgd100, label, eps=eps)
    write_cell(tmp_path, "c", "square", "through", square, label, eps=eps)
    recs = Store(tmp_path).records()
    recs[0]["settings"]["hparams"], recs[1]["settings"]["hparams"] = {"steps": 10}, {"steps": 100}
    (g,) = W.groups(recs, tmp_path)
    msgs = checks.run(g, tmp_path)
    assert any(m.startswith("gradient-free: square (through) broke 3 image(s) at 32/255") for m in msgs), msgs
    assert any(m.startswith("more-steps: pgd (through) at 32/255: 10 steps 1.000, 100 steps 0.600") for m in msgs), msgs
    assert any(m.startswith("large-budget: the worst case keeps 15/30 images") for m in msgs), msgs
    assert rec["key"] == "b"
