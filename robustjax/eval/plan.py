"""The experiment plan: a config resolved once into typed jobs, validated before any model or data load.

A *cell* is one stored record: (model, defense, attack spec, threat) over the eps grid. A *job* is
one unit an executor runs: an attack run once and scored under one or more defenses (an oblivious
attack never sees the defense, so one job serves every defense), or one adaptive-suite cell.
:func:`resolve` checks every name, hyper-parameter, threat model and suite member, and builds each
defense spec exactly once (a learned codec loads and hashes its checkpoint when built).
"""

from __future__ import annotations

import dataclasses

from robustjax import data as rdata
from robustjax.attacks.spec import AttackSpec
from robustjax.attacks.threat import THREATS
from robustjax.eval import autoattack
from robustjax.eval import config as C
from robustjax.eval.components import Components
from robustjax.eval.program import BATCH_COUPLED
from robustjax.models import ensemble

SUITE = "adaptive"  # the attack name of the adaptive suite; its cells' threat is also "adaptive"
SUITE_SEMANTICS = ("best adversarial per image, any step of any member; budgets nested (an image broken at a "
                   "smaller eps stays broken at every larger one, with the same point)")
DEFAULT_MEMBERS = ("pgd@through", "pgd@bpda", "pgd@eot", "apgd-ce@through", "apgd-ce@bpda", "apgd-t@through",
                   "square@through")


@dataclasses.dataclass(frozen=True)
class Member:
    """One adaptive-suite member: an attack spec run under one threat model."""

    attack: AttackSpec
    threat: str
    eot_samples: int | None = None  # draws of the eot view (None: the config's eot_samples)

    @classmethod
    def parse(cls, m) -> Member:
        """``"pgd:steps=20@bpda"`` or ``{"attack": "pgd", "threat": "bpda", "steps": 20}`` -> Member."""
        if isinstance(m, str):
            if "@" not in m:
                raise ValueError(f"adaptive suite member {m!r} needs a threat model: ATTACK[:key=value]@THREAT "
                                 "(e.g. pgd@bpda)")
            spec, threat = m.rsplit("@", 1)
            return cls(AttackSpec.parse(spec), threat.strip())
        d = dict(m)
        if "attack" not in d or "threat" not in d:
            raise ValueError(f"adaptive suite member {d} needs 'attack' and 'threat'")
        name, threat, draws = d.pop("attack"), d.pop("threat"), d.pop("eot_samples", None)
        if draws is not None and (isinstance(draws, bool) or not isinstance(draws, int) or draws < 1):
            raise ValueError(f"adaptive suite member {m}: eot_samples must be an int >= 1, got {draws!r}")
        return cls(AttackSpec.of(name, d), threat, draws)

    @property
    def label(self) -> str:
        draws = f"[{self.eot_samples}]" if self.eot_samples is not None else ""
        return f"{self.attack}@{self.threat}{draws}"


@dataclasses.dataclass(frozen=True)
class Cell:
    """One result record: (model, defense, attack spec, threat) over the eps grid."""

    model: str
    defense: str
    attack: AttackSpec
    threat: str

    @property
    def label(self) -> str:
        return f"{self.model} | {self.defense} | {self.attack} | {self.threat}"


@dataclasses.dataclass(frozen=True)
class Job:
    """One executor call: ``attack`` under ``threat``, scored under each of ``defenses`` (one cell each).

    ``members``: the adaptive suite's resolved members (empty for a grid job)."""

    model: str
    attack: AttackSpec
    threat: str
    defenses: tuple
    members: tuple = ()

    @property
    def is_suite(self) -> bool:
        """Whether the suite executor runs this job (the adaptive suite, an AutoAttack version)."""
        return self.attack.name in (SUITE, autoattack.NAME)

    def cells(self) -> list[Cell]:
        return [Cell(self.model, d, self.attack, self.threat) for d in self.defenses]

    @property
    def label(self) -> str:
        return f"{self.model} | {', '.join(self.defenses)} | {self.attack} | {self.threat}"


@dataclasses.dataclass(frozen=True)
class Plan:
    """The resolved config: its jobs in order and one built defense per spec."""

    jobs: tuple
    defenses: dict  # spec -> Defense, built once


def one_threat_model(model: str | None, defense_spec: str) -> bool:
    """Whether every threat model attacks the same function, so ``oblivious`` alone is scored: no
    defense (``defense_spec`` ``"none"``) on a model that is not an ensemble (an ensemble's
    JPEG votes are inside the model: :mod:`robustjax.models.ensemble`)."""
    return defense_spec == "none" and not (model and ensemble.is_spec(model))


def suite_members(hparams: dict, comp: Components, defense=None, model: str | None = None) -> tuple[Member, ...]:
    """The suite's members for ``defense`` on ``model``, validated (ValueError before any compute).

    Without a ``members`` entry: :data:`DEFAULT_MEMBERS` restricted to the attacks ``comp`` knows,
    ``eot`` only for randomised defenses. With no defense every threat model attacks the same
    function, so one member per attack spec is kept (as ``oblivious``), unless ``model`` is an
    ensemble spec: its JPEG votes are inside the model and each threat model attacks another
    function (:mod:`robustjax.models.ensemble`). Members must share one budget norm: their
    outcomes are combined per budget."""
    hp = dict(hparams)
    given = hp.pop("members", None)
    if hp:
        raise ValueError(f"the adaptive suite takes only 'members', got {sorted(hp)}")
    names = comp.attack_names()
    if given is None:
        out = [Member.parse(m) for m in DEFAULT_MEMBERS]
        out = [m for m in out if names is None or m.attack.name in names]
        if defense is not None and not getattr(defense, "randomised", False):
            out = [m for m in out if m.threat != "eot"]
    else:
        if isinstance(given, str):
            given = [g for g in given.split(",") if g.strip()]
        out = [Member.parse(m) for m in given]
        if not out:
            raise ValueError("the adaptive suite needs at least one member")
    for m in out:
        if names is not None and m.attack.name not in names:
            raise ValueError(f"unknown adaptive suite member attack {m.attack.name!r} in {m.label!r}; "
                             f"valid: {', '.join(names)}")
        if m.threat not in THREATS:
            raise ValueError(f"unknown threat model {m.threat!r} in adaptive suite member {m.label!r}; "
                             f"valid: {', '.join(THREATS)}")
        if comp.minimum_norm(m.attack.name):
            raise ValueError(f"minimum-norm attack {m.attack.name!r} cannot join the adaptive suite: it has no eps "
                             "budget, so its outcomes cannot be combined with budgeted members; run it as its own cell")
        comp.get_attack(m.attack.name, eps=1 / 255, **m.attack.kwargs)  # bad hyper-parameters fail here
    norms = sorted({m.attack.norm for m in out})
    if len(norms) > 1:
        raise ValueError(f"adaptive suite members must share one budget norm (outcomes are combined per budget), "
                         f"got {', '.join(norms)} in {', '.join(m.label for m in out)}")
    if one_threat_model(model, "none" if defense is None else getattr(defense, "spec", "")):
        seen, keep = set(), []
        for m in out:
            if m.attack not in seen:
                seen.add(m.attack)
                keep.append(dataclasses.replace(m, threat="oblivious"))
        out = keep
    return tuple(out)


def jobs(cfg, defenses: dict | None = None, comp: Components | None = None) -> list[Job]:
    """The grid's jobs, models then attacks outermost. Defense ``none`` is only scored under
    ``oblivious`` (with no defense every threat model attacks the same function), except on an
    ensemble model, whose threat models differ even undefended. Suite jobs get
    their members resolved when ``comp`` and the built ``defenses`` are given."""
    out = []
    defs = list(dict.fromkeys(d.strip() for d in cfg.defenses))
    for m in cfg.models:
        for a in cfg.attacks:
            spec = AttackSpec.from_entry(a)
            if spec.name == SUITE:  # one suite cell per defense: it chooses its own threat models
                for d in defs:
                    members = () if comp is None else suite_members(spec.kwargs, comp, defenses[d], m)
                    out.append(Job(m, spec, SUITE, (d,), members))
                continue
            if spec.name == autoattack.NAME:  # one suite cell per defense and threat model
                for d in defs:
                    for t in ["oblivious"] if one_threat_model(m, d) else cfg.threats:
                        given = {"members": autoattack.member_specs(spec.kwargs, t)}
                        members = () if comp is None else suite_members(given, comp, defenses[d], m)
                        out.append(Job(m, spec, t, (d,), members))
                continue
            oblivious = [d for d in defs if d == "none" or "oblivious" in cfg.threats]
            if oblivious:
                out.append(Job(m, spec, "oblivious", tuple(oblivious)))
            for d in defs:
                if one_threat_model(m, d):
                    continue
                out.extend(Job(m, spec, t, (d,)) for t in cfg.threats if t != "oblivious")
    return out


def resolve(cfg, comp: Components) -> Plan:
    """Validate ``cfg`` and build its plan; ValueError naming the problem before any model, data or compute.

    Each defense spec is built once here (and only here)."""
    C.check_shape(cfg)
    rdata.check_name(cfg.dataset)
    names = comp.model_names()
    if names is not None:
        unknown = [m for m in cfg.models if m not in names and not ensemble.is_spec(m)]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; valid: {', '.join(names)}")
    names = comp.attack_names()
    probe = max([float(e) for e in cfg.eps if e > 0] or [1 / 255])
    specs = [AttackSpec.from_entry(a) for a in cfg.attacks]
    for spec in specs:
        if spec.name == autoattack.NAME and autoattack.check(spec.kwargs)[1] == "linf" and probe > 1:
            raise ValueError(f"eps values must be in [0, 1] for L-inf AutoAttack (pixel units, e.g. 8/255), got "
                             f"{max(cfg.eps)}")
        if spec.name in (SUITE, autoattack.NAME):
            if cfg.batch_size == "auto":
                raise ValueError("--batch-size auto is not available for the adaptive suite (its members gather the "
                                 "images still standing into fixed shapes): give a number")
            continue
        if names is not None and spec.name not in names:
            raise ValueError(f"unknown attack {spec.name!r}; valid: {', '.join(names)}")
        if not comp.minimum_norm(spec.name) and spec.norm == "linf" and probe > 1:
            raise ValueError(f"eps values must be in [0, 1] for L-inf attack {spec.name!r} (pixel units, e.g. 8/255), "
                             f"got {max(cfg.eps)}; only minimum-norm and L2 attacks take bounds above 1")
        comp.get_attack(spec.name, eps=probe, **spec.kwargs)  # bad hyper-parameters fail here
        coupled = ", ".join(sorted(BATCH_COUPLED.keys() & spec.kwargs.keys()))  # per_image_attack overrides them
        if coupled:
            raise ValueError(f"attack {spec.name!r}: {coupled} is a batch-wide check and the evaluation runs each "
                             f"image on its own, so it always runs every step there; remove {coupled}")
    defenses = {d.strip(): comp.get_defense(d.strip()) for d in dict.fromkeys(cfg.defenses)}
    return Plan(tuple(jobs(cfg, defenses, comp)), defenses)
