"""The README's commands are CI's commands: each command .ci/run marks as the README's appears there verbatim."""

import re

from conftest import ROOT


def test_ci_runs_the_readme_lines_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    readme = (ROOT / "README.md").read_text()
    marked = [ci[i + 1] for i, line in enumerate(ci) if line.startswith("# README:")]
    assert len(marked) == 3, marked  # the install + fast tier line, the slow tier line, the lint line
    for command in marked:
        assert command in readme, f".ci/run runs {command!r}, which the README does not say"
    assert "python -m pytest -m slow" in marked
    exported = [line for line in ci if re.match(r"\s*export\s", line)]
    assert not exported, f".ci/run exports what the README does not: {exported}"
