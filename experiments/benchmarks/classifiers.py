"""Classifier forward and forward+backward (gradient w.r.t. the input) per image: JAX vs PyTorch.

    PYTHONPATH=. python experiments/benchmarks/classifiers.py [--threads N] [--repeats R]

Both frameworks run in this one process, on the same inputs, with the same thread count and the
glibc allocator settings of DESIGN.md (the script re-executes itself with
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` set when they are missing).

* CIFAR ResNet-20 (real weights) at batch 256 x 32x32;
* ResNet-50 (torchvision layout, random weights) at batch 8 x 224x224, only when
  ``robustjax.models.resnet`` is present in this checkout (skipped with a note otherwise).

Forward+backward is what an attack step costs: the gradient of the summed cross-entropy with
respect to the input images. Figures are medians over ``--repeats`` timed calls after warm-up;
ratio = PyTorch time / JAX time (> 1 means JAX is faster).
"""

from __future__ import annotations

import argparse
import os
import sys

_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "1000000000", "MALLOC_TRIM_THRESHOLD_": "1000000000"}
if any(os.environ.get(k) != v for k, v in _MALLOC.items()):
    os.environ.update(_MALLOC)
    os.execv(sys.executable, [sys.executable, *sys.argv])

import time  # noqa: E402

import numpy as np  # noqa: E402


def _median_time(fn, repeats):
    fn()  # warm-up (compilation for JAX)
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_pair(label, jax_fn, jax_state, torch_model, x_np, y_np, repeats):
    import jax
    import jax.numpy as jnp
    import optax
    import torch

    x = jnp.asarray(x_np)
    y = jnp.asarray(y_np)
    fwd = jax.jit(jax_fn)

    def loss(xx, state):
        return optax.softmax_cross_entropy_with_integer_labels(jax_fn(state, xx), y).sum()

    grad = jax.jit(jax.grad(loss))
    xt = torch.from_numpy(x_np).permute(0, 3, 1, 2).contiguous()
    yt = torch.from_numpy(y_np).long()

    def t_fwd():
        with torch.no_grad():
            torch_model(xt)

    def t_grad():
        xr = xt.clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(torch_model(xr), yt, reduction="sum").backward()
        return xr.grad

    n = len(x_np)
    res = {}
    for what, jf, tf in (("forward", lambda: fwd(jax_state, x).block_until_ready(), t_fwd),
                         ("forward+backward", lambda: grad(x, jax_state).block_until_ready(), t_grad)):
        tj = _median_time(jf, repeats) / n
        tt = _median_time(tf, repeats) / n
        res[what] = (tj, tt)
        print(f"{label:34s} {what:17s} JAX {tj * 1e3:8.3f} ms/img   PyTorch {tt * 1e3:8.3f} ms/img   "
              f"ratio (torch/jax) {tt / tj:5.2f}x", flush=True)
    return res


def cifar_resnet20(batch, repeats):
    from flax import nnx

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from classifier_accuracy import torch_cifar_resnet  # the option-A PyTorch reference, real weights
    from robustjax.models import load

    clf = load("cifar_resnet20")

    def apply(state, x):
        return nnx.merge(clf.graphdef, state)(x)

    rng = np.random.default_rng(0)
    x = rng.random((batch, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    return bench_pair(f"cifar_resnet20 batch {batch}x32", apply, clf.state, torch_cifar_resnet(20), x, y, repeats)


def resnet50(batch, repeats):
    import importlib.util

    if importlib.util.find_spec("robustjax.models.resnet") is None:
        print("resnet50: skipped (robustjax.models.resnet is not in this checkout)")
        return None
    import torch
    import torchvision
    from flax import nnx

    from robustjax.models import resnet
    from robustjax.porting import load_into

    torch.manual_seed(0)
    ref = torchvision.models.resnet50().eval()
    model = resnet.create(nnx.Rngs(0))
    load_into(model, {k: v.numpy() for k, v in ref.state_dict().items()}, resnet.RULES)
    graphdef, state = nnx.split(model)
    mean = torch.tensor(resnet.PREPROCESSING["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(resnet.PREPROCESSING["std"]).view(1, 3, 1, 1)

    class Normalised(torch.nn.Module):
        def forward(self, x):
            return ref((x - mean) / std)

    def apply(st, x):
        return nnx.merge(graphdef, st)(x)

    rng = np.random.default_rng(0)
    x = rng.random((batch, 224, 224, 3), dtype=np.float32)
    y = rng.integers(0, 1000, batch)
    return bench_pair(f"resnet50 batch {batch}x224", apply, state, Normalised().eval(), x, y, repeats)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cifar-batch", type=int, default=256)
    p.add_argument("--resnet50-batch", type=int, default=8)
    p.add_argument("--skip-resnet50", action="store_true")
    args = p.parse_args(argv)
    if args.threads < len(os.sched_getaffinity(0)):
        # Pin the whole process (XLA's and PyTorch's pools alike) to the same `threads` cores.
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.threads])
    import jax
    import torch

    torch.set_num_threads(args.threads)
    print(f"threads: {args.threads} (torch {torch.__version__}, jax {jax.__version__}, backend {jax.default_backend()}), "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    cifar_resnet20(args.cifar_batch, args.repeats)
    if not args.skip_resnet50:
        resnet50(args.resnet50_batch, args.repeats)


if __name__ == "__main__":
    main()
