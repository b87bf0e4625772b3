"""Bring your own classifier, defense and dataset: the public register functions, plugin loading, and
docs/extending.md's recipe run end to end through the command line."""

import argparse
import re
import shlex
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import robustjax.data
import robustjax.defenses
import robustjax.models
from robustjax import plugins
from robustjax.eval import config as C
from robustjax.eval.cli import main

ROOT = Path(__file__).resolve().parents[1]
REGISTRIES = (robustjax.models.zoo.MODELS, robustjax.defenses.FAMILIES, robustjax.data.DATASETS)


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """``tmp_path`` on ``sys.path``; names and plugin modules added by the test are forgotten after it."""
    before = [set(r.names()) for r in REGISTRIES]
    modules = set(sys.modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for r, names in zip(REGISTRIES, before):
        for n in set(r.names()) - names:
            r.unregister(n)
    for m in set(sys.modules) - modules:
        if Path(getattr(sys.modules[m], "__file__", None) or "/").is_relative_to(tmp_path):
            del sys.modules[m]


def recipe() -> tuple[str, list[str], list[str]]:
    """docs/extending.md's plugin source, its command's arguments and the table it says is printed."""
    doc = (ROOT / "docs" / "extending.md").read_text()
    source = re.search(r"<!-- recipe: my_plugin.py -->\n```python\n(.*?)```", doc, re.S)[1]
    command = re.search(r"<!-- recipe: command -->\n```bash\n(.*?)```", doc, re.S)[1].replace("\\\n", " ")
    args = shlex.split(command)
    assert args[:4] == ["PYTHONPATH=.", "python", "-m", "robustjax.eval"], args
    table = re.search(r"It prints.*?\n```\n(.*?)```", doc, re.S)[1].strip().splitlines()
    return source, args[4:], table


def test_the_documented_recipe_runs_and_prints_its_table(sandbox, capsys):
    source, args, table = recipe()
    assert len([ln for ln in source.splitlines() if ln.strip()]) <= 20  # the promise in the heading
    (sandbox / "my_plugin.py").write_text(source)
    out = sandbox / "out"
    args[args.index("--out") + 1] = str(out)
    assert main(args + ["--no-progress", "--no-report"]) == 0
    printed = capsys.readouterr().out
    assert "| worst case | linear32 | none | all |" in printed
    for line in table:  # the doc's table is what the run prints
        assert line in printed.splitlines(), line
    assert robustjax.defenses.get("seq:2:blur3+jpeg:50").spec == "seq:2:blur3+jpeg:50"  # composes like a codec


def test_a_misspelt_plugin_name_fails_before_compute_and_lists_the_plugins_names(sandbox, capsys):
    source, args, _ = recipe()
    (sandbox / "my_plugin.py").write_text(source)
    args[args.index("--defense") + 1] = "none,blur4"
    args[args.index("--out") + 1] = str(sandbox / "out")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "unknown defense 'blur4'" in err and "blur3" in err
    assert not (sandbox / "out").exists()  # nothing was run or written


def test_a_plugin_that_cannot_be_imported_is_named(sandbox, capsys):
    (sandbox / "broken_plugin.py").write_text("import robustjax.models\nrobustjax.models.register('a:b', print, "
                                              "input_size=8, num_classes=2)\n")
    assert main(["--plugin", "no_such_plugin_4711", "--out", str(sandbox / "o")]) == 2
    assert "plugin 'no_such_plugin_4711' could not be imported: ModuleNotFoundError" in capsys.readouterr().err
    assert main(["list", "--plugin", "broken_plugin"]) == 2
    err = capsys.readouterr().err
    assert "plugin 'broken_plugin' could not be imported: ValueError: model name 'a:b' must be" in err


def test_config_plugins_and_the_flag_add_up(sandbox):
    cfg_file = sandbox / "exp.py"
    cfg_file.write_text("def get_config():\n    return {'plugins': ['plug_a'], 'skip_unreadable': True}\n")
    args = argparse.ArgumentParser()
    C.add_arguments(args)
    cfg = C.from_args(args.parse_args(["--config", str(cfg_file), "--plugin", "plug_b", "--plugin", "plug_a"]))
    assert cfg.plugins == ["plug_a", "plug_b"] and cfg.skip_unreadable is True
    C.check_shape(cfg)
    cfg = C.from_args(args.parse_args(["--skip-unreadable"]))
    assert cfg.plugins == [] and cfg.skip_unreadable is True
    assert C.from_args(args.parse_args([])).skip_unreadable is False
    with pytest.raises(ValueError, match="plugins must be a list of module names"):
        C.check_shape(C.replace(cfg, plugins="plug_a"))


def test_an_installed_entry_point_is_loaded_at_cli_start(sandbox, capsys):
    (sandbox / "ep_plugin.py").write_text("import robustjax.defenses\n\ndef register():\n"
                                          "    robustjax.defenses.register('ep_identity', lambda x, key=None: x, "
                                          "usage='ep_identity: from an entry point')\n")
    dist = sandbox / "ep_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{plugins.GROUP}]\nmine = ep_plugin:register\n")
    assert main(["list", "--markdown"]) == 0  # the README's catalogue lists what robustjax ships
    assert "ep_identity" not in capsys.readouterr().out
    assert main(["list"]) == 0
    assert "  ep_identity: from an entry point" in capsys.readouterr().out.splitlines()


def test_model_register_wraps_functions_and_modules(sandbox):
    w = jnp.arange(8 * 8 * 3 * 1000, dtype=jnp.float32).reshape(-1, 1000) / 1e6

    def f(x):
        return x.reshape(len(x), -1) @ w

    robustjax.models.register("lin8", f, input_size=8, num_classes=1000, preprocessing={"resize": 10, "crop": 8})
    clf = robustjax.models.load("lin8")
    x = jnp.full((2, 8, 8, 3), 0.5)
    assert isinstance(clf, robustjax.models.FunctionClassifier) and clf.input_size == 8 and clf.num_classes == 1000
    np.testing.assert_allclose(clf(x), f(x))
    assert clf.preprocessing == {"resize": 10, "crop": 8}
    head = robustjax.models.load("lin8", head="imagenette")
    assert head.num_classes == 10 and head.label_names[0] == "tench"
    np.testing.assert_allclose(head(x), f(x)[:, list(robustjax.models.IMAGENETTE_CLASSES)])
    with pytest.raises(ValueError, match="takes 8x8 images"):
        clf(jnp.zeros((1, 9, 9, 3)))
    with pytest.raises(ValueError, match="takes no weights"):
        robustjax.models.load("lin8", weights="some.pth")

    net = nnx.Linear(4 * 4 * 3, 2, rngs=nnx.Rngs(0))
    flat = _Flat(net)
    robustjax.models.register("nnx4", flat, input_size=4, labels=("no", "yes"))
    m = robustjax.models.load("nnx4")
    assert isinstance(m, robustjax.models.Classifier) and m.num_classes == 2 and m.label_names == ("no", "yes")
    np.testing.assert_allclose(m(jnp.ones((1, 4, 4, 3))), flat(jnp.ones((1, 4, 4, 3))), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown head"):
        robustjax.models.load("nnx4", head="imagenette-ish")
    with pytest.raises(ValueError, match="not an ImageNet model"):
        robustjax.models.load("nnx4", head="imagenette")

    robustjax.models.register("lin8", f, input_size=8, num_classes=1000, preprocessing={"resize": 10, "crop": 8})
    with pytest.raises(ValueError, match="model 'lin8' is registered already"):
        robustjax.models.register("lin8", f, input_size=8, num_classes=10)
    with pytest.raises(ValueError, match="must be positive integers"):
        robustjax.models.register("sizeless", f, input_size=8)
    with pytest.raises(ValueError, match="must be letters"):
        robustjax.models.register("ensemble:x", f, input_size=8, num_classes=2)


class _Flat(nnx.Module):
    def __init__(self, linear):
        self.linear = linear

    def __call__(self, x):
        return self.linear(x.reshape(len(x), -1))


def test_defense_register_fixed_and_factory_forms(sandbox):
    robustjax.defenses.register("halve", lambda x, key=None: x / 2, usage="halve: halves every pixel")
    d = robustjax.defenses.get("halve")
    assert d.spec == "halve" and not d.randomised and float(d(jnp.ones((1, 2, 2, 3))).max()) == 0.5
    with pytest.raises(ValueError, match=r"bad defense spec 'halve:3'.*takes no options.*usage: halve: halves"):
        robustjax.defenses.get("halve:3")

    @robustjax.defenses.register("scale", usage="scale:F: multiply by F", randomised=True)
    def scale(factor="1"):
        return lambda x, key=None: x * float(factor)

    s = robustjax.defenses.get("scale:0.25")
    assert s.spec == "scale:0.25" and s.randomised and float(s(jnp.ones((1, 2, 2, 3))).max()) == 0.25
    assert "scale:F" in robustjax.defenses.valid_forms() and "scale:F: multiply by F" in robustjax.defenses.usages()
    for bad in ("none", "seq", "a+b", "x:y"):
        with pytest.raises(ValueError, match="defense name"):
            robustjax.defenses.register(bad, lambda x, key=None: x)


def test_data_register_arrays_folders_and_functions(sandbox):
    images = np.stack([np.full((6, 6, 3), v, np.uint8) for v in (0, 100, 200)])
    ds = robustjax.data.from_arrays("three", images, [0, 1, 1], class_names=("dark", "light"))
    assert ds.num_classes == 2 and ds.ids[1].startswith("1:") and (ds.read(2) == 200).all()
    assert robustjax.data.from_arrays("three", images.astype(np.float32) / 255, [0, 1, 1]).ids == ds.ids
    robustjax.data.register("three", ds, usage="three: three grey squares")
    robustjax.data.check_name("three")
    assert robustjax.data.load("three") is ds and "three: three grey squares" in robustjax.data.usages()
    with pytest.raises(ValueError, match="takes no data_dir"):
        robustjax.data.load("three", "/elsewhere")
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        robustjax.data.from_arrays("bad", images, [0, 1, 2], num_classes=2)
    with pytest.raises(ValueError, match=r"images must be \(N, H, W, 3\)"):
        robustjax.data.from_arrays("bad", images[..., 0], [0, 1, 1])

    (sandbox / "pics" / "only").mkdir(parents=True)
    from PIL import Image

    Image.fromarray(images[1]).save(sandbox / "pics" / "only" / "a.png")
    robustjax.data.register("pics", sandbox / "pics")
    got = robustjax.data.load("pics")
    assert got.name == "pics" and got.ids == ("only/a.png",) and (got.read(0) == 100).all()
    robustjax.data.register("made", lambda data_dir, label_space: ds)
    assert robustjax.data.load("made") is ds
    robustjax.data.register("wrong", lambda data_dir, label_space: images)
    with pytest.raises(TypeError, match="not an ImageSet"):
        robustjax.data.load("wrong")
