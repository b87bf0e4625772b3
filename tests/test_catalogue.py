"""One catalogue: `list` prints every name from the registries, and the README's table is generated from them."""

import inspect
import re
from pathlib import Path

from robustjax import attacks, data, defenses, models
from robustjax.attacks.threat import THREATS
from robustjax.defenses.jpeg import slq
from robustjax.eval import catalogue
from robustjax.eval.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_readme_catalogue_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert catalogue.readme_section(readme) == catalogue.markdown(), (
        "README.md's catalogue differs from the registries: paste `python -m robustjax.eval list --markdown` over it")


def test_list_prints_every_name_with_its_usage(capsys):
    assert main(["list"]) == 0
    lines = [ln.strip() for ln in capsys.readouterr().out.splitlines() if ln.startswith("  ")]
    usage = dict(catalogue.split(ln) for ln in lines)
    assert all(usage.values()), [k for k, v in usage.items() if not v]  # every line says what the name is
    expected = [*data.DATASETS.names(), "tfds", *THREATS, *models.names(), "ensemble", *attacks.names(), "adaptive",
                "none", "seq", "<spec>+<spec>", *defenses.FAMILIES.names()]
    missing = [n for n in expected if not any(f == n or f.startswith((n + "[", n + ":")) for f in usage)]
    assert not missing
    assert usage["adaptive"].startswith("AutoAttack-style suite") and "ensemble:CHAIN" in usage


def test_every_defense_option_the_parsers_take_is_in_its_usage():
    """A keyword option added to a codec's spec parser without its usage line fails here."""
    positional = {"jpeg": {"quality"}, "elic": {"quality", "policy"}, "hific": {"variant"}}
    for name in defenses.FAMILIES.names():
        usage = defenses.FAMILIES.entry(name).usage
        params = inspect.signature(defenses.FAMILIES.get(name)).parameters.values()
        options = {p.name for p in params if p.kind is not p.VAR_KEYWORD} - positional.get(name, set())
        if name == "jpeg":  # jpeg:slq's own options arrive through **slq_options
            options |= set(inspect.signature(slq.defense).parameters)
        missing = [o for o in options if f"{o}=" not in usage]
        assert not missing, f"{name}: options {missing} missing from its usage {usage!r}"


def test_markdown_escapes_table_and_html_characters():
    assert catalogue.split("seq:N:<spec>: N rounds") == ("seq:N:<spec>", "N rounds")
    md = catalogue.markdown().splitlines()
    row = next(r for r in md if r.startswith("| dataset | `folder` |"))
    assert "ROOT/&lt;class&gt;/&lt;image&gt;" in row
    row = next(r for r in md if r.startswith("| defense | `jpeg:Q"))
    assert "rounding=cubic\\|ste\\|exact" in row and len(re.findall(r"(?<!\\)\|", row)) == 4  # 3 cells
    assert catalogue.threat_usages()[0].startswith("oblivious: ")
