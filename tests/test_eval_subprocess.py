"""The CLI in subprocesses: 1 vs 4 devices give identical accuracies; kill mid-grid (SIGINT and
SIGKILL) and rerun: finished cells are not recomputed, no record is duplicated or truncated."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real weights / data: parity with the reference

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "eval_standins.py"
GRID = ["--dataset", "foolbox_cifar10", "--model", "tiny", "--defense", "none,quant:8", "--attack", "fgsm,pgd",
        "--eps", "0,8/255,32/255", "--threat", "oblivious,through,bpda", "--batch-size", "8", "--no-progress",
        "--no-report"]


def env(devices=None):
    e = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    e.pop("XLA_FLAGS", None)
    if devices:
        e["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return e


def run(out, devices=None, extra=()):
    p = subprocess.run([sys.executable, str(SCRIPT), *GRID, "--out", str(out), *extra], env=env(devices),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def records(out):
    lines = (Path(out) / "results.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"", "the store must end with a whole line"
    return [json.loads(x) for x in lines[:-1]]


def test_one_and_four_devices_give_identical_accuracies(tmp_path):
    run(tmp_path / "one")
    run(tmp_path / "four", devices=4)
    one, four = records(tmp_path / "one"), records(tmp_path / "four")
    assert {r["devices"] for r in one} == {1} and {r["devices"] for r in four} == {4}
    assert len(one) == len(four) == 8  # none x 2 attacks + quant x 2 attacks x 3 threats
    acc1 = {r["key"]: r["correct"] for r in one}
    acc4 = {r["key"]: r["correct"] for r in four}
    assert acc1 == acc4
    # per-image outcomes too (randomness is per image: pgd's random starts do not depend on the devices)
    for k in acc1:
        assert ((tmp_path / "one" / "outcomes" / f"{k}.npz").read_bytes()
                == (tmp_path / "four" / "outcomes" / f"{k}.npz").read_bytes())
    # not vacuous: attacks change the counts
    assert len({tuple(c) for c in acc1.values()}) > 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_kill_mid_grid_then_resume(tmp_path, sig):
    out = tmp_path / "out"
    store = out / "results.jsonl"
    p = subprocess.Popen([sys.executable, str(SCRIPT), *GRID, "--out", str(out)], env=env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        if store.exists() and store.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.05)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert p.returncode == 130, err[-2000:]
        assert "rerun the same command to resume" in err
    else:
        assert p.returncode == -signal.SIGKILL
    before = records(out)
    assert 2 <= len(before) < 8, "the kill must land mid-grid"
    again = run(out)
    after = records(out)
    keys = [r["key"] for r in after]
    assert len(keys) == len(set(keys)) == 8
    assert after[: len(before)] == before  # finished records untouched
    assert again.stderr.count("done, skipped") == len(before)
    assert again.stderr.count("accuracy 0/255") == 8 - len(before)
