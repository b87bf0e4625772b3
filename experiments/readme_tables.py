"""The result tables in ``experiments/README.md`` and the front ``README.md`` that stores hold,
regenerated from those stores.

    python experiments/readme_tables.py            # rewrite every generated block in place
    python experiments/readme_tables.py --check    # exit 1 naming each block that differs from its store

Why: a figure typed into a README drifts from the run that produced it. A block

    <!-- store: jia2019/table5 -->
    ...
    <!-- /store -->

holds :func:`robustjax.eval.report.summary_table` of the store ``experiments/jia2019/table5`` (its
``results.jsonl`` and per-image outcomes: every cell's accuracy at each budget, and the per-image
worst case per defense). A table in a paper's own layout names its renderer (:data:`RENDERERS`):
``<!-- store: das2017/resnet_table1 as das2017_table1 -->``. Nothing is recomputed: the stores are
read. A block naming a missing store or an unknown renderer is an error naming the block's line.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: import this checkout's robustjax

from experiments.das2017.run import table1_markdown  # noqa: E402
from robustjax.eval.report import latest, summary_table  # noqa: E402
from robustjax.eval.store import FILENAME, Store  # noqa: E402

README = ROOT / "experiments" / "README.md"
READMES = (README, ROOT / "README.md")  # the front door's quick-start table: store experiments/quickstart
BLOCK = re.compile(r"(<!-- store: (?P<store>[^ >]+)(?: as (?P<renderer>[^ >]+))? -->\n)(?P<body>.*?)(<!-- /store -->)",
                   re.S)

# renderer name -> (store directory -> markdown); "summary" when a block names none
RENDERERS = {
    "summary": lambda path: summary_table(Store(path).records(), out=path) + "\n",
    "das2017_table1": lambda path: table1_markdown(latest(Store(path).records())),
}


def table(store: str, root: Path = ROOT, renderer: str | None = None) -> str:
    """The markdown of store ``experiments/<store>`` by ``renderer`` (default "summary");
    FileNotFoundError naming the store when absent, KeyError naming an unknown renderer."""
    path, name = root / "experiments" / store, renderer or "summary"
    if name not in RENDERERS:
        raise KeyError(f"unknown renderer '{name}' (known: {', '.join(sorted(RENDERERS))})")
    if not (path / FILENAME).is_file():
        raise FileNotFoundError(f"no results store at {path / FILENAME}")
    return RENDERERS[name](path)


def regenerate(text: str, root: Path = ROOT) -> str:
    """``text`` with every store block's body replaced by its store's table."""
    def one(m):
        line = text.count("\n", 0, m.start()) + 1
        try:
            body = table(m["store"], root, m["renderer"])
        except FileNotFoundError as e:
            raise FileNotFoundError(f"README line {line}, block 'store: {m['store']}': {e}") from None
        except KeyError as e:
            raise KeyError(f"README line {line}, block 'store: {m['store']}': {e.args[0]}") from None
        return m[1] + body + m[5]

    return BLOCK.sub(one, text)


def stale(text: str, root: Path = ROOT) -> list[str]:
    """The stores whose block in ``text`` differs from what the store holds."""
    return [m["store"] for m in BLOCK.finditer(text) if m["body"] != table(m["store"], root, m["renderer"])]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if a block differs from its store")
    a = p.parse_args(argv)
    failed = False
    for readme in READMES:
        text = readme.read_text()
        if a.check:
            for store in stale(text):
                failed = True
                print(f"{readme}: the block of store {store} differs from experiments/{store}; "
                      "run python experiments/readme_tables.py", file=sys.stderr)
        else:
            readme.write_text(regenerate(text))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
