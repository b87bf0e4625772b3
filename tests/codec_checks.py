"""Checks shared by the learned-codec tests (ELIC, HiFiC)."""

import numpy as np
import pytest


def check_real_bitstream(codec, x, out) -> None:
    """``decompress(compress(x))`` equals the forward's reconstruction ``out["x_hat"]`` within 1e-4,
    the byte count is within 2% of the forward's bpp estimate, and damaged streams are refused."""
    data = codec.compress(x)
    x_hat = np.asarray(codec.decompress(data))
    assert np.abs(x_hat - out["x_hat"]).max() <= 1e-4
    estimate = float(out["bpp"][0]) * x.shape[1] * x.shape[2] / 8
    assert abs(len(data[0]) - estimate) / estimate <= 0.02, (len(data[0]), estimate)
    with pytest.raises(ValueError, match="truncated"):
        codec.decompress([data[0][:-8]])
    with pytest.raises(ValueError, match="bad magic"):
        codec.decompress([b"JUNK" + data[0][4:]])
