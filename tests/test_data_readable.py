"""Image folders decode every file at load time: an unreadable one is named (or skipped); any mode reads as RGB."""

import numpy as np
import pytest
from PIL import Image

import robustjax.data as D


def cifar_folder(root, n=12):
    """``n`` of foolbox's CIFAR-10 PNGs as ``root/<class>/<id>.png``."""
    src = D.load("foolbox_cifar10")
    for i in range(n):
        d = root / src.class_names[src.labels[i]]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(src.read(i)).save(d / f"{i:02d}.png")
    return src


def test_garbage_file_is_named_and_skip_leaves_it_out(tmp_path):
    src = cifar_folder(tmp_path)
    (tmp_path / "cat" / "garbage.jpg").write_bytes(b"0123456789")
    with pytest.raises(D.UnreadableImagesError, match=r"1 unreadable image\(s\) under .*: cat/garbage.jpg \(") as e:
        D.load("folder", tmp_path)
    assert "more" not in str(e.value) and "--skip-unreadable" in str(e.value)
    ds = D.load("folder", tmp_path, skip_unreadable=True)
    assert len(ds) == 12 and ds.skipped == ("cat/garbage.jpg",) and "cat/garbage.jpg" not in ds.ids
    assert ds.subset(5, seed=0).skipped == ds.skipped  # subsets keep the record
    i = ds.ids.index("cat/00.png")  # labels still follow the files, not the positions before skipping
    assert ds.class_names[ds.labels[i]] == "cat" and (ds.read(i) == src.read(0)).all()


def test_truncated_jpeg_is_caught_and_many_bad_files_are_counted(tmp_path):
    cifar_folder(tmp_path, n=4)
    good = tmp_path / "ship" / "whole.jpg"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(good, quality=90)
    data = good.read_bytes()
    (tmp_path / "ship" / "cut.jpg").write_bytes(data[: len(data) // 2])  # header intact: Image.verify() passes it
    for k in range(6):
        (tmp_path / "ship" / f"z{k}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(10))
    named = (r"7 unreadable image\(s\).*ship/cut.jpg \(OSError: .*\); "
             r"ship/z0.png \(UnidentifiedImageError: cannot identify image file\);.*; and 2 more")
    with pytest.raises(ValueError, match=named) as e:
        D.image_folder(tmp_path)
    assert "ship/z4.png" not in str(e.value)
    ds = D.image_folder(tmp_path, skip_unreadable=True)
    assert len(ds) == 5 and ds.skipped == ("ship/cut.jpg",) + tuple(f"ship/z{k}.png" for k in range(6))


def test_a_folder_of_nothing_but_unreadable_files_is_an_error_even_when_skipping(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"nope")
    with pytest.raises(D.UnreadableImagesError, match="a/x.png"):
        D.load("folder", tmp_path, skip_unreadable=True)


def test_every_pillow_mode_reads_as_rgb(tmp_path):
    gray = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    rgb = np.stack([gray, 255 - gray, np.full_like(gray, 7)], -1)
    palette = Image.fromarray(rgb).quantize(8)
    cases = {  # file -> (image to save, expected RGB)
        "L.png": (Image.fromarray(gray), np.repeat(gray[..., None], 3, -1)),
        "LA.png": (Image.fromarray(np.stack([gray, gray // 2], -1), "LA"), np.repeat(gray[..., None], 3, -1)),
        "RGBA.png": (Image.fromarray(np.concatenate([rgb, np.full_like(gray, 3)[..., None]], -1), "RGBA"), rgb),
        "P.png": (palette, np.asarray(palette.convert("RGB"))),
        "CMYK.tif": (Image.new("CMYK", (16, 16), (255, 0, 0, 0)), np.broadcast_to(np.uint8([0, 255, 255]), rgb.shape)),
    }
    (tmp_path / "all").mkdir()
    for name, (im, _) in cases.items():
        im.save(tmp_path / "all" / name)
        assert Image.open(tmp_path / "all" / name).mode == name.split(".")[0]
    ds = D.load("folder", tmp_path)
    assert ds.skipped == () and len(ds) == len(cases)
    for name, (_, want) in cases.items():
        got = ds.read(ds.ids.index(f"all/{name}"))
        assert got.dtype == np.uint8 and got.shape == (16, 16, 3), name
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_the_command_line_names_the_file_or_skips_it(tmp_path, capsys):
    import jax.numpy as jnp

    import robustjax.models
    from robustjax.eval.cli import main
    from robustjax.eval.store import Store

    cifar_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "cat" / "garbage.jpg").write_bytes(b"0123456789")
    robustjax.models.register("mean_rgb", lambda x: jnp.stack([x.mean(axis=(1, 2, 3))] * 10, -1), input_size=32,
                              num_classes=10)
    argv = ["--model", "mean_rgb", "--dataset", "folder", "--data-dir", str(tmp_path / "imgs"), "--defense", "none",
            "--attack", "fgsm", "--eps", "0", "--threat", "oblivious", "--no-progress", "--no-report"]
    try:
        assert main(argv + ["--out", str(tmp_path / "a")]) == 2
        assert "1 unreadable image(s)" in capsys.readouterr().err
        assert main(argv + ["--out", str(tmp_path / "b"), "--skip-unreadable"]) == 0
        out = capsys.readouterr().out
        assert "folder, 12 images" in out and "cat/garbage.jpg" in out  # the summary names the skipped file
        (rec,) = Store(tmp_path / "b").records()
        assert rec["skipped_unreadable"] == ["cat/garbage.jpg"]
    finally:
        robustjax.models.zoo.MODELS.unregister("mean_rgb")
