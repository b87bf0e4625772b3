"""Helpers both executors share around their batch loops: the progress bar and the decoded-image cache."""

from __future__ import annotations

import sys

from tqdm import tqdm

from robustjax.data import cache


def bar(total: int):
    """A tqdm bar over ``total`` images on stderr."""
    return tqdm(total=total, unit="img", desc="    images", leave=False, dynamic_ncols=True, file=sys.stderr,
                smoothing=0.1)


def decode_cache(ds, resize):
    """The grid-wide decoded-image cache of (ds, resize), or None when turned off."""
    return cache.decoded(ds, resize) if cache.enabled() else None
