"""Training entry points: ``python -m robustjax.train comdefend ...`` (see :mod:`robustjax.train.comdefend`)."""
