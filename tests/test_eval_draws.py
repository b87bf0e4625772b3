"""Randomised defenses scored over several draws: all-draws criterion, majority and single-draw figures,
scoring draws independent of the attacker's unless --fixed-randomness; bad settings refused."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.defenses import Defense
from robustjax.eval import load_outcomes, report
from robustjax.eval.cli import main
from robustjax.eval.runner import Runner
from tests.eval_standins import components, get_defense
from tests.test_eval_runner import cfg as base_cfg


def coin(x, key=None):
    """Randomised: each image is inverted on a fair coin (a defense whose draws disagree on the tiny CNN)."""
    flip = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
    return jnp.where(flip, 1.0 - x, x)


def comps():
    return dataclasses.replace(components(), get_defense=lambda spec: Defense(spec, coin, randomised=True)
                               if spec == "coin" else get_defense(spec))


def run(tmp_path, name, **kw):
    c = base_cfg(tmp_path, defenses=["quant:8", "coin"], attacks=["ifgsm"], threats=["oblivious", "through"],
                 eps=[0.0, 4 / 255], out=str(tmp_path / name), **kw)
    recs = Runner(c, comps(), progress=False).run()
    return {(r["settings"]["defense"], r["settings"]["threat"]): r for r in recs}, c


def test_all_draws_is_at_most_single_draw_and_deterministic_defenses_are_untouched(tmp_path):
    ten, c = run(tmp_path, "ten")
    one, _ = run(tmp_path, "one", draws=1)
    noisy = ten[("coin", "through")]
    assert noisy["draws"] == 10 and noisy["fixed_randomness"] is False and noisy["settings"]["draws"] == 10
    for j in range(2):  # all draws <= majority and single draw; each draw's accuracy within its range
        assert noisy["accuracy"][j] <= noisy["accuracy_single_draw"][j]
        assert noisy["accuracy"][j] <= noisy["accuracy_majority"][j]
        assert noisy["draw_accuracy_min"][j] <= noisy["accuracy_single_draw"][j] <= noisy["draw_accuracy_max"][j]
    assert noisy["accuracy"][0] < noisy["accuracy_single_draw"][0]  # not vacuous: draws disagree on clean images
    assert noisy["draw_accuracy_min"][0] < noisy["draw_accuracy_max"][0]
    # a deterministic defense has one draw, no extra fields, and the same key as before the option existed
    quant = ten[("quant:8", "through")]
    assert "draws" not in quant and "draws" not in quant["settings"]
    assert quant["key"] == one[("quant:8", "through")]["key"]
    df = load_outcomes(c.out)
    share = df[(df.key == noisy["key"])].correct_share.to_numpy()
    assert ((share > 0) & (share < 1)).any() and set(np.unique(df[df.key == quant["key"]].correct_share)) <= {0.0, 1.0}
    text = report.render(c.out, plots=False)
    assert "Randomised defense coin" in text and "single draw" in text


def test_fixed_randomness_scores_the_attackers_draw(tmp_path):
    fixed, _ = run(tmp_path, "fixed", fixed_randomness=True)
    free, _ = run(tmp_path, "free", draws=1)
    a, b = fixed[("coin", "through")], free[("coin", "through")]
    assert a["fixed_randomness"] is True and a["draws"] == 1 and a["key"] != b["key"]


@pytest.mark.parametrize("argv, message", [(["--draws", "0"], "--draws must be an integer >= 1"),
                                           (["--draws", "3", "--fixed-randomness"], "--draws must be 1")])
def test_bad_draw_settings_are_refused(tmp_path, capsys, argv, message):
    rc = main(["--dataset", "foolbox_cifar10", "--model", "tiny", "--out", str(tmp_path / "o"), "--no-progress", *argv],
              components=components())
    assert rc == 2 and message in capsys.readouterr().err and not (tmp_path / "o").exists()
