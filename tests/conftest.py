"""Shared fixtures: where the real data and weights live (``../shared`` beside the checkout by default)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ROBUSTJAX_DATA", ROOT.parent / "shared" / "data"))
WEIGHTS = Path(os.environ.get("ROBUSTJAX_WEIGHTS", ROOT.parent / "shared" / "weights"))


def need(path: Path) -> Path:
    """Skip the calling test, with the reason, when a real data/weights path is absent."""
    if not path.exists():
        pytest.skip(f"needs {path} (set ROBUSTJAX_DATA / ROBUSTJAX_WEIGHTS to the shared data and weights)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return need(DATA)


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    return need(WEIGHTS)
