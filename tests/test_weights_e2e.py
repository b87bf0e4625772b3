"""End to end: a fresh cache, no local weights, a loopback mirror: the CLI downloads, verifies, converts and
runs; a second run downloads nothing; a tampered download is refused naming both hashes."""

import hashlib
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT
from weights_server import WeightsServer

R20 = "cifar10-resnet/resnet20-12fca82f.th"
R20_SHA = "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"


def _eval(out, env):
    cmd = [sys.executable, "-m", "robustjax.eval", "--model", "cifar_resnet20", "--dataset", "foolbox_cifar10",
           "--defense", "none", "--attack", "fgsm", "--eps", "0,2/255", "--n", "4", "--out", str(out),
           "--no-progress", "--no-report"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # three CLI runs in subprocesses: about 20 s
def test_cli_downloads_verifies_converts_and_runs_then_reuses(weights_dir, tmp_path):
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if k not in ("ROBUSTJAX_WEIGHTS", "ROBUSTJAX_OFFLINE")}
    with WeightsServer(weights_dir) as server:
        env.update(ROBUSTJAX_CACHE=str(cache), ROBUSTJAX_WEIGHTS_MIRROR=server.url)
        first = _eval(tmp_path / "a", env)
        assert first.returncode == 0, first.stderr[-3000:]
        assert server.hits[R20] == 1
        assert hashlib.sha256((cache / "weights" / R20).read_bytes()).hexdigest() == R20_SHA
        converted = list((cache / "cifar_resnet").iterdir())
        assert len(converted) == 1
        assert json.loads((converted[0] / "metadata.json").read_text())["source_sha256"] == R20_SHA
        cells = [json.loads(line) for line in (tmp_path / "a" / "results.jsonl").read_text().splitlines()]
        assert [c["settings"]["model"] for c in cells] == ["cifar_resnet20"]
        assert cells[0]["clean_correct"] >= 3  # the published weights (random ones get about 1 in 10)

        second = _eval(tmp_path / "b", env)
        assert second.returncode == 0, second.stderr[-3000:]
        assert server.hits[R20] == 1  # nothing downloaded again

        body = bytearray((cache / "weights" / R20).read_bytes())
        body[4096] ^= 0xFF
        (cache / "weights" / R20).write_bytes(bytes(body))
        third = _eval(tmp_path / "c", env)
        assert third.returncode != 0
        assert hashlib.sha256(body).hexdigest() in third.stderr and R20_SHA in third.stderr
        assert server.hits[R20] == 1
