"""C&W in the per-image evaluation programs: its batch-coupled early abort is off there, so an image's
C&W result neither depends on its batch nor stops the first time the image's own cost rises."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from eval_standins import components
from small_models import random_batch, small_classifier
from test_eval_runner import cfg as base_cfg

from robustjax import attacks
from robustjax.eval.program import grid_program, per_image_attack
from robustjax.eval.runner import Runner


def test_per_image_attack_turns_off_only_batch_coupled_options():
    cw = attacks.get("cw", steps=20)
    assert cw.abort_early and per_image_attack(cw) == dataclasses.replace(cw, abort_early=False)
    pgd = attacks.get("pgd", eps=8 / 255)
    assert per_image_attack(pgd) is pgd


@pytest.mark.slow  # 20 s: the fast tier keeps the option-table tests of this file
def test_grid_cw_cell_runs_every_step_per_image_and_is_batch_independent():
    """The grid program's C&W points are C&W without the abort on the whole batch (Adam is elementwise,
    so with no batch-wide stop every image is independent), and differ from a per-image abort: with
    it, vmapped images stop on their own cost (the defect this guards against)."""
    f = small_classifier()
    x, y = random_batch(n=4, seed=3)
    y = jnp.argmax(f(x), axis=1)  # all clean-correct: every image is attacked
    cw = attacks.get("cw", steps=30, lr=0.05)
    program = grid_program(f, [lambda v, key=None: v], lambda: cw, "oblivious", 1, 1, minimum_norm=True)
    big = 1e3
    out = jax.jit(program)(None, x, y, jax.random.key(0), jnp.arange(4, dtype=jnp.int32), jnp.asarray([big]))
    norm = np.asarray(out[3])
    whole = dataclasses.replace(cw, abort_early=False)(f, x, y)
    np.testing.assert_allclose(norm, np.asarray(jnp.sqrt(jnp.sum(jnp.square(whole - x), axis=(1, 2, 3)))),
                               rtol=1e-5, atol=1e-6)
    aborted = jax.vmap(lambda a, b: cw(f, a[None], b[None])[0])(x, y)  # the per-image abort
    assert not np.allclose(np.asarray(aborted), np.asarray(whole), atol=1e-6)


def test_the_evaluation_refuses_abort_early_before_any_compute(tmp_path):
    """The per-image programs always turn C&W's abort off, so asking for it is an error, not ignored."""
    loaded = []
    comp = dataclasses.replace(components(), get_attack=attacks.get, attack_names=lambda: ["cw"],
                               minimum_norm=lambda name: name == "cw",
                               load_data=lambda *a, **k: loaded.append(a) or components().load_data(*a, **k))
    c = base_cfg(tmp_path, defenses=["none"], attacks=["cw:abort_early=true"], threats=["oblivious"], eps=[0.0, 1.0],
                 n=2, out=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="attack 'cw': abort_early is a batch-wide check"):
        Runner(c, comp, progress=False).run()
    assert loaded == [] and not (tmp_path / "out" / "results.jsonl").exists()
