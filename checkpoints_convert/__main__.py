"""python -m checkpoints_convert FAMILY SRC DST [--set KEY=VALUE ...]
python -m checkpoints_convert fetch NAME... (download published weights ahead of a run: ``fetch --help``)

Converts the published checkpoint SRC of architecture FAMILY into DST (orbax ``state/`` and
``metadata.json``). The conversion is strict: any source key the model does not use, any model
parameter the file lacks and any shape mismatch is listed, and nothing is written to DST.
Families: ``python -m checkpoints_convert --list``.
"""

from __future__ import annotations

import argparse
import json
import sys

import robustjax.defenses  # noqa: F401  (codec modules register their checkpoint families: comdefend, elic, hific)
from robustjax import checkpoints
from robustjax.models import zoo
from robustjax.porting import CheckpointMismatchError
from robustjax.torch_reader import UnsafeCheckpointError


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fetch"]:
        from checkpoints_convert import fetch

        return fetch.main(argv[1:])
    zoo.register_families()
    p = argparse.ArgumentParser(prog="python -m checkpoints_convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("family", nargs="?", help="architecture family, e.g. cifar_resnet, efficientnet_lite, resnet50")
    p.add_argument("src", nargs="?", help="published checkpoint file")
    p.add_argument("dst", nargs="?", help="output folder (must not exist, or be empty)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="architecture config, e.g. depth=56")
    p.add_argument("--list", action="store_true", help="list the known families and exit")
    a = p.parse_args(argv)
    if a.list:
        for name in sorted(checkpoints.FAMILIES):
            print(name)
        return 0
    if not (a.family and a.src and a.dst):
        p.error("FAMILY, SRC and DST are required")
    config = {}
    for item in a.set:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--set expects KEY=VALUE, got {item!r}")
        config[key] = _value(value)
    try:
        module, metadata = checkpoints.convert(a.family, a.src, config)
        out = checkpoints.save(module, metadata, a.dst)
    except (CheckpointMismatchError, UnsafeCheckpointError, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"checkpoints_convert: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({metadata['family']}, sha256 {metadata['source_sha256'][:12]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
