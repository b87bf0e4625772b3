"""The runner on the real registries: pretrained efficientnet_lite0, real attacks, real JPEG.

A reduced quick-start (4 of foolbox's ImageNet photos, FGSM, eps 0 and 8/255); slow (compiles an
EfficientNet attack program per job), so marked slow. Skipped until the models and attacks exist.
"""

import importlib.util

import pytest

from robustjax.eval.cli import main
from robustjax.eval.store import Store

pytestmark = pytest.mark.slow


@pytest.mark.skipif(importlib.util.find_spec("robustjax.models") is None
                    or importlib.util.find_spec("robustjax.attacks") is None,
                    reason="needs robustjax.models and robustjax.attacks")
def test_reduced_quickstart_on_real_components(tmp_path, capsys):
    out = tmp_path / "qs"
    rc = main(["--n", "4", "--attack", "fgsm", "--eps", "0,8/255", "--threat", "oblivious,through,bpda",
               "--batch-size", "4", "--out", str(out), "--no-progress", "--no-report"])
    assert rc == 0
    recs = {(r["settings"]["defense"], r["settings"]["threat"]): r for r in Store(out).records()}
    assert set(recs) == {("none", "oblivious"), ("jpeg:25", "oblivious"), ("jpeg:25", "through"), ("jpeg:25", "bpda")}
    clean = recs[("none", "oblivious")]["accuracy"][0]
    assert clean >= 0.5  # a pretrained ImageNet model on ImageNet photos
    assert recs[("none", "oblivious")]["accuracy"][1] <= clean
    assert "| fgsm | efficientnet_lite0 | none | oblivious |" in capsys.readouterr().out
