"""Per-image outcomes beside the store, resume inside a cell, the run lock and the store format."""

import json

import numpy as np
import pytest

from robustjax.eval import load_outcomes, outcomes
from robustjax.eval.partial import PartialCell
from robustjax.eval.runner import Runner
from robustjax.eval.store import RunLock, Store, StoreError
from tests.eval_standins import components
from tests.test_eval_runner import cfg as base_cfg

VOLATILE = ("timing", "finished", "host")


def small(tmp_path, out="out", **kw):
    kw = {"defenses": ["none", "quant:8"], "attacks": ["ifgsm"], "threats": ["oblivious"], "batch_size": 8, **kw}
    return base_cfg(tmp_path, out=str(tmp_path / out), **kw)


def stable(rec):
    return {k: v for k, v in rec.items() if k not in VOLATILE}


def test_outcomes_match_the_records_counts(tmp_path):
    c = small(tmp_path)
    recs = Runner(c, components(), progress=False).run()
    df = load_outcomes(c.out)
    assert len(df) == 2 * 20 * 3  # cells x images x eps
    for r in recs:
        sub = df[df.key == r["key"]]
        assert [int(sub[sub.eps == e].correct.sum()) for e in r["eps"]] == r["correct"]
        assert r["format"] == 2
    assert not df[df.eps == 0].broken.any()
    assert (df.step == -1).all()  # the stand-in attacks report no step
    broke = df[(df.defense == "none") & (df.eps > 0.1)]
    assert broke.broken.sum() == 20 - recs[0]["correct"][2] > 0
    # the image ids are the dataset's, in the evaluated order
    first = df[(df.key == recs[0]["key"]) & (df.eps == 0)]
    assert first.row.tolist() == list(range(20)) and first.id.nunique() == 20
    assert not (tmp_path / "out" / "partial").exists() or not any((tmp_path / "out" / "partial").iterdir())


def test_npz_is_deterministic(tmp_path):
    a = {"x": np.arange(5, dtype=np.int32), "id": np.asarray(["a", "bb"])}
    outcomes.save_npz(tmp_path / "a.npz", a)
    outcomes.save_npz(tmp_path / "b.npz", dict(reversed(list(a.items()))))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    back = outcomes.load_npz(tmp_path / "a.npz")
    assert back["id"].tolist() == ["a", "bb"] and back["x"].tolist() == list(range(5))


def test_interrupted_cell_resumes_at_first_unfinished_batch(tmp_path, monkeypatch):
    ref = Runner(small(tmp_path, "ref"), components(), progress=False).run()
    c = small(tmp_path, "cut")
    saved = []
    real_save = PartialCell.save

    def save(self, b, arrays):
        if b == 2:  # the third (last) batch: die before it is persisted
            raise KeyboardInterrupt
        saved.append(b)
        real_save(self, b, arrays)

    monkeypatch.setattr(PartialCell, "save", save)
    with pytest.raises(KeyboardInterrupt):
        Runner(c, components(), progress=False).run()
    assert sorted(set(saved)) == [0, 1] and Store(c.out).records() == []
    monkeypatch.setattr(PartialCell, "save", real_save)
    logs = []
    again = Runner(c, components(), progress=False, log=logs.append).run()
    assert any("resuming at batch 3 of 3: 2 batch(es)" in m for m in logs), logs
    assert [r["timing"]["resumed_batches"] for r in again] == [2, 2]
    assert [stable(r) | {"experiment": None} for r in again] == [stable(r) | {"experiment": None} for r in ref]
    for r, q in zip(again, ref):
        assert outcomes.path(c.out, r["key"]).read_bytes() == outcomes.path(tmp_path / "ref", q["key"]).read_bytes()
    assert not any((tmp_path / "cut" / "partial").iterdir())


def test_partial_file_for_other_rows_is_recomputed(tmp_path):
    p = PartialCell(tmp_path, "k", batch=8, n=20)
    p.save(1, {"clean_pred": np.zeros(8, np.int32)})
    assert p.load(1) is not None
    assert PartialCell(tmp_path, "k", batch=6, n=20).load(1) is None  # batch 1 at size 6 covers rows 6..11
    p.file(2).write_bytes(b"PK\x03\x04 not a whole zip")
    assert p.load(2) is None


def test_second_run_on_the_same_out_is_refused(tmp_path):
    c = small(tmp_path)
    with RunLock(c.out):
        with pytest.raises(StoreError, match="results.lock"):
            Runner(c, components(), progress=False).run()
    assert Store(c.out).records() == []


def test_older_store_format_is_refused_and_left_alone(tmp_path):
    c = small(tmp_path)
    s = Store(c.out)
    s.append({"key": "old", "settings": {}, "accuracy": [1.0]})  # a format-1 record: no "format" field
    before = s.path.read_bytes()
    with pytest.raises(StoreError, match="store format 1.*Use a new --out"):
        Runner(c, components(), progress=False).run()
    assert s.path.read_bytes() == before


def test_truncated_last_line_is_reported_and_recomputed(tmp_path):
    c = small(tmp_path, defenses=["none"])
    (first,) = Runner(c, components(), progress=False).run()
    s = Store(c.out)
    line = s.path.read_bytes()
    s.path.write_bytes(line[: len(line) // 2])  # the only record, cut mid-line
    logs = []
    (again,) = Runner(c, components(), progress=False, log=logs.append).run()
    assert any("truncated line" in m and "recomputed" in m for m in logs), logs
    assert stable(again) == stable(first)
    assert [json.loads(x)["key"] for x in s.path.read_text().splitlines()] == [first["key"]]


def test_outcomes_do_not_depend_on_batch_size(tmp_path):
    """Random starts (pgd) and a randomised defense (noise) draw per image, from the image's row."""
    def run(batch, out):
        c = small(tmp_path, out, defenses=["noise:16"], attacks=["pgd"], threats=["through"], batch_size=batch)
        Runner(c, components(), progress=False).run()
        df = load_outcomes(c.out)
        return (df[df.defense == "noise:16"].sort_values(["eps", "row"])[["row", "eps", "clean_pred", "pred"]]
                .reset_index(drop=True))

    a, b = run(8, "b8"), run(32, "b32")
    assert a.equals(b)
    assert (a.pred != a.clean_pred).any()  # not vacuous: the attack changes predictions
