"""Multi-process on localhost: 2 jax.distributed processes x 2 CPU devices give the accuracies and
per-image outcomes of 1 x 1 and 1 x 4, write one store once, and a process that dies ends the other
with a clear error."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustjax.eval.distributed import ClusterError, LocalCluster
from tests.test_eval_subprocess import GRID, SCRIPT, env, records, run

pytestmark = pytest.mark.slow  # 4 subprocess grids, about 3 minutes on 2 cores

ROOT = Path(__file__).resolve().parents[1]


def cluster(tmp_path, out, name, extra=()):
    e = env()
    e.pop("ROBUSTJAX_IMAGE_CACHE_MB", None)
    return LocalCluster([sys.executable, str(SCRIPT), *GRID, "--out", str(out), *extra], processes=2, devices=2,
                        logdir=tmp_path / f"logs-{name}", env=e, heartbeat_s=10).start()


def test_two_processes_match_one_process_and_write_the_store_once(tmp_path):
    run(tmp_path / "one")
    run(tmp_path / "four", devices=4)
    c = cluster(tmp_path, tmp_path / "two", "ok")
    assert c.wait(timeout_s=400) == [0, 0]
    one, four, two = (records(tmp_path / d) for d in ("one", "four", "two"))
    assert {(r["processes"], r["devices"]) for r in two} == {(2, 4)}
    assert {(r["processes"], r["devices"]) for r in four} == {(1, 4)}
    keys = [r["key"] for r in two]
    assert len(keys) == len(set(keys)) == 8  # written once: process 1 appends nothing
    acc = {r["key"]: r["correct"] for r in two}
    assert acc == {r["key"]: r["correct"] for r in one} == {r["key"]: r["correct"] for r in four}
    assert len({tuple(v) for v in acc.values()}) > 2  # the attacks changed counts: not vacuous
    for k in keys:  # per-image outcomes too: randomness is per image, whatever the process layout
        assert ((tmp_path / "two" / "outcomes" / f"{k}.npz").read_bytes()
                == (tmp_path / "one" / "outcomes" / f"{k}.npz").read_bytes())
    assert "accuracy" in c.log(0) and "accuracy" in c.log(1)  # both processes ran every cell


def test_a_dead_process_ends_the_other_with_a_clear_error(tmp_path):
    out = tmp_path / "out"
    c = cluster(tmp_path, out, "die")
    store = out / "results.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and all(p.poll() is None for p in c.procs):
        if store.exists() and store.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.05)
    assert store.exists(), c.log(0)
    os.kill(c.procs[1].pid, signal.SIGKILL)  # process 1 dies mid-grid
    killed = time.time()
    with pytest.raises(ClusterError, match="process 1 of 2 failed") as err:
        c.wait(timeout_s=120, grace_s=60)
    # process 0 noticed on its own (the heartbeat, 10 s), not because the launcher ended it
    assert err.value.returncodes[1] == -signal.SIGKILL
    assert err.value.returncodes[0] not in (0, None, -signal.SIGTERM, -signal.SIGKILL)
    assert time.time() - killed < 60
    assert "another task died" in err.value.logs[0] or "unhealthy" in err.value.logs[0], err.value.logs[0][-2000:]
    assert all(p.poll() is not None for p in c.procs)
    lines = store.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(x)["processes"] == 2 for x in lines[:-1])  # no torn record


# the grid's flags less its attacks and defenses (the config's suite and defenses stand)
SUITE = ["--config", str(ROOT / "tests" / "data" / "suite_layout.py"),
         *[a for i, a in enumerate(GRID)
           if a not in ("--attack", "--defense") and GRID[i - 1] not in ("--attack", "--defense")]]


def test_suite_outcomes_do_not_depend_on_processes_devices_or_batch(tmp_path):
    """The adaptive suite on 1 process x 1 device, 1 x 4, 2 processes x 2 devices, and at batch 8 and
    32: byte-identical per-image outcomes (the suite gathers its standing images on the devices)."""
    suite = SUITE
    for name, devices, extra in (("one", None, ()), ("four", 4, ()), ("b32", None, ("--batch-size", "32"))):
        p = subprocess.run([sys.executable, str(SCRIPT), *suite, "--out", str(tmp_path / name), *extra],
                           env=env(devices), capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]
    e = env()
    e.pop("ROBUSTJAX_IMAGE_CACHE_MB", None)
    c = LocalCluster([sys.executable, str(SCRIPT), *suite, "--out", str(tmp_path / "two")], processes=2, devices=2,
                     logdir=tmp_path / "logs-suite", env=e, heartbeat_s=10).start()
    assert c.wait(timeout_s=400) == [0, 0]
    recs = {d: records(tmp_path / d) for d in ("one", "four", "b32", "two")}
    assert {(r["processes"], r["devices"]) for r in recs["two"]} == {(2, 4)}
    keys = sorted(r["key"] for r in recs["one"])
    assert len(keys) == 2 and all(sorted(r["key"] for r in v) == keys for v in recs.values())
    assert {r["batch_size"] for r in recs["b32"]} == {32}
    for k in keys:
        want = (tmp_path / "one" / "outcomes" / f"{k}.npz").read_bytes()
        for d in ("four", "b32", "two"):
            assert (tmp_path / d / "outcomes" / f"{k}.npz").read_bytes() == want, (d, k)
    noisy = next(r for r in recs["one"] if r["settings"]["defense"] == "noise:16")
    assert 0 < noisy["correct"][-1] < noisy["correct"][0]  # not vacuous: the suite broke some images, not all
