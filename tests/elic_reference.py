"""Shared by the ELIC tests and benchmarks: compressai 1.2.8's Elic2022Chandelier with random weights,
made non-trivial (latents of a few quantisation steps, perturbed entropy-bottleneck parameters), in
eval mode and update()d, and its state dict renamed into Chandelier's flat checkpoint format."""

from __future__ import annotations

import re

import numpy as np


def reference_model(seed: int = 0, latent_gain: float = 8.0, scale_bias: float = 2.0):
    import torch
    from compressai.models import Elic2022Chandelier

    torch.manual_seed(seed)
    net = Elic2022Chandelier()
    with torch.no_grad():
        # Random init gives latents far below one quantisation step; scale the last g_a conv so that
        # rounding matters, and move the z medians / density off their initial values.
        net.g_a[13].weight.mul_(latent_gain)
        net.g_a[13].bias.uniform_(-1, 1)
        eb = net.latent_codec["hyper"].entropy_bottleneck
        eb.quantiles[:, 0, 1].uniform_(-0.5, 0.5)
        for p in list(eb.factors) + list(eb.biases):
            p.add_(0.3 * torch.randn_like(p))
        for p in eb.matrices:
            p.add_(0.2 * torch.randn_like(p))
        net.latent_codec["hyper"].h_a[0].weight.mul_(4.0)
        # Push the predicted scales up to the latents' spread, so that (as with trained weights) few
        # symbols sit in the far tails where any real coder's finite precision departs from the model.
        for k, g in enumerate(net.groups):
            net.latent_codec["y"].latent_codec[f"y{k}"].entropy_parameters[4].bias[g:].add_(scale_bias)
        eb._update_quantiles()  # quantiles = the density's 1e-9 tails and median, as after training
    net.eval()
    net.update(force=True)
    return net


_RENAMES = [
    (r"latent_codec\.hyper\.(h_a|h_s|entropy_bottleneck)\.(.*)", r"\1.\2"),
    (r"latent_codec\.y\.channel_context\.y(\d)\.(.*)", None),
    (r"latent_codec\.y\.latent_codec\.y(\d)\.context_prediction\.(.*)", r"context_prediction.\1.\2"),
    (r"latent_codec\.y\.latent_codec\.y(\d)\.entropy_parameters\.(.*)", r"ParamAggregation.\1.\2"),
    (r"latent_codec\.y\.latent_codec\.y0\.y\.gaussian_conditional\.(.*)", r"gaussian_conditional.\1"),
]


def chandelier_state_dict(net, eb_names: str = "1.1.5", wrap: bool = False) -> dict:
    """compressai 1.2.8 model -> Chandelier's flat ELIC_*.pth.tar layout (REFERENCE_FACTS.md renaming).

    ``eb_names="1.1.5"`` writes ``entropy_bottleneck._matrix0``..; ``"1.2.8"`` keeps ``matrices.0``.
    """
    out = {}
    for key, value in net.state_dict().items():
        value = value.detach().cpu().numpy().copy()
        new = key
        if key.startswith("latent_codec."):
            new = None
            for pattern, repl in _RENAMES:
                m = re.fullmatch(pattern, key)
                if m and repl is None:
                    new = f"cc_transforms.{int(m[1]) - 1}.{m[2]}"
                elif m:
                    new = m.expand(repl)
                if m:
                    break
            if new is None:
                continue  # per-group copies of the shared Gaussian conditional
        if eb_names == "1.1.5":
            m = re.fullmatch(r"entropy_bottleneck\.(matrices|biases|factors)\.(\d)", new)
            if m:
                new = ("entropy_bottleneck._" + {"matrices": "matrix", "biases": "bias", "factors": "factor"}[m[1]]
                       + m[2])
        out[new] = value
    return {"state_dict": out} if wrap else out


def kodak_crop(data_dir, name: str = "kodim23.png", size: int = 256, top: int = 128, left: int = 256) -> np.ndarray:
    """(1, size, size, 3) float32 in [0, 1] from a Kodak PNG."""
    from PIL import Image

    img = np.asarray(Image.open(data_dir / "kodak" / name).convert("RGB"), dtype=np.float32) / 255.0
    return img[None, top : top + size, left : left + size]
