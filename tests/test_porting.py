"""The key-map loader: exact transfer, and loud failure naming every offending key."""

import numpy as np
import pytest
import torch
from flax import nnx

from robustjax.porting import CheckpointMismatchError, Ignore, Rule, conv_kernel, load_into

RULES = [
    Rule(r"0\.weight", "layers.0.kernel", conv_kernel),
    Rule(r"0\.bias", "layers.0.bias"),
    Rule(r"1\.weight", "layers.1.scale"),
    Rule(r"1\.bias", "layers.1.bias"),
    Rule(r"1\.running_mean", "layers.1.mean"),
    Rule(r"1\.running_var", "layers.1.var"),
    Ignore(r".*num_batches_tracked"),
]


def _pair():
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4))
    with torch.no_grad():
        ref[1].running_mean.uniform_(-1, 1)
        ref[1].running_var.uniform_(0.5, 2)
    ref.eval()
    ours = nnx.Sequential(nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(0)), nnx.BatchNorm(4, rngs=nnx.Rngs(0)))
    return ref, ours


def test_load_matches_torch():
    ref, ours = _pair()
    sd = {k: v.numpy() for k, v in ref.state_dict().items()}
    assert load_into(ours, sd, RULES) == ["1.num_batches_tracked"]
    ours.eval()
    x = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)
    want = ref(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
    np.testing.assert_allclose(np.asarray(ours(x)), want, atol=1e-5)


def test_mismatch_names_every_key_and_writes_nothing():
    ref, ours = _pair()
    before = np.asarray(ours.layers[0].kernel.get_value()).copy()
    sd = {k: v.numpy() for k, v in ref.state_dict().items()}
    sd["extra.weight"] = np.zeros(1)
    sd["0.weight"] = np.zeros((4, 3, 5, 5))
    del sd["1.bias"]
    with pytest.raises(CheckpointMismatchError) as err:
        load_into(ours, sd, RULES)
    msg = str(err.value)
    assert "extra.weight" in msg and "layers.1.bias" in msg and "layers.0.kernel" in msg
    np.testing.assert_array_equal(np.asarray(ours.layers[0].kernel.get_value()), before)
