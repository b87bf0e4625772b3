"""Where every published checkpoint lives: file names, URLs, pinned sha256, sizes and licences.

One entry per loadable thing, named as a user asks for it (a model name, or a codec spec such as
``elic:0016``). A sha256 is pinned only where the publisher states it (the CIFAR ResNets' file
names carry their digest's start, checked against the files in full) and a file seen here matched
it; other files record the digest they arrived with, and the strict key map is their check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class PublishedFile:
    """One file as published. ``urls`` are tried in order; ``browser`` is a page that needs a browser
    session (Google Drive) when no URL serves the file directly."""

    name: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    size: int | None = None
    browser: str | None = None


@dataclasses.dataclass(frozen=True)
class Weights:
    """A named set of published files, kept together in ``folder`` (under ``ROBUSTJAX_WEIGHTS`` or the
    download cache); ``files[0]`` is the path a loader is given. ``family``/``config`` say how
    ``checkpoints_convert fetch`` converts it (None: the loader reads it as is)."""

    name: str
    folder: str
    files: tuple[PublishedFile, ...]
    source: str
    licence: str
    family: str | None = None
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    note: str = ""

    @property
    def pinned(self) -> bool:
        return all(f.sha256 is not None for f in self.files)


_AKAMASTER = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
_CIFAR = {  # depth: (file, sha256, size)
    20: ("resnet20-12fca82f.th", "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8", 1099231),
    32: ("resnet32-d509ac18.th", "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850", 1890043),
    44: ("resnet44-014dd654.th", "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4", 2680855),
    56: ("resnet56-4bfd9763.th", "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367", 3471733),
}
_TORCHVISION = "https://download.pytorch.org/models/"
_TORCHVISION_LICENCE = "BSD-3-Clause (torchvision); trained on ImageNet-1k"
_COMDEFEND = "https://github.com/jiaxiaojunQAQ/Comdefend/raw/master/checkpoints/"
_ELIC_DRIVE = {"0004": "1YGVJ9bpeEq0xfqka2xkaMzhDkeYFJi6q", "0008": "1VNE7rx-rBFLnNFkz56Zc-cPr6xrBBJdL",
               "0016": "1MWlYAmpHbWlGtG7MBBTPEew800grY5yC", "0032": "1Moody9IR8CuAGwLCZ_ZMTfZXT0ehQhqc",
               "0150": "1s544Uxv0gBY3WvKBcGNb3Fb22zfmd9PL", "0450": "1uuKQJiozcBfgGMJ8CfM6lrXOZWv6RUDN"}
_HIFIC_ZENODO = "https://zenodo.org/record/4026003/files/"


def _entries() -> list[Weights]:
    out = []
    for depth, (name, digest, size) in _CIFAR.items():
        out.append(Weights(
            f"cifar_resnet{depth}", "cifar10-resnet", (PublishedFile(name, (_AKAMASTER + name,), digest, size),),
            "https://github.com/akamaster/pytorch_resnet_cifar10", "BSD-2-Clause",
            "cifar_resnet", {"depth": depth}))
    out += [
        Weights("resnet50", "torchvision",
                (PublishedFile("resnet50-11ad3fa6.pth", (_TORCHVISION + "resnet50-11ad3fa6.pth",)),),
                "torchvision ResNet50_Weights.IMAGENET1K_V2", _TORCHVISION_LICENCE, "resnet50",
                note="the model's default (resize 232, crop 224)"),
        Weights("resnet50:v1", "torchvision",
                (PublishedFile("resnet50-0676ba61.pth", (_TORCHVISION + "resnet50-0676ba61.pth",)),),
                "torchvision ResNet50_Weights.IMAGENET1K_V1", _TORCHVISION_LICENCE, "resnet50",
                note="published for resize 256, crop 224; load with weights=PATH"),
        Weights("vit_b16", "torchvision",
                (PublishedFile("vit_b_16-c867db91.pth", (_TORCHVISION + "vit_b_16-c867db91.pth",)),),
                "torchvision ViT_B_16_Weights.IMAGENET1K_V1", _TORCHVISION_LICENCE, "vit_b16"),
    ]
    for variant, (enc, dec) in {"cifar": ("enc20_0.0001.npy", "dec20_0.0001.npy"),
                                "mnist": ("enc_mnist.npy", "dec_mnist.npy")}.items():
        out.append(Weights(
            f"comdefend:{variant}", "comdefend",
            (PublishedFile(enc, (_COMDEFEND + enc,)), PublishedFile(dec, (_COMDEFEND + dec,))),
            "https://github.com/jiaxiaojunQAQ/Comdefend", "no licence stated by the repository",
            "comdefend", {"variant": variant}))
    for quality, drive in _ELIC_DRIVE.items():
        name = f"ELIC_{quality}_ft_3980_Plateau.pth.tar"
        out.append(Weights(
            f"elic:{quality}", "elic", (PublishedFile(name, browser=f"https://drive.google.com/file/d/{drive}/view"),),
            "https://github.com/VincentChandelier/ELiC-ReImplemetation (Google Drive)",
            "no licence stated by the repository", "elic", {"quality": quality}))
    for variant in ("low", "med", "hi"):
        name = f"hific_{variant}.pt"
        out.append(Weights(
            f"hific:{variant}", "hific", (PublishedFile(name, (f"{_HIFIC_ZENODO}{name}?download=1",)),),
            "https://github.com/Justin-Tan/high-fidelity-generative-compression (Zenodo record 4026003)",
            "Apache-2.0", "hific", note="about 2 GB"))
    return out


ENTRIES: dict[str, Weights] = {w.name: w for w in _entries()}


def get(name: str) -> Weights:
    """The entry ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return ENTRIES[name]
    except KeyError:
        raise ValueError(f"no published weights named {name!r}; known: {', '.join(ENTRIES)}") from None


def markdown_table() -> str:
    """The README's weights table, generated from the entries (a test keeps the README equal to it)."""
    rows = ["| name | file(s) | pinned sha256 | source | licence |", "|---|---|---|---|---|"]
    for w in ENTRIES.values():
        files = ", ".join(f"`{f.name}`" for f in w.files)
        pinned = "yes" if w.pinned else "no"
        source = w.source + (f"; {w.note}" if w.note else "")
        rows.append(f"| `{w.name}` | {files} | {pinned} | {source} | {w.licence} |")
    return "\n".join(rows)
