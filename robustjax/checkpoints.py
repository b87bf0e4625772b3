"""Converting published checkpoints into Flax parameters, and caching them as orbax checkpoints.

A *family* knows how to build a module from a small config and how its published file maps onto
it (a key map of ``robustjax.porting`` rules). Model and codec modules register their family here;
``checkpoints_convert`` (the command line) and ``robustjax.models.load`` both drive this module.

On disk a converted checkpoint is a folder::

    DST/metadata.json    family, config, preprocessing, source path and sha256, ignored keys
    DST/state/           orbax checkpoint of the module's variables

Published files are found under ``ROBUSTJAX_WEIGHTS`` or downloaded and verified by
:mod:`robustjax.hub`; they are converted on first use into ``ROBUSTJAX_CACHE`` (default
``~/.cache/robustjax``), keyed by the source file's sha256, so a changed file is never served from a
stale cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from robustjax.porting import load_into
from robustjax.registry import Registry
from robustjax.torch_reader import read_torch, state_dict_of


@dataclasses.dataclass(frozen=True)
class Family:
    """How to build and fill one architecture from its published checkpoint format.

    ``create(**config)`` builds the module with random weights; ``rules(**config)`` returns its key
    map; ``read(path)`` returns the flat ``name -> array`` state dict of a published file (default:
    the restricted torch reader); ``preprocessing`` is recorded in the metadata. ``read_config(path)``,
    for published files that carry their own architecture settings (HiFiC's ``args``), returns
    ``(state dict, config, extra metadata)`` in one read: the file's config is used, a given config may
    only repeat it, and the extra metadata (e.g. skipped training entries) is recorded.
    """

    name: str
    create: Callable[..., nnx.Module]
    rules: Callable[..., list]
    read: Callable[[Path], Mapping[str, np.ndarray]] = lambda p: state_dict_of(read_torch(p))
    preprocessing: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    read_config: Callable[[Path], tuple[Mapping[str, np.ndarray], Mapping[str, Any], Mapping[str, Any]]] | None = None


FAMILIES = Registry("checkpoint family")


def register_family(family: Family) -> Family:
    return FAMILIES.register(family.name, family, usage=family.name)


def family(name: str) -> Family:
    """The registered family ``name`` (``ValueError`` listing the known ones)."""
    return FAMILIES.get(name)


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_root() -> Path:
    return Path(os.environ.get("ROBUSTJAX_CACHE", Path.home() / ".cache" / "robustjax"))


def weights_root() -> Path | None:
    value = os.environ.get("ROBUSTJAX_WEIGHTS")
    return Path(value) if value else None


def convert(family_name: str, src: str | Path, config: Mapping[str, Any] | None = None) -> tuple[nnx.Module, dict]:
    """Build the module and fill it from the published file ``src``; strict (see ``porting.load_into``)."""
    fam, config = family(family_name), dict(config or {})
    src = Path(src)
    extra: Mapping[str, Any] = {}
    if fam.read_config is not None:
        source, file_config, extra = fam.read_config(src)
        for key, value in config.items():
            if key in file_config and file_config[key] != value:
                raise ValueError(f"{src}: {key}={value!r} contradicts the checkpoint's own setting "
                                 f"{key}={file_config[key]!r}")
        config.update(file_config)
    else:
        source = fam.read(src)
    module = fam.create(**config)
    ignored = load_into(module, source, fam.rules(**config), context=f"{family_name} {config or ''} from {src}")
    metadata = {
        **dict(extra),
        "family": family_name,
        "config": config,
        "preprocessing": dict(fam.preprocessing),
        "source": str(src.resolve()),
        "source_sha256": sha256_of(src),
        "ignored_source_keys": sorted(ignored),
    }
    return module, metadata


def _pure_state(module: nnx.Module) -> dict:
    return nnx.to_pure_dict(nnx.state(module))


def save(module: nnx.Module, metadata: Mapping[str, Any], dst: str | Path) -> Path:
    """Write ``dst/state`` (orbax) and ``dst/metadata.json``; atomic: a failure leaves no ``dst``."""
    import orbax.checkpoint as ocp

    dst = Path(dst).resolve()
    if dst.exists() and any(dst.iterdir()):
        raise FileExistsError(f"{dst} exists and is not empty; choose a new destination")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        with ocp.StandardCheckpointer() as ckpt:
            ckpt.save(tmp / "state", _pure_state(module))
            ckpt.wait_until_finished()
        (tmp / "metadata.json").write_text(json.dumps(dict(metadata), indent=2, sort_keys=True) + "\n")
        if dst.exists():
            dst.rmdir()
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def is_converted(path: str | Path) -> bool:
    path = Path(path)
    return (path / "metadata.json").is_file() and (path / "state").is_dir()


def load(path: str | Path) -> tuple[nnx.Module, dict]:
    """Rebuild the module of a converted checkpoint folder and restore its variables."""
    import orbax.checkpoint as ocp

    path = Path(path).resolve()
    if not is_converted(path):
        raise FileNotFoundError(f"{path} is not a converted checkpoint (needs metadata.json and state/)")
    metadata = json.loads((path / "metadata.json").read_text())
    module = family(metadata["family"]).create(**metadata["config"])
    state = nnx.state(module)
    target = nnx.to_pure_dict(state)
    with ocp.StandardCheckpointer() as ckpt:
        restored = ckpt.restore(path / "state", target)
    nnx.replace_by_pure_dict(state, restored)
    nnx.update(module, state)
    return module, metadata


def load_or_convert(family_name: str, src: str | Path,
                    config: Mapping[str, Any] | None = None) -> tuple[nnx.Module, dict]:
    """Serve ``src`` from the cache, converting it on first use (cache keyed by the file's sha256)."""
    src = Path(src)
    digest = sha256_of(src)
    cached = cache_root() / family_name / f"{digest[:16]}-{_config_tag(config)}"
    stale = False
    if is_converted(cached):
        module, metadata = load(cached)
        if metadata.get("source_sha256") == digest:
            return module, metadata
        stale = True
    module, metadata = convert(family_name, src, config)
    try:
        if stale:
            shutil.rmtree(cached)
        save(module, metadata, cached)
    except OSError:
        pass  # a read-only cache costs a conversion next time; a concurrent process may have saved it first
    return module, metadata


def load_family(family_name: str, path: str | Path, config: Mapping[str, Any] | None = None) -> tuple[nnx.Module, dict]:
    """A converted folder (loaded as is) or a published file (converted through the cache) that must
    hold a ``family_name`` checkpoint; ``ValueError`` naming both families otherwise."""
    path = Path(path)
    if is_converted(path):
        module, metadata = load(path)
    else:
        module, metadata = load_or_convert(family_name, path, config)
    if metadata.get("family") != family_name:
        raise ValueError(f"{path} holds a {metadata.get('family')!r} checkpoint, not {family_name!r}")
    return module, metadata


def _config_tag(config: Mapping[str, Any] | None) -> str:
    if not config:
        return "default"
    return hashlib.sha256(json.dumps(dict(config), sort_keys=True).encode()).hexdigest()[:8]
