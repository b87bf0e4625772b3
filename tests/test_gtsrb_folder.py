"""GTSRB (Das et al. 2017's second data set) through the ``folder`` dataset on its published layout:
``Final_Training/Images/<00000..00042>/<track>_<frame>.ppm`` with a per-class CSV beside the images,
read, resized to 48x48 and trained on (GTSRB itself is not available offline: a generated miniature)."""

import json

import numpy as np
import pytest
from PIL import Image

from robustjax import data as rdata
from robustjax.train import classifier as T


def make_gtsrb(root, classes, per_class=2, seed=0):
    """The published layout under ``root`` for ``classes`` (ClassIds): PPM images of varying sizes,
    each class a colour plus noise (learnable), and the per-class CSV that is not an image."""
    rng = np.random.default_rng(seed)
    for k in classes:
        d = root / f"{k:05d}"
        d.mkdir(parents=True)
        (d / f"GT-{k:05d}.csv").write_text("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n")
        colour = np.array([(k * 37) % 256, (k * 91) % 256, (k * 53) % 256], np.float32)
        for i in range(per_class):
            h, w = rng.integers(15, 64, 2)
            img = np.clip(colour + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"00000_{i:05d}.ppm")
    return root


def test_gtsrb_layout_reads_as_a_folder_dataset_and_resizes_to_48(tmp_path):
    root = make_gtsrb(tmp_path / "GTSRB" / "Final_Training" / "Images", classes=(0, 1, 42))
    ds = rdata.load("folder", root)
    assert len(ds) == 6  # the CSVs are not images
    assert ds.class_names == ("00000", "00001", "00042")
    assert ds.labels.tolist() == [0, 0, 1, 1, 2, 2]  # sorted-folder order; with all 43 folders, label = ClassId
    img = rdata.Resize(48)(ds.read(2))
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8


@pytest.fixture(scope="module")
def gtsrb43(tmp_path_factory):
    return make_gtsrb(tmp_path_factory.mktemp("gtsrb") / "Final_Training" / "Images", classes=range(43), per_class=4)


def _cfg(out, root, model, **kw):
    base = dict(out=str(out), model=model, data="folder", data_dir=str(root), train_n=129, heldout_n=43,
                epochs=2, batch_size=16, lr=1e-3, seed=0, progress=False)
    return T.Config(**{**base, **kw})


def test_a_43_class_data_set_on_a_10_class_model_fails_before_training(tmp_path, gtsrb43):
    with pytest.raises(ValueError, match="labels up to 42, but small_cnn_cifar10 has 10 classes"):
        T.train(_cfg(tmp_path / "r", gtsrb43, "small_cnn_cifar10"))
    assert not (tmp_path / "r" / "ckpt").exists()


@pytest.mark.slow  # ~20 s: compiles the 48x48 GTSRB CNN's training step
def test_small_gtsrb_cnn_trains_on_the_published_layout(tmp_path, gtsrb43):
    run = T.train(_cfg(tmp_path / "g", gtsrb43, "small_cnn_gtsrb", quality=60))
    h = run["history"]
    assert h[-1]["heldout_loss"] < h[0]["heldout_loss"]
    meta = json.loads((tmp_path / "g" / "final" / "metadata.json").read_text())
    assert meta["model"] == "small_cnn_gtsrb" and meta["quality"] == 60
    assert meta["split"]["n_train"] == 129 and len(meta["split"]["heldout_ids"]) == 43
