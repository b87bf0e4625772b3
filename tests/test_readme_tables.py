"""The READMEs' store blocks (experiments/README.md, and the front README.md's quick-start) equal
what their stores hold (the stores are read, never recomputed), and the generator fills, checks and
refuses as documented, on a small store."""

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

import readme_tables as T  # noqa: E402

from robustjax.eval.runner import Runner  # noqa: E402
from tests.eval_standins import components  # noqa: E402
from tests.test_eval_runner import cfg as base_cfg  # noqa: E402


@pytest.mark.parametrize("readme", T.READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_store_block_of_the_readmes_equals_its_store(readme):
    text = readme.read_text()
    assert [m["store"] for m in T.BLOCK.finditer(text)], f"{readme} has no store blocks"
    assert T.stale(text) == [], "run python experiments/readme_tables.py"


def test_a_block_is_filled_from_its_store_and_a_changed_figure_is_caught(tmp_path):
    out = tmp_path / "experiments" / "small"
    c = base_cfg(tmp_path, defenses=["none", "quant:8"], attacks=["fgsm"], threats=["oblivious"], eps=[0.0, 8 / 255],
                 n=6, out=str(out))
    Runner(c, components(), progress=False).run()
    text = "intro\n<!-- store: small -->\nold\n<!-- /store -->\nafter\n"
    filled = T.regenerate(text, tmp_path)
    body = T.BLOCK.search(filled)["body"]
    acc = [json.loads(line)["accuracy"] for line in (out / "results.jsonl").read_text().splitlines()]
    assert f"{acc[0][1]:.3f}" in body and "worst case" in body and filled.endswith("<!-- /store -->\nafter\n")
    assert T.stale(filled, tmp_path) == [] and T.regenerate(filled, tmp_path) == filled
    changed = filled.replace(f"{acc[0][1]:.3f}", "9.999", 1)
    assert T.stale(changed, tmp_path) == ["small"]
    shutil.rmtree(out)
    with pytest.raises(FileNotFoundError, match=r"README line 2, block 'store: small': no results store at .*small"):
        T.regenerate(filled, tmp_path)


def test_a_block_naming_a_renderer_uses_it_and_an_unknown_renderer_is_refused(tmp_path):
    out = tmp_path / "experiments" / "small"
    c = base_cfg(tmp_path, defenses=["none"], attacks=["fgsm"], threats=["oblivious"], eps=[0.0, 8 / 255],
                 n=6, out=str(out))
    Runner(c, components(), progress=False).run()
    rec = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    filled = T.regenerate("<!-- store: small as das2017_table1 -->\n<!-- /store -->\n", tmp_path)
    body = T.BLOCK.search(filled)["body"]
    # Das et al. 2017's layout: attacked accuracy and misclassification success (flipped / clean-correct)
    assert "misclassification success" in body and f"{rec['correct'][1] / 6:.3f}" in body
    assert f"{rec['flipped'][1] / rec['clean_correct']:.3f}" in body
    assert T.stale(filled, tmp_path) == []
    with pytest.raises(KeyError, match=r"README line 1, block 'store: small': unknown renderer 'nope'"):
        T.regenerate("<!-- store: small as nope -->\n<!-- /store -->\n", tmp_path)
