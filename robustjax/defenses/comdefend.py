"""ComDefend (Jia et al., CVPR 2019; seed 003): ComCNN -> binary code -> RecCNN, as a defense.

Networks (fully convolutional, 3x3 SAME stride-1 convolutions, no normalisation, no downsampling):

- ComCNN: ``x - 0.5``, then convs with ELU through the hidden widths, then a linear conv to the
  code channels. CIFAR variant 3-16-32-64-128-256-128-64-32-12; MNIST variant
  1-32-64-128-256-128-64-64-32-4.
- RecCNN: convs with ELU, a linear conv to the image channels, sigmoid. CIFAR
  12-32-64-128-256-128-64-32-16-3; MNIST 4-32-64-128-256-128-64-64-32-1.

Defense ``d(x, key)`` on float ``(N, H, W, C)`` images in [0, 1]: ``code = ComCNN(x)``;
``bits = (code - n > 0)`` with ``n ~ N(0, sigma^2)`` (the original test code keeps sigma = 1; sigma
= 0 is deterministic); ``RecCNN(bits)``. The hard threshold has zero gradient almost everywhere, so
the backward pass uses a surrogate (``grad``): ``ste`` (identity w.r.t. ``code - n``, default) or
``sigmoid`` (the derivative of the training-time ``sigmoid(code - n)``).

Colour order: the CIFAR weights were trained on ``keras.datasets.cifar10`` arrays, i.e. RGB (the
authors' ``Train_comdefend_TF.py``); their ImageNet demo read files with ``cv2.imread`` (BGR) and
fed those unchanged, a quirk we do not copy: robustjax feeds RGB. Measured on the 10,000
``cifar10-test-jpeg`` images at sigma 0 (``experiments/comdefend_psnr.py``), RGB gives the higher
PSNR, consistent with RGB training.

Weights: the authors' files ``enc*.npy`` / ``dec*.npy`` (NumPy ``.npz`` zips with one object array
``w`` of 18 arrays ``[W0, b0, ...]``, HWIO kernels), or a PyTorch state dict in the layout of the
authors' ``Train_comdefend_Torch.py`` (``{"enc": {"features.0.weight", ...}, "dec": {...}}``,
nested or flattened, ``module.`` prefixes stripped; ``com``/``rec``/``encoder``/``decoder`` accepted
as the two prefixes). Checkpoint family ``comdefend`` (``python -m checkpoints_convert comdefend
SRC DST [--set variant=mnist]``).
"""

from __future__ import annotations

import functools
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from robustjax import checkpoints, layers
from robustjax.checks import check_images
from robustjax.defenses.registry import Defense, register
from robustjax.porting import Rule, conv_kernel

VARIANTS: dict[str, dict] = {
    "cifar": dict(image_channels=3, code_channels=12, com=(16, 32, 64, 128, 256, 128, 64, 32), rec=(32, 64, 128, 256, 128, 64, 32, 16)),
    "mnist": dict(image_channels=1, code_channels=4, com=(32, 64, 128, 256, 128, 64, 64, 32), rec=(32, 64, 128, 256, 128, 64, 64, 32)),
}
# Published file names under ROBUSTJAX_WEIGHTS/comdefend/ (encoder, decoder).
WEIGHT_FILES = {"cifar": ("enc20_0.0001.npy", "dec20_0.0001.npy"), "mnist": ("enc_mnist.npy", "dec_mnist.npy")}
GRADS = ("ste", "sigmoid")


def _variant(variant: str) -> dict:
    if variant not in VARIANTS:
        raise ValueError(f"unknown ComDefend variant {variant!r}; choose one of {sorted(VARIANTS)}")
    return VARIANTS[variant]


class ConvStack(nnx.Module):
    """3x3 SAME stride-1 convs ``widths[0] -> ... -> widths[-1]``, ELU after every conv but the last."""

    def __init__(self, widths: tuple[int, ...], *, rngs: nnx.Rngs):
        init = nnx.initializers.variance_scaling(2.0, "fan_in", "normal")  # He et al. 2015, as the paper
        self.layers = nnx.List(
            [layers.Conv(a, b, (3, 3), padding="SAME", kernel_init=init, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for i, conv in enumerate(self.layers):
            x = conv(x)
            if i < len(self.layers) - 1:
                x = jax.nn.elu(x)
        return x


class ComCNN(nnx.Module):
    """Images ``(N, H, W, C)`` in [0, 1] -> real-valued code ``(N, H, W, code_channels)``."""

    def __init__(self, image_channels: int, code_channels: int, hidden: tuple[int, ...], *, rngs: nnx.Rngs):
        self.net = ConvStack((image_channels, *hidden, code_channels), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.net(x - 0.5)


class RecCNN(nnx.Module):
    """Code ``(N, H, W, code_channels)`` (binary at test time) -> images ``(N, H, W, C)`` in (0, 1)."""

    def __init__(self, image_channels: int, code_channels: int, hidden: tuple[int, ...], *, rngs: nnx.Rngs):
        self.net = ConvStack((code_channels, *hidden, image_channels), rngs=rngs)

    def __call__(self, bits: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(self.net(bits))


class ComDefendNet(nnx.Module):
    """ComCNN (``.com``) and RecCNN (``.rec``) of one variant (``cifar`` or ``mnist``)."""

    def __init__(self, variant: str = "cifar", *, rngs: nnx.Rngs):
        v = _variant(variant)
        self.variant = variant
        self.image_channels = v["image_channels"]
        self.code_channels = v["code_channels"]
        self.com = ComCNN(v["image_channels"], v["code_channels"], v["com"], rngs=rngs)
        self.rec = RecCNN(v["image_channels"], v["code_channels"], v["rec"], rngs=rngs)

    def __call__(self, x: jax.Array, noise: jax.Array | float = 0.0, grad: str = "ste") -> jax.Array:
        """Test-time forward: ``RecCNN(binarise(ComCNN(x) - noise))`` (``noise`` broadcast to the code)."""
        return self.rec(binarise(self.com(x) - noise, grad))


def create(rngs: nnx.Rngs | None = None, variant: str = "cifar") -> ComDefendNet:
    """Random (He-normal) initialisation of one variant."""
    return ComDefendNet(variant, rngs=rngs if rngs is not None else nnx.Rngs(0))


def binarise(z: jax.Array, grad: str = "ste") -> jax.Array:
    """``1[z > 0]`` as float; backward: identity (``ste``) or ``sigmoid'(z)`` (``sigmoid``)."""
    hard = (z > 0).astype(z.dtype)
    if grad == "ste":
        soft = z
    elif grad == "sigmoid":
        soft = jax.nn.sigmoid(z)
    else:
        raise ValueError(f"grad must be one of {GRADS}, got {grad!r}")
    return soft + jax.lax.stop_gradient(hard - soft)


# ----------------------------------------------------------------------------- weights


def rules(variant: str = "cifar") -> list[Rule]:
    """Key map: authors' npz (``enc.{i}.W``/``enc.{i}.b`` as produced by :func:`read`) and the
    PyTorch layout (``enc.features.{2i}.weight``: Conv2d at even indices, ELU between)."""
    v = _variant(variant)
    out = []
    for side, target, depth in (("enc|com|comcnn|encoder", "com", len(v["com"]) + 1), ("dec|rec|reccnn|decoder", "rec", len(v["rec"]) + 1)):
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
            raise ValueError(f"{path}: expected exactly one encoder file among {[e for e, _ in WEIGHT_FILES.values()]}; pass the file itself")
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
    root = checkpoints.weights_root()
    enc = WEIGHT_FILES[variant][0]
    if root is None:
        raise FileNotFoundError(
            f"ComDefend weights: set ROBUSTJAX_WEIGHTS to a folder holding comdefend/{enc} and its dec* sibling, "
            "or pass weights=PATH"
        )
    path = root / "comdefend" / enc
    if not path.is_file():
        raise FileNotFoundError(
            f"ComDefend weights not found at {path}; put the authors' files there or convert them with "
            f"`python -m checkpoints_convert comdefend SRC DST` and pass weights=DST"
        )
    return path


@functools.lru_cache(maxsize=8)
def load(weights: str | None = None, variant: str = "cifar") -> ComDefendNet:
    """Pretrained networks: ``weights`` is a converted folder, a published file, or None (the
    authors' files under ``ROBUSTJAX_WEIGHTS/comdefend/``, converted once into the cache)."""
    _variant(variant)
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


def to_patches(x: jax.Array, size: int) -> jax.Array:
    """``(N, H, W, C)`` -> ``(N * H/size * W/size, size, size, C)``, row-major over the tiles."""
    n, h, w, c = x.shape
    if h % size or w % size:
        raise ValueError(f"patch mode needs H and W divisible by the patch size {size}, got {h}x{w}")
    x = x.reshape(n, h // size, size, w // size, size, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, size, size, c)


def from_patches(p: jax.Array, shape: tuple[int, ...], size: int) -> jax.Array:
    """Inverse of :func:`to_patches` for an image batch of ``shape``."""
    n, h, w, c = shape
    p = p.reshape(n, h // size, w // size, size, size, c).transpose(0, 1, 3, 2, 4, 5)
    return p.reshape(n, h, w, c)


def comdefend(
    net: ComDefendNet, sigma: float = 1.0, patch: int = 0, grad: str = "ste", spec: str = "comdefend"
) -> Defense:
    """The defense ``d(x, key=None)`` around ``net``.

    ``sigma``: std of the code noise (0: deterministic). With ``sigma > 0`` and ``key=None`` a fixed
    key (``PRNGKey(0)``) is used, so repeated calls agree; pass keys for fresh noise (EOT).
    ``patch``: 0 runs on whole images (the networks are fully convolutional); ``k > 0`` cuts images
    into ``k x k`` tiles processed independently (seed 003's 32x32 mode for ImageNet-size inputs;
    H and W must be multiples of ``k``).
    """
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    if not (isinstance(patch, int) and patch >= 0):
        raise ValueError(f"patch must be an integer >= 0 (0 = whole image), got {patch!r}")
    if grad not in GRADS:
        raise ValueError(f"grad must be one of {GRADS}, got {grad!r}")
    graphdef, state = nnx.split(net)
    channels = net.image_channels

    def fn(x, key=None):
        check_images(x, "x", channels=(channels,))
        if patch and (x.shape[1] % patch or x.shape[2] % patch):
            raise ValueError(
                f"ComDefend patch mode cannot tile {x.shape[1]}x{x.shape[2]} images into {patch}x{patch} patches; "
                f"resize/crop to multiples of {patch} or use patch=0 (whole image)"
            )
        model = nnx.merge(graphdef, state)
        xin = to_patches(x, patch) if patch else x
        code = model.com(xin)
        if sigma > 0:
            k = jax.random.PRNGKey(0) if key is None else key
            code = code - sigma * jax.random.normal(k, code.shape, code.dtype)
        out = model.rec(binarise(code, grad))
        return from_patches(out, x.shape, patch) if patch else out

    return Defense(spec, fn, randomised=sigma > 0)


@register(
    "comdefend",
    usage="comdefend[:sigma=1.0][:patch=0|32][:variant=cifar|mnist][:grad=ste|sigmoid][:weights=PATH]",
)
def _comdefend_defense(sigma: str = "1.0", patch: str = "0", variant: str = "cifar", grad: str = "ste", weights: str | None = None) -> Defense:
    try:
        s = float(sigma)
    except ValueError:
        raise ValueError(f"sigma must be a number, got {sigma!r}") from None
    if not patch.isdigit():
        raise ValueError(f"patch must be a non-negative integer, got {patch!r}")
    _variant(variant)
    if weights is not None:
        weights = os.path.expanduser(weights)
    return comdefend(load(weights, variant), sigma=s, patch=int(patch), grad=grad)
