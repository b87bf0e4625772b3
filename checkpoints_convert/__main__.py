"""``python -m checkpoints_convert FAMILY SRC DST``: published checkpoint -> orbax + metadata.json.

Reads SRC (PyTorch legacy/zip files through robustjax's restricted reader, never torch.load; or the
family's own format, e.g. ``.npz``), maps every tensor through the family's key map, and writes DST
(``DST/params`` orbax checkpoint, ``DST/metadata.json``). Any unmapped source key, missing parameter
or shape mismatch is listed and nothing is written (exit status 2). ``--list`` shows the families.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from robustjax import checkpoints
from robustjax.porting import CheckpointMismatchError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m checkpoints_convert", description=__doc__.split("\n")[0])
    p.add_argument("family", nargs="?", help="checkpoint family (see --list), e.g. cifar_resnet20, efficientnet_lite0")
    p.add_argument("src", nargs="?", help="published checkpoint file")
    p.add_argument("dst", nargs="?", help="output directory (must not exist)")
    p.add_argument("--list", action="store_true", help="list the known families and exit")
    p.add_argument("--no-hash-check", action="store_true",
                   help="skip the sha256 check against the family's pinned hash / the hash prefix in the file name")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        checkpoints._ensure_builtin_families()
        for name, fam in sorted(checkpoints.FAMILIES.items()):
            where = fam.weights if isinstance(fam.weights, str) or fam.weights is None else "pip package"
            print(f"{name:22s} {fam.module:36s} default weights: {where}")
        return 0
    if not (args.family and args.src and args.dst):
        _parser().error("FAMILY SRC DST are required (or --list)")
    try:
        module, meta = checkpoints.convert(args.family, args.src, check_hash=not args.no_hash_check)
        dst = checkpoints.save_converted(args.dst, module, meta)
    except CheckpointMismatchError as e:
        print(f"error: {e}\nnothing written to {args.dst}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import jax
    from flax import nnx

    n = sum(int(np.size(a)) for a in jax.tree.leaves(nnx.to_pure_dict(nnx.state(module))))
    print(f"{meta['family']}: {meta['source']} (sha256 {meta['source_sha256'][:16]}...) -> {dst}")
    print(f"  {n:,} values written; source keys ignored by the key map: {len(meta['ignored_source_keys'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
