"""The grid runner in-process, with the stand-ins of eval_standins.py (tiny CNN, jax FGSM/iFGSM/PGD)."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from robustjax.eval import config as C
from robustjax.eval import grid, report
from robustjax.eval.cli import main
from robustjax.eval.runner import Runner, plan
from tests.eval_standins import components

ROOT = Path(__file__).resolve().parents[1]


def cfg(tmp_path, **kw):
    c = C.quickstart()
    c.update(dict(dataset="foolbox_cifar10", models=["tiny"], defenses=["none", "quant:8"], attacks=["fgsm", "ifgsm"],
                  eps=[0.0, 8 / 255, 32 / 255], threats=["oblivious", "through", "bpda"], batch_size=20,
                  out=str(tmp_path / "out")))
    c.update(kw)
    return c


def accuracies(records):
    return {(r["settings"]["defense"], r["settings"]["attack"], r["settings"]["threat"]): r["correct"] for r in records}


def test_plan_shares_oblivious_attacks_and_runs_none_once():
    c = cfg(Path("/tmp"))
    jobs = plan(c)
    cells = [cell for j in jobs for cell in j.cells()]
    assert len(cells) == 2 * (1 + 3) and len(set(cells)) == len(cells)
    assert [x.threat for x in cells if x.defense == "none"] == ["oblivious", "oblivious"]
    # one oblivious job per attack scores both defenses; through/bpda get a job per defense
    assert [(str(j.attack), j.threat, j.defenses) for j in jobs[:3]] == [
        ("fgsm", "oblivious", ("none", "quant:8")), ("fgsm", "through", ("quant:8",)), ("fgsm", "bpda", ("quant:8",))]
    c.threats = ["through"]
    assert [(j.threat, j.defenses) for j in plan(c)[:2]] == [("oblivious", ("none",)), ("through", ("quant:8",))]


def test_shared_oblivious_job_equals_separate_runs(tmp_path):
    both = Runner(cfg(tmp_path, attacks=["pgd"], threats=["oblivious"], out=str(tmp_path / "a")), components(),
                  progress=False).run()
    alone = Runner(cfg(tmp_path, attacks=["pgd"], threats=["oblivious"], defenses=["quant:8"], out=str(tmp_path / "b")),
                   components(), progress=False).run()
    assert both[1]["settings"] == alone[0]["settings"] and both[1]["correct"] == alone[0]["correct"]
    assert both[0]["timing"]["defenses_in_program"] == 2


def test_padding_and_batch_size_do_not_change_accuracy_and_threats_behave(tmp_path):
    comp = components()
    one = Runner(cfg(tmp_path, batch_size=20, out=str(tmp_path / "a")), comp, progress=False).run()
    padded = Runner(cfg(tmp_path, batch_size=8, out=str(tmp_path / "b")), comp, progress=False).run()  # 8+8+4(+4 pad)
    odd = Runner(cfg(tmp_path, batch_size=6, out=str(tmp_path / "c")), comp, progress=False).run()  # 6+6+6+2(+4 pad)
    acc = accuracies(one)
    assert acc == accuracies(padded) == accuracies(odd)
    assert all(r["n_images"] == 20 for r in padded)
    assert padded[0]["batch_size"] == 8
    # per-image time from the second batch on (12 images), the first batch's start-up recorded apart
    t = padded[0]["timing"]
    assert 0 < t["first_batch_s"] < t["run_s"]
    assert t["first_batch_s"] + 12 * t["per_image_s"] == pytest.approx(t["run_s"], abs=2e-3)
    # per padded slot: the same seconds over the 16 slots of batches 2 and 3 (the last holds 4 pad)
    assert t["first_batch_s"] + 16 * t["per_slot_s"] == pytest.approx(t["run_s"], abs=2e-3)
    t = one[0]["timing"]  # one batch: the wall time
    # run_s is rounded to ms
    assert t["first_batch_s"] == t["run_s"] and 20 * t["per_image_s"] == pytest.approx(t["run_s"], abs=1e-3)
    assert "per_slot_s" not in t  # no batch after the first to measure it on
    # the stand-in labels are the CNN's own predictions: clean accuracy 1, attacks do damage
    assert acc[("none", "ifgsm", "oblivious")][0] == 20 and acc[("none", "ifgsm", "oblivious")][2] < 15
    # quantisation has zero gradient: a through-attack is blind, BPDA is not (obfuscated gradients)
    assert acc[("quant:8", "ifgsm", "through")] == [20, 20, 20]
    assert acc[("quant:8", "ifgsm", "bpda")][2] < 20


def test_rerun_skips_finished_cells(tmp_path, monkeypatch):
    c = cfg(tmp_path, attacks=["fgsm"], threats=["oblivious", "bpda"])
    first = Runner(c, components(), progress=False).run()
    assert len(first) == 3

    def boom(*a, **k):
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr(grid, "execute", boom)
    again = Runner(c, components(), progress=False).run()
    assert [r["key"] for r in again] == [r["key"] for r in first]
    # a new eps grid is a new cell
    with pytest.raises(AssertionError, match="recomputed"):
        Runner(cfg(tmp_path, attacks=["fgsm"], eps=[0.0, 1 / 255]), components(), progress=False).run()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "resnet9000"], "unknown model.*valid: tiny"),
        (["--attack", "fgsm,deepfoo"], "unknown attack 'deepfoo'; valid: fgsm, ifgsm, pgd"),
        (["--defense", "none,jepg:25"], "unknown defense 'jepg'.*Valid forms: none"),
        (["--threat", "through,whitebox"], "unknown threat.*valid: oblivious, through, bpda, eot"),
        (["--dataset", "imagenet1k"], "unknown dataset .imagenet1k.; valid: cifar10_jpeg, .*imagenette"),
        (["--eps", "0,8"], "eps values must be in \\[0, 1\\] for L-inf attack 'fgsm'"),
        (["--eps", "0,-1/255"], "eps values must be non-negative"),
    ],
)
def test_unknown_names_fail_before_compute(tmp_path, capsys, argv, message):
    comp = components()
    calls = []
    comp = dataclasses.replace(comp, load_model=lambda *a, **k: calls.append("model"),
                               load_data=lambda *a, **k: calls.append("data"))
    base = ["--dataset", "foolbox_cifar10", "--model", "tiny", "--defense", "none", "--attack", "fgsm",
            "--out", str(tmp_path / "o")]
    assert main(base + argv, components=comp) == 2
    err = capsys.readouterr().err
    import re

    assert re.search(message, err), err
    assert calls == [] and not (tmp_path / "o").exists()


def test_experiment_configs_load_and_validate():
    files = [ROOT / "experiments" / "raber2025" / f"table{t}.py" for t in (2, 5, 6, 11)]
    for f in files:
        c = C.load_file(f)
        C.check_shape(c)
        assert c.name == f"raber2025_{f.stem}"
    t11 = C.load_file(ROOT / "experiments" / "raber2025/table11.py")
    assert ([d for d in t11.defenses][:2] == ["jpeg:25:mode=kornia", "seq:2:jpeg:25:mode=kornia"]
            and "bpda" in t11.threats)
    args = __import__("argparse").Namespace(**{k: None for k in ("dataset", "data_dir", "model", "weights", "head",
                                                                  "defense", "attack", "eps", "threat", "n", "seed",
                                                                  "batch_size", "out")})
    args.config, args.eps, args.attack, args.n = (str(ROOT / "experiments" / "raber2025/table2.py"), "0,4/255",
                                                  "pgd:steps=20", 50)
    o = C.from_args(args)
    assert (o.eps == [0.0, 4 / 255] and o.attacks == [{"name": "pgd", "steps": 20}] and o.n == 50
            and o.dataset == "imagenette")


def test_report_tables_and_sequential_layout(tmp_path):
    def rec(defense, threat, acc):
        return {"key": f"{defense}-{threat}",
                "settings": {"dataset": "d", "model": "m", "defense": defense, "attack": "ifgsm",
                             "hparams": {}, "threat": threat, "head": None},
                "eps": [0.0, 4 / 255], "accuracy": acc, "correct": [int(a * 100) for a in acc], "n_images": 100,
                "timing": {"per_image_s": 0.5}, "devices": 1, "platform": "cpu"}

    from robustjax.eval.store import Store

    s = Store(tmp_path)
    for n, (through, bpda) in enumerate([(0.29, 0.2), (0.44, 0.21), (0.83, 0.19)], start=1):
        d = "jpeg:25" if n == 1 else f"seq:{n}:jpeg:25"
        s.append(rec(d, "through", [0.99, through]))
        s.append(rec(d, "bpda", [0.99, bpda]))
    md = report.render(tmp_path)
    assert "| N | clean | through 4/255 | bpda 4/255 |" in md
    assert "| 3 | 0.990 | 0.830 | 0.190 |" in md
    assert "| ifgsm | m | jpeg:25 | through | 0.990 | 0.290 |" in md
    assert (tmp_path / "plots" / "seq_d_m_ifgsm_jpeg_25.png").stat().st_size > 1000
    assert (tmp_path / "results_long.csv").read_text().count("\n") == 13


def test_eot_threat(tmp_path):
    recs = Runner(cfg(tmp_path, defenses=["quant:8", "noise:64"], attacks=["ifgsm"], threats=["through", "eot"],
                      draws=1), components(), progress=False).run()  # one scoring draw: the test is the attacker's
    acc = accuracies(recs)
    assert acc[("quant:8", "ifgsm", "eot")] == acc[("quant:8", "ifgsm", "through")]  # deterministic: eot = through
    assert recs[-1]["settings"]["eot_samples"] == 8
    # averaging the noise, the attack works
    assert acc[("noise:64", "ifgsm", "eot")][2] < acc[("noise:64", "ifgsm", "eot")][0]


def test_minimum_norm_attack_scored_under_l2_bounds(tmp_path):
    import jax.numpy as jnp

    import robustjax.attacks as A
    from robustjax.data import Resize

    real = dataclasses.replace(components(), get_attack=A.get, attack_names=A.names, minimum_norm=A.is_minimum_norm)
    bounds = [0.0, 0.05, 0.2, 100.0]
    recs = Runner(cfg(tmp_path, defenses=["none"], attacks=[{"name": "deepfool", "steps": 10}], eps=bounds,
                      batch_size=8), real, progress=False).run()
    (r,) = recs
    assert r["budget"] == "l2_bound" and r["settings"]["hparams"] == {"steps": 10}
    c = r["correct"]
    assert c[0] == 20 and c == sorted(c, reverse=True)  # clean, then non-increasing in the bound
    # at a huge bound every found perturbation counts: plain accuracy on DeepFool's output
    from tests.eval_standins import load_data, tiny_classifier

    ds = load_data("foolbox_cifar10")
    x = jnp.asarray(np.stack([Resize(32)(ds.read(i)) for i in range(20)]).astype(np.float32) / 255)
    f = tiny_classifier()
    outs = [A.get("deepfool", steps=10)(f, x[i:i + 8], jnp.asarray(ds.labels[i:i + 8])) for i in (0, 8, 16)]
    x_adv = jnp.concatenate([o for o in outs])[:20]
    assert c[-1] == int(jnp.sum(jnp.argmax(f(x_adv), -1) == jnp.asarray(ds.labels)))
    assert c[-1] < 20
