"""Shared fixtures: where the real data and weights live (``../shared`` beside the checkout by default).

The README's bare ``python -m pytest`` must find them, the library's own lookups included, so the
session's environment gets ``ROBUSTJAX_DATA`` / ``ROBUSTJAX_WEIGHTS`` from the sibling ``../shared``
when they are unset, and ``ROBUSTJAX_OFFLINE=1``: no test reaches the network (the download tests
unset it and serve files from 127.0.0.1).
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
for _var, _sub in (("ROBUSTJAX_DATA", "data"), ("ROBUSTJAX_WEIGHTS", "weights")):
    if not os.environ.get(_var) and (SHARED / _sub).is_dir():
        os.environ[_var] = str(SHARED / _sub)
os.environ.setdefault("ROBUSTJAX_OFFLINE", "1")
DATA = Path(os.environ.get("ROBUSTJAX_DATA") or SHARED / "data")
WEIGHTS = Path(os.environ.get("ROBUSTJAX_WEIGHTS") or SHARED / "weights")


def need(path: Path) -> Path:
    """Skip the calling test, with the reason, when a real data/weights path is absent."""
    if not path.exists():
        pytest.skip(f"needs {path} (put the shared data and weights in ../shared beside the checkout, "
                    "or set ROBUSTJAX_DATA / ROBUSTJAX_WEIGHTS)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return need(DATA)


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    return need(WEIGHTS)
