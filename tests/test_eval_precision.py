"""--precision: float32 (default, unchanged keys), tf32 and bf16 matmul precision, bf16 classifier compute."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from robustjax.eval import config as C
from robustjax.eval import precision as P
from robustjax.eval.runner import Runner
from robustjax.models.classifier import Classifier
from tests.eval_standins import TinyCNN, components


def tiny():
    return Classifier(TinyCNN(nnx.Rngs(0)), "tiny", 32, 10)


def test_matmul_precision_reaches_the_program():
    a = jnp.ones((4, 4))
    for p, hlo in (("float32", "HIGHEST"), ("tf32", "HIGH"), ("bf16", "DEFAULT")):
        text = jax.jit(P.program(lambda x: x @ x, p)).lower(a).as_text()
        assert f"precision = [{hlo}, {hlo}]" in text, (p, text)
    with pytest.raises(ValueError, match="float32, tf32, bf16"):
        P.program(lambda x: x, "fp8")


def test_bf16_classifier_computes_in_bfloat16_with_float32_logits_and_gradients():
    f = tiny()
    g = P.classifier(f, "bf16")
    assert P.classifier(f, "float32") is f and P.classifier(f, "tf32") is f
    x = jnp.asarray(np.random.default_rng(0).random((4, 32, 32, 3), np.float32))
    text = jax.jit(g).lower(x).as_text()
    assert "xbf16>) -> tensor<4x32x32x16xbf16>" in text  # the first convolution runs on bf16 operands
    y32, y16 = f(x), g(x)
    assert y16.dtype == jnp.float32
    err = float(jnp.abs(y16 - y32).max())
    assert 0 < err < 0.05 * float(jnp.abs(y32).max())  # bf16 rounding: close, not equal
    grad = jax.grad(lambda x: g(x).sum())(x)
    assert grad.dtype == jnp.float32 and float(jnp.abs(grad).sum()) > 0
    assert g.state is f.state and g.input_size == 32  # the runner places the float32 state once


def cfg(tmp_path, **kw):
    c = C.quickstart()
    c.update(dict(dataset="foolbox_cifar10", models=["tiny"], defenses=["none"], attacks=["fgsm"], eps=[0.0, 8 / 255],
                  threats=["oblivious"], batch_size=20, out=str(tmp_path / "out")))
    c.update(kw)
    return c


def test_runner_records_precision_and_keeps_float32_keys(tmp_path):
    comp = dataclasses.replace(components(), load_model=lambda name, weights=None, head=None: tiny())
    r32 = Runner(cfg(tmp_path, out=str(tmp_path / "a")), comp, progress=False).run()[0]
    r16 = Runner(cfg(tmp_path, out=str(tmp_path / "b"), precision="bf16"), comp, progress=False).run()[0]
    assert "precision" not in r32["settings"] and r32["precision"] == "float32"
    assert r16["settings"]["precision"] == "bf16" and r16["precision"] == "bf16" and r16["key"] != r32["key"]
    assert r16["n_images"] == r32["n_images"] == 20
    with pytest.raises(ValueError, match="precision must be one of"):
        C.check_shape(cfg(tmp_path, precision="half"))


def test_cli_precision_flag():
    import argparse

    p = argparse.ArgumentParser()
    C.add_arguments(p)
    assert C.from_args(p.parse_args(["--precision", "bf16"])).precision == "bf16"
    assert C.from_args(p.parse_args([])).precision == "float32"
    with pytest.raises(SystemExit):
        p.parse_args(["--precision", "fp16"])
