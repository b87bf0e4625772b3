"""The adaptive suite on the stand-ins: best-adversarial members, compute only on images still standing."""

import dataclasses

import numpy as np
import pytest

import robustjax.attacks as A
from robustjax.eval import load_outcomes
from robustjax.eval import worst as W
from robustjax.eval.cli import main
from robustjax.eval.runner import Runner
from robustjax.eval.store import Store
from tests.eval_standins import components
from tests.test_eval_runner import cfg as base_cfg

MEMBERS = ["ifgsm@through", "ifgsm@bpda"]


def test_suite_breaks_every_image_the_exhaustive_cells_break_and_skips_broken_images(tmp_path):
    c = base_cfg(tmp_path, defenses=["quant:8"], attacks=["ifgsm", {"name": "adaptive", "members": MEMBERS}],
                 threats=["through", "bpda"], eps=[0.0, 8 / 255, 32 / 255], batch_size=8)
    recs = Runner(c, components(), progress=False).run()
    suite = next(r for r in recs if r["settings"]["attack"] == "adaptive")
    cells = [r for r in recs if r["settings"]["attack"] == "ifgsm"]
    assert suite["settings"]["threat"] == "adaptive" and suite["settings"]["hparams"] == {"members": MEMBERS}
    df = load_outcomes(c.out)
    for j, e in enumerate(suite["eps"]):
        s = df[(df.key == suite["key"]) & (df.eps == e)].sort_values("row")
        for r in cells:  # every image an exhaustive cell broke at its final iterate, the suite broke too
            x = df[(df.key == r["key"]) & (df.eps == e)].sort_values("row")
            assert not (x.broken.to_numpy() & ~s.broken.to_numpy()).any()
            assert suite["correct"][j] <= r["correct"][j]
    # the through member is blind on quantisation (zero gradient); bpda breaks what is left, attacking only those
    through, bpda = suite["suite"]
    assert through["member"] == "ifgsm@through" and through["broken"] == [0, 0]
    assert bpda["attacked"] == [20 - through["broken"][0], 20 - through["broken"][1]] and bpda["broken"][1] > 0
    assert suite["correct"][2] == 20 - bpda["broken"][1]
    # the worst case over every cell on the same images includes the suite
    (g,) = W.groups(Store(c.out).records(), c.out)
    assert int(g.worst[0].sum()) == min(r["correct"][0] for r in recs)
    assert all(int(g.worst[j].sum()) <= min(r["correct"][j] for r in recs) for j in range(3))


def test_suite_stops_a_batch_once_every_image_is_broken(tmp_path):
    # at a huge budget every image breaks at step 1: one iteration per batch, not 3
    c = base_cfg(tmp_path, defenses=["none"], attacks=[{"name": "adaptive", "members": ["ifgsm:steps=3@oblivious"]}],
                 threats=["oblivious"], eps=[0.0, 1.0], batch_size=20)
    (r,) = Runner(c, components(), progress=False).run()
    (m,) = r["suite"]
    assert m["broken"] == [20] and m["passes"] == [20]  # 1 batch x 20 images x 1 iteration
    df = load_outcomes(c.out)
    assert set(df[df.eps == 1.0].step) == {1}


@pytest.mark.parametrize("members, message", [
    (["pgd@through", "deepfoo@bpda"], "unknown adaptive suite member attack 'deepfoo'"),
    (["pgd@whitebox"], "unknown threat model 'whitebox' in adaptive suite member"),
    (["pgd"], "needs a threat model"),
    (["pgd@through", "deepfool@through"], "minimum-norm attack 'deepfool' cannot join the adaptive suite"),
])
def test_bad_suite_fails_before_compute(tmp_path, capsys, members, message):
    comp = dataclasses.replace(components(), get_attack=A.get, attack_names=A.names, minimum_norm=A.is_minimum_norm)
    calls = []
    comp = dataclasses.replace(comp, load_model=lambda *a, **k: calls.append("model"), load_data=lambda *a, **k: calls.append("data"))
    c = base_cfg(tmp_path, attacks=[{"name": "adaptive", "members": members}])
    with pytest.raises(ValueError, match=message):
        Runner(c, comp, progress=False).run()
    assert calls == [] and not (tmp_path / "out").exists()


def test_cli_adaptive_uses_the_default_members_the_registry_has(tmp_path):
    out = tmp_path / "o"
    rc = main(["--dataset", "foolbox_cifar10", "--model", "tiny", "--defense", "quant:8", "--attack", "adaptive", "--eps", "0,8/255",
               "--threat", "through", "--batch-size", "20", "--out", str(out), "--no-progress", "--no-report", "--n", "6"],
              components=components())
    assert rc == 0
    (r,) = [r for r in Store(out).records() if r["settings"]["attack"] == "adaptive"]
    assert [m["member"] for m in r["suite"]] == ["pgd@through", "pgd@bpda"]  # eot dropped: quant:8 is deterministic
    assert np.isfinite(r["accuracy"]).all()


def test_undefended_suite_keeps_one_member_per_attack():
    import robustjax.defenses as D
    from robustjax.eval import adaptive

    ms = adaptive.members({"members": ["ifgsm@through", "ifgsm@bpda", "pgd@bpda"]}, components(), D.get("none"))
    assert [m.label for m in ms] == ["ifgsm@oblivious", "pgd@oblivious"]
