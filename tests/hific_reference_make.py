"""Make ``tests/data/hific_reference.npz``: the outputs of the reference HiFiC network (PyTorch) that
``tests/test_hific.py`` compares the Flax port with. Run by hand, once; CI never runs it.

Needs a local copy of the public repository Justin-Tan/high-fidelity-generative-compression (Apache-2.0;
not part of this project) and its pure-Python dependency ``autograd`` (``pip install --target DIR autograd``)::

    PYTHONPATH=/tmp/hific_deps python tests/hific_reference_make.py /path/to/high-fidelity-generative-compression

What it does, per variant (``hific_reference.VARIANTS``: low = 7 blocks Gaussian, med = 7 blocks logistic,
hi = 9 blocks Gaussian with normalize_input_image):

1. builds the reference modules ``Encoder``, ``Generator``, ``Hyperprior`` and (for the published
   layout) ``Discriminator`` from the repository's classes, under the attribute names of its ``Model``,
   so ``state_dict()`` has the published ``model_state_dict`` keys (``Model`` itself cannot be built
   offline: its LPIPS loss downloads AlexNet);
2. fills them with ``hific_reference.random_state_dict`` (NumPy, seeded) and runs, in eval mode, the
   lines of ``Model.compression_forward`` (reflect-pad to 16, encoder, reflect-pad to 4, Hyperprior
   eval forward, generator, tanh if normalised, crop) and then ``decompress``'s ``(r + 1) / 2`` and clamp;
3. stores the reconstruction (uint16, step 1/65535: quantisation error <= 7.7e-6), the input gradient
   of ``sum((out - x)^2)`` (float16 rounded to 4 mantissa bits, to keep the file under 1 MB: cosine to
   the float32 gradient 0.99991, against the test's 0.999), the bits per pixel (``total_qbpp``, and the
   y / z parts), the state-dict layouts (keys and shapes, for 7 and 9 blocks) and the reference's
   ``hific_args``.

low and med share weights (seed 1), so their reconstructions and gradients are equal; the script checks
that and stores them once (under ``low``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hific_reference import CROPS, NPZ, VARIANTS, crop_digest, kodak_crops, random_state_dict, reference_args  # noqa: E402


def build(ref, n_blocks: int, likelihood: str):
    import torch.nn as nn
    from src import hyperprior
    from src.network import discriminator, encoder, generator

    class Published(nn.Module):  # the attribute names of src.model.Model
        def __init__(self):
            super().__init__()
            self.Encoder = encoder.Encoder((3, 256, 256), 1, C=220, channel_norm=True)
            self.Generator = generator.Generator((220, 16, 16), 1, C=220, n_residual_blocks=n_blocks,
                                                 channel_norm=True)
            self.Hyperprior = hyperprior.Hyperprior(bottleneck_capacity=220, likelihood_type=likelihood)
            self.Discriminator = discriminator.Discriminator(image_dims=(3, 256, 256), context_dims=(220, 16, 16),
                                                             C=220)

    return Published()


def round_mantissa(a: np.ndarray, drop: int = 6) -> np.ndarray:
    """float16 with the low ``drop`` mantissa bits rounded off (compresses better; 10 - drop bits kept)."""
    bits = a.astype(np.float16).view(np.uint16).astype(np.uint32)
    bits = (bits + (1 << (drop - 1))) & ~np.uint32((1 << drop) - 1)
    return bits.astype(np.uint16).view(np.float16)


def pad_factor(x, factor):
    """``src.helpers.utils.pad_factor`` (that module imports more than this script needs)."""
    import torch.nn.functional as F

    H, W = x.shape[2:]
    return F.pad(x, pad=(0, (factor - H % factor) % factor, 0, (factor - W % factor) % factor), mode="reflect")


def forward(net, x, normalize: bool):
    """Model.compression_forward (eval) + decompress's de-normalisation and clamp; returns (out, hyperinfo)."""
    import torch

    h = 2 * x - 1 if normalize else x
    dims = h.shape[2:]
    hp = pad_factor(h, 2 ** net.Encoder.n_downsampling_layers)
    y = net.Encoder(hp)
    y = pad_factor(y, 2 ** net.Hyperprior.analysis_net.n_downsampling_layers)
    info = net.Hyperprior(y, spatial_shape=hp.shape[2:])
    r = net.Generator(info.decoded)
    if normalize:
        r = torch.tanh(r)
    r = r[:, :, : dims[0], : dims[1]]
    if normalize:
        r = (r + 1.0) / 2.0
    return torch.clamp(r, 0.0, 1.0), info, y


def main(ref_path: str, data_dir: str = "/work/shared/data") -> None:
    import torch

    sys.path.insert(0, str(Path(ref_path).resolve()))
    from default_config import hific_args

    torch.set_num_threads(2)
    base = {n: getattr(hific_args, n) for n in dir(hific_args) if not n.startswith("_")}
    base = json.loads(json.dumps(base))  # plain JSON types, as the published args
    x_np = kodak_crops(data_dir)
    out, layouts, meta = {}, {}, {"crops": CROPS, "base_args": base, "variants": {}}
    for variant, (seed, _) in VARIANTS.items():
        args = reference_args(variant, base)
        net = build(ref_path, args["n_residual_blocks"], args["likelihood_type"])
        layout = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
        layouts[args["n_residual_blocks"]] = layout
        sd = random_state_dict(layout, seed)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
        net.eval()
        x = torch.from_numpy(x_np).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
        t0 = time.time()
        r, info, y = forward(net, x, args["normalize_input_image"])
        ((r - x.detach()) ** 2).sum().backward()
        dt = time.time() - t0
        recon = r.detach().numpy().transpose(0, 2, 3, 1)
        grad = x.grad.numpy().transpose(0, 2, 3, 1)
        with torch.no_grad():
            z = net.Hyperprior.analysis_net(y)
            mu = net.Hyperprior.synthesis_mu(torch.floor(z + 0.5))
            d = (y - mu).numpy()
        margin = float(np.min(np.abs(d - np.floor(d) - 0.5)))
        stats = {"seed": seed, "args": {k: args[k] for k in VARIANTS[variant][1]},
                 "bpp": float(info.total_qbpp), "bpp_y": float(info.latent_qbpp), "bpp_z": float(info.hyperlatent_qbpp),
                 "recon_saturated": float(np.mean((recon <= 0) | (recon >= 1))), "recon_std": float(recon.std()),
                 "grad_norm": float(np.linalg.norm(grad)), "y_std": float(y.detach().std()),
                 "min_tie_margin": margin, "seconds_fwd_bwd": dt}
        print(variant, stats, flush=True)
        meta["variants"][variant] = stats
        if variant == "med":
            low = out["low_recon"].astype(np.float32) / 65535
            assert np.abs(np.clip(np.rint(recon * 65535), 0, 65535) / 65535 - low).max() == 0, "low/med recon differ"
        else:
            out[f"{variant}_recon"] = np.clip(np.rint(recon * 65535), 0, 65535).astype(np.uint16)
            out[f"{variant}_grad"] = round_mantissa(grad)
            g = out[f"{variant}_grad"].astype(np.float32).ravel()
            stats["grad_storage_cosine"] = float(g @ grad.ravel() / (np.linalg.norm(g) * np.linalg.norm(grad)))
        out[f"{variant}_bpp"] = np.asarray([info.total_qbpp.item(), info.latent_qbpp.item(),
                                            info.hyperlatent_qbpp.item()])
        del net
    meta["layouts"] = {str(k): v for k, v in layouts.items()}
    NPZ.parent.mkdir(exist_ok=True)
    meta["x_sha256"] = crop_digest(x_np)
    np.savez_compressed(NPZ, meta=json.dumps(meta, separators=(",", ":")), **out)
    print(f"wrote {NPZ} ({NPZ.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(*sys.argv[1:])
