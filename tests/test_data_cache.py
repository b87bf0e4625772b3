"""robustjax.data.cache: decode once per (dataset, subset, resize), in memory or memory-mapped, and a
changed file invalidates."""

import os

import numpy as np
import pytest
from PIL import Image

import robustjax.data as D
from robustjax.data import cache as C


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("ROBUSTJAX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ROBUSTJAX_IMAGE_CACHE_MB", raising=False)
    C.clear()
    yield
    C.clear()


def make_folder(root, n_per_class=3, seed=0):
    rng = np.random.default_rng(seed)
    for c in ("ant", "bee"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for k in range(n_per_class):
            h, w = 40 + 7 * k, 52 - 5 * k  # different sizes and aspect ratios
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / c / f"{k}.png")
    return D.load("folder", root)


def counting(ds):
    calls = []
    parent = ds.reader

    def reader(i):
        calls.append(i)
        return parent(i)

    import dataclasses

    return dataclasses.replace(ds, reader=reader), calls


RESIZE = D.Resize(size=24, resize=28)


def test_memory_cache_matches_direct_decode_and_decodes_once(tmp_path):
    ds, calls = counting(make_folder(tmp_path / "imgs"))
    cache = C.decoded(ds, RESIZE)
    assert cache.where == "memory"
    direct = [RESIZE(ds.read(i)) for i in range(len(ds))]
    calls.clear()
    for _ in range(3):
        for i in range(len(ds)):
            np.testing.assert_array_equal(cache.get(i), direct[i])
    assert sorted(calls) == list(range(len(ds)))  # each image decoded exactly once over 3 passes
    assert C.decoded(ds, RESIZE) is cache  # the same object for the whole grid
    assert C.decoded(ds.subset(4, seed=0), RESIZE) is not cache  # another subset, another entry
    assert C.decoded(ds, D.Resize(size=24)) is not cache  # another resize policy, another entry


def test_batches_through_the_cache_equal_uncached_batches(tmp_path):
    ds = make_folder(tmp_path / "imgs")
    cache = C.decoded(ds, RESIZE)
    for _ in range(2):
        got = list(D.batches(ds, 4, RESIZE, cache=cache))
        want = list(D.batches(ds, 4, RESIZE))
        assert len(got) == len(want) == 2
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.x, w.x)
            np.testing.assert_array_equal(g.mask, w.mask)
            np.testing.assert_array_equal(g.y, w.y)
    assert cache.decoded == len(ds)
    with pytest.raises(ValueError, match="does not match"):
        next(D.batches(ds, 4, D.Resize(size=24), cache=cache))


def test_changed_file_gives_a_new_key_and_fresh_pixels(tmp_path):
    root = tmp_path / "imgs"
    ds = make_folder(root)
    first = C.decoded(ds, RESIZE)
    old = first.get(0).copy()
    key = C.cache_key(ds, RESIZE)
    f = root / ds.ids[0]
    Image.fromarray(np.full((40, 52, 3), 7, np.uint8)).save(f)
    st = os.stat(f)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a coarse-mtime file system still sees a change
    ds2 = D.load("folder", root)
    assert C.cache_key(ds2, RESIZE) != key
    new = C.decoded(ds2, RESIZE).get(0)
    assert not np.array_equal(new, old) and (new == 7).all()


def test_disk_cache_when_the_set_does_not_fit_and_reuse_across_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTJAX_IMAGE_CACHE_MB", "0.001")  # 1 KiB: the 6 x 24 x 24 x 3 set does not fit
    ds, calls = counting(make_folder(tmp_path / "imgs"))
    cache = C.decoded(ds, RESIZE)
    assert cache.where == "disk" and cache.path.parent == tmp_path / "cache" / "images"
    want = [cache.get(i).copy() for i in range(len(ds))]
    assert cache.complete()
    C.clear()  # as a new process would: only the files remain
    calls.clear()
    again = C.decoded(ds, RESIZE)
    assert again is not cache and again.where == "disk" and again.complete()
    for i in range(len(ds)):
        np.testing.assert_array_equal(again.get(i), want[i])
    assert calls == [] and again.decoded == 0


def test_bad_memory_budget_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("ROBUSTJAX_IMAGE_CACHE_MB", "lots")
    with pytest.raises(ValueError, match="ROBUSTJAX_IMAGE_CACHE_MB"):
        C.decoded(make_folder(tmp_path / "imgs"), RESIZE)
    monkeypatch.setenv("ROBUSTJAX_IMAGE_CACHE", "off")
    assert not C.enabled()
