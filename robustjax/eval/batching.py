"""``--batch-size auto``: the largest batch whose compiled cell fits the device, and out-of-memory retries.

A fixed batch size either wastes an accelerator or dies of out-of-memory (ELIC/HiFiC at 50
sequential rounds). :func:`auto_batch` reads XLA's memory analysis of the compiled program (per
device: arguments + outputs + temporaries + code - aliased) at two sizes, fits the affine
``bytes(b) = fixed + b * per_image`` that XLA's buffers follow, and compiles the largest multiple of
the device count under ``margin`` of the device's memory, shrinking until the compiled program
fits. :func:`run_with_retry` reruns a cell at half the batch when it still runs out of memory.

The device memory is ``ROBUSTJAX_DEVICE_MEMORY_MB`` when set (how CPU runs and tests impose a
limit), else the device's ``memory_stats()["bytes_limit"]`` (GPU/TPU), else the host's physical
memory divided among the local devices (CPU).
"""

from __future__ import annotations

import dataclasses
import os

MARGIN = 0.85  # share of the device memory a cell's program may plan for (fragmentation, runtime buffers)
OOM_MARKERS = ("RESOURCE_EXHAUSTED", "out of memory", "Out of memory", "OOM")


def device_memory_bytes(device=None) -> int:
    """Bytes one device offers a program (see the module doc for the order of sources)."""
    raw = os.environ.get("ROBUSTJAX_DEVICE_MEMORY_MB")
    if raw is not None and raw.strip():
        try:
            mb = float(raw)
        except ValueError:
            raise ValueError(f"ROBUSTJAX_DEVICE_MEMORY_MB must be a number of MiB, got {raw!r}") from None
        if mb <= 0:
            raise ValueError(f"ROBUSTJAX_DEVICE_MEMORY_MB must be > 0, got {raw!r}")
        return int(mb * 2**20)
    import jax

    device = device or jax.local_devices()[0]
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # not every backend implements it
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(pages // max(1, jax.local_device_count()))


def program_bytes(compiled) -> int:
    """Per-device bytes XLA plans for ``compiled``: arguments + outputs + temporaries + code - aliased."""
    m = compiled.memory_analysis()
    if m is None:
        raise ValueError("this backend gives no memory analysis of compiled programs; set a fixed --batch-size")
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
               + m.generated_code_size_in_bytes - m.alias_size_in_bytes)


@dataclasses.dataclass(frozen=True)
class Choice:
    """The batch :func:`auto_batch` picked, the bytes its program plans, the budget it had, and the
    sizes it compiled on the way (for the record)."""

    batch: int
    bytes: int
    budget: int
    tried: tuple

    def describe(self) -> dict:
        return {"batch": self.batch, "program_bytes": self.bytes, "budget_bytes": self.budget, "margin": MARGIN,
                "compiled_at": [list(t) for t in self.tried]}


def auto_batch(compile_at, devices: int, max_batch: int, limit_bytes: int | None = None, margin: float = MARGIN):
    """``(batch, compiled, choice)``: the largest multiple of ``devices`` up to ``max_batch`` (rounded
    up to a multiple of ``devices``) whose program ``compile_at(batch)`` plans at most ``margin`` x
    ``limit_bytes`` (default :func:`device_memory_bytes`) per device.

    Compiles 2-4 times. ValueError when even ``devices`` images do not fit (naming the bytes), before
    anything runs."""
    budget = int(margin * (limit_bytes if limit_bytes is not None else device_memory_bytes()))
    top = max(devices, -(-max_batch // devices) * devices)
    tried, programs = [], {}

    def measure(b):
        c = compile_at(b)
        programs[b] = c
        tried.append((b, program_bytes(c)))
        return tried[-1][1]

    lo = devices
    lo_bytes = measure(lo)
    if lo_bytes > budget:
        raise ValueError(f"even a batch of {lo} ({devices} device(s) x 1) needs {lo_bytes / 2**20:.1f} MiB per device, "
                         f"over the {budget / 2**20:.1f} MiB budget ({margin:.0%} of the device memory)")
    if top == lo:
        return lo, programs[lo], Choice(lo, lo_bytes, budget, tuple(tried))
    hi = min(top, 2 * lo)
    hi_bytes = measure(hi)
    best, best_bytes = (hi, hi_bytes) if hi_bytes <= budget else (lo, lo_bytes)
    if hi_bytes <= budget and hi < top:
        per_image = max(1.0, (hi_bytes - lo_bytes) / (hi - lo))
        fixed = lo_bytes - per_image * lo
        guess = min(top, int((budget - fixed) / per_image) // devices * devices)
        for _ in range(3):
            if guess <= best:
                break
            b = measure(guess)
            if b <= budget:
                best, best_bytes = guess, b
                break
            guess = max(best, int(guess * budget / b) // devices * devices)  # shrink by the overshoot
    return best, programs[best], Choice(best, best_bytes, budget, tuple(tried))


def is_oom(e: BaseException) -> bool:
    """True for an out-of-memory error from XLA (RESOURCE_EXHAUSTED) or the allocator."""
    return isinstance(e, MemoryError) or any(m in str(e) for m in OOM_MARKERS)


def run_with_retry(run, batch: int | None, devices: int, last_batch, log=print, attempts: int = 6):
    """``run(batch)`` (``batch`` None: auto), rerun at half the batch that ran out of memory
    (``last_batch()`` tells which one, a multiple of ``devices``) until it fits; returns
    ``(result, retries)`` with ``retries`` the batch sizes that failed. Other errors pass through;
    out-of-memory at ``devices`` images (one per device) is raised."""
    retries = []
    for _ in range(attempts):
        try:
            return run(batch), retries
        except Exception as e:
            if not is_oom(e):
                raise
            failed = last_batch()
            if failed is None or failed <= devices:
                raise
            retries.append(failed)
            batch = max(devices, (failed // 2) // devices * devices)
            log(f"    out of memory at batch {failed}; retrying the cell at batch {batch}")
    raise RuntimeError(f"out of memory at every batch tried: {retries}")
