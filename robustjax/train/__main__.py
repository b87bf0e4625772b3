"""python -m robustjax.train TASK [options]; TASK: comdefend, classifier, vaccinate."""

from __future__ import annotations

import sys

TASKS = {"comdefend": "robustjax.train.comdefend", "classifier": "robustjax.train.classifier",
         "vaccinate": "robustjax.train.vaccinate"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in TASKS:
        print(f"usage: python -m robustjax.train {{{','.join(TASKS)}}} [options]  (TASK --help for its options)",
              file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import importlib

    return importlib.import_module(TASKS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
