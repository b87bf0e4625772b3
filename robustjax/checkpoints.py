"""Reading published checkpoints safely, and caching converted Flax parameters with orbax.

Three layers, each usable alone:

* **Readers** (no torch import, nothing executed): ``read_torch(path)`` parses PyTorch files in the
  legacy (``torch.save(..., _use_new_zipfile_serialization=False)``, a stream of pickles followed by
  raw storages) and the zip format (``archive/data.pkl`` + ``archive/data/<key>``) through a
  *restricted* unpickler that admits only tensor/storage/``OrderedDict`` reconstruction; any other
  global (``os.system``, ``builtins.eval``, ``numpy`` objects, ...) is refused with
  ``UnsafeCheckpointError`` before anything is called. ``read_state_dict`` unwraps
  ``{'state_dict': ...}`` / ``{'model_state_dict': ...}`` and ``module.`` prefixes;
  ``read_numpy`` reads ``.npy``/``.npz`` (``allow_pickle`` only where the caller says the format needs it).
* **Orbax store**: ``save_converted(dst, module, metadata)`` writes ``dst/params`` (orbax) and
  ``dst/metadata.json`` (family, config, preprocessing, source path + sha256), atomically: nothing
  appears at ``dst`` unless everything succeeded. ``load_converted(dst)`` reads it back.
* **Families** (``FAMILIES``, ``register_family``): a family names the module that builds the network
  (``create``), its key map (``RULES``) and its metadata; ``convert(family, src)`` reads a published
  file, fills a fresh module strictly through ``robustjax.porting.load_into``, and
  ``resolve(family, weights)`` implements ``ROBUSTJAX_WEIGHTS`` -> ``ROBUSTJAX_CACHE`` conversion on
  first use, checked by sha256. Codec and model modules plug in by calling ``register_family`` (see
  ``Family``); ``checkpoints_convert`` is only a command-line front end over these functions.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import importlib
import io
import json
import os
import pickle
import re
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------------------
# Restricted PyTorch reader
# --------------------------------------------------------------------------------------------------


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """The pickle asked for a global outside the tensor/storage/OrderedDict allow-list."""


class CheckpointFormatError(ValueError):
    """The file is not a PyTorch checkpoint this reader understands."""


# torch storage class name -> numpy dtype (all little-endian on disk)
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # raw bits; converted to float32 in _bf16_to_f32
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@dataclasses.dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return _STORAGE_DTYPES[self.name]


class _Storage:
    """A flat typed buffer, filled lazily (legacy files store the bytes after the pickle)."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype = dtype
        self.numel = numel
        self.array: np.ndarray | None = None


@dataclasses.dataclass
class _PendingTensor:
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple

    def materialise(self) -> np.ndarray:
        buf = self.storage.array
        if buf is None:
            raise CheckpointFormatError("tensor refers to a storage whose bytes are missing from the file")
        n = int(np.prod(self.size)) if self.size else 1
        if n == 0:
            out = np.zeros(self.size, buf.dtype)
        else:
            last = self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride))
            if self.offset < 0 or last >= buf.size:
                raise CheckpointFormatError(f"tensor view (offset {self.offset}, size {self.size}, stride {self.stride}) exceeds its storage of {buf.size} elements")
            out = np.lib.stride_tricks.as_strided(
                buf[self.offset:], shape=self.size, strides=[st * buf.itemsize for st in self.stride]
            ).copy()
        if self.storage.dtype == np.dtype("<u2") and getattr(self.storage, "bf16", False):
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    if not isinstance(storage, _Storage):
        raise UnsafeCheckpointError("tensor reconstruction got something other than a storage")
    return _PendingTensor(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *_ignored):
    if not isinstance(data, _PendingTensor):
        raise UnsafeCheckpointError("parameter reconstruction got something other than a tensor")
    return data


def _ordered_dict(*args, **kwargs):
    return collections.OrderedDict(*args, **kwargs)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}
_ALLOWED.update({("torch", name): _StorageType(name) for name in _STORAGE_DTYPES})


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the allow-listed globals; storages come back through ``persistent_load``."""

    def __init__(self, file, storage_for: Callable[[tuple], _Storage]):
        super().__init__(file)
        self._storage_for = storage_for

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refusing to unpickle global {module}.{name}: only tensors, storages and OrderedDict are allowed "
                "(the file may be malicious, or holds Python objects that are not weights)"
            ) from None

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UnsafeCheckpointError(f"unsupported persistent id {pid!r:.80}")
        return self._storage_for(pid)


def _storage_type(t) -> np.dtype:
    if not isinstance(t, _StorageType):
        raise UnsafeCheckpointError(f"storage type {t!r:.80} is not a torch storage class")
    return t.dtype


def _finish(obj):
    """Replace pending tensors (after all storages are filled) by numpy arrays, recursively."""
    if isinstance(obj, _PendingTensor):
        return obj.materialise()
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _finish(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _finish(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finish(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_finish(v) for v in obj)
    return obj


def _new_storage(storage_type, numel) -> _Storage:
    s = _Storage(_storage_type(storage_type), int(numel))
    s.bf16 = storage_type.name == "BFloat16Storage"
    return s


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise CheckpointFormatError(f"{path}: zip file without exactly one data.pkl (not a torch checkpoint?)")
        prefix = pkl[0][: -len("data.pkl")]
        storages: dict[str, _Storage] = {}

        def storage_for(pid):
            if len(pid) != 5:
                raise UnsafeCheckpointError(f"unsupported zip storage id {pid!r:.80}")
            _, stype, key, _location, numel = pid
            key = str(key)
            if key not in storages:
                s = _new_storage(stype, numel)
                raw = zf.read(f"{prefix}data/{key}")
                # zip-format storages carry their size in bytes only; numel counts elements
                s.array = np.frombuffer(raw, dtype=s.dtype).copy()
                storages[key] = s
            return storages[key]

        obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), storage_for).load()
    return _finish(obj)


class _PlainUnpickler(pickle.Unpickler):
    """For the legacy header pickles (magic number, protocol, sys info): no globals at all."""

    def find_class(self, module, name):
        raise UnsafeCheckpointError(f"refusing to unpickle global {module}.{name} in a checkpoint header")


def _read_legacy(path: Path) -> Any:
    with open(path, "rb") as f:
        magic = _PlainUnpickler(f).load()
        if magic != _LEGACY_MAGIC:
            raise CheckpointFormatError(f"{path}: not a PyTorch checkpoint (bad magic number)")
        _PlainUnpickler(f).load()  # protocol version
        sys_info = _PlainUnpickler(f).load()
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise CheckpointFormatError(f"{path}: big-endian checkpoints are not supported")
        storages: dict[str, _Storage] = {}
        views: list[tuple[_Storage, str, int, int]] = []

        def storage_for(pid):
            if len(pid) != 6:
                raise UnsafeCheckpointError(f"unsupported legacy storage id {pid!r:.80}")
            _, stype, root_key, _location, numel, view_metadata = pid
            root_key = str(root_key)
            if root_key not in storages:
                storages[root_key] = _new_storage(stype, numel)
            root = storages[root_key]
            if view_metadata is None:
                return root
            view_key, offset, view_size = view_metadata
            view = _new_storage(stype, view_size)
            views.append((view, root_key, int(offset), int(view_size)))
            return view

        obj = _RestrictedUnpickler(f, storage_for).load()
        keys = _PlainUnpickler(f).load()
        if not isinstance(keys, list):
            raise CheckpointFormatError(f"{path}: malformed storage key list")
        for key in keys:
            s = storages.get(str(key))
            if s is None:
                raise CheckpointFormatError(f"{path}: storage {key} listed but never referenced")
            (numel,) = struct.unpack("<q", f.read(8))
            nbytes = numel * s.dtype.itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise CheckpointFormatError(f"{path}: truncated storage {key}")
            s.array = np.frombuffer(raw, dtype=s.dtype).copy()
        for view, root_key, offset, size in views:
            view.array = storages[root_key].array[offset:offset + size]
    return _finish(obj)


def read_torch(path: str | os.PathLike) -> Any:
    """Parse a ``torch.save`` file (legacy or zip format) without torch and without executing code.

    Returns the saved object with every tensor as a numpy array (bfloat16 widened to float32).
    Raises ``UnsafeCheckpointError`` for any global beyond tensors/storages/OrderedDict,
    ``CheckpointFormatError`` for files that are not torch checkpoints.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    if tarfile_like(path):
        raise CheckpointFormatError(f"{path}: tar-format torch checkpoints (torch < 0.4) are not supported")
    return _read_legacy(path)


def tarfile_like(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512)
    return len(head) == 512 and head[257:262] == b"ustar"


_WRAPPERS = ("state_dict", "model_state_dict", "model", "net")


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, np.ndarray]:
    """``{'state_dict': sd}`` / ``{'model_state_dict': sd}`` / ``sd`` -> flat ``{key: array}``, ``module.`` stripped."""
    if isinstance(obj, Mapping) and not any(isinstance(v, np.ndarray) for v in obj.values()):
        for key in _WRAPPERS:
            if key in obj and isinstance(obj[key], Mapping):
                return unwrap_state_dict(obj[key], source)
        raise CheckpointFormatError(f"{source}: no tensors and none of the keys {_WRAPPERS} (found {sorted(map(str, obj))[:10]})")
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(f"{source}: expected a dict of tensors, got {type(obj).__name__}")
    out = {}
    keys = [str(k) for k in obj]
    strip = bool(keys) and all(k.startswith("module.") for k in keys)
    for k, v in obj.items():
        if not isinstance(v, np.ndarray):
            continue  # non-tensor entries (e.g. metadata numbers) are not weights
        out[k[len("module."):] if strip else k] = v
    return out


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A published PyTorch file -> flat ``{key: numpy array}`` (see ``read_torch`` and ``unwrap_state_dict``)."""
    return unwrap_state_dict(read_torch(path), str(path))


def read_numpy(path: str | os.PathLike, allow_pickle: bool = False) -> Any:
    """``.npy`` -> array, ``.npz`` (whatever the suffix says) -> dict of arrays.

    ``allow_pickle=True`` only for formats that store object arrays (the original ComDefend files):
    it runs pickle, so pass it only for files whose provenance is pinned (e.g. by sha256).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no numpy file at {path}")
    loaded = np.load(path, allow_pickle=allow_pickle)
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            return {k: loaded[k] for k in loaded.files}
    return loaded


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Orbax store
# --------------------------------------------------------------------------------------------------

METADATA_FILE = "metadata.json"
PARAMS_DIR = "params"


def _jsonable(x):
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic,)):
        return x.item()
    return x


def save_converted(dst: str | os.PathLike, module, metadata: Mapping[str, Any]) -> Path:
    """Write ``module``'s NNX state (orbax, ``dst/params``) and ``dst/metadata.json``.

    Written into a temporary sibling directory and renamed into place, so ``dst`` only ever holds a
    complete checkpoint. ``dst`` must not exist yet (ValueError otherwise).
    """
    import orbax.checkpoint as ocp
    from flax import nnx

    dst = Path(dst).absolute()
    if dst.exists():
        raise ValueError(f"{dst} already exists; remove it or choose another destination")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        state = nnx.state(module)
        ckptr = ocp.StandardCheckpointer()
        ckptr.save(tmp / PARAMS_DIR, nnx.to_pure_dict(state))
        ckptr.wait_until_finished()
        ckptr.close()
        (tmp / METADATA_FILE).write_text(json.dumps(_jsonable(metadata), indent=2, sort_keys=True))
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def read_metadata(dst: str | os.PathLike) -> dict:
    path = Path(dst) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{dst} is not a converted checkpoint (no {METADATA_FILE})")
    return json.loads(path.read_text())


def load_converted(dst: str | os.PathLike, family: str | None = None):
    """A directory written by ``save_converted`` -> (module with the saved parameters, metadata)."""
    import orbax.checkpoint as ocp
    from flax import nnx

    dst = Path(dst).absolute()
    meta = read_metadata(dst)
    if family is not None and meta.get("family") != family:
        raise ValueError(f"{dst} holds a '{meta.get('family')}' checkpoint, not '{family}'")
    fam = get_family(meta["family"])
    module = fam.build(**meta.get("config", {}))
    state = nnx.state(module)
    target = nnx.to_pure_dict(state)
    ckptr = ocp.StandardCheckpointer()
    restored = ckptr.restore(dst / PARAMS_DIR, target)
    ckptr.close()
    nnx.replace_by_pure_dict(state, restored)
    nnx.update(module, state)
    return module, meta


# --------------------------------------------------------------------------------------------------
# Families: module builder + key map + metadata, and ROBUSTJAX_WEIGHTS -> ROBUSTJAX_CACHE
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Family:
    """How to turn one kind of published file into a Flax module.

    ``module`` is an import path to a module offering ``create(rngs=None, **config) -> nnx.Module`` and
    ``RULES`` (a ``robustjax.porting`` key map); optionally ``PREPROCESSING``, ``NUM_CLASSES``,
    ``INPUT_SIZE`` (copied into the metadata) and ``read_checkpoint(path) -> {key: array}`` when the
    published format is not a torch state dict (e.g. ComDefend's ``.npz``). It is imported lazily, so
    registering a family never imports its network code.

    ``weights``: where the published file lives when the user gives none -- a glob relative to
    ``ROBUSTJAX_WEIGHTS`` (``"cifar10-resnet/resnet20-*.th"``) or a callable returning an absolute path
    (pip-shipped files). ``sha256``: the pinned hash of the published file, when known; otherwise a
    hex prefix in the file name (``resnet20-12fca82f.th``, the torch-hub convention) is checked.

    Plugging in a codec (e.g. in ``robustjax/defenses/comdefend.py``, which ``robustjax.defenses``
    imports, so the family is known to ``get_family`` and the CLI)::

        from robustjax.checkpoints import Family, read_numpy, register_family

        def read_checkpoint(path):            # enc file given; the dec file sits beside it
            enc = read_numpy(path, allow_pickle=True)["w"]  # object array: pin the sha256!
            ...
            return {"com.0.kernel": ..., ...}  # keys that RULES map (identity rules are fine)

        register_family(Family("comdefend", "robustjax.defenses.comdefend", {"code_channels": 12},
                               weights="comdefend/enc20_0.0001.npy", sha256="..."))

    The module named must define ``create`` and ``RULES`` as above; ``convert``/``resolve`` and
    ``python -m checkpoints_convert comdefend SRC DST`` then work unchanged.
    """

    name: str
    module: str
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    weights: str | Callable[[], str | os.PathLike] | None = None
    sha256: str | None = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def load_module(self):
        try:
            return importlib.import_module(self.module)
        except ModuleNotFoundError as e:
            if e.name and self.module.startswith(e.name):
                raise ValueError(f"family '{self.name}' needs {self.module}, which is not installed in this checkout") from e
            raise

    def build(self, rngs=None, **overrides):
        from flax import nnx

        mod = self.load_module()
        config = {**self.config, **overrides}
        return mod.create(rngs=rngs if rngs is not None else nnx.Rngs(0), **config)

    def read(self, path) -> dict[str, np.ndarray]:
        mod = self.load_module()
        reader = getattr(mod, "read_checkpoint", None)
        return reader(path) if reader is not None else read_state_dict(path)

    def describe(self) -> dict[str, Any]:
        mod = self.load_module()
        meta = {"family": self.name, "module": self.module, "config": dict(self.config)}
        for attr in ("PREPROCESSING", "NUM_CLASSES", "INPUT_SIZE"):
            if hasattr(mod, attr):
                meta[attr.lower()] = getattr(mod, attr)
        meta.update(self.metadata)
        return meta


FAMILIES: dict[str, Family] = {}


def register_family(family: Family, replace: bool = False) -> Family:
    """Add ``family`` to ``FAMILIES`` (ValueError on a duplicate name unless ``replace``)."""
    if family.name in FAMILIES and not replace and FAMILIES[family.name] != family:
        raise ValueError(f"checkpoint family '{family.name}' is already registered")
    FAMILIES[family.name] = family
    return family


# Modules whose import registers families: the classifier zoo, and the defenses package (codec
# modules such as comdefend/elic/hific call ``register_family`` at import time). Add a module here
# only if it registers families and is not imported by one of these already.
FAMILY_PROVIDERS = ["robustjax.models.zoo", "robustjax.defenses"]


def _ensure_builtin_families() -> None:
    for name in FAMILY_PROVIDERS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


def get_family(name: str) -> Family:
    _ensure_builtin_families()
    if name not in FAMILIES:
        raise ValueError(f"unknown checkpoint family '{name}'; known: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def weights_root() -> Path | None:
    root = os.environ.get("ROBUSTJAX_WEIGHTS")
    return Path(root) if root else None


def cache_root() -> Path:
    return Path(os.environ.get("ROBUSTJAX_CACHE", Path.home() / ".cache" / "robustjax"))


def find_published(family: Family) -> Path:
    """The published file for ``family`` when the user gives none (error names where it looked)."""
    if callable(family.weights):
        path = Path(family.weights())
        if not path.is_file():
            raise FileNotFoundError(f"{family.name}: published weights expected at {path} are missing")
        return path
    if family.weights is None:
        raise FileNotFoundError(f"{family.name}: no default weights; pass weights=PATH")
    root = weights_root()
    if root is None:
        raise FileNotFoundError(
            f"{family.name}: set ROBUSTJAX_WEIGHTS to the folder holding {family.weights} "
            f"(or pass weights=PATH, or run: python -m checkpoints_convert {family.name} SRC DST)"
        )
    hits = sorted(root.glob(family.weights))
    if not hits:
        raise FileNotFoundError(
            f"{family.name}: no file matching {root / family.weights}; download the published checkpoint there, "
            f"or convert it with: python -m checkpoints_convert {family.name} SRC DST and pass weights=DST"
        )
    return hits[-1]


def verify_sha256(family: Family, path: Path, digest: str) -> None:
    if family.sha256 is not None:
        if digest != family.sha256:
            raise ValueError(f"{path}: sha256 {digest} does not match the published {family.name} file ({family.sha256})")
        return
    m = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z.]+$", path.name)
    if m and not digest.startswith(m.group(1)):
        raise ValueError(f"{path}: sha256 {digest[:16]}... does not start with the {m.group(1)} its name promises (corrupt download?)")


def convert(family: str | Family, src: str | os.PathLike, check_hash: bool = True):
    """Read ``src`` and fill a fresh ``family`` module strictly (every key, every shape).

    Returns (module, metadata). Raises ``robustjax.porting.CheckpointMismatchError`` naming every
    unmapped, missing or mis-shaped key.
    """
    from robustjax import porting

    fam = get_family(family) if isinstance(family, str) else family
    src = Path(src).absolute()
    digest = sha256_file(src)
    if check_hash:
        verify_sha256(fam, src, digest)
    state_dict = fam.read(src)
    module = fam.build()
    mod = fam.load_module()
    ignored = porting.load_into(module, state_dict, mod.RULES, context=f"{fam.name} ({fam.module})")
    meta = fam.describe()
    meta.update({"source": str(src), "source_sha256": digest, "ignored_source_keys": ignored})
    return module, meta


def resolve(family: str | Family, weights: str | os.PathLike | None = None):
    """The module for ``family`` with real weights: (module, metadata).

    ``weights`` may be a converted directory (read with orbax), an original published file, or None
    (the family's default file: pip-shipped or under ``ROBUSTJAX_WEIGHTS``). Original files are
    converted once into ``ROBUSTJAX_CACHE/<family>/<sha256[:16]>`` and read from there afterwards; the
    cached metadata must name the same sha256.
    """
    fam = get_family(family) if isinstance(family, str) else family
    if weights is not None and Path(weights).is_dir():
        return load_converted(weights, fam.name)
    src = Path(weights) if weights is not None else find_published(fam)
    if not src.is_file():
        raise FileNotFoundError(f"{fam.name}: no checkpoint at {src}")
    digest = sha256_file(src)
    verify_sha256(fam, src, digest)
    cached = cache_root() / fam.name / digest[:16]
    if cached.is_dir():
        try:
            meta = read_metadata(cached)
            if meta.get("source_sha256") == digest and meta.get("family") == fam.name:
                return load_converted(cached, fam.name)
        except (OSError, ValueError, KeyError):
            pass
        shutil.rmtree(cached, ignore_errors=True)  # stale or broken cache entry: convert again
    module, meta = convert(fam, src, check_hash=False)
    try:
        save_converted(cached, module, meta)
    except (OSError, ValueError):
        pass  # a read-only or racing cache must not stop the user; the module is already converted
    return module, meta
