"""--batch-size auto: the largest batch under a memory limit (XLA's memory analysis), and an injected
out-of-memory error survived by halving the batch."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.defenses import Defense
from robustjax.eval import batching as B
from robustjax.eval import config as C
from robustjax.eval.runner import Runner
from tests.eval_standins import components, tiny_classifier


def compile_at(b):
    f = tiny_classifier()

    def prog(x, y):
        g = jax.grad(lambda x: f(x)[jnp.arange(x.shape[0]), y].sum())(x)
        return (f(x + 0.01 * jnp.sign(g)).argmax(-1) == y).sum()

    spec = jax.ShapeDtypeStruct((b, 32, 32, 3), jnp.float32), jax.ShapeDtypeStruct((b,), jnp.int32)
    return jax.jit(prog).lower(*spec).compile()


def test_auto_batch_is_the_largest_multiple_that_fits():
    size = {b: B.program_bytes(compile_at(b)) for b in (24, 28)}
    limit = (size[24] + (size[28] - size[24]) // 2) / B.MARGIN  # 24 fits, 28 does not
    batch, compiled, choice = B.auto_batch(compile_at, devices=4, max_batch=1000, limit_bytes=limit)
    assert batch == 24 and choice.bytes == size[24] <= choice.budget < size[28]
    assert B.program_bytes(compiled) == size[24] and len(choice.tried) <= 4
    # capped by the images there are (rounded up to the devices), and a limit nothing fits
    assert B.auto_batch(compile_at, devices=4, max_batch=10, limit_bytes=10 * limit)[0] == 12
    with pytest.raises(ValueError, match="even a batch of 4"):
        B.auto_batch(compile_at, devices=4, max_batch=100, limit_bytes=1000)


def test_cli_accepts_auto():
    import argparse

    p = argparse.ArgumentParser()
    C.add_arguments(p)
    assert C.from_args(p.parse_args(["--batch-size", "auto"])).batch_size == "auto"
    assert C.from_args(p.parse_args(["--batch-size", "12"])).batch_size == 12
    with pytest.raises(SystemExit):
        p.parse_args(["--batch-size", "many"])
    with pytest.raises(ValueError, match="positive integer or 'auto'"):
        C.check_shape(C.replace(C.quickstart(), batch_size="max"))


def test_device_memory_from_the_environment(monkeypatch):
    monkeypatch.setenv("ROBUSTJAX_DEVICE_MEMORY_MB", "1.5")
    assert B.device_memory_bytes() == int(1.5 * 2**20)
    monkeypatch.setenv("ROBUSTJAX_DEVICE_MEMORY_MB", "big")
    with pytest.raises(ValueError, match="ROBUSTJAX_DEVICE_MEMORY_MB"):
        B.device_memory_bytes()
    monkeypatch.delenv("ROBUSTJAX_DEVICE_MEMORY_MB")
    assert B.device_memory_bytes() > 2**20


def oom_above(k):
    """Identity that fails at run time like an allocator when the batch exceeds ``k``."""

    def cb(x):  # x: (N, H, W, C), or (B, N, H, W, C) where the runner vmaps the defense over images
        if int(np.prod(x.shape[:-3])) > k:
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate (injected)")
        return np.zeros(x.shape[:-4], np.float32)

    return Defense(f"oom:{k}", lambda x, key=None: x + jax.pure_callback(cb, jax.ShapeDtypeStruct((), jnp.float32), x,
                                                                             vmap_method="expand_dims"))


def cfg(tmp_path, name, **kw):
    c = C.quickstart()
    c.update(dict(dataset="foolbox_cifar10", models=["tiny"], defenses=["none"], attacks=["ifgsm"], eps=[0.0, 8 / 255],
                  threats=["oblivious"], batch_size=20, out=str(tmp_path / name)))
    return C.replace(c, **kw)


def test_runner_auto_batch_under_a_limit_records_the_choice(tmp_path, monkeypatch):
    comp = components()
    fixed = Runner(cfg(tmp_path, "fixed"), comp, progress=False).run()[0]
    monkeypatch.setenv("ROBUSTJAX_DEVICE_MEMORY_MB", "100000")
    roomy = Runner(cfg(tmp_path, "roomy", batch_size="auto"), comp, progress=False).run()[0]
    assert roomy["batch_size"] == 20  # all 20 images fit: one batch
    at20 = roomy["batch_auto"]["program_bytes"]
    monkeypatch.setenv("ROBUSTJAX_DEVICE_MEMORY_MB", str(0.7 * at20 / B.MARGIN / 2**20))
    tight = Runner(cfg(tmp_path, "tight", batch_size="auto"), comp, progress=False).run()[0]
    a = tight["batch_auto"]
    assert 1 <= tight["batch_size"] < 20 and a["program_bytes"] <= a["budget_bytes"] < at20
    assert tight["correct"] == roomy["correct"] == fixed["correct"]  # iFGSM is deterministic: same counts


def test_injected_out_of_memory_halves_the_batch_and_records_it(tmp_path):
    base = components()
    comp = dataclasses.replace(base, get_defense=lambda s: oom_above(8) if s == "oom:8" else base.get_defense(s))
    ok = Runner(cfg(tmp_path, "ok", defenses=["none"], batch_size=5), comp, progress=False).run()[0]
    logs = []
    oom = cfg(tmp_path, "oom", defenses=["oom:8"], batch_size=20)
    rec = Runner(oom, comp, progress=False, log=logs.append).run()[0]
    assert rec["batch_retries"] == [20, 10] and rec["batch_size"] == 5
    assert rec["correct"] == ok["correct"] and rec["n_images"] == 20
    assert any("out of memory at batch 20" in str(m) for m in logs)
    assert len(Runner(cfg(tmp_path, "oom", defenses=["oom:8"]), comp, progress=False).store.records()) == 1
