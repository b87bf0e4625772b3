"""--save-adversarials and the gallery page on the stand-ins (tiny CNN, quantising defense, foolbox's CIFAR-10 PNGs)."""

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import robustjax.data
from robustjax.eval import adversarials as A
from robustjax.eval import gallery, load_adversarials, load_outcomes
from robustjax.eval import partial as PT
from robustjax.eval.cli import main
from robustjax.eval.runner import Runner
from tests.eval_standins import components, get_defense, tiny_classifier
from tests.test_eval_runner import cfg as base_cfg

EPS = [0.0, 8 / 255, 32 / 255]
SUITE = {"name": "adaptive", "members": ["ifgsm@bpda"]}
CHROMIUM = Path("/usr/bin/chromium")


def _cfg(out, **kw):
    c = base_cfg(Path("/tmp"), defenses=["none", "quant:8"], attacks=["fgsm", "ifgsm", SUITE],
                 threats=["oblivious", "bpda"], eps=EPS, batch_size=8, out=str(out), save_adversarials=True)
    c.update(kw)
    return c


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One run with the flag: shared oblivious jobs (two defenses in one program), bpda cells, suite cells."""
    out = tmp_path_factory.mktemp("gallery") / "out"
    records = Runner(_cfg(out), components(), progress=False).run()
    return out, records


def _clean_images():
    ds = components().load_data("foolbox_cifar10").subset(None, 0)
    resize = robustjax.data.Resize(32)
    return np.stack([resize(ds.read(i)) for i in range(len(ds))])


def test_every_broken_image_has_its_adversarial_within_the_budget(run):
    out, records = run
    outcomes = load_outcomes(out)
    df = load_adversarials(out)
    broken = outcomes[outcomes.broken]
    assert len(broken) > 20 and {r["key"] for r in records} == set(df.key)  # every cell has its file
    assert sorted(zip(broken.key, broken.row, broken.eps)) == sorted(zip(df.key, df.row, df.eps))
    assert (df.pred != df.label).all() and (df.clean_pred == df.label).all()
    assert df.attrs["class_names"][records[0]["key"]][3] == "cat"
    _check_images(df)
    # the stored defended images are the defense's outputs (quantisation to 8 levels)
    quant = df[df.defense == "quant:8"]
    levels = np.unique(np.concatenate([np.unique(v) for v in quant.defended]))
    assert len(levels) <= 8 and all(np.unique(v).size > 1 for v in quant.clean_defended)


def _check_images(df):
    """The clean images are the model's inputs; each perturbation is non-zero and within its budget (+1
    level of rounding); re-scored through the defended model most stored images are misclassified."""
    clean = _clean_images()
    for r in df.itertuples():
        assert np.array_equal(r.clean, clean[r.row])
        dist = np.abs(r.image.astype(int) - r.clean.astype(int)).max()
        assert 0 < dist <= round(r.eps * 255) + 1
    f = tiny_classifier()
    stack = np.stack(df.image.to_list()).astype(np.float32) / 255
    defended = [np.asarray(get_defense(d)(jnp.asarray(x[None])))[0] for d, x in zip(df.defense, stack)]
    pred = np.asarray(jnp.argmax(f(jnp.asarray(np.stack(defended))), -1))
    assert (pred != df.label.to_numpy()).mean() >= 0.8


def test_suite_keeps_the_point_of_a_smaller_budget(run):
    out, records = run
    df = load_adversarials(out)
    suite = df[df.threat == "adaptive"]
    assert set(suite.defense) == {"none", "quant:8"}
    both = 0
    for _, img in suite.groupby(["key", "row"]):
        if len(img) == 2:  # broken at 8/255, so at 32/255 with the same point
            both += 1
            a, b = img.sort_values("eps").image.to_list()
            assert np.array_equal(a, b)
    assert both > 0


def test_resume_keeps_the_saved_batches_and_a_rerun_with_the_flag_fills_in_old_cells(tmp_path, monkeypatch, capsys):
    # without the flag: no adversarial files, and the gallery says which flag to use
    out = tmp_path / "out"
    suite = {"name": "adaptive", "members": ["slowloop:steps=8@bpda", "fgsm@bpda"]}  # not tracked, tracked
    c = _cfg(out, defenses=["quant:8"], attacks=["fgsm", suite], threats=["bpda"], eps=[0.0, 32 / 255],
             save_adversarials=False, suite_window=1)  # the suite saves per batch, as the grid: 3 files each
    first = Runner(c, components(), progress=False).run()
    assert not (out / A.DIRNAME).exists()
    capsys.readouterr()
    assert main(["gallery", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--save-adversarials" in err and not (out / gallery.DIRNAME).exists()
    # with the flag: the finished cells are recomputed for their files, their records kept
    c.save_adversarials = True
    monkeypatch.setattr(PT.PartialCell, "clear", lambda self: None)  # keep the batch files, as a killed run would
    again = Runner(c, components(), progress=False).run()
    assert [r["key"] for r in again] == [r["key"] for r in first] and all(A.exists(out, r["key"]) for r in first)
    files = {r["key"]: A.path(out, r["key"]).read_bytes() for r in first}
    # a run killed before its last batch: the saved batches come back with their images, the files are equal
    for r in first:
        A.path(out, r["key"]).unlink()
        (out / "outcomes" / f"{r['key']}.npz").unlink()
        (out / PT.DIRNAME / r["key"] / "batch-0002.npz").unlink()
    (out / "results.jsonl").unlink()
    resumed = Runner(c, components(), progress=False).run()
    assert [r["timing"]["resumed_batches"] for r in resumed] == [2, 2]
    assert {r["key"]: A.path(out, r["key"]).read_bytes() for r in resumed} == files
    df = load_adversarials(out)
    assert resumed[1]["suite"][0]["broken"][0] > 0 and len(df[df.threat == "adaptive"]) == resumed[1]["flipped"][1]
    _check_images(df)


def test_a_batch_file_without_the_images_is_recomputed(tmp_path):
    part = PT.PartialCell(tmp_path, "k", batch=4, n=8)
    part.save(0, {"clean_pred": np.zeros(4, np.int32)})
    assert PT.resume_point([part], 2)[0] == 1
    assert PT.resume_point([part], 2, A.BATCH_FIELDS)[0] == 0


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.src, self.examples = [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.src.append(a["src"])
        if tag == "div" and a.get("class") == "example":
            self.examples += 1


def test_gallery_page_links_decodable_images(run, capsys):
    out, _ = run
    assert main(["gallery", "--out", str(out), "--per-cell", "2"]) == 0
    index = out / gallery.DIRNAME / "index.html"
    assert capsys.readouterr().out.strip() == str(index)
    page = index.read_text()
    p = _Images()
    p.feed(page)
    df = load_adversarials(out)
    per = df.groupby(["key", "eps"]).size()
    assert p.examples == int(np.minimum(per, 2).sum()) and len(p.src) == 5 * p.examples
    for src in set(p.src):
        with Image.open(index.parent / src) as im:
            im.load()
            assert im.size == (32, 32) and im.mode == "RGB"
    assert "label cat (3)" in page and "perturbation &times;" in page and "L2 " in page and "<script" not in page


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no headless browser: {CHROMIUM} is absent (apt-get install "
                    "chromium)")
def test_gallery_renders_in_a_headless_browser(run, tmp_path):
    out, _ = run
    index = gallery.write(out, per_cell=1)
    shot = tmp_path / "shot.png"
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,1600",
                    index.resolve().as_uri()], capture_output=True, timeout=120, check=False)
    assert shot.is_file()
    with Image.open(shot) as im:
        assert np.asarray(im.convert("RGB"), np.float64).var() > 0
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
