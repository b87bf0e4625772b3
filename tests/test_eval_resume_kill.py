"""SIGKILL at three points inside one multi-batch cell, then reruns: the final record (less its
timing) and the per-image outcome file are byte-identical to an uninterrupted run's, and each rerun
resumes at the first batch the killed run had not persisted (nothing persisted is recomputed).
Both executors: a grid cell, and an adaptive-suite cell (a tracked iFGSM member, then a slow one)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # four interpreter starts and compilations (~1 min on 2 loaded cores)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "eval_standins.py"
COMMON = ["--dataset", "foolbox_cifar10", "--model", "tiny", "--defense", "none", "--eps", "0,1/255,2/255",
          "--threat", "oblivious", "--batch-size", "2", "--no-progress", "--no-report"]
CELLS = {"grid": ["--attack", "slowloop:steps=200", *COMMON],
         "suite": ["--config", str(ROOT / "tests" / "data" / "suite_kill.py"), *COMMON]}
VOLATILE = ("timing", "finished", "host", "git")


def env():
    e = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    e.pop("XLA_FLAGS", None)
    return e


def start(cell, out):
    return subprocess.Popen([sys.executable, str(SCRIPT), *cell, "--out", str(out)], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def batch_files(out):
    d = Path(out) / "partial"
    return sorted(d.glob("*/batch-*.npz")) if d.exists() else []


def record(out):
    (line,) = (Path(out) / "results.jsonl").read_text().splitlines()
    rec = json.loads(line)
    return rec, (Path(out) / "outcomes" / f"{rec['key']}.npz").read_bytes()


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_sigkill_three_times_inside_a_cell_then_resume(tmp_path, kind):
    cell = CELLS[kind]
    ref = start(cell, tmp_path / "ref")
    _, err = ref.communicate(timeout=600)
    assert ref.returncode == 0, err[-3000:]
    ref_rec, ref_npz = record(tmp_path / "ref")
    out = tmp_path / "out"
    resumed = []
    for target in (2, 5, 8):  # of 10 batches
        p = start(cell, out)
        deadline = time.time() + 300
        while time.time() < deadline and p.poll() is None and len(batch_files(out)) < target:
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL)
        _, err = p.communicate(timeout=60)
        assert p.returncode == -signal.SIGKILL, "the kill must land inside the cell"
        persisted = len(batch_files(out))
        assert persisted < 10 and not (out / "results.jsonl").exists()
        resumed.append((target, persisted, err))
    final = subprocess.run([sys.executable, str(SCRIPT), *cell, "--out", str(out)], env=env(), capture_output=True,
                           text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    persisted = resumed[-1][1]
    m = re.search(r"resuming at batch (\d+) of 10: (\d+) batch", final.stderr)
    assert m and int(m[2]) == persisted, final.stderr[-2000:]
    for (_, before, _), (_, after, err) in zip(resumed, resumed[1:]):
        m = re.search(r"resuming at batch (\d+) of 10: (\d+) batch", err)
        assert m is None or int(m[2]) == before  # each rerun started from everything its predecessor persisted
        assert after >= before
    rec, npz = record(out)
    assert ({k: v for k, v in rec.items() if k not in VOLATILE}
            == {k: v for k, v in ref_rec.items() if k not in VOLATILE})
    assert npz == ref_npz
    assert rec["timing"]["resumed_batches"] == persisted
    if kind == "suite":  # the batch in flight at each kill is computed again, no more
        assert rec["suite"][1]["attacked"][0] > 0, "not vacuous: the slow member must run"
        assert 1 <= rec["timing"]["recomputed_batches"] <= len(resumed)
    assert not batch_files(out)
    print("kills at persisted batches:", [r[1] for r in resumed])
