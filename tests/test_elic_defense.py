"""ELIC as a defense spec: checkpoint discovery and conversion on first use, size policies, errors."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from robustjax import defenses
from robustjax.defenses import elic


def test_missing_checkpoint_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTJAX_WEIGHTS", str(tmp_path))
    with pytest.raises(ValueError) as err:
        defenses.get("elic:0016")
    msg = str(err.value)
    assert str(tmp_path / "elic" / "ELIC_0016_ft_3980_Plateau.pth.tar") in msg
    assert "checkpoints_convert elic" in msg and "ELiC-ReImplemetation" in msg


@pytest.mark.parametrize("spec, words", [("elic:0017", "unknown ELIC quality"), ("elic:0016:crop", "size policy")])
def test_bad_spec_names_the_problem(spec, words):
    with pytest.raises(ValueError, match=words):
        defenses.get(spec)


def test_exact_policy_rejects_sizes_off_the_grid():
    with pytest.raises(ValueError, match="multiples of 64.*elic:Q:pad"):
        elic.check_size(np.zeros((1, 224, 224, 3), np.float32), "exact")
    with pytest.raises(ValueError, match="3 channels"):
        elic.check_size(np.zeros((1, 256, 256, 1), np.float32), "resize")
    elic.check_size(np.zeros((1, 224, 200, 3), np.float32), "pad")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressai")
    from elic_reference import chandelier_state_dict, reference_model

    root = tmp_path_factory.mktemp("weights")
    sd = chandelier_state_dict(reference_model(seed=1), eb_names="1.1.5")
    (root / "elic").mkdir()
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, root / "elic" / "ELIC_0016_ft_3980_Plateau.pth.tar")
    return root, sd


@pytest.mark.slow
def test_published_file_is_converted_on_first_use_and_cached(published, tmp_path, monkeypatch):
    root, sd = published
    monkeypatch.setenv("ROBUSTJAX_WEIGHTS", str(root))
    monkeypatch.setenv("ROBUSTJAX_CACHE", str(tmp_path / "cache"))
    model, meta = elic.load("0016")
    assert meta["family"] == "elic" and meta["config"]["quality"] == "0016"
    assert list((tmp_path / "cache" / "elic").iterdir())
    want = nnx.to_flat_state(nnx.state(elic.load_state_dict(sd)))
    got = dict(nnx.to_flat_state(nnx.state(model)))
    for path, var in want:
        np.testing.assert_array_equal(np.asarray(got[path].get_value()), np.asarray(var.get_value()))
    again, meta2 = elic.load("0016")  # served from the cache
    assert meta2["source_sha256"] == meta["source_sha256"]


@pytest.mark.slow
def test_policies_keep_the_shape_and_crop_or_resize_back(published, monkeypatch, tmp_path):
    root, sd = published
    model = elic.load_state_dict(sd)
    x = jnp.asarray(np.random.default_rng(0).random((1, 40, 56, 3), dtype=np.float32))
    pad = elic.make_defense(model, "pad")(x)
    full = elic.forward(model, jnp.pad(x, ((0, 0), (0, 24), (0, 8), (0, 0))))["x_hat"]
    np.testing.assert_allclose(np.asarray(pad), np.clip(np.asarray(full)[:, :40, :56], 0, 1), atol=1e-6)
    res = elic.make_defense(model, "resize")(x)
    assert res.shape == x.shape and float(res.min()) >= 0 and float(res.max()) <= 1
    assert not np.allclose(np.asarray(res), np.asarray(pad))
