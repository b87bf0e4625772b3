"""Command-line converter: ``python -m checkpoints_convert FAMILY SRC DST``.

A thin front end over :mod:`robustjax.checkpoints` (imports run ``checkpoints_convert -> robustjax``
only): the key maps live beside each model/codec in robustjax, which also uses them to convert
files found in ``ROBUSTJAX_WEIGHTS`` on first use.
"""
