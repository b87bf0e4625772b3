"""Experiment configurations: ``experiments/<paper>/<table>.py`` files and command-line overrides.

A config file defines ``get_config()`` returning an ``ml_collections.ConfigDict`` (a plain dict
works too) with the keys of :data:`KEYS`. Budgets (``eps``) are in pixel units on [0, 1]
(``4/255``); ``attacks`` entries are names or dicts ``{"name": ..., **hparams}``.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import sys
from fractions import Fraction
from pathlib import Path

import ml_collections

KEYS = {
    "name": "experiment name shown in reports",
    "dataset": "dataset name (robustjax.data.valid_names())",
    "data_dir": "where to read it (default $ROBUSTJAX_DATA/<folder>)",
    "n": "number of images (seeded random subset), None = all",
    "seed": "subset and attack randomness seed",
    "models": "classifier names for robustjax.models.load",
    "weights": "weights path/name for every model (None = each model's default)",
    "head": "output head, e.g. 'imagenette' (10 logits), None = all classes",
    "defenses": "defense spec strings for robustjax.defenses.get",
    "attacks": "attack names or {'name': ..., **hparams} dicts for robustjax.attacks.get",
    "eps": "budgets in pixel units on [0, 1]; 0 = clean accuracy",
    "threats": "threat models: oblivious, through, bpda, eot",
    "eot_samples": "defense draws averaged by the eot threat model",
    "batch_size": "global batch size (rounded up to a multiple of the device count), or 'auto' (per cell, fits memory)",
    "precision": "matmul/convolution arithmetic: float32 (default, the parity reference), tf32 or bf16",
    "out": "results directory (JSON-lines store results.jsonl, report files)",
    "layout": "report layout hint: 'table' (default) or 'sequential'",
    "plugins": "modules to import before validation; they register models, defenses, datasets (docs/extending.md)",
    "skip_unreadable": "leave out image files that cannot be decoded (default False: an error naming them)",
    "draws": "scoring draws of a randomised defense (None: 10; deterministic defenses: 1)",
    "fixed_randomness": "score the attacker's own draw of a randomised defense (the deterministic white-box setting)",
    "save_adversarials": "store the adversarial example of every broken image (out/adversarials; default False)",
    "suite_window": "batches whose standing images the adaptive suite gathers into its calls; each window is "
                    "saved when finished (default 4)",
}

from robustjax.attacks.spec import AttackSpec  # noqa: E402
from robustjax.attacks.threat import THREATS  # noqa: E402  (oblivious, through, bpda, eot)


def quickstart() -> ml_collections.ConfigDict:
    """The no-argument run, sized to finish in about a minute and a half on 2 CPU cores with
    compilation: the pretrained efficientnet_lite0 on foolbox's 20 ImageNet photos, iFGSM-10 at
    4/255, undefended and JPEG q25 under the oblivious, through and BPDA attackers: three compiled
    programs, which show the headline (JPEG holds against the oblivious attacker only).
    ``experiments/quickstart_full.py`` is the larger grid (FGSM, iFGSM and PGD at 2, 4, 8 /255)."""
    return ml_collections.ConfigDict(
        {
            "name": "quickstart",
            "dataset": "foolbox_imagenet",
            "data_dir": None,
            "n": None,
            "seed": 0,
            "models": ["efficientnet_lite0"],
            "weights": None,
            "head": None,
            "defenses": ["none", "jpeg:25"],
            "attacks": ["ifgsm"],
            "eps": [0.0, 4 / 255],
            "threats": ["oblivious", "through", "bpda"],
            "eot_samples": 8,
            "batch_size": 20,
            "precision": "float32",
            "out": "results/quickstart",
            "layout": "table",
            "plugins": [],
            "skip_unreadable": False,
            "draws": None,
            "fixed_randomness": False,
            "save_adversarials": False,
            "suite_window": 4,
        }
    )


def _import(path: Path):
    """The config module at ``path``. A file inside a package (folders holding ``__init__.py``, as
    ``experiments/<paper>/``) is imported under its dotted name with the package's root on
    ``sys.path``, so it can import its siblings (``experiments.common``); returns (module, dotted parts)."""
    parts, root = [path.stem], path.parent
    while (root / "__init__.py").is_file():
        parts.insert(0, root.name)
        root = root.parent
    if len(parts) > 1:
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        return importlib.import_module(".".join(parts)), parts
    spec = importlib.util.spec_from_file_location(f"robustjax_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, parts


def load_file(path: str | Path) -> ml_collections.ConfigDict:
    """Run ``path``'s ``get_config()`` and fill missing keys from :func:`quickstart`'s defaults.

    The default ``name`` is the file's paper folder and stem (``raber2025_table2``)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    module, parts = _import(path)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path} defines no get_config()")
    cfg = module.get_config()
    cfg = dict(cfg.to_dict() if isinstance(cfg, ml_collections.ConfigDict) else cfg)
    unknown = sorted(set(cfg) - set(KEYS))
    if unknown:
        raise ValueError(f"config {path}: unknown keys {unknown}; valid keys: {sorted(KEYS)}")
    base = quickstart().to_dict()
    base.update(cfg)
    if "name" not in cfg:
        base["name"] = "_".join(parts[-2:]) if len(parts) > 2 else path.stem
    return ml_collections.ConfigDict(base)


def parse_eps(text: str) -> list[float]:
    """``"0,2/255,4/255"`` or ``"0,0.0157"`` -> floats in pixel units."""
    out = []
    for tok in str(text).split(","):
        tok = tok.strip()
        if not tok:
            continue
        try:
            out.append(float(Fraction(tok)) if "/" in tok else float(tok))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"bad eps value {tok!r}: use a number in pixel units (0.0314) or a fraction (8/255)") \
                from None
    return out


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _attack(text: str):
    """``ifgsm`` or ``pgd:steps=20:alpha=0.001`` -> name or {name, **hparams} (config-file form)."""
    return AttackSpec.parse(text).entry()


def _batch_size(text: str):
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch size must be a positive integer or 'auto', got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="experiment file defining get_config() (default: the quick-start)")
    p.add_argument("--dataset", help="dataset name")
    p.add_argument("--data-dir", help="dataset location")
    p.add_argument("--model", help="comma-separated classifier names")
    p.add_argument("--weights", help="weights for the model(s)")
    p.add_argument("--head", help="output head (e.g. imagenette); 'none' for all classes")
    p.add_argument("--defense", help="comma-separated defense specs (e.g. none,jpeg:25,seq:3:jpeg:25)")
    p.add_argument("--attack", help="comma-separated attacks, options as NAME:key=value (e.g. pgd:steps=20)")
    p.add_argument("--eps", help="comma-separated budgets, e.g. 0,2/255,4/255")
    p.add_argument("--threat", help=f"comma-separated threat models ({', '.join(THREATS)})")
    p.add_argument("--n", type=int, help="number of images (seeded subset); 0 = all")
    p.add_argument("--seed", type=int, help="seed for the subset and the attacks")
    p.add_argument("--batch-size", type=_batch_size,
                   help="global batch size, or 'auto': the largest that fits the device memory, per cell")
    p.add_argument("--precision", choices=("float32", "tf32", "bf16"),
                   help="matmul/convolution arithmetic on GPU/TPU (default float32; bf16 also computes the classifier "
                   "in bfloat16)")
    p.add_argument("--out", help="results directory")
    p.add_argument("--plugin", action="append", metavar="MODULE",
                   help="import MODULE first (repeatable; added to the config's plugins): it registers models, "
                   "defenses or datasets (docs/extending.md)")
    p.add_argument("--skip-unreadable", action="store_true", default=None,
                   help="leave out image files that cannot be decoded (listed in the results) instead of failing")
    p.add_argument("--draws", type=int,
                   help="score a randomised defense over this many independent draws (default 10): an image counts "
                   "as robust only if every draw classifies it correctly")
    p.add_argument("--fixed-randomness", action="store_true", default=None,
                   help="score the attacker's own draw of a randomised defense (deterministic white-box), one draw")
    p.add_argument("--save-adversarials", action="store_true", default=None,
                   help="store each broken image's adversarial example, uint8, in OUT/adversarials (for "
                   "`gallery --out OUT`); finished cells without them are recomputed")


def from_args(args: argparse.Namespace) -> ml_collections.ConfigDict:
    """The config file (or the quick-start) with the command line's overrides applied."""
    cfg = load_file(args.config) if args.config else quickstart()
    cfg = ml_collections.ConfigDict(copy.deepcopy(cfg.to_dict()))
    grid = ("dataset", "data_dir", "model", "weights", "head", "defense", "attack", "eps", "threat", "n", "seed")
    overridden = any(getattr(args, k, None) is not None for k in grid)
    if not args.config and overridden:
        cfg.name = "custom"
    if args.dataset is not None:
        cfg.dataset = args.dataset
    if args.data_dir is not None:
        cfg.data_dir = args.data_dir
    if args.model is not None:
        cfg.models = _split(args.model)
    if args.weights is not None:
        cfg.weights = args.weights
    if args.head is not None:
        cfg.head = None if args.head.lower() == "none" else args.head
    if args.defense is not None:
        cfg.defenses = _split(args.defense)
    if args.attack is not None:
        cfg.attacks = [_attack(a) for a in _split(args.attack)]
    if args.eps is not None:
        cfg.eps = parse_eps(args.eps)
    if args.threat is not None:
        cfg.threats = _split(args.threat)
    if args.n is not None:
        cfg.n = None if args.n == 0 else args.n
    if args.seed is not None:
        cfg.seed = args.seed
    if args.batch_size is not None:
        cfg = replace(cfg, batch_size=args.batch_size)  # int or "auto": a new dict, the type may change
    if getattr(args, "precision", None) is not None:
        cfg.precision = args.precision
    if args.out is not None:
        cfg.out = args.out
    if getattr(args, "plugin", None):
        cfg = replace(cfg, plugins=list(dict.fromkeys([*cfg.get("plugins", []), *args.plugin])))
    if getattr(args, "skip_unreadable", None) is not None:
        cfg = replace(cfg, skip_unreadable=args.skip_unreadable)
    if getattr(args, "draws", None) is not None:
        cfg = replace(cfg, draws=args.draws)
    if getattr(args, "fixed_randomness", None) is not None:
        cfg = replace(cfg, fixed_randomness=args.fixed_randomness)
    if getattr(args, "save_adversarials", None) is not None:
        cfg = replace(cfg, save_adversarials=args.save_adversarials)
    return cfg


def replace(cfg, **changes) -> ml_collections.ConfigDict:
    """A copy of ``cfg`` with ``changes``, whose types may differ from the old values' (a type-safe
    ConfigDict refuses ``batch_size = "auto"`` over an int)."""
    d = copy.deepcopy(cfg.to_dict() if isinstance(cfg, ml_collections.ConfigDict) else dict(cfg))
    d.update(changes)
    return ml_collections.ConfigDict(d)


def attack_entry(a) -> tuple[str, dict]:
    """A config ``attacks`` entry -> (name, hparams)."""
    spec = AttackSpec.from_entry(a)
    return spec.name, spec.kwargs


def check_shape(cfg) -> None:
    """ValueError for a malformed config (types, empty lists, bad eps), before any I/O."""
    for key in ("models", "defenses", "attacks", "eps", "threats"):
        v = cfg.get(key)
        if not v or isinstance(v, str):
            raise ValueError(f"config key {key!r} must be a non-empty list, got {v!r}")
    bad = [e for e in cfg.eps if not isinstance(e, int | float) or not 0 <= float(e)]
    if bad:
        raise ValueError(f"eps values must be non-negative numbers (pixel units on [0, 1], e.g. 8/255), got {bad}")
    unknown = [t for t in cfg.threats if t not in THREATS]
    if unknown:
        raise ValueError(f"unknown threat model(s) {unknown}; valid: {', '.join(THREATS)}")
    bs = cfg.batch_size
    if bs != "auto" and (not isinstance(bs, int) or isinstance(bs, bool) or bs < 1):
        raise ValueError(f"batch_size must be a positive integer or 'auto', got {cfg.batch_size!r}")
    from robustjax.eval.precision import check as check_precision

    check_precision(cfg.get("precision", "float32"))
    if cfg.n is not None and (not isinstance(cfg.n, int) or cfg.n < 1):
        raise ValueError(f"n must be a positive integer or None (all images), got {cfg.n!r}")
    if not cfg.get("out"):
        raise ValueError("config key 'out' (results directory) is empty")
    for a in cfg.attacks:
        attack_entry(a)
    plugins = cfg.get("plugins", [])
    if isinstance(plugins, str) or not all(isinstance(m, str) and m for m in plugins or []):
        raise ValueError(f"plugins must be a list of module names, got {plugins!r}")
    from robustjax.eval.scoring import check as check_scoring

    check_scoring(cfg.get("draws"), cfg.get("fixed_randomness", False))
    if not isinstance(cfg.get("skip_unreadable", False), bool):
        raise ValueError(f"skip_unreadable must be True or False, got {cfg.get('skip_unreadable')!r}")
    if not isinstance(cfg.get("save_adversarials", False), bool):
        raise ValueError(f"save_adversarials must be True or False, got {cfg.get('save_adversarials')!r}")
    window = cfg.get("suite_window", 4)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"suite_window must be a positive integer (batches), got {window!r}")
