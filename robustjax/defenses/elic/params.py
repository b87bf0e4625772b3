"""ELIC's published checkpoints: the key map onto the network and loading (converted on first use).

Published checkpoints (``ELIC_{0004,0008,0016,0032,0150,0450}_ft_3980_Plateau.pth.tar``,
VincentChandelier/ELiC-ReImplemetation) are flat state dicts in compressai 1.1.5 naming
(``entropy_bottleneck._matrix0``); compressai 1.2.8 names (``matrices.0``), an optional
``state_dict`` wrapper and compressai 1.2.8's own ``Elic2022Chandelier`` layout
(``latent_codec.hyper.*``) are accepted too (``chandelier_flat``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from robustjax import checkpoints, hub
from robustjax.defenses.elic.net import GROUPS, Elic, checkerboard_kernel_mask
from robustjax.porting import CheckpointMismatchError, Ignore, Rule, conv_kernel, conv_transpose_kernel
from robustjax.torch_reader import read_torch, state_dict_of

QUALITIES = ("0004", "0008", "0016", "0032", "0150", "0450")
STRIDE = 64
POLICIES = ("resize", "pad", "exact")
SOURCE_URL = "https://github.com/VincentChandelier/ELiC-ReImplemetation (checkpoint links in its README)"


def published_name(quality: str) -> str:
    return f"ELIC_{quality}_ft_3980_Plateau.pth.tar"


# ---------------------------------------------------------------------------------------------
# Key map: Chandelier's flat names -> Elic module paths
# ---------------------------------------------------------------------------------------------
RULES = [
    # transposed convolutions (g_s.1/5/10/14, h_s.0/2)
    Rule(r"(g_s)\.(1|5|10|14)\.weight", r"\1.layers.\2.kernel", conv_transpose_kernel),
    Rule(r"(g_s)\.(1|5|10|14)\.bias", r"\1.layers.\2.bias"),
    Rule(r"(h_s)\.(0|2)\.weight", r"\1.layers.\2.kernel", conv_transpose_kernel),
    Rule(r"(h_s)\.(0|2)\.bias", r"\1.layers.\2.bias"),
    # plain convolutions of g_a / g_s / h_a / h_s
    Rule(r"(g_a|g_s|h_a|h_s)\.(\d+)\.weight", r"\1.layers.\2.kernel", conv_kernel),
    Rule(r"(g_a|g_s|h_a|h_s)\.(\d+)\.bias", r"\1.layers.\2.bias"),
    # residual bottleneck blocks
    Rule(r"(g_a|g_s)\.(\d+)\.(conv\d)\.weight", r"\1.layers.\2.\3.kernel", conv_kernel),
    Rule(r"(g_a|g_s)\.(\d+)\.(conv\d)\.bias", r"\1.layers.\2.\3.bias"),
    # attention blocks: residual units conv_{a,b}.{0,1,2}.conv.{0,2,4}, and conv_b.3
    Rule(r"(g_a|g_s)\.(\d+)\.(conv_[ab])\.(\d)\.conv\.(\d)\.weight", r"\1.layers.\2.\3.layers.\4.conv.layers.\5.kernel",
         conv_kernel),
    Rule(r"(g_a|g_s)\.(\d+)\.(conv_[ab])\.(\d)\.conv\.(\d)\.bias", r"\1.layers.\2.\3.layers.\4.conv.layers.\5.bias"),
    Rule(r"(g_a|g_s)\.(\d+)\.conv_b\.3\.weight", r"\1.layers.\2.conv_b.layers.3.kernel", conv_kernel),
    Rule(r"(g_a|g_s)\.(\d+)\.conv_b\.3\.bias", r"\1.layers.\2.conv_b.layers.3.bias"),
    # channel context (g_ch), spatial context (checkerboard), parameter aggregation
    Rule(r"cc_transforms\.(\d)\.(\d)\.weight", r"cc_transforms.\1.layers.\2.kernel", conv_kernel),
    Rule(r"cc_transforms\.(\d)\.(\d)\.bias", r"cc_transforms.\1.layers.\2.bias"),
    Rule(r"context_prediction\.(\d)\.weight", r"context_prediction.\1.conv.kernel", conv_kernel),
    Rule(r"context_prediction\.(\d)\.bias", r"context_prediction.\1.conv.bias"),
    Ignore(r"context_prediction\.\d\.mask"),  # checked against the checkerboard in chandelier_flat
    Rule(r"ParamAggregation\.(\d)\.(\d)\.weight", r"ParamAggregation.\1.layers.\2.kernel", conv_kernel),
    Rule(r"ParamAggregation\.(\d)\.(\d)\.bias", r"ParamAggregation.\1.layers.\2.bias"),
    # factorized prior of z
    Rule(r"entropy_bottleneck\.(matrices|biases|factors)\.(\d)", r"entropy_bottleneck.\1.\2"),
    Rule(r"entropy_bottleneck\.quantiles", "entropy_bottleneck.quantiles"),
    # entropy-coder tables and constant buffers: not parameters of the forward
    Ignore(r"entropy_bottleneck\.(_offset|_quantized_cdf|_cdf_length|target|likelihood_lower_bound\.bound)"),
    Ignore(r"gaussian_conditional\..*"),
]

_LEGACY_EB = {"_matrix": "matrices", "_bias": "biases", "_factor": "factors"}
_COMPRESSAI_128 = [
    (r"latent_codec\.hyper\.(h_a|h_s|entropy_bottleneck)\.(.*)", lambda m: f"{m[1]}.{m[2]}"),
    (r"latent_codec\.y\.channel_context\.y(\d)\.(.*)", lambda m: f"cc_transforms.{int(m[1]) - 1}.{m[2]}"),
    (r"latent_codec\.y\.latent_codec\.y(\d)\.context_prediction\.(.*)", lambda m: f"context_prediction.{m[1]}.{m[2]}"),
    (r"latent_codec\.y\.latent_codec\.y(\d)\.entropy_parameters\.(.*)", lambda m: f"ParamAggregation.{m[1]}.{m[2]}"),
    (r"latent_codec\.y\.latent_codec\.y0\.y\.gaussian_conditional\.(.*)", lambda m: f"gaussian_conditional.{m[1]}"),
    (r"latent_codec\.y\.latent_codec\.y[1-9]\.y\.gaussian_conditional\..*", None),  # copies of y0's
]


class NotElicCheckpointError(CheckpointMismatchError):
    """The state dict is not an ELIC (Chandelier / compressai Elic2022Chandelier) checkpoint."""

    def __init__(self, why: str, keys):
        sample = ", ".join(sorted(keys)[:8])
        ValueError.__init__(
            self,
            f"not an ELIC checkpoint: {why} (first keys: {sample}). Expected Chandelier's "
            f"{published_name('Q')} flat state dict (keys g_a.0.weight, cc_transforms.0.0.weight, "
            "context_prediction.0.weight, ParamAggregation.0.0.weight, entropy_bottleneck.*) or a compressai 1.2.8 "
            "Elic2022Chandelier state_dict(); published files come from " + SOURCE_URL)
        self.unmapped, self.missing, self.shape_mismatch = [], [], []


def chandelier_flat(sd) -> dict[str, np.ndarray]:
    """Any accepted ELIC state dict (see module docstring) -> Chandelier's flat names, compressai 1.2.8 EB names.

    Also unwraps ``{'state_dict': ...}`` and checks any stored checkerboard masks.
    """
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not sd:
        raise NotElicCheckpointError(f"expected a non-empty dict of arrays, got {type(sd).__name__}", [])
    sd = {k[len("module."):] if k.startswith("module.") else k: np.asarray(v) for k, v in sd.items()}
    out = {}
    for key, value in sd.items():
        for pattern, rename in _COMPRESSAI_128:
            m = re.fullmatch(pattern, key)
            if m:
                key = rename(m) if rename else None
                break
        if key is None:
            continue
        m = re.fullmatch(r"entropy_bottleneck\.(_matrix|_bias|_factor)(\d)", key)
        if m:
            key = f"entropy_bottleneck.{_LEGACY_EB[m[1]]}.{m[2]}"
        out[key] = value
    if "g_a.0.weight" not in out or "cc_transforms.0.0.weight" not in out:
        raise NotElicCheckpointError("no g_a.0.weight / cc_transforms.0.0.weight", sd.keys())
    want = checkerboard_kernel_mask(5)[:, :, 0, 0]
    for k, v in out.items():
        if k.endswith(".mask") and v.ndim == 4 and not np.array_equal(v[0, 0], want):
            raise NotElicCheckpointError(f"{k} is not the checkerboard mask (1 where i+j is odd)", sd.keys())
    return out


def config_of(flat: dict) -> dict:
    """Architecture config (N, M) read off a flat state dict's shapes."""
    return {"N": int(flat["g_a.0.weight"].shape[0]), "M": int(flat["h_a.0.weight"].shape[1])}


def create(N: int = 192, M: int = 320, quality: str | None = None, rngs: nnx.Rngs | None = None) -> Elic:
    """Random-weight ELIC (``quality`` is the lambda label, metadata only). Slow on CPU (~1 min, eager init)."""
    return Elic(N, M, _groups_for(M), rngs=rngs)


def abstract(N: int = 192, M: int = 320, quality: str | None = None) -> Elic:
    """ELIC with shape-only variables, to be filled by a checkpoint (``load_into`` / orbax restore); seconds."""
    return nnx.eval_shape(lambda: Elic(N, M, _groups_for(M), rngs=nnx.Rngs(0)))


def random_fast(N: int = 192, M: int = 320, seed: int = 0) -> Elic:
    """ELIC with He-scaled random weights drawn by NumPy (seconds, unlike ``create``); for benchmarks."""
    model = abstract(N, M)
    rng = np.random.default_rng(seed)
    _, state = nnx.split(model)
    for path, var in nnx.to_flat_state(state):
        shape, name = var.get_value().shape, str(path[-1])
        if name == "kernel":
            fan_in = int(np.prod(shape[:-1]))
            value = rng.standard_normal(shape, np.float32) * np.float32(np.sqrt(1.0 / fan_in))
        elif name == "quantiles":
            value = np.tile(np.asarray([-10.0, 0.0, 10.0], np.float32), (shape[0], 1, 1))
        else:
            value = rng.uniform(-0.1, 0.1, shape).astype(np.float32)
        var.set_value(jnp.asarray(value))
    return model


def _groups_for(M: int):
    return GROUPS if M == 320 else (16, 16, 32, 64, M - 128)


def rules(**_config) -> list:
    return RULES


def read(path) -> dict[str, np.ndarray]:
    """Published file -> Chandelier flat dict, via the restricted torch reader (no code execution)."""
    return chandelier_flat(state_dict_of(read_torch(path)))


checkpoints.register_family(checkpoints.Family("elic", abstract, rules, read=read,
                                               preprocessing={"input": "RGB [0,1] NHWC, H and W multiples of 64"}))


def load_state_dict(sd, quality: str | None = None) -> Elic:
    """Build ELIC from an in-memory state dict (any accepted layout); strict key map."""
    from robustjax.porting import load_into

    flat = chandelier_flat(sd)
    model = abstract(**config_of(flat), quality=quality)
    load_into(model, flat, RULES, context="ELIC")
    return model


class MissingCheckpointError(FileNotFoundError, ValueError):
    pass


def _quality_from_name(path: Path) -> str | None:
    m = re.search(r"ELIC_(\d{4})", path.name)
    return m[1] if m else None


def load(quality: str = "0016", weights: str | os.PathLike | None = None) -> tuple[Elic, dict]:
    """ELIC at ``quality`` from ``weights`` (published file or converted folder) or, when None, the published
    file (:mod:`robustjax.hub`: ``ROBUSTJAX_WEIGHTS/elic/``, else the download cache; Google Drive needs a browser)."""
    if weights is None:
        try:
            path = hub.path(f"elic:{quality}")
        except hub.MissingWeightsError as e:
            raise MissingCheckpointError(
                f"ELIC {quality} checkpoint: {e}; or convert it once with `python -m checkpoints_convert elic "
                f"{published_name(quality)} DST --set quality={quality}` and pass elic:{quality}:weights=DST "
                f"(files from {SOURCE_URL})") from e
    else:
        path = Path(weights)
        if not path.exists():
            raise MissingCheckpointError(
                f"ELIC weights {path} do not exist (a published .pth.tar or a converted folder)")
    return checkpoints.load_family("elic", path, {"quality": quality})


# ---------------------------------------------------------------------------------------------
# Forward with rate, size policies, the defense
# ---------------------------------------------------------------------------------------------
