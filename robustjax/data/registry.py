"""Dataset names -> loaders: the sets robustjax ships and those a plugin adds with :func:`register`.

Every entry's object is a loader ``(data_dir, label_space, skip_unreadable) -> ImageSet``; the
command line, configs and the README's catalogue read the same entries. ``tfds:NAME[:SPLIT]`` is a
form, not a name: any prepared TensorFlow Datasets set.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from robustjax.data.dataset import ImageSet
from robustjax.data.folder import image_folder
from robustjax.data.samples import foolbox_samples
from robustjax.registry import Registry, check_plain_name

DATASETS = Registry("dataset")
TFDS_FORM = "tfds:NAME[:SPLIT]"
TFDS_USAGE = f"{TFDS_FORM}: a prepared TensorFlow Datasets set (data_dir = the tfds data dir; never downloads)"


def data_root() -> Path:
    return Path(os.environ.get("ROBUSTJAX_DATA", "data"))


def _shared_folder(name: str, sub: str, space: str) -> Callable[..., ImageSet]:
    def load(data_dir, label_space, skip_unreadable) -> ImageSet:
        root = Path(data_dir) if data_dir is not None else data_root() / sub
        if not root.exists():
            raise FileNotFoundError(f"dataset {name!r} not found at {root} (set ROBUSTJAX_DATA or pass data_dir)")
        return image_folder(root, label_space or space, name=name, skip_unreadable=skip_unreadable)

    return load


def _foolbox(which: str) -> Callable[..., ImageSet]:
    return lambda data_dir, label_space, skip_unreadable: foolbox_samples(which, label_space or which)


def _any_folder(data_dir, label_space, skip_unreadable) -> ImageSet:
    if data_dir is None:
        raise ValueError("dataset 'folder' needs data_dir (ROOT/<class>/<image>)")
    return image_folder(data_dir, label_space or "folder", skip_unreadable=skip_unreadable)


DATASETS.register("imagenette", _shared_folder("imagenette", "imagenette2-val", "imagenet"),
                  usage="imagenette: Imagenette2 val (3,925 photos, one folder per wnid) in "
                  "$ROBUSTJAX_DATA/imagenette2-val, labelled with ImageNet indices")
DATASETS.register("cifar10_jpeg", _shared_folder("cifar10_jpeg", "cifar10-test-jpeg", "cifar10"),
                  usage="cifar10_jpeg: the CIFAR-10 test set stored as JPEG q75 (10,000, one folder per class) "
                  "in $ROBUSTJAX_DATA/cifar10-test-jpeg")
DATASETS.register("foolbox_imagenet", _foolbox("imagenet"),
                  usage="foolbox_imagenet: foolbox's 20 ImageNet photos (pip-shipped)")
DATASETS.register("foolbox_cifar10", _foolbox("cifar10"),
                  usage="foolbox_cifar10: foolbox's 20 CIFAR-10 test PNGs (pip-shipped)")
DATASETS.register("folder", _any_folder,
                  usage="folder: any ROOT/<class>/<image> folder (data_dir = ROOT), labels in sorted folder order")


def register(name: str, source, *, usage: str = "") -> None:
    """Add dataset ``name`` (then valid for ``--dataset`` and a config's ``dataset``). ``source``:

    - an :class:`ImageSet` (e.g. :func:`robustjax.data.from_arrays`), used as it is;
    - a folder path ``ROOT/<class>/<image>`` (labels in sorted folder order; ``data_dir`` overrides
      ROOT; unreadable files handled as for ``folder``);
    - a callable ``(data_dir, label_space) -> ImageSet``, called at each load.

    ``usage`` is the line ``list`` prints (``"name: what it is"``). ValueError for a name that is not
    plain (letters, digits, ``_ . -``) or is registered already as another source.
    """
    check_plain_name("dataset", name)
    if isinstance(source, ImageSet):
        loader = _FixedSet(name, source)
    elif isinstance(source, str | os.PathLike):
        loader = _PluginFolder(name, Path(source))
    elif callable(source):
        loader = _Called(name, source)
    else:
        raise TypeError(f"dataset {name!r}: source must be an ImageSet, a folder path or a callable, "
                        f"got {type(source).__name__}")
    DATASETS.register(name, loader, usage=usage or f"{name}: a plugin's dataset")


@dataclasses.dataclass(frozen=True, eq=False)
class _FixedSet:
    """The loader of a registered :class:`ImageSet`; equal to another of the same set object."""

    name: str
    ds: ImageSet

    def __eq__(self, other) -> bool:
        return isinstance(other, _FixedSet) and other.name == self.name and other.ds is self.ds

    def __call__(self, data_dir, label_space, skip_unreadable) -> ImageSet:
        if data_dir is not None:
            raise ValueError(f"dataset {self.name!r} is registered as images in memory; it takes no data_dir")
        if label_space is not None and label_space != self.ds.label_space:
            raise ValueError(f"dataset {self.name!r} is labelled in label space {self.ds.label_space!r}, "
                             f"not {label_space!r}")
        return self.ds


@dataclasses.dataclass(frozen=True)
class _PluginFolder:
    """The loader of a registered folder ``root/<class>/<image>`` (``data_dir`` overrides ``root``)."""

    name: str
    root: Path

    def __call__(self, data_dir, label_space, skip_unreadable) -> ImageSet:
        root = Path(data_dir) if data_dir is not None else self.root
        return image_folder(root, label_space or "folder", name=self.name, skip_unreadable=skip_unreadable)


@dataclasses.dataclass(frozen=True)
class _Called:
    """The loader of a registered callable ``(data_dir, label_space) -> ImageSet``."""

    name: str
    fn: Callable

    def __call__(self, data_dir, label_space, skip_unreadable) -> ImageSet:
        ds = self.fn(data_dir, label_space)
        if not isinstance(ds, ImageSet):
            raise TypeError(f"dataset {self.name!r}: its loader returned {type(ds).__name__}, not an ImageSet")
        return ds


def valid_names() -> list[str]:
    """Every dataset name, then the tfds form."""
    return DATASETS.names() + [TFDS_FORM]


def usages() -> list[str]:
    """One ``name: what`` line per name, the tfds form last (``list`` and the README's catalogue)."""
    return DATASETS.usages() + [TFDS_USAGE]


def check_name(name: str) -> None:
    """ValueError listing the valid names unless ``name`` names a dataset (no I/O)."""
    if not isinstance(name, str) or not (name in DATASETS or name.startswith("tfds:") and len(name) > 5):
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(valid_names())}")


def load(name: str, data_dir: str | os.PathLike | None = None, label_space: str | None = None, *,
         skip_unreadable: bool = False) -> ImageSet:
    """The dataset ``name`` with labels in ``label_space`` (default: the dataset's own).

    ``data_dir`` overrides where it is read from (default ``$ROBUSTJAX_DATA/<folder>``).
    ``skip_unreadable``: an image folder leaves out files that cannot be decoded (listed in the
    set's ``skipped``) instead of raising :class:`robustjax.data.UnreadableImagesError`.
    """
    check_name(name)
    if name.startswith("tfds:"):
        from robustjax.data.tfds_source import tfds_images

        _, tname, *rest = name.split(":")
        return tfds_images(tname, rest[0] if rest else None, None if data_dir is None else str(data_dir), label_space)
    return DATASETS.get(name)(data_dir, label_space, skip_unreadable)
