"""Classifier training and JPEG vaccination (Das et al. 2017): held-out loss falls, exact resume, splits."""

import json

import numpy as np
import pytest
from PIL import Image

from robustjax.data import split as S
from robustjax.train import classifier as T


def make_folder(root, per_class=6, size=32, seed=0):
    """A miniature ROOT/<class>/<image>.png set of 10 classes: each class a colour plus noise (learnable)."""
    rng = np.random.default_rng(seed)
    for k in range(10):
        d = root / f"c{k}"
        d.mkdir(parents=True)
        colour = np.array([(k * 37) % 256, (k * 91) % 256, (k * 53) % 256], np.float32)
        for i in range(per_class):
            img = np.clip(colour + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("mini"))


def cfg(out, folder, **kw):
    base = dict(out=str(out), model="small_cnn_cifar10", data="folder", data_dir=str(folder), train_n=40, heldout_n=20,
                epochs=2, batch_size=8, lr=1e-3, seed=0, progress=False)
    base.update(kw)
    return T.Config(**base)


def test_split_is_seeded_disjoint_and_overlap_is_an_error():
    a, b = S.split_indices(100, 80, 20, seed=3)
    assert len(set(a) | set(b)) == 100 and not set(a) & set(b)
    a2, _ = S.split_indices(100, 80, 20, seed=3)
    np.testing.assert_array_equal(a, a2)
    with pytest.raises(ValueError, match="does not fit"):
        S.split_indices(100, 90, 20, seed=0)
    with pytest.raises(ValueError, match="overlap: 1 of the 2"):
        S.check_disjoint("d", ["x", "y"], "d", ["y", "z"])
    S.check_disjoint("tfds:cifar10:train", ["1"], "tfds:cifar10:test", ["1"])  # different datasets never overlap


@pytest.mark.slow  # ~30 s: one compiled JPEG + training step on the shared 2 cores
def test_training_lowers_heldout_loss_and_resume_is_exact(tmp_path, folder):
    full = T.train(cfg(tmp_path / "a", folder, quality=50))
    h = full["history"]
    assert h[-1]["heldout_loss"] < h[0]["heldout_loss"]
    meta = json.loads((tmp_path / "a" / "final" / "metadata.json").read_text())
    assert meta["quality"] == 50 and meta["split"]["n_train"] == 40 and len(meta["split"]["heldout_ids"]) == 20
    steps = 40 // 8
    # killed one step into epoch 2: the rerun restarts epoch 2 from the epoch-1 checkpoint, exactly
    killed = T.train(cfg(tmp_path / "b", folder, quality=50), stop_after_steps=steps + 1)
    assert killed["losses"] == full["losses"][: steps + 1] and killed["final"] is None
    resumed = T.train(cfg(tmp_path / "b", folder, quality=50))
    assert resumed["start_epoch"] == 1
    assert resumed["losses"][0] == full["losses"][steps]
    assert resumed["losses"] == full["losses"][steps:]


def test_bad_input_fails_before_training(tmp_path, folder):
    with pytest.raises(ValueError, match="1..100"):
        T.train(cfg(tmp_path / "q", folder, quality=101))
    with pytest.raises(ValueError, match="unknown model"):
        T.train(cfg(tmp_path / "m", folder, model="nope"))
    with pytest.raises(ValueError, match="init must be"):
        T.train(cfg(tmp_path / "i", folder, init=str(tmp_path / "missing")))
    T.train(cfg(tmp_path / "r", folder, epochs=1))
    with pytest.raises(ValueError, match="other settings"):
        T.train(cfg(tmp_path / "r", folder, epochs=1, lr=0.01))


def test_vaccination_bad_input_fails_before_training(tmp_path):
    from robustjax.train import vaccinate as V

    for bad in ("100,0", "100,101", "90,abc", "90,90", ""):
        with pytest.raises(ValueError, match="quality|qualit"):
            V.vaccinate("cifar_resnet20", bad, str(tmp_path / "c"), 1)
    with pytest.raises(FileNotFoundError, match="neither a converted checkpoint"):
        V.vaccinate(str(tmp_path / "missing"), "100,90", str(tmp_path / "c"), 1)
    assert not (tmp_path / "c").exists()


@pytest.mark.slow  # ~1 min: a base and two chains of two links on the miniature set
def test_vaccination_chain_resumes_mid_way(tmp_path, folder):
    from robustjax.train import vaccinate as V

    base = T.train(cfg(tmp_path / "base", folder, epochs=1))["final"]
    common = dict(batch_size=8, progress=False)
    full = V.vaccinate(base, "100,50", str(tmp_path / "full"), 2, common)
    assert full["ran"] == [100, 50] and full["stopped"] is None
    steps = 40 // 8
    # killed one step into M50's second epoch
    part = V.vaccinate(base, "100,50", str(tmp_path / "part"), 2, common, stop_after_steps=2 * steps + steps + 1)
    assert part["stopped"] == 50 and part["losses"][50] == full["losses"][50][: steps + 1]
    rest = V.vaccinate(base, "100,50", str(tmp_path / "part"), 2, common)
    assert rest["ran"] == [50] and rest["start_epochs"][50] == 1
    assert rest["losses"][50] == full["losses"][50][steps:]
    m = json.loads((tmp_path / "part" / "q050" / "final" / "metadata.json").read_text())
    assert m["quality"] == 50 and m["epochs"] == 2 and m["warm_start"].endswith("q100/final")
    assert (m["split"]["train_sha"]
            == json.loads((tmp_path / "base" / "final" / "metadata.json").read_text())["split"]["train_sha"])
    assert 0 <= m["heldout_accuracy"] <= 1
    with pytest.raises(ValueError, match="another chain"):
        V.vaccinate(base, "100,40", str(tmp_path / "part"), 2, common)
