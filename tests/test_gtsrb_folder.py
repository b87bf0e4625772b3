"""GTSRB (Das et al. 2017's second data set) through the ``folder`` dataset on its published layout:
``Final_Training/Images/<00000..00042>/<track>_<frame>.ppm`` with a per-class CSV beside the images."""

import numpy as np
from PIL import Image

from robustjax import data as rdata


def test_gtsrb_layout_reads_as_a_folder_dataset_and_resizes_to_48(tmp_path):
    root = tmp_path / "GTSRB" / "Final_Training" / "Images"
    rng = np.random.default_rng(0)
    sizes = {0: (30, 31), 1: (52, 60), 42: (15, 15)}
    for k, (h, w) in sizes.items():
        d = root / f"{k:05d}"
        d.mkdir(parents=True)
        (d / f"GT-{k:05d}.csv").write_text("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n")
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(d / f"00000_{i:05d}.ppm")
    ds = rdata.load("folder", root)
    assert len(ds) == 6  # the CSVs are not images
    assert ds.class_names == ("00000", "00001", "00042")
    assert ds.labels.tolist() == [0, 0, 1, 1, 2, 2]  # sorted-folder order; with all 43 folders, label = ClassId
    img = rdata.Resize(48)(ds.read(2))
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8
