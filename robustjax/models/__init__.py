"""Flax NNX classifiers taking float32 NHWC images in [0, 1]; ``load(name)`` gives a pure function.

Each model module (``cifar_resnet``, ``small_cnn``, ``efficientnet_lite``, ``resnet``, ``vit``)
follows one interface: ``NUM_CLASSES``, ``INPUT_SIZE``, ``PREPROCESSING``, ``create(rngs=None,
**config)`` and ``RULES`` (the key map from the published PyTorch state dict). ``zoo`` registers
them by name and as checkpoint families.
"""

from robustjax.models.zoo import Classifier, available, load

__all__ = ["Classifier", "available", "load"]
