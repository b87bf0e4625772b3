"""Das et al. 2017, "Keeping the Bad Guys Out: Protecting and Vaccinating Deep Learning with JPEG
Compression", end to end on the CIFAR-10 JPEG test images: train, vaccinate, Table 1, Figures 3-4.

    python experiments/das2017/run.py --base small  --stage train      # M from scratch, then M100..M20
    python experiments/das2017/run.py --base resnet --stage train      # M = published ResNet-20, then M100..M20
    python experiments/das2017/run.py --base small  --stage table1 --n 200
    python experiments/das2017/run.py --base small  --stage figures --n 500
    python experiments/das2017/run.py --base small  --stage timing
    python experiments/das2017/run.py --base small  --stage slq --n 100
    python experiments/das2017/run.py --base resnet --stage autoattack --n 100

Everything is written below ``--root`` (default ``results/das2017``) and every stage resumes: training
through the checkpoints, the evaluation through the results store. Evaluation images are the
held-out part of the split stored in the models' checkpoints (a seeded ``--n`` subset of it); an
overlap with the training images is a ValueError. Table 1: M and the 81-vote ensemble, benign,
FGSM eps 0.02 and DeepFool, under the paper's threat model (adversarial examples made on M =
``oblivious`` for the ensemble model) and adaptive attackers (``through``: mean member logits with
the cubic JPEG surrogate; ``bpda``), accuracy and misclassification success rate with 95% Wilson
intervals. ``autoattack``: AutoAttack standard at the FGSM budget (eps 0.02, L-inf) on the ensemble,
through the cubic JPEG surrogate, into Table 1's store (the claims' AutoAttack column reads it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from robustjax.eval.stats import wilson  # noqa: E402  (after the path: this checkout's robustjax)

QUALITIES = (100, 90, 80, 70, 60, 50, 40, 30, 20)
BASES = {
    # name: (model, init for M, M's training epochs, chain epochs, train_n, chain learning rate)
    "small": ("small_cnn_cifar10", "scratch", 8, 1, 8000, 1e-3),
    "resnet": ("cifar_resnet20", "published", 0, 1, 2000, 1e-4),  # 1e-3 lost 2.7 points at q100 in 1 epoch
}
FGSM_EPS = 0.02
DEEPFOOL = {"name": "deepfool", "steps": 20, "candidates": 3}  # see experiments/README.md (CPU budget)
UNBOUNDED = 1000.0  # an L2 bound no DeepFool perturbation on [0, 1]^3072 reaches: DeepFool unbounded


def paths(root: Path, base: str) -> dict:
    return {"M": root / f"{base}_M" / "final", "chain": root / f"{base}_chain", "table1": root / f"{base}_table1",
            "figures": root / f"{base}_figures", "slq": root / f"{base}_slq"}


def m_weights(root: Path, base: str):
    """M's weights argument for ``zoo.load``: the trained folder, or None (published)."""
    return None if BASES[base][1] == "published" else paths(root, base)["M"]


# ----------------------------------------------------------------------------- training


def train(root: Path, base: str) -> None:
    from robustjax.train import classifier as T
    from robustjax.train import vaccinate as V

    model, init, m_epochs, c_epochs, train_n, lr = BASES[base]
    p = paths(root, base)
    common = {"train_n": train_n, "heldout_n": 2000, "progress": False}
    if init == "scratch":
        t0 = time.perf_counter()
        T.train(T.Config(out=str(p["M"].parent), model=model, epochs=m_epochs, **common))
        print(f"M trained: {time.perf_counter() - t0:.0f} s", flush=True)
        base_arg = str(p["M"])
    else:
        base_arg = model
    t0 = time.perf_counter()
    V.vaccinate(base_arg, QUALITIES, str(p["chain"]), c_epochs, {**common, "lr": lr})
    print(f"chain trained: {time.perf_counter() - t0:.0f} s", flush=True)


# ----------------------------------------------------------------------------- evaluation wiring


def heldout_split(root: Path, base: str) -> dict:
    """The split stored with the chain's first model (the base's split for a trained base)."""
    meta = json.loads((paths(root, base)["chain"] / f"q{QUALITIES[0]:03d}" / "final" / "metadata.json").read_text())
    return meta["split"]


def heldout_set(root: Path, base: str):
    from robustjax import data as rdata
    from robustjax.data import split as S

    split = heldout_split(root, base)
    ds = rdata.load(split["dataset"])
    index = {i: k for k, i in enumerate(ds.ids)}
    held = ds.take([index[i] for i in split["heldout_ids"]])
    S.check_disjoint(split["dataset"], split["train_ids"], split["dataset"], held.ids)
    return held


def components(root: Path, base: str):
    """The project's components, with models named ``M`` / ``M<q>`` / ``ensemble:...`` and the
    dataset ``cifar10_jpeg`` restricted to the held-out images."""
    import dataclasses

    from robustjax.eval.components import default
    from robustjax.models import ensemble, zoo

    comp = default()
    model = BASES[base][0]
    chain = paths(root, base)["chain"]

    def load_model(name, weights=None, head=None):
        if ensemble.is_spec(name):
            return ensemble.load_spec(name)
        if name == "M":
            return zoo.load(model, weights=m_weights(root, base))
        if name.startswith("M") and name[1:].isdigit():
            return zoo.load(model, weights=chain / f"q{int(name[1:]):03d}" / "final")
        return zoo.load(name, weights, head)

    held = heldout_set(root, base)
    return dataclasses.replace(comp, load_model=load_model, model_names=lambda: None,
                               load_data=lambda name, data_dir=None, space=None: held)


def run_grid(root: Path, base: str, out: Path, name: str, **fields) -> list[dict]:
    import ml_collections

    from robustjax.eval.config import quickstart
    from robustjax.eval.runner import Runner

    cfg = quickstart().to_dict()
    cfg.update({"name": name, "dataset": "cifar10_jpeg", "data_dir": None, "seed": 0, "weights": None, "head": None,
                "batch_size": 10, "out": str(out), **fields})
    return Runner(ml_collections.ConfigDict(cfg), components(root, base), progress=False).run()


# ----------------------------------------------------------------------------- Table 1


def table1_markdown(recs: list[dict]) -> str:
    """Table 1's rows from its store records: per cell the benign and attacked accuracy and the
    misclassification success rate (Das et al. 2017's metric: flipped / clean-correct), each with
    its 95% Wilson interval, and seconds per image. ``experiments/readme_tables.py`` renders the
    README's copy with this, so the README cannot drift from the store."""
    votes = len(QUALITIES) ** 2  # the chain trains one model per quality; each votes on every quality
    label = {"oblivious": "paper (made on M)", "through": "adaptive: through (cubic JPEG)", "bpda": "adaptive: BPDA"}
    largest = {}  # per cell, the run on the most images (a store keeps its smaller runs too)
    for r in recs:
        s = r["settings"]
        cell = (s["attack"], s["model"], s["threat"])
        if cell not in largest or r["n_images"] > largest[cell]["n_images"]:
            largest[cell] = r
    rows = []
    for r in largest.values():
        s = r["settings"]
        who = "M" if s["model"] == "M" else f"ensemble ({votes} votes)"
        threat = "attacked directly" if s["model"] == "M" else label[s["threat"]]
        k0, k1 = r["correct"][0], r["correct"][1]
        lo, hi = wilson(k1, r["n_images"])
        msr = r["flipped"][1] / r["clean_correct"] if r.get("clean_correct") else float("nan")
        mlo, mhi = wilson(r["flipped"][1], r["clean_correct"])
        blo, bhi = wilson(k0, r["n_images"])
        rows.append((s["attack"], who, threat, str(r["n_images"]), f"{k0 / r['n_images']:.3f} [{blo:.3f}, {bhi:.3f}]",
                     f"{k1 / r['n_images']:.3f} [{lo:.3f}, {hi:.3f}]", f"{msr:.3f} [{mlo:.3f}, {mhi:.3f}]",
                     f"{r['timing']['per_image_s']:.3f}"))
    head = ("| attack | model | threat model | images | benign accuracy | attacked accuracy | misclassification "
            "success | s/image |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |")
    return "\n".join([head] + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def table1(root: Path, base: str, n: int, run: bool = True, n_slow: int | None = None) -> str:
    """Run (``run``) or only render from the results store the Table 1 cells on ``n`` images, DeepFool
    with BPDA (seconds per image through the 81 members) on the first ``n_slow`` of them (subsets
    are prefixes of one seeded permutation; None: ``n``). The rendered table shows each cell's
    largest run in the store, with its image count."""
    from robustjax.eval.report import latest
    from robustjax.eval.store import Store

    p = paths(root, base)
    ens = f"ensemble:{p['chain']}"
    common = dict(models=["M", ens], defenses=["none"], threats=["oblivious", "through", "bpda"], n=n)
    t0 = time.perf_counter()
    if run:
        run_grid(root, base, p["table1"], f"das2017_table1_{base}", attacks=["fgsm"], eps=[0.0, FGSM_EPS], **common)
        slow = n if n_slow is None else min(n, n_slow)
        deepfool = [common] if slow == n else [{**common, "threats": ["oblivious", "through"]},
                                               {**common, "models": [ens], "threats": ["bpda"], "n": slow}]
        for cells in deepfool:
            run_grid(root, base, p["table1"], f"das2017_table1_{base}", attacks=[dict(DEEPFOOL)],
                     eps=[0.0, UNBOUNDED], **cells)
    recs = latest(Store(p["table1"]).records())
    wall = time.perf_counter() - t0
    text = f"Table 1 ({base}): held-out images per cell as listed, 95% Wilson intervals; wall {wall:.0f} s this call"
    text += "\n\n" + table1_markdown(recs)
    (p["table1"] / "table1.md").write_text(text)
    return text


def autoattack_cell(root: Path, base: str, n: int) -> str:
    """AutoAttack standard (L-inf, eps :data:`FGSM_EPS`) on the 81-vote ensemble through the cubic JPEG
    surrogate, on the first ``n`` of Table 1's held-out images, as one suite cell in Table 1's store.

    Why: FGSM through the ensemble is one gradient step; AutoAttack is the attack a robustness claim is
    measured against. Only ``through`` runs: BPDA was the weaker threat model for FGSM and DeepFool
    (experiments/README.md), and the suite already spends no compute on images it has broken.
    Returns Table 1 re-rendered from the store."""
    p = paths(root, base)
    run_grid(root, base, p["table1"], f"das2017_table1_{base}", attacks=["autoattack"], eps=[0.0, FGSM_EPS],
             models=[f"ensemble:{p['chain']}"], defenses=["none"], threats=["through"], n=n)
    return table1(root, base, n, run=False)


# ----------------------------------------------------------------------------- Figures 3 and 4


def figures(root: Path, base: str, n: int) -> str:
    """Fig. 3: accuracy of M, M100..M20 at each test quality (clean held-out images); Fig. 4: the
    same on FGSM (eps 0.02) and DeepFool examples made on M (the paper's transfer setting)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from robustjax import attacks
    from robustjax.defenses.jpeg import jpeg

    p = paths(root, base)
    p["figures"].mkdir(parents=True, exist_ok=True)
    comp = components(root, base)
    held = heldout_set(root, base).subset(n, 0)
    x = np.stack([held.read(i) for i in range(len(held))]).astype(np.float32) / 255.0
    y = np.asarray(held.labels, np.int32)
    M = comp.load_model("M")
    t0 = time.perf_counter()
    fgsm = attacks.get("fgsm", eps=FGSM_EPS)
    df = attacks.get("deepfool", steps=DEEPFOOL["steps"], candidates=DEEPFOOL["candidates"])
    sets = {"clean": x}
    bs = 100
    for nm, att in (("FGSM 0.02", fgsm), ("DeepFool", df)):
        run = jax.jit(lambda v, t, att=att: att(M, v, t))
        sets[nm] = np.concatenate([np.asarray(run(x[i:i + bs], y[i:i + bs])) for i in range(0, len(x), bs)])
    names = ["M"] + [f"M{q}" for q in QUALITIES]
    acc = {}
    for name in names:
        f = comp.load_model(name)
        ev = jax.jit(lambda v, t, q, f=f: jnp.sum(jnp.argmax(f(jpeg(v, q, rounding="exact")), -1) == t))
        for sname, xs in sets.items():
            for q in QUALITIES:
                c = sum(int(ev(xs[i:i + bs], y[i:i + bs], jnp.float32(q))) for i in range(0, len(xs), bs))
                acc[(name, sname, q)] = c / len(xs)
    wall = time.perf_counter() - t0
    (p["figures"] / "accuracy.json").write_text(json.dumps({f"{a}|{b}|{c}": v for (a, b, c), v in acc.items()},
                                                           indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        vals = [acc[(name, "clean", q)] for q in QUALITIES]
        ax.bar(np.arange(len(QUALITIES)) + k * width, vals, width, label=name, color="red" if name == "M" else None)
    ax.set_xticks(np.arange(len(QUALITIES)) + 0.4, [str(q) for q in QUALITIES])
    ax.set_xlabel("test image JPEG quality")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Fig. 3 ({base}): vaccinated models on JPEG held-out images (n={len(x)})")
    ax.legend(ncol=5, fontsize=7)
    fig.tight_layout()
    fig.savefig(p["figures"] / "figure3.png", dpi=120)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, sname in zip(axes, ("FGSM 0.02", "DeepFool")):
        for name in names:
            style = dict(color="black", ls=":") if name == "M" else dict(marker="o", ms=3)
            ax.plot(QUALITIES, [acc[(name, sname, q)] for q in QUALITIES], label=name, **style)
        ax.invert_xaxis()
        ax.set_xlabel("test image JPEG quality")
        ax.set_title(f"{sname} made on M")
    axes[0].set_ylabel("accuracy")
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(f"Fig. 4 ({base}): vaccinated models on adversarial held-out images (n={len(x)})")
    fig.tight_layout()
    fig.savefig(p["figures"] / "figure4.png", dpi=120)
    lines = [f"Figures 3-4 ({base}): n={len(x)}, wall {wall:.0f} s", "",
             "| model | set | " + " | ".join(f"q{q}" for q in QUALITIES) + " |",
             "| --- | --- |" + " --- |" * len(QUALITIES)]
    for sname in sets:
        for name in names:
            lines.append(f"| {name} | {sname} | "
                         + " | ".join(f"{acc[(name, sname, q)]:.3f}" for q in QUALITIES) + " |")
    text = "\n".join(lines)
    (p["figures"] / "figures.md").write_text(text + "\n")
    return text


# ----------------------------------------------------------------------------- timing


def timing(root: Path, base: str, batch: int = 50, repeats: int = 3) -> str:
    """Seconds per image of the 81-vote ensemble as one program against 81 separate jitted calls
    (one compiled member program called once per (model, quality)), same images, same process."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from robustjax.defenses.jpeg import jpeg
    from robustjax.models import ensemble

    p = paths(root, base)
    ens = ensemble.from_chain(p["chain"], with_base=False)
    held = heldout_set(root, base).subset(batch, 0)
    x = jnp.asarray(np.stack([held.read(i) for i in range(len(held))]).astype(np.float32) / 255.0)
    one_program = jax.jit(ens.votes)
    graphdef = ens.member_graphdef
    from flax import nnx

    member = jax.jit(lambda s, v, q: jax.nn.one_hot(
        jnp.argmax(nnx.merge(graphdef, s)(jpeg(v, q, rounding="exact")), -1), ens.num_classes))
    states = [jax.tree.map(lambda a, i=i: a[i], ens.state["members"]) for i in range(ens.n_members)]

    def separate(v):
        return sum(member(s, v, jnp.float32(q)) for s in states for q in ens.qualities)

    np.testing.assert_array_equal(np.asarray(one_program(x)), np.asarray(separate(x)))  # same votes (and warm-up)
    out = {}
    for nm, fn in (("one program", one_program), ("81 separate jitted calls", separate)):
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(x))
            best = min(best, time.perf_counter() - t0)
        out[nm] = best / batch
    text = (f"Ensemble timing ({base}, batch {batch}, best of {repeats}, 2 shared CPU cores with other jobs): "
            f"one program {out['one program']:.4f} s/image, "
            f"81 separate jitted calls {out['81 separate jitted calls']:.4f} s/image "
            f"(ratio {out['81 separate jitted calls'] / out['one program']:.2f}); votes identical")
    p["table1"].mkdir(parents=True, exist_ok=True)
    (p["table1"] / "timing.md").write_text(text + "\n")
    return text


# ----------------------------------------------------------------------------- SLQ


def slq_row(root: Path, base: str, n: int, model: str = "M40") -> str:
    """SLQ (Das et al. 2018) in front of a vaccinated model under oblivious, through, BPDA and EOT (FGSM 0.02)."""
    p = paths(root, base)
    spec = "jpeg:slq:qualities=20/40/60/80"
    recs = run_grid(root, base, p["slq"], f"das2017_slq_{base}", models=[model], defenses=[spec], attacks=["fgsm"],
                    eps=[0.0, FGSM_EPS], threats=["oblivious", "through", "bpda", "eot"], eot_samples=8, n=n)
    lines = [f"SLQ ({spec}) + {model} ({base}), FGSM eps 0.02, {recs[0]['n_images']} held-out images, "
             "95% Wilson intervals", "",
             "| threat | benign | attacked |", "| --- | --- | --- |"]
    for r in recs:
        k0, k1, m = r["correct"][0], r["correct"][1], r["n_images"]
        a, b = wilson(k0, m), wilson(k1, m)
        lines.append(f"| {r['settings']['threat']} | {k0 / m:.3f} [{a[0]:.3f}, {a[1]:.3f}] "
                     f"| {k1 / m:.3f} [{b[0]:.3f}, {b[1]:.3f}] |")
    text = "\n".join(lines)
    (p["slq"] / "slq.md").write_text(text + "\n")
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", choices=sorted(BASES), required=True)
    ap.add_argument("--stage", choices=["train", "table1", "table1-report", "figures", "timing", "slq", "autoattack"],
                    required=True)
    ap.add_argument("--n", type=int, default=200, help="held-out images (seeded subset)")
    ap.add_argument("--n-slow", type=int, default=None,
                    help="table1: images for DeepFool with BPDA, the first of the --n (default: --n)")
    ap.add_argument("--root", default=str(ROOT / "results" / "das2017"))
    a = ap.parse_args(argv)
    root = Path(a.root)
    t0 = time.perf_counter()
    if a.stage == "train":
        train(root, a.base)
    else:
        fn = {"table1": lambda r, b, n: table1(r, b, n, n_slow=a.n_slow),
              "table1-report": lambda r, b, n: table1(r, b, n, run=False), "figures": figures,
              "timing": lambda r, b, n: timing(r, b), "slq": slq_row,
              "autoattack": autoattack_cell}[a.stage]
        print(fn(root, a.base, a.n))
    print(f"[{a.stage} {a.base}: {time.perf_counter() - t0:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
