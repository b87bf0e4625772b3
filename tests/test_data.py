"""robustjax.data: label maps, pip-shipped samples, seeded subsets, resize policy, padded batches, tfds."""

import numpy as np
import pytest
from PIL import Image

import robustjax.data as D
from robustjax.data import labels as L
from tests.conftest import DATA, need


def test_imagenette_folder_maps_wnids_to_imagenet_and_head_indices():
    root = need(DATA / "imagenette2-val")
    full = D.load("imagenette", root)
    head = D.load("imagenette", root, "imagenette")
    assert len(full) == len(head) == 3925
    assert sorted(set(full.labels.tolist())) == list(L.IMAGENETTE_IMAGENET_INDEX)
    assert sorted(set(head.labels.tolist())) == list(range(10))
    for i in (0, 1000, 3924):
        wnid = full.ids[i].split("/")[0]
        k = L.IMAGENETTE_WNIDS.index(wnid)
        assert head.labels[i] == k and full.labels[i] == L.IMAGENETTE_IMAGENET_INDEX[k]
    assert full.read(0).dtype == np.uint8 and full.read(0).shape[-1] == 3


def test_cifar_folder_labels_in_canonical_order():
    ds = D.load("cifar10_jpeg", need(DATA / "cifar10-test-jpeg"))
    assert len(ds) == 10000 and np.bincount(ds.labels).tolist() == [1000] * 10
    assert ds.ids[0].startswith("airplane/") and ds.labels[0] == 0
    assert ds.ids[-1].startswith("truck/") and ds.labels[-1] == 9


def test_foolbox_samples_match_file_names():
    im = D.load("foolbox_imagenet")
    assert len(im) == 20 and im.read(0).shape == (512, 512, 3)
    for name, y in zip(im.ids, im.labels):
        assert name.startswith("imagenet_") and int(name.rsplit("_", 1)[1].split(".")[0]) == y
    c = D.load("foolbox_cifar10")
    assert len(c) == 20 and c.read(0).shape == (32, 32, 3) and c.labels.max() <= 9
    # first CIFAR-10 test images: cat, ship, ship, airplane
    assert c.labels[:4].tolist() == [3, 8, 8, 0]
    with pytest.raises(ValueError, match="label space"):
        D.foolbox_samples("cifar10", "imagenet")


def test_unknown_dataset_lists_valid_names():
    valid = r"valid: cifar10_jpeg, folder, foolbox_cifar10, foolbox_imagenet, imagenette, tfds:NAME\[:SPLIT\]"
    with pytest.raises(ValueError, match=valid):  # sorted, as every registry lists its names
        D.load("imagenet_val")


def test_seeded_subsets_are_deterministic_and_nested():
    ds = D.load("foolbox_imagenet")
    a, b = ds.subset(7, seed=0), ds.subset(7, seed=0)
    assert a.ids == b.ids and (a.labels == b.labels).all()
    assert ds.subset(7, seed=1).ids != a.ids
    assert set(ds.subset(3, seed=0).ids) <= set(a.ids)
    assert list(a.ids) == sorted(a.ids, key=ds.ids.index)  # ascending source order
    assert ds.subset(None).ids == ds.ids and ds.subset(100).ids == ds.ids
    np.testing.assert_array_equal(a.read(2), ds.read(ds.ids.index(a.ids[2])))


def test_resize_policy_matches_torchvision_resize_centercrop():
    tv = pytest.importorskip("torchvision.transforms")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    policy = D.Resize.from_preprocessing({"resize": 232, "crop": 224}, 224)
    ref = np.asarray(tv.CenterCrop(224)(tv.Resize(232)(Image.fromarray(img))))
    np.testing.assert_array_equal(policy(img), ref)
    squash = D.Resize(224)(img)
    assert squash.shape == (224, 224, 3)
    np.testing.assert_array_equal(squash, np.asarray(Image.fromarray(img).resize((224, 224), Image.BILINEAR)))


def test_batches_pad_and_mask_the_last_batch():
    ds = D.load("foolbox_cifar10").subset(11, seed=3)
    got = list(D.batches(ds, 4, D.Resize(32)))
    assert [b.count for b in got] == [4, 4, 3] and [b.index for b in got] == [0, 1, 2]
    last = got[-1]
    assert last.x.shape == (4, 32, 32, 3) and last.mask.tolist() == [True, True, True, False]
    assert (last.x[3] == 0).all()
    x = np.concatenate([b.x[b.mask] for b in got])
    y = np.concatenate([b.y[b.mask] for b in got])
    np.testing.assert_array_equal(y, ds.labels)
    np.testing.assert_array_equal(x, np.stack([ds.read(i) for i in range(11)]).astype(np.float32) / 255)
    # two processes of a multi-host run each get half of every global batch
    halves = [list(D.batches(ds, 4, D.Resize(32), process_index=p, process_count=2)) for p in (0, 1)]
    np.testing.assert_array_equal(np.concatenate([halves[0][1].x, halves[1][1].x]), got[1].x)


def test_tfds_adapter_on_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    from robustjax.data.tfds_source import tfds_images

    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        ds = tfds_images("imagenette", label_space="imagenet")
        own = tfds_images("imagenette")
        assert len(ds) == 6 and ds.num_classes == 1000
        np.testing.assert_array_equal(ds.labels, np.asarray(L.IMAGENETTE_IMAGENET_INDEX)[own.labels])
        img = ds.read(2)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[-1] == 3
        batch = next(D.batches(ds.subset(4, 0), 4, D.Resize(16)))
        assert batch.x.shape == (4, 16, 16, 3) and batch.mask.all()
        loaded = D.load("tfds:cifar10")
        assert loaded.label_space == "cifar10" and len(loaded) == 6
