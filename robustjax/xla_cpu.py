"""What robustjax does differently on XLA:CPU, in one place: the attack loop form and classifier chains.

Two findings on 2-core CPUs shape the compiled programs (figures and how they were measured:
``docs/xla_cpu.md`` and ``experiments/benchmarks/README.md``):

- Inside a loop body XLA:CPU emits the input gradient of a plain ``lax``/``nnx`` convolution as a
  naive loop nest, many times slower than the same convolution outside a loop. robustjax's models
  and codecs build their convolutions with :mod:`robustjax.layers`, which avoids that, so an
  attack's loop stays rolled (``lax.fori_loop``: compiles several times faster, runs as fast) unless
  its traced body holds such a plain convolution (a user's own model), in which case it is unrolled.
  ``ROBUSTJAX_ATTACK_LOOP=unrolled|rolled`` overrides. GPU/TPU always get the rolled form.
- XLA:CPU keeps the cores only partly busy on one chain of small kernels, so a classifier runs a
  large batch as a few independent interleaved chains (``ROBUSTJAX_CHAINS`` overrides; 1 on GPU/TPU).

Both only change speed, never a result.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

LOOP_FORMS = ("unrolled", "rolled")


def requested_unroll() -> bool | None:
    """The loop form ``ROBUSTJAX_ATTACK_LOOP=unrolled|rolled`` asks for (True = unrolled), or None."""
    form = os.environ.get("ROBUSTJAX_ATTACK_LOOP")
    if not form:
        return None
    if form not in LOOP_FORMS:
        raise ValueError(f"ROBUSTJAX_ATTACK_LOOP must be one of {', '.join(LOOP_FORMS)}, got {form!r}")
    return form == "unrolled"


def default_unroll(body, init) -> bool:
    """The loop form for ``body(i, state)`` starting from ``init`` when the attack leaves it open
    (True = unrolled): ``ROBUSTJAX_ATTACK_LOOP`` if set, else unrolled only on CPU for a body with
    a convolution XLA:CPU runs slowly inside a loop (see the module docstring)."""
    requested = requested_unroll()
    if requested is not None:
        return requested
    return jax.default_backend() == "cpu" and has_slow_loop_convolution(body, init)


def has_slow_loop_convolution(body, init) -> bool:
    """Whether the traced ``body(i, init)`` holds a convolution whose kernel lists its output
    feature axis before its input feature axis (HLO ``..._01oi->...``, ``oi01``: the input gradient
    of a plain ``lax`` convolution), which XLA:CPU emits as a naive loop nest inside a loop body
    (robustjax/layers.py). Conservative: any such layout counts."""
    jaxpr = jax.make_jaxpr(body)(jnp.zeros((), jnp.int32), init)
    return _any_slow_convolution(jaxpr.jaxpr)


def _any_slow_convolution(jaxpr) -> bool:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            rhs_spec = eqn.params["dimension_numbers"].rhs_spec
            if rhs_spec[0] < rhs_spec[1]:
                return True
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                if hasattr(inner, "eqns") and _any_slow_convolution(inner):
                    return True
    return False


CPU_CHAINS = 4
MIN_CHAIN_IMAGES = 16


def default_chains(batch: int) -> int:
    """How many independent chains :class:`Classifier` splits a batch of ``batch`` images into:
    ``ROBUSTJAX_CHAINS`` if set, else on CPU up to 4 with at least 16 images each, 1 elsewhere.

    XLA:CPU leaves cores idle on one chain of small kernels (it runs one small kernel at a time
    between the multi-threaded convolutions); independent chains overlap them. Each chain is a copy
    of the model in the compiled program, so compilation takes up to 4x longer; the 16-image floor
    keeps small runs, where compilation dominates, on one chain. GPU kernels fill the device on
    their own, so other backends keep one chain. Figures: ``docs/xla_cpu.md``.
    """
    value = os.environ.get("ROBUSTJAX_CHAINS")
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"ROBUSTJAX_CHAINS must be an integer >= 1, got {value!r}")
        return int(value)
    if jax.default_backend() != "cpu":
        return 1
    return max(1, min(CPU_CHAINS, batch // MIN_CHAIN_IMAGES))
