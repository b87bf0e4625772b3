"""ComDefend weights: the key map from the authors' files (or the PyTorch-port layouts) and loading."""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from robustjax import checkpoints, hub
from robustjax.defenses.comdefend.net import ComDefendNet, create, variant_config
from robustjax.porting import Rule, conv_kernel

# Published file names under ROBUSTJAX_WEIGHTS/comdefend/ (encoder, decoder).
WEIGHT_FILES = {"cifar": ("enc20_0.0001.npy", "dec20_0.0001.npy"), "mnist": ("enc_mnist.npy", "dec_mnist.npy")}


def rules(variant: str = "cifar") -> list[Rule]:
    """Key map: authors' npz (``enc.{i}.W``/``enc.{i}.b`` as produced by :func:`read`) and the
    PyTorch layout (``enc.features.{2i}.weight``: Conv2d at even indices, ELU between)."""
    v = variant_config(variant)
    out = []
    sides = (("enc|com|comcnn|encoder", "com", len(v["com"]) + 1), ("dec|rec|reccnn|decoder", "rec", len(v["rec"]) + 1))
    for side, target, depth in sides:
        for i in range(depth):
            out += [
                Rule(rf"(?:{side})\.{i}\.W", f"{target}.net.layers.{i}.kernel"),
                Rule(rf"(?:{side})\.{i}\.b", f"{target}.net.layers.{i}.bias"),
                Rule(rf"(?:{side})\.features\.{2 * i}\.weight", f"{target}.net.layers.{i}.kernel", conv_kernel),
                Rule(rf"(?:{side})\.features\.{2 * i}\.bias", f"{target}.net.layers.{i}.bias"),
            ]
    return out


def read_npz_net(path: str | Path, prefix: str) -> dict[str, np.ndarray]:
    """One authors' ``.npy`` (really ``.npz``) file -> ``{prefix.i.W, prefix.i.b}``."""
    with np.load(path, allow_pickle=True) as f:
        if "w" not in f.files:
            raise ValueError(f"{path}: expected an npz archive with one member 'w', found {f.files}")
        w = list(f["w"])
    if len(w) % 2:
        raise ValueError(f"{path}: expected [W0, b0, W1, b1, ...], got {len(w)} arrays")
    out = {}
    for i in range(len(w) // 2):
        out[f"{prefix}.{i}.W"] = np.asarray(w[2 * i], np.float32)
        out[f"{prefix}.{i}.b"] = np.asarray(w[2 * i + 1], np.float32)
    return out


def _is_npz(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return "w.npy" in z.namelist()


def _flatten(obj, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, np.ndarray):
        key = prefix[:-1]
        out[".".join(p for p in key.split(".") if p != "module")] = obj
    return out


def read(path: str | Path) -> dict[str, np.ndarray]:
    """Flat ``name -> array`` dict of a published ComDefend checkpoint.

    ``path`` is the authors' encoder file (``enc*.npy``; its ``dec*.npy`` sibling is read too), a
    folder holding one such pair, or a PyTorch file in the authors' torch layout.
    """
    from robustjax.torch_reader import read_torch

    path = Path(path)
    if path.is_dir():
        pairs = [(path / e, path / d) for e, d in WEIGHT_FILES.values() if (path / e).is_file()]
        if len(pairs) != 1:
            encoders = [e for e, _ in WEIGHT_FILES.values()]
            raise ValueError(f"{path}: expected exactly one encoder file among {encoders}; pass the file itself")
        path = pairs[0][0]
    if not path.is_file():
        raise FileNotFoundError(f"ComDefend weights not found: {path}")
    if _is_npz(path):
        if not path.name.startswith("enc"):
            raise ValueError(f"{path}: pass the encoder file enc*.npy (its dec*.npy sibling is read with it)")
        dec = path.with_name("dec" + path.name[3:])
        if not dec.is_file():
            raise FileNotFoundError(f"ComDefend decoder file not found next to the encoder: {dec}")
        return {**read_npz_net(path, "enc"), **read_npz_net(dec, "dec")}
    flat = _flatten(read_torch(path))
    for wrapper in ("state_dict.", "model_state_dict."):
        if flat and all(k.startswith(wrapper) for k in flat):
            flat = {k[len(wrapper) :]: v for k, v in flat.items()}
    if not flat:
        raise ValueError(f"{path}: no arrays found")
    return flat


FAMILY = checkpoints.register_family(
    checkpoints.Family(
        "comdefend",
        create,
        rules,
        read=read,
        preprocessing={"input": "RGB (N, H, W, C) in [0, 1]; ComCNN subtracts 0.5 inside"},
    )
)


def default_weights(variant: str = "cifar") -> Path:
    """The authors' encoder file (its decoder beside it): under ``ROBUSTJAX_WEIGHTS/comdefend/``, else
    downloaded once and verified (:mod:`robustjax.hub`, entry ``comdefend:VARIANT``)."""
    variant_config(variant)
    return hub.path(f"comdefend:{variant}")


@functools.lru_cache(maxsize=8)
def load(weights: str | None = None, variant: str = "cifar") -> ComDefendNet:
    """Pretrained networks: ``weights`` is a converted folder, a published file, or None (the
    authors' files, see :func:`default_weights`, converted once into the cache)."""
    variant_config(variant)
    if weights is not None and checkpoints.is_converted(weights):
        module, metadata = checkpoints.load(weights)
        if metadata.get("family") != "comdefend":
            raise ValueError(f"{weights} holds a {metadata.get('family')!r} checkpoint, not comdefend")
        if module.variant != variant:
            raise ValueError(f"{weights} holds the {module.variant!r} variant, asked for {variant!r}")
        return module
    src = Path(weights) if weights is not None else default_weights(variant)
    module, _ = checkpoints.load_or_convert("comdefend", src, {"variant": variant})
    return module


# ----------------------------------------------------------------------------- defense


