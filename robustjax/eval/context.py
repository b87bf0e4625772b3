"""What an executor needs to run a job: the config, the devices, one model with its images, the built defenses.

Executors (:mod:`robustjax.eval.grid`, :mod:`robustjax.eval.suite`) share one signature,
``execute(ctx, job) -> [(record, outcome arrays) per defense]``; the runner builds one context per
model and owns everything else (the store, the report).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from robustjax import keys as rkeys
from robustjax.eval import precision as _precision
from robustjax.eval.components import Components
from robustjax.eval.mesh import BatchMesh
from robustjax.eval.plan import Cell
from robustjax.eval.records import fingerprint
from robustjax.eval.scoring import Scoring
from robustjax.eval.store import cell_key


@dataclasses.dataclass
class Context:
    """``f``: the classifier; ``ds``: the evaluated images (the seeded subset); ``resize``: its resize
    policy; ``defenses``: spec -> built Defense (the plan's); ``batch``: the global batch (None: auto)."""

    cfg: object
    comp: Components
    mesh: BatchMesh
    log: Callable
    progress: bool
    defenses: dict
    f: object
    ds: object
    resize: object
    batch: int | None

    @property
    def precision(self) -> str:
        return self.cfg.get("precision", _precision.DEFAULT)

    @property
    def eps(self) -> np.ndarray:
        """Every budget of the grid (float32, 0 included)."""
        return np.asarray(self.cfg.eps, np.float32)

    @property
    def attacked(self) -> np.ndarray:
        """The non-zero budgets, in the grid's order."""
        return self.eps[self.eps > 0]

    def scoring(self, defense: str) -> Scoring:
        """How defense ``defense`` (a spec of the plan) is scored: its draws, fixed randomness or not."""
        cfg = self.cfg
        return Scoring.for_defense(self.defenses[defense], cfg.get("draws"), bool(cfg.get("fixed_randomness", False)))

    @property
    def suite_window(self) -> int:
        """Batches whose standing images a suite cell gathers together (:mod:`robustjax.eval.suite`)."""
        return int(self.cfg.get("suite_window", 4))

    @property
    def save_adversarials(self) -> bool:
        """Whether the cells store their broken images' adversarial examples (:mod:`robustjax.eval.adversarials`)."""
        return bool(self.cfg.get("save_adversarials", False))

    def seed_key(self):
        return rkeys.seed_key(int(self.cfg.seed))

    def settings(self, cell: Cell) -> dict:
        """A cell's settings: what identifies its results (hashed into its store key)."""
        cfg = self.cfg
        s = {
            "dataset": cfg.dataset,
            "n": cfg.n,
            "seed": int(cfg.seed),
            "images": fingerprint(self.ds.ids),
            "model": cell.model,
            "weights": cfg.weights,
            "head": cfg.head,
            "defense": cell.defense,
            "attack": cell.attack.name,
            "hparams": cell.attack.settings(),
            "threat": cell.threat,
            "eps": [float(e) for e in cfg.eps],
        }
        if cell.threat == "eot":
            s["eot_samples"] = int(cfg.eot_samples)
        s.update(_precision.settings(self.precision))  # non-default precisions enter the cell key
        if getattr(self.defenses[cell.defense], "randomised", False):  # how a randomised defense is scored
            s.update(self.scoring(cell.defense).settings())
        return s

    def key(self, cell: Cell) -> str:
        return cell_key(self.settings(cell))
