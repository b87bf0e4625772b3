"""HiFiC's published checkpoints: the key map onto the network and loading (converted on first use).

Published checkpoints (Justin-Tan/high-fidelity-generative-compression, README links, ~2 GB each) are
``torch.save`` dicts: ``model_state_dict`` (``Encoder.*``, ``Generator.*``, ``Hyperprior.*`` and, from
GAN training, ``Discriminator.*``), ``args`` (the training settings: ``n_residual_blocks``,
``likelihood_type``, ``normalize_input_image``, ``latent_channels``, ...), ``discriminator_state_dict``,
the optimizer states and counters. The architecture is read from ``args`` (never guessed from the
file name); the discriminator and optimizer entries are skipped by name and listed in the converted
metadata; any other unknown entry fails the conversion, naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from flax import nnx

from robustjax import checkpoints, hub
from robustjax.defenses.hific.net import LIKELIHOODS, HiFiC
from robustjax.porting import CheckpointMismatchError, Ignore, Rule, conv_kernel, conv_transpose_kernel, load_into
from robustjax.torch_reader import read_torch

VARIANTS = ("low", "med", "hi")
STRIDE = 16
SOURCE_URL = "https://github.com/Justin-Tan/high-fidelity-generative-compression (checkpoint links in its README)"


def published_name(variant: str) -> str:
    return f"hific_{variant}.pt"


def _norm(src, dst):
    """ChannelNorm ``gamma`` / ``beta`` (1, C, 1, 1) -> (C,)."""
    flat = lambda a: np.asarray(a).reshape(-1)  # noqa: E731
    return [Rule(src + r"\.gamma", dst + ".gamma", flat), Rule(src + r"\.beta", dst + ".beta", flat)]


def _conv(src, dst, transform=conv_kernel):
    return [Rule(src + r"\.weight", dst + ".kernel", transform), Rule(src + r"\.bias", dst + ".bias")]


# ---------------------------------------------------------------------------------------------
# Key map: published model_state_dict names -> HiFiC module paths
# ---------------------------------------------------------------------------------------------
RULES = [
    # Encoder: conv_block1 = [pad, conv, norm, relu], conv_block2..5 = [asym pad, conv, norm, relu], out = [pad, conv]
    *_conv(r"Encoder\.(conv_block\d)\.1", r"Encoder.\1.conv"),
    *_norm(r"Encoder\.(conv_block\d)\.2", r"Encoder.\1.norm"),
    *_conv(r"Encoder\.conv_block_out\.1", "Encoder.conv_block_out.conv"),
    # Generator: conv_block_init = [norm, pad, conv, norm]
    *_norm(r"Generator\.conv_block_init\.0", "Generator.norm_in"),
    *_conv(r"Generator\.conv_block_init\.2", "Generator.conv_block_init.conv"),
    *_norm(r"Generator\.conv_block_init\.3", "Generator.conv_block_init.norm"),
    *_conv(r"Generator\.resblock_(\d+)\.(conv[12])", r"Generator.resblocks.\1.\2"),
    *_norm(r"Generator\.resblock_(\d+)\.(norm[12])", r"Generator.resblocks.\1.\2"),
    *_conv(r"Generator\.(upconv_block\d)\.0", r"Generator.\1.conv", conv_transpose_kernel),
    *_norm(r"Generator\.(upconv_block\d)\.1", r"Generator.\1.norm"),
    *_conv(r"Generator\.conv_block_out\.1", "Generator.conv_block_out.conv"),
    # Hyperprior
    *_conv(r"Hyperprior\.analysis_net\.(conv\d)", r"Hyperprior.analysis_net.\1"),
    *_conv(r"Hyperprior\.(synthesis_mu|synthesis_std)\.(conv\d)", r"Hyperprior.\1.\2", conv_transpose_kernel),
    Rule(r"Hyperprior\.hyperlatent_likelihood\.([Hab])_(\d)", r"Hyperprior.hyperlatent_likelihood.\1.\2"),
    # GAN training state, not part of the codec
    Ignore(r"Discriminator\..*"),
    # entropy-coder tables of a model saved in evaluation mode (rebuilt by HiFiCCodec), and the
    # copy of the hyper-latent density the coder holds
    Ignore(r"Hyperprior\.(hyperprior_entropy_model|prior_entropy_model|prior_density)\..*"),
]

# Top-level entries of the published .pt besides model_state_dict and args: skipped, named in the metadata.
TRAINING_ENTRIES = ("discriminator_state_dict", "compression_optimizer_state_dict", "hyperprior_optimizer_state_dict",
                    "discriminator_optimizer_state_dict", "epoch", "steps")


class NotHificCheckpointError(CheckpointMismatchError):
    """The file / dict is not a HiFiC checkpoint in the published layout."""

    def __init__(self, why: str):
        ValueError.__init__(
            self,
            f"not a HiFiC checkpoint: {why}. Expected the published hific_{{low,med,hi}}.pt layout: a dict with "
            "'model_state_dict' (Encoder.*, Generator.*, Hyperprior.*) and 'args' (n_residual_blocks, "
            "likelihood_type, normalize_input_image, ...), as saved by the reference's train.py; files from "
            + SOURCE_URL)
        self.unmapped, self.missing, self.shape_mismatch = [], [], []


def config_from_args(args: dict) -> dict:
    """Architecture config from a checkpoint's ``args``: C, residual blocks, likelihood, input normalisation."""
    if not isinstance(args, dict):
        raise NotHificCheckpointError(f"'args' is a {type(args).__name__}, not a dict")
    missing = [k for k in ("n_residual_blocks", "likelihood_type") if k not in args]
    if missing:
        raise NotHificCheckpointError(f"'args' lacks {', '.join(missing)}")
    if args.get("use_latent_mixture_model"):
        raise NotHificCheckpointError("args.use_latent_mixture_model is set (the DLMM hyperprior is not ported)")
    if args.get("sample_noise"):
        raise NotHificCheckpointError("args.sample_noise is set (the noise-injecting generator is not ported)")
    if not args.get("use_channel_norm", True):
        raise NotHificCheckpointError("args.use_channel_norm is False (instance-norm models are not ported)")
    lik = str(args["likelihood_type"])
    if lik not in LIKELIHOODS:
        raise NotHificCheckpointError(f"args.likelihood_type = {lik!r}; expected one of {', '.join(LIKELIHOODS)}")
    return {"C": int(args.get("latent_channels", 220)), "n_residual_blocks": int(args["n_residual_blocks"]),
            "likelihood": lik, "normalize_input_image": bool(args.get("normalize_input_image", False))}


def split_checkpoint(ckpt) -> tuple[dict, dict, list[str]]:
    """Published checkpoint dict -> (flat state dict, architecture config, skipped top-level entries)."""
    if not isinstance(ckpt, dict):
        raise NotHificCheckpointError(f"the file holds a {type(ckpt).__name__}, not a dict")
    for key in ("model_state_dict", "args"):
        if key not in ckpt:
            raise NotHificCheckpointError(f"no {key!r} entry (top-level keys: {', '.join(sorted(map(str, ckpt)))})")
    unknown = [k for k in ckpt if k not in ("model_state_dict", "args") + TRAINING_ENTRIES]
    if unknown:
        entries = "entry" if len(unknown) == 1 else "entries"
        raise NotHificCheckpointError(f"unknown top-level {entries} {', '.join(map(str, unknown))}")
    sd = ckpt["model_state_dict"]
    if not isinstance(sd, dict) or not sd:
        raise NotHificCheckpointError("'model_state_dict' is empty or not a dict")
    flat = {}
    for k, v in sd.items():
        k = k[len("module."):] if k.startswith("module.") else k
        flat[k] = np.asarray(v)
    if "Encoder.conv_block1.1.weight" not in flat:
        raise NotHificCheckpointError("'model_state_dict' has no Encoder.conv_block1.1.weight")
    config = config_from_args(ckpt["args"])
    return flat, config, [k for k in TRAINING_ENTRIES if k in ckpt]


def create(C: int = 220, n_residual_blocks: int = 9, likelihood: str = "gaussian", normalize_input_image: bool = False,
           variant: str | None = None, rngs: nnx.Rngs | None = None) -> HiFiC:
    """Random-weight HiFiC (``variant`` is a label, metadata only). Slow on CPU (eager init of ~150M parameters)."""
    return HiFiC(C, n_residual_blocks, likelihood, normalize_input_image, rngs=rngs or nnx.Rngs(0))


def abstract(C: int = 220, n_residual_blocks: int = 9, likelihood: str = "gaussian",
             normalize_input_image: bool = False, variant: str | None = None) -> HiFiC:
    """HiFiC with shape-only variables, to be filled by a checkpoint (``load_into`` / orbax restore)."""
    return nnx.eval_shape(lambda: HiFiC(C, n_residual_blocks, likelihood, normalize_input_image, rngs=nnx.Rngs(0)))


def rules(**_config) -> list:
    return RULES


def read_checkpoint(path) -> tuple[dict, dict, dict]:
    """Published ``.pt`` -> (flat state dict, config from its ``args``, extra metadata naming the skipped entries).

    Restricted torch reader: no code in the file is executed.
    """
    flat, config, skipped = split_checkpoint(read_torch(path))
    return flat, config, {"ignored_source_entries": skipped}


def read(path) -> dict[str, np.ndarray]:
    """Published ``.pt`` -> flat model state dict (the config is in ``read_checkpoint``)."""
    return read_checkpoint(path)[0]


checkpoints.register_family(checkpoints.Family(
    "hific", abstract, rules, read=read, read_config=read_checkpoint,
    preprocessing={"input": "RGB [0,1] NHWC, any H, W (reflect-padded to a multiple of 16, cropped back)"},
))


def load_state_dict(ckpt: dict, variant: str | None = None) -> tuple[HiFiC, dict]:
    """Build HiFiC from an in-memory checkpoint dict in the published layout; strict key map.

    Returns ``(model, info)`` with ``info = {"config", "ignored_source_keys", "ignored_source_entries"}``.
    """
    flat, config, skipped = split_checkpoint(ckpt)
    model = abstract(**config)
    ignored = load_into(model, flat, RULES, context=f"HiFiC {config}")
    return model, {"config": config, "ignored_source_keys": sorted(ignored), "ignored_source_entries": skipped}


class MissingCheckpointError(FileNotFoundError, ValueError):
    pass


def load(variant: str = "low", weights: str | os.PathLike | None = None) -> tuple[HiFiC, dict]:
    """HiFiC ``variant`` from ``weights`` (published ``.pt`` or converted folder) or, when None, the published
    file (:mod:`robustjax.hub`: ``ROBUSTJAX_WEIGHTS/hific/``, else downloaded once from Zenodo, about 2 GB)."""
    if weights is None:
        try:
            path = hub.path(f"hific:{variant}")
        except hub.MissingWeightsError as e:
            raise MissingCheckpointError(
                f"HiFiC {variant} checkpoint: {e}; or convert it once with `python -m checkpoints_convert hific "
                f"{published_name(variant)} DST` and pass hific:{variant}:weights=DST") from e
    else:
        path = Path(weights)
        if not path.exists():
            raise MissingCheckpointError(f"HiFiC weights {path} do not exist (a published .pt or a converted folder)")
    return checkpoints.load_family("hific", path, {})


# ---------------------------------------------------------------------------------------------
# Forward with rate, the defense
# ---------------------------------------------------------------------------------------------
