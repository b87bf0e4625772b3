"""The localhost launcher without jax: a failed process ends the rest; a timeout ends all; env is wired."""

import sys
import time

import pytest

from robustjax.eval.distributed import ClusterError, LocalCluster, env_seconds

SLEEPER = "import os, sys, time; i = int(os.environ['JAX_PROCESS_ID']); {body}"


def launch(tmp_path, body, n=2):
    cmd = [sys.executable, "-c", SLEEPER.format(body=body)]
    return LocalCluster(cmd, processes=n, devices=2, logdir=tmp_path).start()


def test_each_process_gets_its_id_coordinator_and_devices(tmp_path):
    e = "os.environ"
    c = launch(tmp_path, f"print(i, {e}['JAX_NUM_PROCESSES'], {e}['JAX_COORDINATOR_ADDRESS'], {e}['XLA_FLAGS'])", n=3)
    assert c.wait(timeout_s=30) == [0, 0, 0]
    lines = [(tmp_path / f"process-{i}.out").read_text().split() for i in range(3)]
    assert [x[:2] for x in lines] == [["0", "3"], ["1", "3"], ["2", "3"]]
    assert len({x[2] for x in lines}) == 1 and lines[0][2].startswith("127.0.0.1:")
    assert lines[0][3] == "--xla_force_host_platform_device_count=2"


def test_a_failed_process_ends_the_others(tmp_path):
    c = launch(tmp_path, "sys.stderr.write('boom\\n'); sys.exit(3) if i == 1 else time.sleep(60)")
    t = time.time()
    with pytest.raises(ClusterError, match=r"process 1 of 2 failed \(return code 3\)(.|\n)*boom") as e:
        c.wait(timeout_s=30, grace_s=1)
    assert time.time() - t < 15 and e.value.returncodes[0] is not None and e.value.returncodes[0] != 0
    assert all(p.poll() is not None for p in c.procs)


def test_timeout_ends_every_process(tmp_path):
    c = launch(tmp_path, "time.sleep(60)")
    with pytest.raises(ClusterError, match="did not finish within 1 s"):
        c.wait(timeout_s=1)
    assert all(p.poll() is not None for p in c.procs)


def test_bad_timeout_setting(monkeypatch):
    monkeypatch.setenv("ROBUSTJAX_HEARTBEAT_TIMEOUT_S", "soon")
    with pytest.raises(ValueError, match="ROBUSTJAX_HEARTBEAT_TIMEOUT_S"):
        env_seconds("ROBUSTJAX_HEARTBEAT_TIMEOUT_S", 100)
