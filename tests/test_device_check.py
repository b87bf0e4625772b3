"""experiments/benchmarks/device_check.py at reduced size on CPU: the whole table, every figure positive."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA, need

pytestmark = pytest.mark.slow  # compiles ResNet-50, an attack through JPEG, ELIC and HiFiC: minutes

ROOT = Path(__file__).resolve().parents[1]


def test_device_check_reduced_prints_the_table(tmp_path):
    need(DATA / "imagenette2-val")
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", ROBUSTJAX_CACHE=str(tmp_path / "cache"))
    env.pop("XLA_FLAGS", None)
    p = subprocess.run([sys.executable, str(ROOT / "experiments" / "benchmarks" / "device_check.py"), "--reduced"],
                       env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = [line for line in p.stdout.splitlines() if line.startswith("| ") and not line.startswith("| row")]
    assert [r.split(" | ")[0][2:].split(",")[0] for r in rows] == [
        "ResNet-50 fwd+bwd", "PGD-10 through JPEG q25", "ELIC gradient", "HIFIC gradient"]
    figures = [float(re.search(r"\| ([0-9.]+) (TFLOP/s|images/s|s) \|", r)[1]) for r in rows]
    assert all(v > 0 for v in figures), rows
    assert "reduced size" in p.stdout and "peak" in p.stdout
