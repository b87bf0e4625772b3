"""A persistent cache of compiled XLA programs, so a second run of the same grid compiles nothing.

Compilation is most of a small run's wall time on CPU (the quick-start's attack programs take
seconds each to compile and far less to run on 20 images). JAX keys each program by its HLO, the
backend and the compile options, so a cached entry is only reused for an identical program.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax


def default_dir() -> Path | None:
    """``$ROBUSTJAX_COMPILATION_CACHE`` if set (``0``, ``off`` or empty disables: None), else
    ``$ROBUSTJAX_CACHE/xla`` (default ``~/.cache/robustjax/xla``)."""
    value = os.environ.get("ROBUSTJAX_COMPILATION_CACHE")
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off", "false", "no") else Path(value)
    from robustjax.checkpoints import cache_root

    return cache_root() / "xla"


def enable(directory: str | os.PathLike | None = None) -> Path | None:
    """Store every compiled program under ``directory`` (default :func:`default_dir`) and reuse it.

    Returns the directory, or None when disabled. Programs of any compile time and size are kept:
    the grid's programs are few and each is worth keeping.
    """
    path = Path(directory) if directory is not None else default_dir()
    if path is None:
        return None
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # 0 would mean "JAX's default minimum"
    return path
