"""Command-line converter from published checkpoints to robustjax (orbax + metadata JSON).

A thin front end over :mod:`robustjax.checkpoints`; see ``python -m checkpoints_convert --help``.
"""
