"""The plan: a config resolved once, each defense built once per run whatever the jobs and cells using it."""

import dataclasses

import numpy as np
import pytest

from robustjax.eval.runner import Runner
from tests.eval_standins import components
from tests.test_eval_runner import cfg as base_cfg


def test_each_defense_is_built_once_for_every_job_and_cell(tmp_path):
    built = []
    comp = components()
    comp = dataclasses.replace(comp, get_defense=lambda spec: built.append(spec) or components().get_defense(spec))
    c = base_cfg(tmp_path, defenses=["none", "quant:8"],
                 attacks=["fgsm", {"name": "adaptive", "members": ["fgsm@bpda"]}],
                 threats=["oblivious", "through", "bpda"], eps=[0.0, 8 / 255], n=4)
    recs = Runner(c, comp, progress=False).run()
    assert len(recs) == 6  # fgsm: none, quant oblivious/through/bpda; suite: none, quant
    assert sorted(built) == ["none", "quant:8"]


@pytest.mark.slow
def test_an_elic_cell_loads_its_checkpoint_once(tmp_path, monkeypatch):
    """ELIC (a reference network with random weights, as tests/test_elic_defense.py builds it) behind an
    oblivious, a BPDA and a suite job: one checkpoint load for the run (it was up to four per cell)."""
    pytest.importorskip("torch")
    pytest.importorskip("compressai")
    from elic_reference import chandelier_state_dict, reference_model

    from robustjax.defenses.elic import defense as elic_defense
    from robustjax.defenses.elic import params

    model = params.load_state_dict(chandelier_state_dict(reference_model(seed=1), eb_names="1.1.5"))
    loads = []
    monkeypatch.setattr(elic_defense, "load", lambda quality, weights=None: loads.append(quality) or (model, {}))
    c = base_cfg(tmp_path, defenses=["elic:0016"], attacks=["fgsm", {"name": "adaptive", "members": ["fgsm@bpda"]}],
                 threats=["oblivious", "bpda"], eps=[0.0, 8 / 255], n=2, batch_size=2)
    recs = Runner(c, components(), progress=False).run()
    assert len(recs) == 3 and all(np.isfinite(r["accuracy"]).all() for r in recs)
    assert loads == ["0016"]
