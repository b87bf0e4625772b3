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
    # nested budgets: an image broken at 8/255 stays broken at 32/255 and is not attacked again
    assert bpda["attacked"] == [20, 20 - bpda["broken"][0]] and bpda["broken"][0] > 0 and bpda["broken"][1] > 0
    assert suite["correct"][2] == 20 - bpda["broken"][0] - bpda["broken"][1]
    df_s = df[df.key == suite["key"]].sort_values(["row", "eps"])
    for _, img in df_s.groupby("row"):  # broken at a smaller budget: the same prediction and step at larger ones
        b = img.broken.to_numpy()
        assert (b[1:] >= b[:-1]).all()
        if b[1]:
            assert img.pred.iloc[2] == img.pred.iloc[1] and img.step.iloc[2] == img.step.iloc[1]
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
    # 1 batch x 20 images x 2 gradient passes: at the clean image, then at step 1's point, whose
    # forward pass finds it fooled (the view is the scored model: no separate scoring pass)
    assert m["broken"] == [20] and m["passes"] == [40]
    assert r["timing"]["run_s"] >= 0 and r["suite_chunk"] == 2  # an eighth of the batch of 20 on CPU
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
    comp = dataclasses.replace(comp, load_model=lambda *a, **k: calls.append("model"),
                               load_data=lambda *a, **k: calls.append("data"))
    c = base_cfg(tmp_path, attacks=[{"name": "adaptive", "members": members}])
    with pytest.raises(ValueError, match=message):
        Runner(c, comp, progress=False).run()
    assert calls == [] and not (tmp_path / "out").exists()


def test_cli_adaptive_uses_the_default_members_the_registry_has(tmp_path):
    out = tmp_path / "o"
    rc = main(["--dataset", "foolbox_cifar10", "--model", "tiny", "--defense", "quant:8", "--attack", "adaptive",
               "--eps", "0,8/255", "--threat", "through", "--batch-size", "20", "--out", str(out), "--no-progress",
               "--no-report", "--n", "6"],
              components=components())
    assert rc == 0
    (r,) = [r for r in Store(out).records() if r["settings"]["attack"] == "adaptive"]
    assert [m["member"] for m in r["suite"]] == ["pgd@through", "pgd@bpda"]  # eot dropped: quant:8 is deterministic
    assert np.isfinite(r["accuracy"]).all()


def test_undefended_suite_keeps_one_member_per_attack():
    import robustjax.defenses as D
    from robustjax.eval.plan import suite_members

    ms = suite_members({"members": ["ifgsm@through", "ifgsm@bpda", "pgd@bpda"]}, components(), D.get("none"))
    assert [m.label for m in ms] == ["ifgsm@oblivious", "pgd@oblivious"]


def test_suite_outcomes_do_not_depend_on_batch_size_and_broken_images_cost_no_more_steps(tmp_path):
    """Random starts (pgd) and a randomised defense draw per image; the standing images are gathered
    every few steps, so the batch (4 or 20) and the window (1 or 3 batches gathered together) change
    the passes spent but no image's outcome."""
    def run(batch, window=1):
        c = base_cfg(tmp_path / f"b{batch}w{window}", defenses=["noise:16"], threats=["through"],
                     eps=[0.0, 16 / 255, 32 / 255], draws=2,
                     attacks=[{"name": "adaptive", "members": ["pgd:steps=10@through", "ifgsm@bpda"]}],
                     batch_size=batch, suite_window=window)
        (r,) = Runner(c, components(), progress=False).run()
        df = load_outcomes(c.out).sort_values(["eps", "row"])[["row", "eps", "clean_pred", "pred", "step"]]
        return r, df.reset_index(drop=True)

    (r4, a), (r20, b), (r4w, c) = run(4), run(20), run(4, window=3)
    assert a.equals(b) and r4["correct"] == r20["correct"]
    assert a.equals(c) and r4w["suite_window"] == 3 and r4w["suite"][0]["broken"] == r4["suite"][0]["broken"]
    assert a[a.step > 0].step.nunique() >= 3  # not vacuous: images fall at different steps
    # the suite's time per slot counts whole windows after the first: 4 windows of 4 slots, 1 of 12 (4 padding)
    for r, slots in ((r4, 16), (r4w, 12)):
        t = r["timing"]
        assert t["first_batch_s"] + slots * t["per_slot_s"] == pytest.approx(t["run_s"], abs=2e-3)
    # at batch 4 (gathered into 4, 2 or 1 images) an image that falls early stops costing passes:
    # fewer than every attacked image x 10 steps, and never more than one batch of 20 spends
    pgd4, pgd20 = r4["suite"][0], r20["suite"][0]
    assert pgd4["broken"] == pgd20["broken"] and all(b > 0 for b in pgd4["broken"])
    assert all(p < 10 * n for p, n in zip(pgd4["passes"], pgd4["attacked"]))
    assert all(p4 <= p20 for p4, p20 in zip(pgd4["passes"], pgd20["passes"]))


def test_chunks_are_an_eighth_of_a_batch_on_cpu_in_whole_devices_and_a_batch_elsewhere():
    from robustjax.eval.suite import chunk_rows

    assert [chunk_rows(b, 1, "cpu") for b in (32, 20, 4)] == [4, 2, 1]
    assert chunk_rows(20, 4, "cpu") == 4 and chunk_rows(72, 4, "cpu") == 12  # a multiple of the devices
    assert chunk_rows(256, 8, "gpu") == 256


@pytest.mark.parametrize("bad", [0, -1])
def test_a_bad_suite_window_is_refused_before_any_compute(tmp_path, bad):
    from robustjax.eval.config import check_shape

    c = base_cfg(tmp_path, suite_window=bad)
    with pytest.raises(ValueError, match=rf"suite_window must be a positive integer \(batches\), got {bad}"):
        check_shape(c)
