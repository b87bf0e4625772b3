"""Das et al. 2017's ensemble as one model: N classifiers vote on the image JPEG-compressed at Q qualities.

With the nine vaccinated models M100..M20 and the qualities 100..20 that is 81 votes; the label with
the most votes wins. The whole ensemble is one compiled program: the members' parameters are
stacked on a leading axis and mapped over (``lax.map``: one traced member body, run per member),
the Q JPEGs (libjpeg-exact, ``rounding="exact"``) are computed once per batch as one call over
``Q * N`` images, and every member reads all of them. ``lax.map`` rather than ``vmap``: a vmap over
convolution kernels becomes one grouped convolution, which XLA:CPU runs about 8x slower than the
members one after the other (experiments/README.md, Das et al. 2017 section).

:class:`Ensemble` behaves like a :class:`robustjax.models.Classifier` for the evaluation runner
(``input_size``, ``num_classes``, ``preprocessing``, ``graphdef``/``state``): ``ens(x)`` returns the
vote counts ``(N, K)`` (float; ``argmax`` is the majority vote, ties going to the lowest class
index), which carry no gradient. What an attacker differentiates is chosen by the threat model
(:meth:`Ensemble.attacker_model`, read by ``robustjax.attacks.threat.attacker_view``):

- ``oblivious``: the base model ``M`` alone: Das et al. 2017's own threat model (adversarial
  examples made on ``M``, scored on the ensemble); needs a base;
- ``through`` / ``eot``: the mean of the ``N * Q`` members' logits with the JPEGs' cubic surrogate
  (``rounding="cubic"``; Shin & Song 2017) in the backward pass;
- ``bpda``: the same mean logits with the JPEGs exact forward and identity backward (Athalye,
  Carlini & Wagner 2018).

As a model spec: ``ensemble:CHAIN`` (a ``python -m robustjax.train vaccinate`` folder: its models,
its qualities, its base as ``M``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from robustjax.checks import check_images
from robustjax.defenses.jpeg import jpeg
from robustjax.models import zoo

PREFIX = "ensemble:"
TRACES = {"members": 0}  # how often the mapped member body was traced (tests: once per shape)


def is_spec(name) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


class Ensemble:
    """Majority vote of ``members`` (classifiers of one architecture) over ``qualities``.

    ``members``: :class:`robustjax.models.Classifier` objects with identical graph definitions (a
    ValueError naming the first mismatch otherwise); ``qualities``: JPEG qualities in 1..100;
    ``base``: the classifier ``M`` the paper's attacker targets (optional, needed for ``oblivious``).
    Images: float ``(N, S, S, 3)`` in [0, 1].
    """

    def __init__(self, members: Sequence, qualities: Sequence[int], base=None, name: str = "ensemble"):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        qualities = [int(q) for q in qualities]
        if not qualities or any(not 1 <= q <= 100 for q in qualities):
            raise ValueError(f"ensemble JPEG qualities must lie in 1..100, got {qualities}")
        first = members[0]
        for i, m in enumerate(members[1:], 1):
            if m.graphdef != first.graphdef or m.num_classes != first.num_classes or m.input_size != first.input_size:
                raise ValueError(f"ensemble members must share one architecture: member {i} ({m.name}, "
                                 f"{m.metadata.get('family')} {m.metadata.get('config')}) differs from member 0 "
                                 f"({first.name}, {first.metadata.get('family')} {first.metadata.get('config')})")
            if any(h is not None for h in (m.head, first.head)):
                raise ValueError("ensemble members must not select a head")
        if base is not None and (base.num_classes != first.num_classes or base.input_size != first.input_size):
            raise ValueError(f"the base model {base.name} does not take the members' inputs / classes")
        self.name, self.qualities, self.base = name, tuple(qualities), base
        self.member_graphdef = first.graphdef
        self.graphdef = first.graphdef  # the runner passes `state` as an argument when a model has both
        self.state = {"members": jax.tree.map(lambda *a: jnp.stack(a), *[m.state for m in members]),
                      "base": None if base is None else base.state}
        self.input_size, self.num_classes = first.input_size, first.num_classes
        self.label_names, self.preprocessing = first.label_names, dict(first.preprocessing)
        self.n_members = len(members)
        self.metadata = {"ensemble": {"members": [m.metadata.get("source_dir", m.name) for m in members],
                                      "qualities": list(self.qualities), "base": None if base is None else base.name}}

    @property
    def votes_per_image(self) -> int:
        return self.n_members * len(self.qualities)

    def _check(self, x):
        check_images(x, "images", channels=(3,))
        if tuple(x.shape[1:3]) != (self.input_size, self.input_size):
            raise ValueError(f"{self.name} takes {self.input_size}x{self.input_size} images, got {tuple(x.shape[1:3])}")

    def _compressed(self, x, rounding: str):
        """The Q JPEGs of ``x`` as one ``(Q * N, S, S, 3)`` batch (quality-major)."""
        n, q = x.shape[0], jnp.asarray(self.qualities, jnp.float32)
        tiled = jnp.broadcast_to(x[None], (len(self.qualities), *x.shape)).reshape(-1, *x.shape[1:])
        quality = jnp.repeat(q, n)
        if rounding == "bpda":
            exact = jpeg(tiled, quality, rounding="exact")
            return tiled + jax.lax.stop_gradient(exact - tiled)
        return jpeg(tiled, quality, rounding=rounding)

    def member_logits(self, x, rounding: str = "exact"):
        """``(M, Q, N, K)`` logits of every member on every JPEG; ``rounding``: exact | cubic | bpda."""
        self._check(x)
        xq = self._compressed(x, rounding)
        graphdef = self.member_graphdef

        def one(state):
            TRACES["members"] += 1
            return nnx.merge(graphdef, state)(xq)

        logits = jax.lax.map(one, self.state["members"])  # (M, Q*N, K); see the module docstring
        return logits.reshape(self.n_members, len(self.qualities), x.shape[0], -1)

    def votes(self, x):
        """``(N, K)`` vote counts (float32) of the ``M * Q`` members."""
        logits = jax.lax.stop_gradient(self.member_logits(x, "exact"))
        return jax.nn.one_hot(jnp.argmax(logits, -1), self.num_classes, dtype=jnp.float32).sum(axis=(0, 1))

    def __call__(self, x):
        return self.votes(x)

    def mean_logits(self, x, gradient: str = "through"):
        """Mean member logits ``(N, K)``; ``gradient``: ``through`` (cubic JPEG surrogate) or ``bpda``."""
        if gradient not in ("through", "bpda"):
            raise ValueError(f"gradient must be 'through' or 'bpda', got {gradient!r}")
        return self.member_logits(x, "cubic" if gradient == "through" else "bpda").mean(axis=(0, 1))

    def base_logits(self, x):
        if self.base is None:
            raise ValueError(f"{self.name} has no base model M: the oblivious (paper's) threat model attacks M")
        g = _with_state(self.base, self.state["base"])
        return g(x)

    def attacker_model(self, threat: str):
        """The function ``x -> logits`` an attacker under ``threat`` differentiates (module docstring)."""
        if threat == "oblivious":
            if self.base is None:
                raise ValueError(f"{self.name} has no base model M: the oblivious (paper's) threat model attacks M")
            return self.base_logits
        if threat in ("through", "eot"):
            return lambda x: self.mean_logits(x, "through")
        if threat == "bpda":
            return lambda x: self.mean_logits(x, "bpda")
        raise ValueError(f"unknown threat model {threat!r} for the ensemble")

    def __repr__(self) -> str:
        return f"Ensemble({self.name!r}, members={self.n_members}, qualities={list(self.qualities)})"


def _with_state(f, state):
    g = copy.copy(f)
    g.state = state
    return g


def from_chain(chain: str | Path, qualities: Sequence[int] | None = None, with_base: bool = True) -> Ensemble:
    """The ensemble of a vaccination folder (``chain.json`` + ``q<QQQ>/final``): its models voting on
    ``qualities`` (default: the chain's own), its base as ``M``. FileNotFoundError naming what is missing."""
    chain = Path(chain)
    spec = chain / "chain.json"
    if not spec.is_file():
        raise FileNotFoundError(f"{chain} is not a vaccination folder "
                                "(no chain.json; make one with python -m robustjax.train vaccinate)")
    rec = json.loads(spec.read_text())
    members = []
    for q in rec["qualities"]:
        final = chain / f"q{q:03d}" / "final"
        if not (final / "metadata.json").is_file():
            raise FileNotFoundError(f"{final} is missing: the chain is unfinished "
                                    "(rerun python -m robustjax.train vaccinate)")
        m = zoo.load(rec["model"], weights=final)
        m.metadata["source_dir"] = str(final)
        members.append(m)
    base = None
    if with_base:
        base = zoo.load(rec["model"], weights=None if rec["base"] == rec["model"] else rec["base"])
    return Ensemble(members, qualities or rec["qualities"], base, name=f"{PREFIX}{chain}")


def load_spec(spec: str, weights=None, head=None) -> Ensemble:
    """``ensemble:CHAIN`` -> :func:`from_chain` (``weights`` and ``head`` must be None)."""
    if not is_spec(spec) or len(spec) == len(PREFIX):
        raise ValueError(f"ensemble spec must be 'ensemble:CHAIN_FOLDER', got {spec!r}")
    if weights is not None or head is not None:
        raise ValueError(f"{spec}: weights and head come from the vaccination folder; "
                         f"got weights={weights!r}, head={head!r}")
    return from_chain(spec[len(PREFIX):])
