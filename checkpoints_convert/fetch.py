"""python -m checkpoints_convert fetch NAME... [--download-only] | --list

Downloads the published weights NAME (a catalogue entry: ``--list``) ahead of a run, verified as on
first use, and converts them into the cache the loaders read, so a later run needs no network and
converts nothing. Honours ROBUSTJAX_WEIGHTS, ROBUSTJAX_CACHE, ROBUSTJAX_OFFLINE and
ROBUSTJAX_WEIGHTS_MIRROR like the library does.
"""

from __future__ import annotations

import argparse
import sys

from robustjax import checkpoints, hub


def convert(entry: hub.Weights, path) -> None:
    """Fill the conversion cache exactly as the entry's loader would (same family and config)."""
    import robustjax.defenses  # noqa: F401  (codec modules register their checkpoint families)
    from robustjax.models import zoo

    zoo.register_families()
    checkpoints.load_or_convert(entry.family, path, dict(entry.config))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m checkpoints_convert fetch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help="catalogue entries, e.g. cifar_resnet20 comdefend:cifar")
    p.add_argument("--download-only", action="store_true", help="download and verify, do not convert")
    p.add_argument("--list", action="store_true", help="print the catalogue (markdown) and exit")
    a = p.parse_args(argv)
    if a.list:
        print(hub.markdown_table())
        return 0
    if not a.names:
        p.error("give at least one NAME (see --list)")
    unknown = [name for name in a.names if name not in hub.ENTRIES]
    if unknown:
        p.error(f"unknown NAME {', '.join(unknown)}; known: {', '.join(hub.ENTRIES)}")
    status = 0
    for name in a.names:
        entry = hub.get(name)
        try:
            path = hub.path(name)
            if entry.family is not None and not a.download_only:
                convert(entry, path)
        except (hub.MissingWeightsError, hub.IntegrityError, hub.DownloadError, ValueError) as e:
            print(f"checkpoints_convert fetch: {e}", file=sys.stderr)
            status = 1
            continue
        done = "downloaded and verified" if a.download_only or entry.family is None else "verified and converted"
        print(f"{name}: {path} ({done})")
    return status
