"""Reading PyTorch checkpoint files without importing torch, and without running their pickles.

``read_torch(path)`` understands both on-disk formats of ``torch.save`` (the zip archive of
torch >= 1.6 and the legacy single-stream format) and returns the saved object with every tensor
as a NumPy array. Its unpickler admits only what a state dict is made of: tensor and storage
reconstruction (``torch._utils._rebuild_tensor_v2``, ``torch.*Storage``), ``nn.Parameter``
rebuilding and ``collections.OrderedDict``; any other global a pickle asks for (``os.system``,
``builtins.eval``, a model class, ...) raises ``UnsafeCheckpointError`` before anything is called.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file's pickle asks for something other than tensors and plain containers."""


class _StorageType:
    def __init__(self, name: str):
        self.name, self.dtype = name, _STORAGE_DTYPES[name]


class _Storage:
    """A storage named in the pickle; its bytes are attached once read (``array``)."""

    def __init__(self, dtype, key: str, numel: int):
        self.dtype, self.key, self.numel = dtype, key, numel
        self.array: np.ndarray | None = None


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self) -> np.ndarray:
        flat = self.storage.array
        if flat is None:
            raise pickle.UnpicklingError(f"storage {self.storage.key} has no data in the file")
        if not self.size:
            return np.array(flat[self.offset])
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(flat[self.offset :], self.size, [s * item for s in self.stride],
                                               writeable=False)
        return np.array(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _Namespace(dict):
    """argparse.Namespace(**kwargs) read as a plain dict (only when a caller allows it)."""

    def __init__(self, **kwargs):
        super().__init__(kwargs)


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}
# Opt-in extras, for published files that carry plain settings objects beside their weights.
OPTIONAL_GLOBALS = {("argparse", "Namespace"): _Namespace}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream, storages: dict[str, _Storage], allow: frozenset = frozenset()):
        super().__init__(stream)
        self._storages, self._allow = storages, allow

    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if (module, name) in self._allow and (module, name) in OPTIONAL_GLOBALS:
            return OPTIONAL_GLOBALS[(module, name)]
        raise UnsafeCheckpointError(
            f"refusing to load global {module}.{name}: a checkpoint may only contain tensors and "
            "plain containers (the file was not executed)"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"unsupported persistent id {pid!r}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"unsupported storage type {storage_type!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("legacy storage views are not supported")
        if key not in self._storages:
            self._storages[key] = _Storage(storage_type.dtype, key, numel)
        return self._storages[key]


def _materialise(obj):
    if isinstance(obj, _TensorRef):
        return obj.materialise()
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialise(v)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _read_zip(path: Path, allow) -> Any:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise pickle.UnpicklingError(f"{path}: not a torch zip checkpoint (no single data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        order = z.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
        storages: dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(io.BytesIO(z.read(pkl[0])), storages, allow).load()
        for key, st in storages.items():
            raw = z.read(f"{prefix}data/{key}")
            st.array = np.frombuffer(raw, np.dtype(st.dtype).newbyteorder("<" if order == "little" else ">"),
                                     count=st.numel)
    return _materialise(obj)


def _read_legacy(path: Path, allow) -> Any:
    with open(path, "rb") as f:
        storages: dict[str, _Storage] = {}

        def header():
            return _RestrictedUnpickler(f, storages, allow).load()

        if header() != _LEGACY_MAGIC:
            raise pickle.UnpicklingError(f"{path}: not a torch checkpoint (bad magic number)")
        header()  # protocol version
        header()  # system info (endianness, type sizes)
        obj = _RestrictedUnpickler(f, storages, allow).load()
        keys = header()
        for key in keys:
            st = storages[str(key)]
            numel = int(np.frombuffer(f.read(8), "<i8")[0])
            st.array = np.frombuffer(f.read(numel * np.dtype(st.dtype).itemsize), np.dtype(st.dtype).newbyteorder("<"),
                                     count=numel)
    return _materialise(obj)


def read_torch(path: str | Path, allow: frozenset = frozenset()) -> Any:
    """Load a ``torch.save`` file (zip or legacy format) as NumPy arrays, refusing anything unsafe.

    ``allow`` opts into extra plain-data globals from ``OPTIONAL_GLOBALS`` (e.g.
    ``{("argparse", "Namespace")}``, read as a dict).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if zipfile.is_zipfile(path):
        return _read_zip(path, frozenset(allow))
    return _read_legacy(path, frozenset(allow))


def state_dict_of(obj: Any) -> dict[str, np.ndarray]:
    """The flat ``name -> array`` state dict inside a loaded checkpoint.

    Unwraps ``{'state_dict': ...}`` and ``{'model_state_dict': ...}`` and strips the ``module.``
    prefix that ``nn.DataParallel`` adds; non-array entries (``best_prec1``, ...) are dropped.
    """
    for wrapper in ("state_dict", "model_state_dict"):
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    out = {}
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            out[k[len("module.") :] if k.startswith("module.") else k] = v
    if not out:
        raise ValueError("checkpoint holds no arrays")
    return out
