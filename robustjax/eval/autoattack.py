"""AutoAttack's versions (Croce & Hein 2020) as adaptive-suite member lists: ``autoattack[:version=...][:norm=...]``.

Why: robustness papers and RobustBench report one number, AutoAttack "standard"; run as a suite it
gets the suite's savings (only images still standing are attacked, budgets nested) and runs under
each threat model of the config, so "AutoAttack standard through JPEG q25 with BPDA" is one cell.

The member lists and settings are AutoAttack's own (``autoattack.py``'s ``set_version``):

- ``standard`` (L-inf, L2): APGD-CE (100 steps, 1 restart), APGD-T (100 steps, 9 targets), FAB-T
  (100 steps, 9 targets, 1 restart), Square (5,000 queries, p_init 0.8, no schedule rescaling);
- ``plus``: APGD-CE and APGD-DLR (5 restarts each), FAB (5 restarts), Square, APGD-T, FAB-T;
- ``rand`` (randomised defenses): APGD-CE and APGD-DLR, 1 restart, each gradient an expectation
  over 20 draws of the defense (EOT); under ``through`` the members run as ``eot`` with 20 draws.

AutoAttack's L1 settings (larger eps schedules) are not ported: ``norm=l1`` is refused.
"""

from __future__ import annotations

NAME = "autoattack"
VERSIONS = ("standard", "plus", "rand")
NORMS = ("linf", "l2")
RAND_DRAWS = 20  # AutoAttack's eot_iter for version rand

_APGD = {"steps": 100, "restarts": 1}
_SQUARE = {"queries": 5000, "p_init": 0.8, "restarts": 1, "rescale_schedule": False}
MEMBERS = {
    "standard": (("apgd-ce", _APGD), ("apgd-t", {"steps": 100, "targets": 9, "restarts": 1}),
                 ("fab-t", {"steps": 100, "targets": 9, "restarts": 1}), ("square", _SQUARE)),
    "plus": (("apgd-ce", {"steps": 100, "restarts": 5}), ("apgd-dlr", {"steps": 100, "restarts": 5}),
             ("fab", {"steps": 100, "restarts": 5}), ("square", _SQUARE),
             ("apgd-t", {"steps": 100, "targets": 9, "restarts": 1}),
             ("fab-t", {"steps": 100, "targets": 9, "restarts": 1})),
    "rand": (("apgd-ce", _APGD), ("apgd-dlr", _APGD)),
}


def check(hparams: dict) -> tuple[str, str]:
    """``(version, norm)`` of an ``autoattack`` spec's hyper-parameters; ValueError naming a bad one."""
    hp = dict(hparams)
    version, norm = str(hp.pop("version", "standard")), str(hp.pop("norm", "linf"))
    if hp:
        raise ValueError(f"autoattack takes only 'version' and 'norm', got {sorted(hp)}")
    if version not in VERSIONS:
        raise ValueError(f"unknown AutoAttack version {version!r}; valid: {', '.join(VERSIONS)}")
    if norm not in NORMS:
        raise ValueError(f"AutoAttack norm {norm!r} is not supported; valid: {', '.join(NORMS)} (AutoAttack's L1 "
                         "settings are not ported)")
    return version, norm


def member_specs(hparams: dict, threat: str) -> list[dict]:
    """The suite members of an ``autoattack`` spec under ``threat``: dicts ``{"attack", "threat", **hparams}``.

    ``rand`` differentiates the expectation over the defense's draws: under ``through`` (or ``eot``)
    its members run as ``eot`` with :data:`RAND_DRAWS` draws; ValueError under ``bpda`` (an EOT of
    the BPDA view is not implemented)."""
    version, norm = check(hparams)
    if version == "rand":
        if threat == "bpda":
            raise ValueError("autoattack:version=rand averages gradients over the defense's draws; it has no BPDA "
                             "form here: run it with --threat through (or eot), and version standard with bpda")
        threat = "eot" if threat in ("through", "eot") else threat
    out = []
    for name, hp in MEMBERS[version]:
        m = {"attack": name, "threat": threat, **hp, "norm": norm}
        if version == "rand" and threat == "eot":
            m["eot_samples"] = RAND_DRAWS
        out.append(m)
    return out


def describe(hparams: dict) -> str:
    """One line stating the version and its members' settings, as AutoAttack's log opens."""
    version, norm = check(hparams)
    parts = [name + "(" + ", ".join(f"{k}={v}" for k, v in hp.items()) + ")" for name, hp in MEMBERS[version]]
    extra = f", EOT over {RAND_DRAWS} draws" if version == "rand" else ""
    return f"AutoAttack {version}, norm {norm}{extra}: " + ", ".join(parts)
