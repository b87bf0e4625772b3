"""The JSON-lines results store: atomic whole lines, truncated tails ignored and cut, no duplicates."""

import json

from robustjax.eval.store import Store, cell_key


def test_append_read_and_no_duplicates(tmp_path):
    s = Store(tmp_path)
    assert s.records() == [] and s.done() == set()
    s.append({"key": "a", "accuracy": [1.0]})
    s.append({"key": "b", "accuracy": [0.5]})
    s.append({"key": "a", "accuracy": [0.0]})  # already stored: ignored
    assert [r["key"] for r in s.records()] == ["a", "b"]
    assert s.records()[0]["accuracy"] == [1.0]
    assert s.path.read_text().count("\n") == 2


def test_truncated_last_line_is_ignored_then_cut_on_next_append(tmp_path):
    s = Store(tmp_path)
    s.append({"key": "a"})
    full = json.dumps({"key": "b", "accuracy": [0.25]})
    with open(s.path, "a") as fh:
        fh.write(full[:17])  # a writer killed mid-line
    assert [r["key"] for r in s.records()] == ["a"]
    s.append({"key": "c"})
    lines = s.path.read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["a", "c"]  # every line is a whole record
    # a file whose only content is a partial line
    t = Store(tmp_path / "t")
    t.dir.mkdir()
    t.path.write_text('{"key": "x", "acc')
    assert t.records() == []
    t.append({"key": "y"})
    assert t.path.read_text() == '{"key": "y"}\n'


def test_cell_key_is_order_independent_and_setting_sensitive():
    a = {"model": "m", "eps": [0.0, 0.1], "hparams": {"steps": 10, "alpha": 0.1}}
    b = {"hparams": {"alpha": 0.1, "steps": 10}, "eps": [0.0, 0.1], "model": "m"}
    assert cell_key(a) == cell_key(b)
    assert cell_key(a) != cell_key({**a, "eps": [0.0, 0.2]})
