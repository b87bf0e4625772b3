"""The house rules every module relies on: one registry pattern, no import cycles, configs that load
from their per-paper folders, papers cited by name, and the persistent compilation cache."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import jax
import pytest

from robustjax import attacks, checkpoints, compilation_cache, defenses, models
from robustjax.eval import config as C
from robustjax.registry import Registry, UnknownNameError

ROOT = Path(__file__).resolve().parents[1]


def test_registry_entries_traits_and_errors():
    r = Registry("widget")
    r.register("b", int, usage="b: an int", small=True)

    @r.register("a", usage="a: a float")
    def make_a():
        return 1.0

    assert r.names() == ["a", "b"] and list(r) == ["a", "b"] and "a" in r and len(r) == 2
    assert r.get("a") is make_a and r.get("b") is int
    assert r.names(small=True) == ["b"] and r.trait("b", "small") and r.trait("a", "small", "no") == "no"
    assert r.usages() == ["a: a float", "b: an int"]
    r.register("b", int)  # the same object again is fine
    with pytest.raises(ValueError, match="widget 'b' is registered already"):
        r.register("b", float)
    with pytest.raises(UnknownNameError, match="unknown widget 'c'; valid: a, b"):
        r.get("c")


def test_project_registries_share_the_pattern():
    assert attacks.names() == attacks.REGISTRY.names()
    assert attacks.REGISTRY.names(minimum_norm=True) == ["cw", "deepfool"]
    assert attacks.is_minimum_norm("cw") and not attacks.is_minimum_norm("pgd")
    assert attacks.REGISTRY.get("ifgsm") is attacks.REGISTRY.get("bim") is attacks.BIM
    with pytest.raises(ValueError, match="unknown attack 'nope'; valid: apgd-ce, apgd-dlr"):
        attacks.get("nope")
    assert models.names() == models.zoo.MODELS.names() and "efficientnet_lite0" in models.names()
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        models.load("nope")
    assert {"jpeg", "comdefend", "elic", "hific"} <= set(defenses.FAMILIES)
    assert {"comdefend", "elic", "hific"} <= set(checkpoints.FAMILIES)  # registered by the codecs on import
    with pytest.raises(ValueError, match="unknown checkpoint family 'nope'"):
        checkpoints.family("nope")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """robustjax modules ``path`` imports anywhere (top level, inside functions and classes): a cycle
    hidden in a function body is still a cycle, only deferred to the call that closes it."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in modules else node.module)
    return {m for m in out if m in modules}


def test_no_import_cycles():
    files = sorted((ROOT / "robustjax").rglob("*.py")) + sorted((ROOT / "checkpoints_convert").rglob("*.py"))
    modules = {_module_name(f) for f in files}
    graph = {_module_name(f): _imports(f, modules) - {_module_name(f)} for f in files}
    assert graph["robustjax.defenses.registry"] >= {"robustjax.defenses.sequential", "robustjax.defenses.base"}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    upward = [m for m, deps in graph.items()
              if m.startswith("robustjax") and any(d.startswith("checkpoints_convert") for d in deps)]
    assert upward == [], "imports run one way, checkpoints_convert -> robustjax"


def test_codec_packages_hold_network_key_map_defense_and_bitstream():
    for codec, files in {"jpeg": ("codec", "islow", "rounding", "files"), "comdefend": ("net", "params", "defense"),
                         "elic": ("net", "params", "defense", "codec"),
                         "hific": ("net", "params", "defense", "codec")}.items():
        for f in files:
            assert (ROOT / "robustjax" / "defenses" / codec / f"{f}.py").is_file(), (codec, f)
    import jax.numpy as jnp

    x = jnp.full((1, 16, 16, 3), 0.5)
    assert jnp.array_equal(defenses.jpeg(x, 50.0), defenses.jpeg.codec.jpeg(x, 50.0))  # the package stays callable


def test_every_config_loads_from_its_paper_folder():
    configs = sorted(ROOT.glob("experiments/*/table*.py")) + [ROOT / "experiments" / "quickstart_full.py"]
    configs = [c for c in configs if "bpp" not in c.name]
    assert len(configs) >= 11
    for path in configs:
        cfg = C.load_file(path)
        C.check_shape(cfg)
        for a in cfg.attacks:
            assert C.attack_entry(a)[0] in attacks.names() + ["adaptive"], (path, a)
        assert set(cfg.models) <= set(models.names()), path
        expected = path.stem if path.parent.name == "experiments" else f"{path.parent.name}_{path.stem}"
        assert cfg.name.startswith(expected.split("_table")[0]), (path, cfg.name)
    assert not list(ROOT.glob("experiments/seed*")), "old config paths must be gone"


def test_papers_are_cited_by_name_not_by_seed_file():
    tracked = subprocess.run(["git", "ls-files", "robustjax", "experiments", "tests", "docs", "README.md"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    pattern = re.compile("seed ?0" + "[0-9]", re.IGNORECASE)  # split so this file does not match itself
    offenders = [f for f in tracked if f.endswith((".py", ".md")) and (ROOT / f).is_file()
                 and pattern.search((ROOT / f).read_text())]
    assert offenders == []


def test_second_run_compiles_nothing_new(tmp_path, monkeypatch):
    """With the persistent cache on, a second run of the same grid into a new --out adds no entry:
    every program is found in the cache."""
    from jax._src import compilation_cache as jax_cache  # reset, so later tests in this worker are unaffected

    from robustjax.eval.cli import main
    from tests.eval_standins import components

    cache = tmp_path / "xla"
    monkeypatch.setenv("ROBUSTJAX_COMPILATION_CACHE", str(cache))
    jax_cache.reset_cache()  # JAX initialises its cache at a worker's first compilation: earlier tests ran without one
    argv = ["--dataset", "foolbox_cifar10", "--model", "tiny", "--defense", "none,quant:8", "--attack", "ifgsm",
            "--eps", "0,8/255", "--threat", "oblivious,through", "--no-progress", "--no-report"]
    try:
        assert main(argv + ["--out", str(tmp_path / "a")], components=components()) == 0
        first = sorted(p.name for p in cache.iterdir())
        assert main(argv + ["--out", str(tmp_path / "b")], components=components()) == 0
        assert first and sorted(p.name for p in cache.iterdir()) == first
    finally:
        jax.config.update("jax_compilation_cache_dir", None)
        jax_cache.reset_cache()
    monkeypatch.setenv("ROBUSTJAX_COMPILATION_CACHE", "0")
    assert compilation_cache.default_dir() is None
