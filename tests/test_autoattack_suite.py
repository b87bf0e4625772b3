"""AutoAttack's versions as suites: AutoAttack's member lists and settings, one suite cell per defense
and threat model, its version stated in the record and the report; bad versions refused before compute."""

import dataclasses

import pytest

import robustjax.attacks as A
from robustjax.eval import autoattack, report
from robustjax.eval.plan import jobs, resolve
from robustjax.eval.runner import Runner
from tests.eval_standins import components
from tests.test_eval_runner import cfg as base_cfg


def real_components():
    return dataclasses.replace(components(), get_attack=A.get, attack_names=A.names, minimum_norm=A.is_minimum_norm)


def test_versions_are_autoattacks_member_lists_per_defense_and_threat(tmp_path):
    c = base_cfg(tmp_path, defenses=["none", "quant:8"], threats=["through", "bpda"],
                 attacks=[{"name": "autoattack", "norm": "l2"}, {"name": "autoattack", "version": "plus"}])
    plan = resolve(c, real_components())
    got = [(str(j.attack), j.threat, j.defenses, [m.label.split(":")[0] for m in j.members]) for j in plan.jobs]
    standard = ["apgd-ce", "apgd-t", "fab-t", "square"]
    plus = ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"]
    assert got == [("autoattack:norm=l2", "oblivious", ("none",), standard),
                   ("autoattack:norm=l2", "through", ("quant:8",), standard),
                   ("autoattack:norm=l2", "bpda", ("quant:8",), standard),
                   ("autoattack:version=plus", "oblivious", ("none",), plus),
                   ("autoattack:version=plus", "through", ("quant:8",), plus),
                   ("autoattack:version=plus", "bpda", ("quant:8",), plus)]
    fab_t = plan.jobs[1].members[2]
    assert fab_t.threat == "through"
    assert fab_t.attack.kwargs == {"norm": "l2", "restarts": 1, "steps": 100, "targets": 9}
    square = plan.jobs[1].members[3].attack.kwargs
    assert square == {"norm": "l2", "p_init": 0.8, "queries": 5000, "restarts": 1, "rescale_schedule": False}
    assert [m.attack.kwargs["restarts"] for m in plan.jobs[4].members] == [5, 5, 5, 1, 1, 1]
    assert all(m.attack.norm == "l2" for m in plan.jobs[1].members)


def test_rand_runs_eot_over_twenty_draws_and_has_no_bpda_form(tmp_path):
    c = base_cfg(tmp_path, defenses=["noise:8"], threats=["through"],
                 attacks=[{"name": "autoattack", "version": "rand"}])
    (job,) = resolve(c, real_components()).jobs
    assert [m.label for m in job.members] == ["apgd-ce:norm=linf:restarts=1:steps=100@eot[20]",
                                              "apgd-dlr:norm=linf:restarts=1:steps=100@eot[20]"]
    with pytest.raises(ValueError, match="no BPDA form"):
        jobs(base_cfg(tmp_path, defenses=["noise:8"], threats=["bpda"],
                      attacks=[{"name": "autoattack", "version": "rand"}]), {"noise:8": None}, real_components())


@pytest.mark.parametrize("hp, message", [({"version": "fast"}, "unknown AutoAttack version 'fast'"),
                                         ({"norm": "l1"}, "norm 'l1' is not supported"),
                                         ({"restarts": 3}, "takes only 'version' and 'norm'")])
def test_bad_autoattack_specs_fail_before_compute(tmp_path, hp, message):
    calls = []
    comp = dataclasses.replace(real_components(), load_model=lambda *a, **k: calls.append("model"))
    with pytest.raises(ValueError, match=message):
        Runner(base_cfg(tmp_path, attacks=[{"name": "autoattack", **hp}]), comp, progress=False).run()
    assert calls == []


@pytest.mark.slow  # four members compiled on the tiny CNN: about 20 s
def test_standard_version_runs_as_a_suite_and_states_its_settings(tmp_path, monkeypatch):
    """AutoAttack standard on the tiny CNN, few steps and queries (the member list and order stay
    AutoAttack's): every member reports, and the report opens with the version line."""
    monkeypatch.setitem(autoattack.MEMBERS, "standard", tuple(
        (name, {**hp, **({"steps": 5} if "steps" in hp else {}), **({"queries": 20} if "queries" in hp else {})})
        for name, hp in autoattack.MEMBERS["standard"]))
    c = base_cfg(tmp_path, defenses=["quant:64"], threats=["bpda"], eps=[0.0, 2 / 255, 8 / 255], n=8, batch_size=8,
                 attacks=["ifgsm", {"name": "autoattack"}])
    recs = Runner(c, real_components(), progress=False).run()
    aa = next(r for r in recs if r["settings"]["attack"] == "autoattack")
    grid = next(r for r in recs if r["settings"]["attack"] == "ifgsm" and r["settings"]["threat"] == "bpda")
    assert aa["settings"]["threat"] == "bpda"
    assert aa["autoattack"].startswith("AutoAttack standard, norm linf: apgd-ce(")
    assert [m["member"].split(":")[0] for m in aa["suite"]] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert aa["correct"][0] == grid["correct"][0] and aa["correct"][2] < aa["correct"][0]  # it broke images
    text = report.render(c.out, plots=False)
    assert "AutoAttack standard, norm linf" in text


def test_an_undefended_ensemble_keeps_every_threat_model(tmp_path):
    """An ensemble's JPEG votes are inside the model, so with defense none ``through`` and ``bpda``
    attack other functions than ``oblivious`` (its base model M): neither AutoAttack nor the
    adaptive suite may fold them into ``oblivious``, as they do for a plain undefended model."""
    import robustjax.defenses as D
    from robustjax.eval.plan import suite_members

    c = base_cfg(tmp_path, models=["ensemble:chain"], defenses=["none"], threats=["through", "bpda"],
                 attacks=["autoattack"])
    assert [(j.threat, j.defenses) for j in jobs(c)] == [("through", ("none",)), ("bpda", ("none",))]
    given = {"members": ["ifgsm@through", "ifgsm@bpda"]}
    assert [m.label for m in suite_members(given, components(), D.get("none"), "ensemble:chain")] == \
        ["ifgsm@through", "ifgsm@bpda"]
    assert [m.label for m in suite_members(given, components(), D.get("none"), "m")] == ["ifgsm@oblivious"]
