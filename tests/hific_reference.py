"""Shared by the HiFiC tests, ``tests/hific_reference_make.py`` and the HiFiC benchmarks.

The reference network (Justin-Tan/high-fidelity-generative-compression) is not in CI, so its
outputs were computed once by ``hific_reference_make.py`` and stored in ``tests/data/hific_reference.npz``.
Its weights are not stored: ``random_state_dict(layout, seed)`` regenerates them deterministically with
NumPy (one ``default_rng([seed, crc32(key)])`` stream per tensor, independent of key order), in the
published ``model_state_dict`` layout, on both sides. Scales are chosen so that the random network is a
non-trivial codec: latents span several quantisation bins, predicted scales are of the latents' spread
(so a real entropy coder meets the estimate), and the output sits mostly inside [0, 1].
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

NPZ = Path(__file__).resolve().parent / "data" / "hific_reference.npz"

# Variant -> (seed of the weights, checkpoint args that differ from the reference's hific_args).
# low and med share the 7-block weights (they differ only in the latent likelihood); hi also checks
# the normalize_input_image path (tanh output).
VARIANTS = {
    "low": (1, {"n_residual_blocks": 7, "likelihood_type": "gaussian", "normalize_input_image": False,
                "regime": "low"}),
    "med": (1, {"n_residual_blocks": 7, "likelihood_type": "logistic", "normalize_input_image": False,
                "regime": "med"}),
    "hi": (2, {"n_residual_blocks": 9, "likelihood_type": "gaussian", "normalize_input_image": True, "regime": "high"}),
}
# The reference crops: Kodak image, top, left (224 x 224).
CROPS = (("kodim23.png", 100, 200),)


def _is_transposed(key: str) -> bool:
    return key.startswith("Generator.upconv_block") or key.startswith("Hyperprior.synthesis_")


def _stride(key: str) -> int:
    return 1 if key.endswith("conv3.weight") else 2


def random_tensor(key: str, shape, seed: int) -> np.ndarray:
    """The value of ``key`` in the random HiFiC of ``seed`` (float32, PyTorch layout)."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    shape = tuple(int(s) for s in shape)
    if key.startswith("Discriminator."):
        return rng.standard_normal(shape, np.float32) * np.float32(0.02)
    name = key.rsplit(".", 1)[-1]
    if name in ("weight", "weight_orig") and len(shape) == 4:
        k2 = shape[2] * shape[3]
        fan = shape[0] * k2 / _stride(key) ** 2 if _is_transposed(key) else shape[1] * k2
        gain = np.sqrt(2.0 / fan)
        if key == "Encoder.conv_block_out.1.weight":
            gain *= 3.0  # latents of a few quantisation steps
        elif key == "Generator.conv_block_out.1.weight":
            gain = 0.2 / np.sqrt(fan / 2)  # output std ~0.2 around the bias
        elif key.startswith("Hyperprior.synthesis_mu."):
            gain *= 0.5
        elif key == "Hyperprior.synthesis_std.conv3.weight":
            gain *= 0.1  # scales ~3 +- 0.5, about the latents' spread: few symbols in the far tails
        return rng.standard_normal(shape, np.float32) * np.float32(gain)
    if name == "bias":
        if key == "Generator.conv_block_out.1.bias":
            return np.full(shape, 0.5, np.float32) + rng.uniform(-0.05, 0.05, shape).astype(np.float32)
        if key == "Hyperprior.synthesis_std.conv3.bias":
            return np.full(shape, 3.0, np.float32) + rng.uniform(-0.5, 0.5, shape).astype(np.float32)
        return rng.uniform(-0.1, 0.1, shape).astype(np.float32)
    if name == "gamma":
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    if name == "beta":
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)
    if name.startswith("H_"):
        f_out = shape[1]
        init = np.log(np.expm1(1 / 10 ** 0.25 / f_out))
        return (init + 0.2 * rng.standard_normal(shape)).astype(np.float32)
    if name.startswith("a_"):
        return (0.3 * rng.standard_normal(shape)).astype(np.float32)
    if name.startswith("b_"):
        return rng.uniform(-1.0, 1.0, shape).astype(np.float32)
    return rng.standard_normal(shape, np.float32) * np.float32(0.02)


def random_state_dict(layout, seed: int) -> dict[str, np.ndarray]:
    """``layout``: [(key, shape), ...] of a ``model_state_dict`` -> {key: array}."""
    return {k: random_tensor(k, s, seed) for k, s in layout}


def reference_args(variant: str, base: dict) -> dict:
    """The ``args`` dict of ``variant``'s checkpoint: the reference's ``hific_args`` with the variant's settings."""
    args = dict(base)
    args.update(VARIANTS[variant][1])
    return args


def load_reference(path: Path = NPZ) -> dict:
    """The committed reference outputs: ``{variant: {...}}``, ``layout7``/``layout9``, ``base_args``, crops."""
    z = np.load(path)
    meta = json.loads(str(z["meta"]))
    out = {"meta": meta}
    for v in VARIANTS:
        out[v] = {k[len(v) + 1:]: z[k] for k in z.files if k.startswith(v + "_")}
    return out


def kodak_crops(data_dir, crops=CROPS, size: int = 224) -> np.ndarray:
    """(len(crops), size, size, 3) float32 in [0, 1] from Kodak PNGs."""
    from PIL import Image

    imgs = []
    for name, top, left in crops:
        img = np.asarray(Image.open(Path(data_dir) / "kodak" / name).convert("RGB"), dtype=np.float32) / 255.0
        imgs.append(img[top : top + size, left : left + size])
    return np.stack(imgs)


def crop_digest(x: np.ndarray) -> str:
    """sha256 of the crops as uint8 (checks that the test reads the images the reference saw)."""
    import hashlib

    return hashlib.sha256(np.clip(np.rint(np.asarray(x) * 255), 0, 255).astype(np.uint8).tobytes()).hexdigest()


def published_checkpoint(layout, seed: int, args: dict, with_training_state: bool = True) -> dict:
    """A dict in the published ``hific_*.pt`` layout (NumPy arrays; ``torch.save`` it after ``to_torch``)."""
    sd = random_state_dict(layout, seed)
    ckpt = {"model_state_dict": sd, "args": dict(args), "epoch": 7, "steps": 1000}
    if with_training_state:
        disc = {k[len("Discriminator."):]: v for k, v in sd.items() if k.startswith("Discriminator.")}
        ckpt["discriminator_state_dict"] = disc
        opt = {"state": {0: {"step": 3, "exp_avg": np.zeros(4, np.float32)}},
               "param_groups": [{"lr": 1e-4, "params": [0]}]}
        ckpt["compression_optimizer_state_dict"] = opt
        ckpt["hyperprior_optimizer_state_dict"] = opt
        ckpt["discriminator_optimizer_state_dict"] = opt
    return ckpt


def to_torch(obj):
    """NumPy arrays inside nested containers -> torch tensors (for ``torch.save``)."""
    import torch

    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    if isinstance(obj, dict):
        return {k: to_torch(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_torch(v) for v in obj]
    return obj
